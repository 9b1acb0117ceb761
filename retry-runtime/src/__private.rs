//! What the `#[retry_on_failure]` expansion calls. Not public API: names and signatures change
//! without notice.

use std::time::Duration;

use crate::{Backoff, Jitter, RetryPolicy};

pub use crate::call::{CallState, DynCallState, IsResult};
pub use crate::classify::{Probe, ViaDefault, ViaRetryable};
pub use tokio::time::Instant;

/// The policy of an attribute whose literals the macro has already validated and converted to
/// nanoseconds; `const` so that it costs nothing at run time.
#[allow(clippy::too_many_arguments)]
pub const fn policy(
    max_attempts: u32,
    initial_delay_nanos: u64,
    max_delay_nanos: u64,
    backoff_factor: f64,
    backoff: Backoff,
    jitter: Jitter,
    max_time_nanos: Option<u64>,
) -> RetryPolicy {
    let max_time = match max_time_nanos {
        Some(n) => Some(Duration::from_nanos(n)),
        None => None,
    };
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_nanos(initial_delay_nanos),
        max_delay: Duration::from_nanos(max_delay_nanos),
        backoff_factor,
        backoff,
        jitter,
        max_time,
        ..RetryPolicy::DEFAULT
    }
}

pub use crate::env::EnvPolicy;
/// The sleep between two attempts of a blocking fn: `std::thread::sleep`, skipped under
/// [`testing::no_sleep`](crate::testing::no_sleep).
pub use crate::sleep::sleep_blocking;
/// The sleep between two attempts of an async fn: tokio's timer, skipped under
/// [`testing::no_sleep`](crate::testing::no_sleep).
pub use crate::sleep::{sleep, Sleep};
/// `attempt_timeout = ..`: `with_timeout(after, attempt, timeout_error())` wraps each attempt's
/// future; `timeout_error()` (spanned at the key) requires the fn's error type to implement
/// `From<AttemptTimedOut>`, with `FromAttemptTimeout`'s message when it does not.
pub use crate::timeout::{timeout_error, with_timeout, WithTimeout};

/// `config = <expr>`: the policy behind a `RetryPolicy`, a reference to one, an `Arc` of one or an
/// `EnvPolicy`, with one clear message for anything else.
#[inline(always)]
pub fn config<P: AsPolicy + ?Sized>(source: &P) -> &RetryPolicy {
    source.as_policy()
}

/// What `config = <expr>` accepts.
#[diagnostic::on_unimplemented(
    message = "`config = ..` needs a `RetryPolicy`, found `{Self}`",
    label = "expected a `RetryPolicy`, `&RetryPolicy`, `Arc<RetryPolicy>` or `EnvPolicy`",
    note = "build one with `RetryPolicy::builder()`, `RetryPolicy::from_env(..)` or `EnvPolicy::new(..)`"
)]
pub trait AsPolicy {
    /// The policy to run the call with.
    fn as_policy(&self) -> &RetryPolicy;
}

impl AsPolicy for RetryPolicy {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        self
    }
}

impl AsPolicy for EnvPolicy {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        self.get()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for &P {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for std::sync::Arc<P> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for Box<P> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

/// `settle` when the fn has no gate.
#[inline(always)]
pub fn no_gate(_: crate::AttemptOutcome) {}

/// `retry_if_ok` when the attribute has none: an `Ok` is always final.
#[inline(always)]
pub fn never<T: ?Sized>(_: &T) -> bool {
    false
}
