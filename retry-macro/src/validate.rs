//! Every compile-time check, one function per rule. All errors are collected and combined, so a
//! user sees every mistake in one build. The output, `Config`, is what expand.rs trusts.

use syn::{Expr, FnArg, Ident, Pat, Type};

use crate::args::{Args, Value};
use crate::item::{FnItem, Shape};

/// Validated settings, in the units the expansion needs.
pub(crate) struct Config {
    pub policy: PolicySource,
    pub classify: Classify,
    /// Seconds each attempt may take (`attempt_timeout`), and the key's span for errors.
    pub attempt_timeout: Option<(f64, proc_macro2::Span)>,
    pub circuit_breaker: Option<Expr>,
    pub budget: Option<Expr>,
    pub throttle: Option<Expr>,
    /// `name = ".."`, for events and statistics.
    pub name: Option<String>,
    /// `stats = true/false`; `None` leaves it to the runtime's `stats` feature.
    pub stats: Option<bool>,
    pub on_retry: Option<Expr>,
    pub on_give_up: Option<Expr>,
    pub on_success: Option<Expr>,
    /// `context = ctx`: the name bound to the attempt context inside the body.
    pub context: Option<Ident>,
    pub fallback: Option<Expr>,
    pub clone: Vec<Ident>,
}

/// Where the policy comes from.
pub(crate) enum PolicySource {
    /// Literals (or defaults), fixed at compile time.
    Literals(Timing),
    /// Literals overridden once from `{prefix}_...` environment variables.
    Env { prefix: String, base: Timing },
    /// `config = <expr>`, evaluated at each call.
    Expr(Expr),
}

/// The timing literals, validated.
pub(crate) struct Timing {
    pub max_attempts: u32,
    pub initial_delay: f64,
    pub max_delay: f64,
    pub backoff_factor: f64,
    /// The runtime's `Backoff` variant name.
    pub backoff: &'static str,
    /// The runtime's `Jitter` variant name.
    pub jitter: &'static str,
    pub max_time: Option<f64>,
    pub max_retry_after: Option<f64>,
}

/// Which errors are retried.
pub(crate) struct Classify {
    /// Where "this error type cannot be inspected" is reported: the first list's tokens.
    pub inspect_span: proc_macro2::Span,
    pub retry_on: Vec<Type>,
    pub give_up_on: Vec<Type>,
    pub retry_if: Option<Expr>,
    pub retry_if_ok: Option<Expr>,
}

const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const DEFAULT_INITIAL_DELAY: f64 = 1.0;
const DEFAULT_MAX_DELAY: f64 = 10.0;
const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;

const BACKOFFS: &[(&str, &str)] = &[
    ("exponential", "Exponential"),
    ("constant", "Constant"),
    ("linear", "Linear"),
    ("fibonacci", "Fibonacci"),
];
const JITTERS: &[(&str, &str)] = &[
    ("full", "Full"),
    ("equal", "Equal"),
    ("decorrelated", "Decorrelated"),
    ("none", "None"),
];

/// Collects errors so that every rule runs even after one fails.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn check<T>(&mut self, r: Result<T, syn::Error>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// Runs every rule on the arguments and the fn, returning the settings or all errors combined.
pub(crate) fn validate(args: &Args, item: &FnItem, mut errors: Errors) -> syn::Result<Config> {
    let timing = timing(args, &mut errors);
    let policy = match (&args.config, &args.env_prefix) {
        (Some(config), _) => {
            errors.check(config_excludes_literals(args));
            PolicySource::Expr(config.value.clone())
        }
        (None, Some(prefix)) => match errors.check(env_prefix(prefix)) {
            Some(prefix) => PolicySource::Env {
                prefix,
                base: timing,
            },
            None => PolicySource::Literals(timing),
        },
        (None, None) => PolicySource::Literals(timing),
    };
    let classify = Classify {
        inspect_span: first_list_span(args),
        retry_on: types(args.retry_on.as_ref()),
        give_up_on: types(args.give_up_on.as_ref()),
        retry_if: expr(args.retry_if.as_ref()),
        retry_if_ok: expr(args.retry_if_ok.as_ref()),
    };
    errors.check(no_type_listed_twice(args));
    let attempt_timeout = errors
        .check(attempt_timeout(args.attempt_timeout.as_ref(), item))
        .flatten()
        .zip(args.attempt_timeout.as_ref().map(Value::span));
    let clone = errors
        .check(clone_names_are_arguments(args, item))
        .unwrap_or_default();
    let name = errors.check(name(args.name.as_ref())).flatten();
    errors.check(returns_a_value(item));
    errors.finish(Config {
        policy,
        classify,
        attempt_timeout,
        circuit_breaker: expr(args.circuit_breaker.as_ref()),
        budget: expr(args.budget.as_ref()),
        throttle: expr(args.throttle.as_ref()),
        name,
        stats: args.stats.as_ref().map(|v| v.value),
        on_retry: expr(args.on_retry.as_ref()),
        on_give_up: expr(args.on_give_up.as_ref()),
        on_success: expr(args.on_success.as_ref()),
        context: args.context.as_ref().map(|v| v.value.clone()),
        fallback: expr(args.fallback.as_ref()),
        clone,
    })
}

