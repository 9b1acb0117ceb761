//! Every compile-time check, one function per rule. All errors are collected and combined, so a
//! user sees every mistake in one build. The output, `Config`, is what expand.rs trusts.

use syn::{FnArg, Ident, Pat};

use crate::args::{Args, Value};
use crate::item::{FnItem, Shape};

/// Validated settings, in the units the expansion needs.
pub(crate) struct Config {
    pub max_attempts: u32,
    pub initial_delay: f64,
    pub max_delay: f64,
    pub backoff_factor: f64,
    /// The runtime's `Backoff` variant name.
    pub backoff: &'static str,
    /// The runtime's `Jitter` variant name.
    pub jitter: &'static str,
    pub max_time: Option<f64>,
    pub clone: Vec<Ident>,
    /// `name = ".."`, for events and statistics.
    pub name: Option<String>,
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
    let max_attempts = errors
        .check(max_attempts(args.max_attempts.as_ref()))
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
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
    let backoff_factor = errors
        .check(backoff_factor(args.backoff_factor.as_ref()))
        .unwrap_or(DEFAULT_BACKOFF_FACTOR);
    let backoff = errors
        .check(named("backoff", args.backoff.as_ref(), BACKOFFS))
        .unwrap_or("Exponential");
    let jitter = errors
        .check(named("jitter", args.jitter.as_ref(), JITTERS))
        .unwrap_or("Full");
    let max_time = errors.check(max_time(args.max_time.as_ref())).flatten();
    let clone = errors
        .check(clone_names_are_arguments(args, item))
        .unwrap_or_default();
    let name = errors.check(name(args.name.as_ref())).flatten();
    errors.check(returns_a_value(item));
    errors.check(is_async(item));
    errors.finish(Config {
        max_attempts,
        initial_delay,
        max_delay,
        backoff_factor,
        backoff,
        jitter,
        max_time,
        clone,
        name,
    })
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

fn max_time(v: Option<&Value<f64>>) -> syn::Result<Option<f64>> {
    let Some(v) = v else { return Ok(None) };
    if !v.value.is_finite() || v.value <= 0.0 {
        return Err(v.error(format!(
            "`max_time` must be a finite number of seconds greater than 0, found {}",
            v.value
        )));
    }
    Ok(Some(v.value))
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
        .func
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
    let sig = &item.func.sig;
    Err(syn::Error::new(
        sig.ident.span(),
        format!(
            "`#[retry_on_failure]` needs a fn that returns a `Result`, but `{}` returns `()`\n\
             a retry is decided by looking at the error: declare `-> Result<T, E>`",
            sig.ident
        ),
    ))
}

fn is_async(item: &FnItem) -> syn::Result<()> {
    match item.shape {
        Shape::Async | Shape::AsyncTrait { .. } => Ok(()),
        Shape::Blocking => Err(syn::Error::new(
            item.func.sig.fn_token.span,
            "`#[retry_on_failure]` goes on an `async fn`; write `async fn`",
        )),
    }
}
