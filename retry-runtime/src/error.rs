//! The errors of the library itself.

use std::time::Duration;

/// A [`RetryPolicy`](crate::RetryPolicy) setting that cannot be used; the message names the setting
/// and the offending value, as the attribute's compile errors do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `max_attempts` was 0: at least the first attempt must run.
    #[error("max_attempts must be at least 1, found 0")]
    ZeroAttempts,
    /// A delay in seconds was negative, NaN, infinite or too large for a `Duration`.
    #[error("{field} must be a finite number of seconds, at least 0, found {value}")]
    Seconds {
        /// The setting, e.g. `initial_delay`.
        field: &'static str,
        /// The value as given.
        value: f64,
    },
    /// `max_delay` was below `initial_delay`.
    #[error("max_delay must be at least initial_delay ({initial_delay:?}), found {max_delay:?}")]
    MaxDelayBelowInitial {
        /// The cap as given.
        max_delay: Duration,
        /// The initial delay it must not be below.
        initial_delay: Duration,
    },
    /// `backoff_factor` was below 1.0, NaN or infinite.
    #[error("backoff_factor must be finite and at least 1.0, found {0}")]
    BackoffFactor(f64),
    /// `max_time` was zero: no attempt could ever run.
    #[error("max_time must be greater than 0")]
    ZeroMaxTime,
}
