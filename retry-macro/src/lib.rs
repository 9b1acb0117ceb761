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

/// Retries an `async fn` returning `Result` with exponential backoff and jitter.
///
/// ```text
/// #[retry_on_failure(max_attempts = 3, initial_delay = 1.0, max_delay = 10.0, backoff_factor = 2.0)]
/// async fn complete(&self, prompt: &str) -> Result<String, ProviderError> { .. }
/// ```
///
/// | argument | value | default | meaning |
/// |---|---|---|---|
/// | `max_attempts` | integer ≥ 1 | `3` | total attempts, the first included |
/// | `initial_delay` | seconds ≥ 0 | `1.0` | delay before the first retry, before jitter |
/// | `max_delay` | seconds ≥ `initial_delay` | `10.0` | cap on any delay |
/// | `backoff_factor` | number ≥ 1.0 | `2.0` | growth of exponential backoff |
/// | `backoff` | `"exponential"`, `"constant"`, `"linear"`, `"fibonacci"` | `"exponential"` | the schedule |
/// | `jitter` | `"full"`, `"equal"`, `"decorrelated"`, `"none"` | `"full"` | randomisation of each delay |
/// | `max_time` | seconds > 0 | none | budget for the whole call: no sleep that would end past it |
/// | `clone` | argument names | none | arguments the body consumes: each attempt gets a clone |
///
/// Every value is checked at compile time; a mistake is an error on the offending token.
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
