//! The error type the resilience tests give their annotated fns: retryable failures, a rate
//! limit, a fatal one, and the breaker's rejection.

use std::fmt;

use retry_runtime::{CircuitOpen, Retryable};

/// What a scripted provider call fails with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProviderError {
    /// A 503: retried.
    Unavailable,
    /// A 429: retried, and a rate-limit signal for a throttle.
    RateLimited,
    /// A 401: not retried.
    BadKey,
    /// Turned away by an open circuit breaker.
    Open(CircuitOpen),
}

impl From<CircuitOpen> for ProviderError {
    fn from(open: CircuitOpen) -> Self {
        ProviderError::Open(open)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::Unavailable => f.write_str("unavailable"),
            ProviderError::RateLimited => f.write_str("rate limited"),
            ProviderError::BadKey => f.write_str("bad key"),
            ProviderError::Open(open) => fmt::Display::fmt(open, f),
        }
    }
}

impl std::error::Error for ProviderError {}

impl Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable | ProviderError::RateLimited
        )
    }
    fn is_rate_limited(&self) -> bool {
        *self == ProviderError::RateLimited
    }
}