fn timing(args: &Args, errors: &mut Errors) -> Timing {
    let initial_delay = errors
        .check(seconds(
            "initial_delay",
            args.initial_delay.as_ref(),
            DEFAULT_INITIAL_DELAY,
        ))
        .unwrap_or(DEFAULT_INITIAL_DELAY);
    let max_delay = errors
        .check(seconds(
            "max_delay",
            args.max_delay.as_ref(),
            DEFAULT_MAX_DELAY,
        ))
        .unwrap_or(DEFAULT_MAX_DELAY);
    errors.check(max_delay_not_below_initial(args, initial_delay, max_delay));
    Timing {
        max_attempts: errors
            .check(max_attempts(args.max_attempts.as_ref()))
            .unwrap_or(DEFAULT_MAX_ATTEMPTS),
        initial_delay,
        max_delay,
        backoff_factor: errors
            .check(backoff_factor(args.backoff_factor.as_ref()))
            .unwrap_or(DEFAULT_BACKOFF_FACTOR),
        backoff: errors
            .check(named("backoff", args.backoff.as_ref(), BACKOFFS))
            .unwrap_or("Exponential"),
        jitter: errors
            .check(named("jitter", args.jitter.as_ref(), JITTERS))
            .unwrap_or("Full"),
        max_time: errors
            .check(positive_seconds("max_time", args.max_time.as_ref()))
            .flatten(),
        max_retry_after: args
            .max_retry_after
            .as_ref()
            .and_then(|v| errors.check(seconds("max_retry_after", Some(v), 0.0))),
    }
}

/// The span of whichever of `retry_on`/`give_up_on` comes first.
fn first_list_span(args: &Args) -> proc_macro2::Span {
    [&args.retry_on, &args.give_up_on]
        .into_iter()
        .flatten()
        .min_by_key(|v| v.index)
        .map_or_else(proc_macro2::Span::call_site, Value::span)
}

fn expr(v: Option<&Value<Expr>>) -> Option<Expr> {
    v.map(|v| v.value.clone())
}

fn types(v: Option<&Value<Vec<Type>>>) -> Vec<Type> {
    v.map(|v| v.value.clone()).unwrap_or_default()
}

fn max_attempts(v: Option<&Value<i128>>) -> syn::Result<u32> {
    let Some(v) = v else {
        return Ok(DEFAULT_MAX_ATTEMPTS);
    };
    if v.value < 1 {
        return Err(v.error(format!(
            "`max_attempts` must be at least 1 (it counts the first attempt), found {}",
            v.value
        )));
    }
    u32::try_from(v.value).map_err(|_| {
        v.error(format!(
            "`max_attempts` must be at most {}, found {}",
            u32::MAX,
            v.value
        ))
    })
}

fn seconds(name: &str, v: Option<&Value<f64>>, default: f64) -> syn::Result<f64> {
    let Some(v) = v else { return Ok(default) };
    if !v.value.is_finite() {
        return Err(v.error(format!(
            "`{name}` must be a finite number of seconds, found {}",
            v.value
        )));
    }
    if v.value < 0.0 {
        return Err(v.error(format!(
            "`{name}` must be at least 0 seconds, found {}",
            v.value
        )));
    }
    Ok(v.value)
}

