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
    /// A setting given as text (an environment variable, a header) is not of the expected form.
    #[error("{field} must be {expected}, found {value:?}")]
    Invalid {
        /// The setting, e.g. `max_attempts`.
        field: &'static str,
        /// What it must be, e.g. `a whole number of at least 1`.
        expected: &'static str,
        /// The text as given.
        value: String,
    },
    /// A jitter name other than `full`, `equal`, `decorrelated` or `none`.
    #[error("unknown jitter {0:?}; expected one of: full, equal, decorrelated, none")]
    UnknownJitter(String),
    /// A backoff name other than `exponential`, `constant`, `linear` or `fibonacci`.
    #[error("unknown backoff {0:?}; expected one of: exponential, constant, linear, fibonacci")]
    UnknownBackoff(String),
    /// An environment variable whose value cannot be used; `problem` says why.
    #[error("{variable}={value:?}: {problem}")]
    Env {
        /// The variable, e.g. `LLM_RETRY_BACKOFF_FACTOR`.
        variable: String,
        /// Its value as set.
        value: String,
        /// What is wrong with it.
        problem: Box<PolicyError>,
    },
    /// An HTTP header whose value cannot be used; `problem` says why.
    #[error("header {header}: {value:?}: {problem}")]
    Header {
        /// The header name, lowercase, e.g. `helicone-retry-factor`.
        header: String,
        /// Its value as sent (non-ASCII bytes replaced).
        value: String,
        /// What is wrong with it.
        problem: Box<PolicyError>,
    },
}

impl PolicyError {
    /// The underlying problem: for [`Env`](Self::Env) and [`Header`](Self::Header), what is wrong
    /// with the value; for any other variant, the error itself.
    ///
    /// ```
    /// # use retry_runtime::{PolicyError, RetryPolicy};
    /// let env = |name: &str| (name == "LLM_RETRY_BACKOFF_FACTOR").then(|| "0.5".to_string());
    /// let err = RetryPolicy::DEFAULT.env_overrides("LLM", env).unwrap_err();
    /// assert_eq!(err.problem(), &PolicyError::BackoffFactor(0.5));
    /// ```
    pub fn problem(&self) -> &PolicyError {
        match self {
            PolicyError::Env { problem, .. } | PolicyError::Header { problem, .. } => problem,
            other => other,
        }
    }
}
