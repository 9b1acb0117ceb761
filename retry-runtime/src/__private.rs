//! What the `#[retry_on_failure]` expansion calls. Not public API: names and signatures change
//! without notice.

use std::fmt;
use std::time::Duration;

use crate::{Backoff, CallClock, GiveUpEvent, Jitter, OnGiveUp, OnRetry, RetryEvent, RetryPolicy};

pub use crate::call::{CallState, IsResult};
pub use crate::classify::{Probe, ViaDefault, ViaRetryable};
pub use crate::context::{AttemptContext, ContextState};
pub use crate::describe::{DescribeOpaque, DescribeViaDebug, DescribeViaDisplay, ErrorRef};
pub use crate::stats::{CallRecorder, FnStats};
pub use crate::tracing_observer::TracingCall;
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

/// The sleep between two attempts.
#[inline]
pub fn sleep(delay: Duration) -> tokio::time::Sleep {
    tokio::time::sleep(delay)
}

/// `settle` when the fn has no gate.
#[inline(always)]
pub fn no_gate(_: crate::AttemptOutcome) {}

/// `retry_if_ok` when the attribute has none: an `Ok` is always final.
#[inline(always)]
pub fn never<T: ?Sized>(_: &T) -> bool {
    false
}

/// `on_retry = f`: `R`, the fn's return type, fixes the closure's argument types, so that a
/// closure's body can call methods on the error without annotations.
#[inline(always)]
pub fn on_retry<R, F>(f: F) -> OnRetry<F>
where
    R: IsResult,
    F: Fn(&R::Err, &RetryEvent),
{
    OnRetry::new(f)
}

/// `on_give_up = f`, as [`on_retry`]; `clock` is the call's [`CallState::clock`].
#[inline(always)]
pub fn on_give_up<R, F, C>(name: &'static str, clock: C, f: F) -> OnGiveUp<F, C>
where
    R: IsResult,
    F: Fn(&R::Err, &GiveUpEvent),
    C: CallClock,
{
    OnGiveUp::new(name, clock, f)
}

/// The call's tracing span and observer (nothing without the `tracing` feature). `fmt` is the
/// expansion's `|e, f| (&&ErrorRef(e)).__retry_describe(f)`, its types fixed by `R`.
#[inline(always)]
pub fn tracing_call<R, F>(name: &'static str, fmt: F) -> TracingCall<F>
where
    R: IsResult,
    F: Fn(&R::Err, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    TracingCall::new(name, fmt)
}

/// The call's metrics observer, reporting under `stats`'s name.
#[cfg(feature = "metrics")]
#[inline(always)]
pub fn metrics_call(stats: &'static FnStats) -> crate::metrics_observer::MetricsCall {
    crate::metrics_observer::MetricsCall::new(stats)
}

/// Nothing without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub fn metrics_call(_stats: &'static FnStats) {}

/// `fallback = f`: turns the call's final error into its result; `R` fixes the closure's
/// argument type. An `Ok` passes through untouched.
#[inline(always)]
pub fn recover<R, F>(result: R, f: F) -> R
where
    R: IsResult,
    F: FnOnce(R::Err) -> Result<R::Ok, R::Err>,
{
    match result.into_result() {
        Ok(ok) => R::from_result(Ok(ok)),
        Err(err) => R::from_result(f(err)),
    }
}
