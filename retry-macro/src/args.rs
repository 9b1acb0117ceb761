//! Attribute arguments to a typed `Args`. Each value keeps its span so that validation can point
//! at the exact token. Parsing does not stop at the first mistake: every bad argument is recorded
//! and parsing resumes at the next comma, so the user sees all mistakes at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Token, UnOp};

/// A value and the tokens it came from, so that an error can underline all of them (`-1.0`, not
/// just `-`).
#[derive(Clone)]
pub(crate) struct Value<T> {
    pub value: T,
    tokens: TokenStream,
}

impl<T> Value<T> {
    /// An error on the value's tokens.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, msg)
    }
}

/// The arguments as written, before validation.
#[derive(Default)]
pub(crate) struct Args {
    pub max_attempts: Option<Value<i128>>,
    pub initial_delay: Option<Value<f64>>,
    pub max_delay: Option<Value<f64>>,
    pub backoff_factor: Option<Value<f64>>,
    pub backoff: Option<Value<String>>,
    pub jitter: Option<Value<String>>,
    pub max_time: Option<Value<f64>>,
    pub clone: Option<Value<Vec<Ident>>>,
    pub name: Option<Value<String>>,
}

/// What kind of value a key takes; drives parsing and the "takes ..." messages.
#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Seconds,
    Number,
    Str,
    Idents,
}

/// Every key, its kind, and an example for error messages. The order is the documentation's.
const KEYS: &[(&str, Kind, &str)] = &[
    ("max_attempts", Kind::Integer, "max_attempts = 3"),
    ("initial_delay", Kind::Seconds, "initial_delay = 1.0"),
    ("max_delay", Kind::Seconds, "max_delay = 10.0"),
    ("backoff_factor", Kind::Number, "backoff_factor = 2.0"),
    ("backoff", Kind::Str, "backoff = \"exponential\""),
    ("jitter", Kind::Str, "jitter = \"full\""),
    ("max_time", Kind::Seconds, "max_time = 60"),
    ("clone", Kind::Idents, "clone = [prompt]"),
    ("name", Kind::Str, "name = \"openai.complete\""),
];

/// A parsed value before it is stored under its key.
enum Parsed {
    Number(f64),
    Integer(i128),
    Str(String),
    Idents(Vec<Ident>),
}

impl Args {
    /// Parses the attribute's arguments, returning what could be parsed and every error found.
    pub(crate) fn parse(tokens: TokenStream) -> (Args, Vec<syn::Error>) {
        let mut args = Args::default();
        let mut errors = Vec::new();
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                if let Err(e) = args.parse_one(input) {
                    errors.push(e);
                    skip_to_next_comma(input);
                }
                if input.is_empty() {
                    break;
                }
                if let Err(e) = input.parse::<Token![,]>() {
                    errors.push(e);
                    skip_to_next_comma(input);
                    let _ = input.parse::<Option<Token![,]>>();
                }
            }
            Ok(())
        };
        // The closure never fails: errors are collected, not returned.
        let _ = parser.parse2(tokens);
        (args, errors)
    }

    fn parse_one(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let key: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected an argument like `max_attempts = 3`; {}",
                    known_keys()
                ),
            )
        })?;
        let name = key.to_string();
        let Some(&(_, kind, example)) = KEYS.iter().find(|(k, _, _)| *k == name) else {
            return Err(unknown_key(&key));
        };
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("`{name}` needs a value: write `{example}`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = parse_value(input, &name, kind, example)?;
        self.store(&key, value)
    }

    /// Stores a value under its key; the one place that rejects a key given twice.
    fn store(&mut self, key: &Ident, value: Value<Parsed>) -> syn::Result<()> {
        let tokens = value.tokens;
        match (key.to_string().as_str(), value.value) {
            ("max_attempts", Parsed::Integer(v)) => {
                set_once(&mut self.max_attempts, key, v, tokens)
            }
            ("initial_delay", Parsed::Number(v)) => {
                set_once(&mut self.initial_delay, key, v, tokens)
            }
            ("max_delay", Parsed::Number(v)) => set_once(&mut self.max_delay, key, v, tokens),
            ("backoff_factor", Parsed::Number(v)) => {
                set_once(&mut self.backoff_factor, key, v, tokens)
            }
            ("backoff", Parsed::Str(v)) => set_once(&mut self.backoff, key, v, tokens),
            ("jitter", Parsed::Str(v)) => set_once(&mut self.jitter, key, v, tokens),
            ("max_time", Parsed::Number(v)) => set_once(&mut self.max_time, key, v, tokens),
            ("clone", Parsed::Idents(v)) => set_once(&mut self.clone, key, v, tokens),
            ("name", Parsed::Str(v)) => set_once(&mut self.name, key, v, tokens),
            _ => unreachable!("parse_value returns the kind listed in KEYS"),
        }
    }
}