fn max_delay_not_below_initial(args: &Args, initial: f64, max: f64) -> syn::Result<()> {
    if max >= initial {
        return Ok(());
    }
    // Point at whichever of the two the user wrote; `max_delay` when both are written.
    Err(match (&args.max_delay, &args.initial_delay) {
        (Some(m), Some(_)) => m.error(format!(
            "`max_delay` must be at least `initial_delay` ({initial}), found {max}"
        )),
        (Some(m), None) => m.error(format!(
            "`max_delay` must be at least the default `initial_delay` ({initial}), found {max}"
        )),
        (None, Some(i)) => i.error(format!(
            "`initial_delay` must be at most the default `max_delay` ({max}), found {initial}; \
             raise `max_delay` too"
        )),
        (None, None) => unreachable!("the defaults are ordered"),
    })
}

fn backoff_factor(v: Option<&Value<f64>>) -> syn::Result<f64> {
    let Some(v) = v else {
        return Ok(DEFAULT_BACKOFF_FACTOR);
    };
    if !v.value.is_finite() {
        return Err(v.error(format!(
            "`backoff_factor` must be finite, found {}",
            v.value
        )));
    }
    if v.value < 1.0 {
        return Err(v.error(format!(
            "`backoff_factor` must be at least 1.0, found {}; below 1 the delays would shrink",
            v.value
        )));
    }
    Ok(v.value)
}

/// `max_time`, `attempt_timeout`: a finite number of seconds greater than 0.
fn positive_seconds(name: &str, v: Option<&Value<f64>>) -> syn::Result<Option<f64>> {
    let Some(v) = v else { return Ok(None) };
    if !v.value.is_finite() || v.value <= 0.0 {
        return Err(v.error(format!(
            "`{name}` must be a finite number of seconds greater than 0, found {}",
            v.value
        )));
    }
    Ok(Some(v.value))
}

/// The timing keys that `config = ..` replaces.
fn config_excludes_literals(args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    let mut reject = |key: &str, tokens: Option<&proc_macro2::TokenStream>| {
        if let Some(tokens) = tokens {
            errors.push(syn::Error::new_spanned(
                tokens,
                format!(
                    "`{key}` cannot be combined with `config`: the policy comes from `config` at \
                     run time; set `{key}` on that `RetryPolicy` instead"
                ),
            ));
        }
    };
    reject(
        "max_attempts",
        args.max_attempts.as_ref().map(|v| &v.tokens),
    );
    reject(
        "initial_delay",
        args.initial_delay.as_ref().map(|v| &v.tokens),
    );
    reject("max_delay", args.max_delay.as_ref().map(|v| &v.tokens));
    reject(
        "backoff_factor",
        args.backoff_factor.as_ref().map(|v| &v.tokens),
    );
    reject("backoff", args.backoff.as_ref().map(|v| &v.tokens));
    reject("jitter", args.jitter.as_ref().map(|v| &v.tokens));
    reject("max_time", args.max_time.as_ref().map(|v| &v.tokens));
    reject(
        "max_retry_after",
        args.max_retry_after.as_ref().map(|v| &v.tokens),
    );
    reject("env_prefix", args.env_prefix.as_ref().map(|v| &v.tokens));
    errors.finish(())
}

fn env_prefix(v: &Value<String>) -> syn::Result<String> {
    let ok = !v.value.is_empty()
        && v.value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(v.error(format!(
            "`env_prefix` must be upper-case letters, digits and `_`, like \"LLM\"; found \"{}\"",
            v.value
        )));
    }
    Ok(v.value.clone())
}

fn attempt_timeout(v: Option<&Value<f64>>, item: &FnItem) -> syn::Result<Option<f64>> {
    let secs = positive_seconds("attempt_timeout", v)?;
    if let (Some(v), Shape::Blocking(_)) = (v, &item.shape) {
        return Err(v.error(
            "`attempt_timeout` needs an `async fn`: a blocking fn cannot be interrupted; \
             set a timeout on the blocking call itself",
        ));
    }
    Ok(secs)
}

