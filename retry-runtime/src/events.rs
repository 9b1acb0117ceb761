//! What happens to a call: the events passed to hooks (a retry, a success, a give-up), and why a
//! call gave up.

use std::fmt;
use std::time::Duration;

/// Why a call stopped retrying and returned its last error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// Every allowed attempt failed.
    Exhausted,
    /// The error was classified as not worth another attempt (a bad key, a bad request).
    NotRetryable,
    /// The next sleep would have ended past `max_time`.
    Deadline,
    /// The server asked to wait longer than `max_retry_after`.
    RetryAfterTooLong,
    /// A circuit breaker was open: the provider was not called.
    CircuitOpen,
    /// The shared retry budget had no token left for another attempt.
    BudgetEmpty,
}

impl GiveUpReason {
    /// A short, stable name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::Exhausted => "exhausted",
            GiveUpReason::NotRetryable => "not_retryable",
            GiveUpReason::Deadline => "deadline",
            GiveUpReason::RetryAfterTooLong => "retry_after_too_long",
            GiveUpReason::CircuitOpen => "circuit_open",
            GiveUpReason::BudgetEmpty => "budget_empty",
        }
    }
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUpReason::Exhausted => "attempts exhausted",
            GiveUpReason::NotRetryable => "error is not retryable",
            GiveUpReason::Deadline => "the next retry would end past max_time",
            GiveUpReason::RetryAfterTooLong => {
                "the server asked to wait longer than max_retry_after"
            }
            GiveUpReason::CircuitOpen => "the circuit breaker is open",
            GiveUpReason::BudgetEmpty => "the retry budget is empty",
        })
    }
}

/// A retry about to happen: passed to observers before the sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The retrying fn: the attribute's `name`, or its module path and fn name.
    pub name: &'static str,
    /// The attempt that just failed, 1-based.
    pub attempt: u32,
    /// The sleep chosen before the next attempt, jitter and `Retry-After` included.
    pub delay: Duration,
    /// Time since the call started, when the call measures it (with `max_time`).
    pub elapsed: Option<Duration>,
}

impl RetryEvent {
    /// An event with these fields, for testing a hook or observer.
    pub const fn new(
        name: &'static str,
        attempt: u32,
        delay: Duration,
        elapsed: Option<Duration>,
    ) -> Self {
        RetryEvent {
            name,
            attempt,
            delay,
            elapsed,
        }
    }
}

/// A call giving up: passed to an `on_give_up` hook with the error it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GiveUpEvent {
    /// The retrying fn: the attribute's `name`, or its module path and fn name.
    pub name: &'static str,
    /// Why the call stopped.
    pub reason: GiveUpReason,
    /// The attempts that ran; 0 when a gate turned the call away before its first attempt.
    pub attempts: u32,
    /// Time since the call started, when the call measures it.
    pub elapsed: Option<Duration>,
}

impl GiveUpEvent {
    /// An event with these fields, for testing a hook.
    pub const fn new(
        name: &'static str,
        reason: GiveUpReason,
        attempts: u32,
        elapsed: Option<Duration>,
    ) -> Self {
        GiveUpEvent {
            name,
            reason,
            attempts,
            elapsed,
        }
    }
}

/// A call returning `Ok`: passed to an `on_success` hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuccessEvent {
    /// The retrying fn: the attribute's `name`, or its module path and fn name.
    pub name: &'static str,
    /// The attempts that ran, the successful one included: 1 for a success at the first try.
    pub attempts: u32,
    /// Time since the call started, when the call measures it.
    pub elapsed: Option<Duration>,
}

impl SuccessEvent {
    /// An event with these fields, for testing a hook.
    pub const fn new(name: &'static str, attempts: u32, elapsed: Option<Duration>) -> Self {
        SuccessEvent {
            name,
            attempts,
            elapsed,
        }
    }
}