fn set_once<T>(
    slot: &mut Option<Value<T>>,
    key: &Ident,
    value: T,
    tokens: TokenStream,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` is given more than once; keep one"),
        ));
    }
    *slot = Some(Value { value, tokens });
    Ok(())
}

fn parse_value(
    input: ParseStream<'_>,
    name: &str,
    kind: Kind,
    example: &str,
) -> syn::Result<Value<Parsed>> {
    match kind {
        Kind::Idents => {
            let idents: Vec<Ident> = if input.peek(syn::token::Bracket) {
                let content;
                syn::bracketed!(content in input);
                content
                    .parse_terminated(Ident::parse, Token![,])?
                    .into_iter()
                    .collect()
            } else {
                vec![input.parse::<Ident>().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!("`{name}` takes argument names: write `{example}`"),
                    )
                })?]
            };
            let tokens = idents.iter().map(|i| i.to_token_stream()).collect();
            Ok(Value {
                value: Parsed::Idents(idents),
                tokens,
            })
        }
        Kind::Str => {
            let expr: Expr = input.parse()?;
            match &expr {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Ok(Value {
                    value: Parsed::Str(s.value()),
                    tokens: s.to_token_stream(),
                }),
                other => Err(syn::Error::new_spanned(
                    other,
                    format!(
                        "`{name}` takes a string literal, like `{example}`; found {}",
                        describe(other)
                    ),
                )),
            }
        }
        Kind::Integer | Kind::Seconds | Kind::Number => {
            let expr: Expr = input.parse()?;
            number(&expr, name, kind, example).map(|value| Value {
                value,
                tokens: expr.to_token_stream(),
            })
        }
    }
}

/// A numeric literal, possibly negated, as the kind the key wants. Ranges are validate.rs's job.
fn number(expr: &Expr, name: &str, kind: Kind, example: &str) -> syn::Result<Parsed> {
    let (negative, lit) = match expr {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            _ => return Err(wrong_kind(expr, name, kind, example)),
        },
        _ => return Err(wrong_kind(expr, name, kind, example)),
    };
    let sign = if negative { -1.0 } else { 1.0 };
    match (kind, lit) {
        (_, Lit::Int(_) | Lit::Float(_)) if !lit_suffix(lit).is_empty() => {
            Err(syn::Error::new_spanned(
                lit,
                format!(
                    "`{name}` takes a plain number; remove the `{}` suffix",
                    lit_suffix(lit)
                ),
            ))
        }
        (Kind::Integer, Lit::Int(i)) => {
            let v: i128 = i.base10_parse().map_err(|_| {
                syn::Error::new_spanned(i, format!("`{name}` is too large; it must fit in a u32"))
            })?;
            Ok(Parsed::Integer(if negative { -v } else { v }))
        }
        (Kind::Seconds | Kind::Number, Lit::Int(i)) => {
            Ok(Parsed::Number(sign * i.base10_parse::<f64>()?))
        }
        (Kind::Seconds | Kind::Number, Lit::Float(f)) => {
            Ok(Parsed::Number(sign * f.base10_parse::<f64>()?))
        }
        _ => Err(wrong_kind(expr, name, kind, example)),
    }
}

fn lit_suffix(lit: &Lit) -> &str {
    match lit {
        Lit::Int(i) => i.suffix(),
        Lit::Float(f) => f.suffix(),
        _ => "",
    }
}

fn wrong_kind(expr: &Expr, name: &str, kind: Kind, example: &str) -> syn::Error {
    let wants = match kind {
        Kind::Integer => "an integer",
        Kind::Seconds => "a number of seconds (an integer or float literal)",
        Kind::Number => "a number",
        Kind::Str | Kind::Idents => unreachable!("not numeric"),
    };
    syn::Error::new_spanned(
        expr,
        format!(
            "`{name}` takes {wants}, like `{example}`; found {}",
            describe(expr)
        ),
    )
}

/// "a string literal", "a float literal", "an expression": for "found ..." in messages.
fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string literal",
            Lit::Int(_) => "an integer literal",
            Lit::Float(_) => "a float literal",
            Lit::Bool(_) => "a bool literal",
            Lit::Char(_) => "a char literal",
            _ => "a literal",
        },
        Expr::Path(_) => "a path (only literals are checked at compile time)",
        _ => "an expression (only literals are checked at compile time)",
    }
}

fn unknown_key(key: &Ident) -> syn::Error {
    let name = key.to_string();
    let best = KEYS
        .iter()
        .map(|(k, _, _)| (*k, strsim::normalized_damerau_levenshtein(&name, k)))
        .filter(|(_, score)| *score >= 0.6)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let msg = match best {
        Some((k, _)) => format!(
            "unknown argument `{name}`; did you mean `{k}`?\n{}",
            known_keys()
        ),
        None => format!("unknown argument `{name}`\n{}", known_keys()),
    };
    syn::Error::new(key.span(), msg)
}

fn known_keys() -> String {
    let list: Vec<String> = KEYS.iter().map(|(k, _, _)| format!("`{k}`")).collect();
    format!("expected one of: {}", list.join(", "))
}

/// Error recovery: drops tokens up to (not including) the next top-level comma.
fn skip_to_next_comma(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let proc_macro2::TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    break;
                }
            }
            rest = next;
        }
        Ok(((), rest))
    });
}
