//! What the `#[retry_on_failure]` expansion calls. Not public API: names and signatures change
//! without notice.

use std::time::Duration;

use crate::{Backoff, Jitter, RetryPolicy};

pub use crate::call::{CallState, IsResult};
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

/// `circuit_breaker = <expr>`: the expansion passes `&<expr>`; deref coercion accepts a
/// `static`, a `&CircuitBreaker`, an `Arc<CircuitBreaker>` and the like, and a wrong type is
/// reported at the expression.
#[inline(always)]
pub fn breaker(b: &crate::CircuitBreaker) -> &crate::CircuitBreaker {
    b
}

/// `budget = <expr>`, as [`breaker`].
#[inline(always)]
pub fn budget(b: &crate::RetryBudget) -> &crate::RetryBudget {
    b
}

/// `throttle = <expr>`, as [`breaker`].
#[inline(always)]
pub fn throttle(t: &crate::AdaptiveThrottle) -> &crate::AdaptiveThrottle {
    t
}
