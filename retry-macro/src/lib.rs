//! The `#[retry_on_failure]` attribute. Depend on `retry-runtime`, which re-exports it and holds
//! everything the expansion calls; this crate only rewrites the fn.
//!
//! The pipeline: `args.rs` parses the attribute into typed values that keep their spans,
//! `item.rs` finds the fn's shape, `validate.rs` checks every rule and reports all mistakes at
//! once, `expand.rs` writes the retry loop. On an error the fn is emitted unchanged next to the
//! `compile_error!`, so the rest of the crate still type-checks.

mod args;
mod expand;
mod item;
mod validate;

use proc_macro::TokenStream;

/// Retries a fn returning `Result` with exponential backoff and jitter: an `async fn` (each attempt
/// runs the body as an `async` block) or a plain `fn`.
///
/// ```text
/// #[retry_on_failure(max_attempts = 3, initial_delay = 1.0, max_delay = 10.0, backoff_factor = 2.0)]
/// async fn complete(&self, prompt: &str) -> Result<String, ProviderError> { .. }
/// ```
///
/// | argument | value | default | meaning |
/// |---|---|---|---|
/// | `max_attempts` | integer ≥ 1 | `3` | total attempts, the first included |
/// | `initial_delay` | seconds ≥ 0 (int or float) | `1.0` | delay before the first retry, before jitter |
/// | `max_delay` | seconds ≥ `initial_delay` | `10.0` | cap on any delay |
/// | `backoff_factor` | number ≥ 1.0 | `2.0` | growth of exponential backoff |
/// | `backoff` | `"exponential"`, `"constant"`, `"linear"`, `"fibonacci"` | `"exponential"` | `initial × factor^(n-1)`, `initial`, `initial × n`, `initial × fib(n)`, capped at `max_delay` |
/// | `jitter` | `"full"`, `"equal"`, `"decorrelated"`, `"none"` | `"full"` | AWS's formulas: `U[0, d]`, `d/2 + U[0, d/2]`, `min(max, U[initial, 3 × previous])`, `d` |
/// | `max_time` | seconds > 0 | none | budget for the whole call: no sleep is started that would end past it |
/// | `max_retry_after` | seconds ≥ 0 | `120` | longest server hint (`Retry-After`) honoured; a longer one gives up at once |
/// | `retry_on` | error type or `[types]` | none | retry only errors whose `source()` chain holds one of these |
/// | `give_up_on` | error type or `[types]` | none | never retry these; wins over everything |
/// | `retry_if` | closure or fn path, `Fn(&E) -> bool` | none | retry the errors it accepts (an enum variant, a status range) |
/// | `retry_if_ok` | closure or fn path, `Fn(&T) -> bool` | none | retry when an `Ok` asks for it (a pending job, an empty completion); the last `Ok` is returned after the last attempt |
/// | `attempt_timeout` | seconds > 0 | none | cut each attempt off after this long; counts as a retryable failure; `E: From<AttemptTimedOut>` |
/// | `env_prefix` | `"LLM"` | none | override the literals from `LLM_MAX_RETRIES`, `LLM_RETRY_INITIAL_DELAY`, ... once per process |
/// | `config` | expression: a `RetryPolicy` (or `&`, `Arc`, `LazyLock`, `EnvPolicy` of one) | none | take the whole policy from a value at each call, e.g. `config = self.retry_settings` |
/// | `circuit_breaker` | expression: a `CircuitBreaker` | none | shared breaker; while open, calls return at once with `E: From<CircuitOpen>` |
/// | `budget` | expression: a `RetryBudget` | none | shared retry budget: no retry when it is empty |
/// | `throttle` | expression: an `AdaptiveThrottle` | none | shared client-side rate limiter that learns from 429s |
/// | `name` | string | module path and fn | the name events, statistics and metrics report |
/// | `stats` | `true` / `false` | the `stats` feature | record per-fn statistics (`retry_runtime::stats::snapshot()`) |
/// | `on_retry` | closure or fn path, `Fn(&E, &RetryEvent)` | none | runs before each sleep: attempt, delay, elapsed, name |
/// | `on_give_up` | closure or fn path, `Fn(&E, &GiveUpEvent)` | none | runs once when the call gives up, with the reason |
/// | `on_success` | closure or fn path, `Fn(&SuccessEvent)` | none | runs once when the call returns `Ok`: attempts, elapsed, name |
/// | `context` | a name, e.g. `ctx` | none | binds `ctx: &AttemptContext` in the body: attempt number, elapsed, idempotency key |
/// | `fallback` | closure or fn path, `FnOnce(E) -> Result<T, E>` | none | turns the final error into a result |
/// | `clone` | argument names, `[a, b]` | none | arguments the body consumes: each attempt gets its own clone |
///
/// Every literal is checked at compile time; a mistake is an error on the offending token. `config`
/// excludes the literal timing keys, and `attempt_timeout` needs an `async fn`. The attribute also
/// works on a plain `fn` (blocking sleeps) and on methods inside an `#[async_trait]` impl. The
/// runtime crate's docs and README have a tutorial with runnable examples.
#[proc_macro_attribute]
pub fn retry_on_failure(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let (args, arg_errors) = args::Args::parse(args.into());
    let mut errors = validate::Errors::default();
    arg_errors.into_iter().for_each(|e| errors.push(e));
    let fn_item = match item::FnItem::parse(item.clone()) {
        Ok(fn_item) => fn_item,
        Err(e) => {
            errors.push(e);
            let all = errors.finish(()).expect_err("an error was just pushed");
            return with_original(all, item);
        }
    };
    match validate::validate(&args, &fn_item, errors) {
        Ok(config) => expand::expand(&config, fn_item).into(),
        Err(e) => with_original(e, item),
    }
}

/// The errors followed by the item as written, as tokio-macros does: the rest of the crate still
/// type-checks and rust-analyzer keeps working.
fn with_original(errors: syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let mut out = errors.to_compile_error();
    out.extend(item);
    out.into()
}