/// A type as a user writes it: `std::io::Error`, not the token stream's `std :: io :: Error`.
fn type_text(ty: &Type) -> String {
    let text = quote::ToTokens::to_token_stream(ty).to_string();
    [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
    ]
    .iter()
    .fold(text, |t, (from, to)| t.replace(from, to))
}

/// A type listed twice, in one list or across `retry_on` and `give_up_on`, is an error on the
/// later occurrence.
fn no_type_listed_twice(args: &Args) -> syn::Result<()> {
    let mut listed: Vec<(usize, &str, String, &Type)> = Vec::new();
    for (key, list) in [
        ("retry_on", &args.retry_on),
        ("give_up_on", &args.give_up_on),
    ] {
        if let Some(v) = list {
            for ty in &v.value {
                listed.push((v.index, key, type_text(ty), ty));
            }
        }
    }
    listed.sort_by_key(|(index, ..)| *index);
    let mut errors = Errors::default();
    for (i, (_, key, text, ty)) in listed.iter().enumerate() {
        if let Some((_, first_key, ..)) = listed[..i].iter().find(|(_, _, t, _)| t == text) {
            let msg = if first_key == key {
                format!("`{text}` is listed twice in `{key}`; keep one")
            } else {
                format!(
                    "`{text}` is in both `{first_key}` and `{key}`; an error type can only be \
                     retried or given up on: remove it from one list"
                )
            };
            errors.push(syn::Error::new_spanned(ty, msg));
        }
    }
    errors.finish(())
}

/// `backoff = "..."` and `jitter = "..."`: one of a fixed set of names.
fn named(
    name: &str,
    v: Option<&Value<String>>,
    allowed: &[(&str, &'static str)],
) -> syn::Result<&'static str> {
    let Some(v) = v else { return Ok(allowed[0].1) };
    if let Some((_, variant)) = allowed.iter().find(|(n, _)| *n == v.value) {
        return Ok(variant);
    }
    let list: Vec<String> = allowed.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let hint = allowed
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&v.value) || strsim::jaro_winkler(n, &v.value) > 0.85)
        .map(|(n, _)| format!("; did you mean \"{n}\"?"))
        .unwrap_or_default();
    Err(v.error(format!(
        "unknown {name} \"{}\"{hint}\nexpected one of: {}",
        v.value,
        list.join(", ")
    )))
}

fn name(v: Option<&Value<String>>) -> syn::Result<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    if v.value.trim().is_empty() {
        return Err(v.error("`name` must not be empty; it labels this fn in events and statistics"));
    }
    Ok(Some(v.value.clone()))
}

fn clone_names_are_arguments(args: &Args, item: &FnItem) -> syn::Result<Vec<Ident>> {
    let Some(list) = &args.clone else {
        return Ok(Vec::new());
    };
    let params: Vec<&Ident> = item
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(id) => Some(&id.ident),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut errors = Errors::default();
    for name in &list.value {
        if name == "self" {
            errors.push(syn::Error::new(
                name.span(),
                "`self` cannot be cloned per attempt; `&self` and `&mut self` are re-borrowed anyway",
            ));
        } else if !params.contains(&name) {
            let names: Vec<String> = params.iter().map(|p| format!("`{p}`")).collect();
            let listed = if names.is_empty() {
                "this fn has no named arguments".to_owned()
            } else {
                format!("its arguments are {}", names.join(", "))
            };
            errors.push(syn::Error::new(
                name.span(),
                format!("`clone` lists `{name}`, which is not an argument of this fn; {listed}"),
            ));
        }
    }
    errors.finish(list.value.clone())
}

fn returns_a_value(item: &FnItem) -> syn::Result<()> {
    if item.output_type().is_some() {
        return Ok(());
    }
    let sig = &item.sig;
    Err(syn::Error::new(
        sig.ident.span(),
        format!(
            "`#[retry_on_failure]` needs a fn that returns a `Result`, but `{}` returns `()`\n\
             a retry is decided by looking at the error: declare `-> Result<T, E>`",
            sig.ident
        ),
    ))
}
