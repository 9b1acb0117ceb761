//! Attribute arguments to a typed `Args`. Each value keeps its span so that validation can point
//! at the exact token. Parsing does not stop at the first mistake: every bad argument is recorded
//! and parsing resumes at the next comma, so the user sees all mistakes at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Token, Type, UnOp};

/// A value, the tokens it came from (so that an error can underline all of them: `-1.0`, not
/// just `-`), and its position among the arguments (to tell which of two is the later).
#[derive(Clone)]
pub(crate) struct Value<T> {
    pub value: T,
    pub tokens: TokenStream,
    pub index: usize,
}

impl<T> Value<T> {
    /// The span of the value's first token.
    pub(crate) fn span(&self) -> proc_macro2::Span {
        self.tokens
            .clone()
            .into_iter()
            .next()
            .map_or_else(proc_macro2::Span::call_site, |t| t.span())
    }

    /// An error on the value's tokens.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, msg)
    }
}

/// What kind of value a key takes; drives parsing and the "takes ..." messages.
#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Seconds,
    Number,
    Str,
    Bool,
    Idents,
    Ident,
    Types,
    Expr,
}

/// A parsed value before it is stored under its key; one variant per `Kind`.
enum Parsed {
    Integer(i128),
    Seconds(f64),
    Number(f64),
    Str(String),
    Bool(bool),
    Idents(Vec<Ident>),
    Ident(Ident),
    Types(Vec<Type>),
    Expr(Expr),
}

/// Declares every key once: the `Args` field, its kind, and an example for error messages.
macro_rules! keys {
    ($($key:ident: $kind:ident($ty:ty) = $example:literal,)*) => {
        /// The arguments as written, before validation.
        #[derive(Default)]
        pub(crate) struct Args {
            $(pub $key: Option<Value<$ty>>,)*
        }

        /// Every key, its kind, and an example. The order is the documentation's.
        const KEYS: &[(&str, Kind, &str)] = &[$((stringify!($key), Kind::$kind, $example),)*];

        impl Args {
            /// Stores a value under its key; the one place that rejects a key given twice.
            fn store(&mut self, key: &Ident, value: Value<Parsed>) -> syn::Result<()> {
                let Value { value, tokens, index } = value;
                match (key.to_string().as_str(), value) {
                    $((stringify!($key), Parsed::$kind(v)) => {
                        set_once(&mut self.$key, key, Value { value: v, tokens, index })
                    })*
                    _ => unreachable!("parse_value returns the kind listed in KEYS"),
                }
            }
        }
    };
}

keys! {
    max_attempts: Integer(i128) = "max_attempts = 3",
    initial_delay: Seconds(f64) = "initial_delay = 1.0",
    max_delay: Seconds(f64) = "max_delay = 10.0",
    backoff_factor: Number(f64) = "backoff_factor = 2.0",
    backoff: Str(String) = "backoff = \"exponential\"",
    jitter: Str(String) = "jitter = \"full\"",
    max_time: Seconds(f64) = "max_time = 60",
    retry_on: Types(Vec<Type>) = "retry_on = [RateLimitError, TimeoutError]",
    give_up_on: Types(Vec<Type>) = "give_up_on = [AuthenticationError]",
    retry_if: Expr(Expr) = "retry_if = |e: &MyError| e.is_transient()",
    retry_if_ok: Expr(Expr) = "retry_if_ok = |r: &Reply| r.is_pending()",
    max_retry_after: Seconds(f64) = "max_retry_after = 120",
    env_prefix: Str(String) = "env_prefix = \"LLM\"",
    config: Expr(Expr) = "config = self.retry_settings",
    attempt_timeout: Seconds(f64) = "attempt_timeout = 30",
    circuit_breaker: Expr(Expr) = "circuit_breaker = OPENAI_BREAKER",
    budget: Expr(Expr) = "budget = OPENAI_BUDGET",
    throttle: Expr(Expr) = "throttle = OPENAI_THROTTLE",
    name: Str(String) = "name = \"openai.complete\"",
    stats: Bool(bool) = "stats = true",
    on_retry: Expr(Expr) = "on_retry = log_retry",
    on_give_up: Expr(Expr) = "on_give_up = log_give_up",
    on_success: Expr(Expr) = "on_success = log_success",
    context: Ident(Ident) = "context = ctx",
    fallback: Expr(Expr) = "fallback = |e| Ok(cached_answer())",
    clone: Idents(Vec<Ident>) = "clone = [prompt]",
}

impl Args {
    /// Parses the attribute's arguments, returning what could be parsed and every error found.
    pub(crate) fn parse(tokens: TokenStream) -> (Args, Vec<syn::Error>) {
        let mut args = Args::default();
        let mut errors = Vec::new();
        let parser = |input: ParseStream<'_>| {
            let mut index = 0;
            while !input.is_empty() {
                if let Err(e) = args.parse_one(input, index) {
                    errors.push(e);
                    skip_to_next_comma(input);
                }
                index += 1;
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

    fn parse_one(&mut self, input: ParseStream<'_>, index: usize) -> syn::Result<()> {
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
        let (value, tokens) = parse_value(input, &name, kind, example)?;
        self.store(
            &key,
            Value {
                value,
                tokens,
                index,
            },
        )
    }
}

fn set_once<T>(slot: &mut Option<Value<T>>, key: &Ident, value: Value<T>) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` is given more than once; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `[A, B]` or a single `A`, for lists of types and of argument names.
fn one_or_bracketed<T: Parse + ToTokens>(input: ParseStream<'_>) -> syn::Result<Vec<T>> {
    if input.peek(syn::token::Bracket) {
        let content;
        syn::bracketed!(content in input);
        Ok(content
            .parse_terminated(T::parse, Token![,])?
            .into_iter()
            .collect())
    } else {
        Ok(vec![input.parse()?])
    }
}

fn parse_value(
    input: ParseStream<'_>,
    name: &str,
    kind: Kind,
    example: &str,
) -> syn::Result<(Parsed, TokenStream)> {
    let takes = |what: &str, e: syn::Error| {
        syn::Error::new(
            e.span(),
            format!("`{name}` takes {what}: write `{example}`"),
        )
    };
    match kind {
        Kind::Idents => {
            let idents: Vec<Ident> =
                one_or_bracketed(input).map_err(|e| takes("argument names", e))?;
            let tokens = idents.iter().map(ToTokens::to_token_stream).collect();
            Ok((Parsed::Idents(idents), tokens))
        }
        Kind::Types => {
            let types: Vec<Type> = one_or_bracketed(input).map_err(|e| takes("error types", e))?;
            let tokens = types.iter().map(ToTokens::to_token_stream).collect();
            Ok((Parsed::Types(types), tokens))
        }
        Kind::Ident => {
            let ident: Ident = input.parse().map_err(|e| takes("a name", e))?;
            let tokens = ident.to_token_stream();
            Ok((Parsed::Ident(ident), tokens))
        }
        Kind::Expr => {
            let expr: Expr = input.parse().map_err(|e| takes("an expression", e))?;
            let tokens = expr.to_token_stream();
            Ok((Parsed::Expr(expr), tokens))
        }
        Kind::Str | Kind::Bool => {
            let expr: Expr = input.parse()?;
            let tokens = expr.to_token_stream();
            let value = match (&expr, kind) {
                (
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                    Kind::Str,
                ) => Parsed::Str(s.value()),
                (
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(b), ..
                    }),
                    Kind::Bool,
                ) => Parsed::Bool(b.value),
                (other, _) => {
                    let wants = if matches!(kind, Kind::Str) {
                        "a string literal"
                    } else {
                        "`true` or `false`"
                    };
                    return Err(syn::Error::new_spanned(
                        other,
                        format!(
                            "`{name}` takes {wants}, like `{example}`; found {}",
                            describe(other)
                        ),
                    ));
                }
            };
            Ok((value, tokens))
        }
        Kind::Integer | Kind::Seconds | Kind::Number => {
            let expr: Expr = input.parse()?;
            let value = number(&expr, name, kind, example)?;
            Ok((value, expr.to_token_stream()))
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
    let suffix = match lit {
        Lit::Int(i) => i.suffix(),
        Lit::Float(f) => f.suffix(),
        _ => "",
    };
    if !suffix.is_empty() {
        return Err(syn::Error::new_spanned(
            lit,
            format!("`{name}` takes a plain number; remove the `{suffix}` suffix"),
        ));
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let float = |v: f64| match kind {
        Kind::Seconds => Parsed::Seconds(sign * v),
        _ => Parsed::Number(sign * v),
    };
    match (kind, lit) {
        (Kind::Integer, Lit::Int(i)) => {
            let v: i128 = i.base10_parse().map_err(|_| {
                syn::Error::new_spanned(i, format!("`{name}` is too large; it must fit in a u32"))
            })?;
            Ok(Parsed::Integer(if negative { -v } else { v }))
        }
        (Kind::Seconds | Kind::Number, Lit::Int(i)) => Ok(float(i.base10_parse()?)),
        (Kind::Seconds | Kind::Number, Lit::Float(f)) => Ok(float(f.base10_parse()?)),
        _ => Err(wrong_kind(expr, name, kind, example)),
    }
}

fn wrong_kind(expr: &Expr, name: &str, kind: Kind, example: &str) -> syn::Error {
    let wants = match kind {
        Kind::Integer => "an integer",
        Kind::Seconds => "a number of seconds (an integer or float literal)",
        _ => "a number",
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
