//! `RetryPolicy`: the settings of a retrying call, their defaults, the builder and their validation.

use std::time::Duration;

use crate::{Backoff, Jitter, PolicyError};

/// The settings of a retrying call: how many attempts, how long to wait between them, and how long
/// the whole call may take.
///
/// The attribute builds one from its literals at compile time; build one yourself with
/// [`RetryPolicy::builder`] when the settings come from configuration. Every constructor
/// validates, so a `RetryPolicy` in hand is always usable: no NaN, no factor below 1, no
/// `max_delay` below `initial_delay`.
///
/// ```
/// use retry_runtime::{Jitter, RetryPolicy};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .initial_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(15))
///     .jitter(Jitter::Equal)
///     .build()?;
/// assert_eq!(policy.max_attempts(), 5);
///
/// // Defaults are those of the seeds: 3 attempts, 1 s, 10 s, factor 2, full jitter.
/// assert_eq!(RetryPolicy::default().max_delay(), Duration::from_secs(10));
/// # Ok::<(), retry_runtime::PolicyError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) backoff_factor: f64,
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Jitter,
    pub(crate) max_time: Option<Duration>,
    pub(crate) max_retry_after: Duration,
}

impl RetryPolicy {
    /// The defaults: 3 attempts, 1 s initial delay, 10 s cap, factor 2, exponential backoff, full
    /// jitter, no overall deadline, and server hints (`Retry-After`) honoured up to 120 s.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        backoff_factor: 2.0,
        backoff: Backoff::Exponential,
        jitter: Jitter::Full,
        max_time: None,
        max_retry_after: Duration::from_secs(120),
    };

    /// A builder starting from [`RetryPolicy::DEFAULT`].
    pub const fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: RetryPolicy::DEFAULT,
        }
    }

    /// A builder starting from this policy, to derive a variant of it.
    ///
    /// ```
    /// # use retry_runtime::RetryPolicy;
    /// let patient = RetryPolicy::default().to_builder().max_attempts(10).build()?;
    /// assert_eq!(patient.max_attempts(), 10);
    /// # Ok::<(), retry_runtime::PolicyError>(())
    /// ```
    pub const fn to_builder(&self) -> RetryPolicyBuilder {
        RetryPolicyBuilder { policy: *self }
    }

    /// Total attempts, the first one included (so `1` means no retry).
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the first retry, before jitter.
    pub const fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// The cap on any single delay, jitter included.
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The growth factor of [`Backoff::Exponential`].
    pub const fn backoff_factor(&self) -> f64 {
        self.backoff_factor
    }

    /// The schedule of delays.
    pub const fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The randomisation applied to each delay.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The budget for the whole call, attempts and sleeps included, if any: no sleep is started
    /// that would end past it.
    pub const fn max_time(&self) -> Option<Duration> {
        self.max_time
    }

    /// The longest server-requested delay (`Retry-After`) the call will honour; a longer hint gives
    /// up at once instead of sleeping.
    pub const fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The delay before retry `n` (1-based), jitter included, given the delay slept before the
    /// previous retry and a uniform sample `u` in `[0, 1)`. Pure: the same inputs give the same
    /// output, always within `[0, max_delay]`.
    ///
    /// ```
    /// # use retry_runtime::{Jitter, RetryPolicy};
    /// # use std::time::Duration;
    /// let p = RetryPolicy::builder().jitter(Jitter::None).build()?;
    /// let s = Duration::from_secs;
    /// assert_eq!(p.delay(3, s(2), 0.7), s(4));
    /// # Ok::<(), retry_runtime::PolicyError>(())
    /// ```
    #[inline]
    pub fn delay(&self, n: u32, previous: Duration, u: f64) -> Duration {
        let base =
            self.backoff
                .base_delay(self.initial_delay, self.max_delay, self.backoff_factor, n);
        self.jitter
            .apply(base, previous, self.initial_delay, self.max_delay, u)
    }

    /// Checks every rule; used by every constructor, so that all paths (builder, environment,
    /// headers) reject the same values with the same messages as the attribute.
    pub(crate) fn validate(&self) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(PolicyError::ZeroAttempts);
        }
        if self.max_delay < self.initial_delay {
            return Err(PolicyError::MaxDelayBelowInitial {
                max_delay: self.max_delay,
                initial_delay: self.initial_delay,
            });
        }
        if !(self.backoff_factor.is_finite() && self.backoff_factor >= 1.0) {
            return Err(PolicyError::BackoffFactor(self.backoff_factor));
        }
        if self.max_time == Some(Duration::ZERO) {
            return Err(PolicyError::ZeroMaxTime);
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// Lets APIs that take "a policy" accept a `RetryPolicy`, a reference to one, an `Arc` of one or
/// an [`EnvPolicy`](crate::EnvPolicy) alike.
impl AsRef<RetryPolicy> for RetryPolicy {
    #[inline(always)]
    fn as_ref(&self) -> &RetryPolicy {
        self
    }
}

/// Seconds as given in configuration to a `Duration`: finite, at least 0, and within `Duration`'s
/// range, else an error naming `field` and the value.
pub(crate) fn seconds(field: &'static str, secs: f64) -> Result<Duration, PolicyError> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(PolicyError::Seconds { field, value: secs });
    }
    Duration::try_from_secs_f64(secs).map_err(|_| PolicyError::Seconds { field, value: secs })
}

/// Builds a validated [`RetryPolicy`]; see [`RetryPolicy::builder`].
#[derive(Clone, Copy, Debug)]
#[must_use = "call .build() to get the policy"]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// Total attempts, the first one included; at least 1.
    pub const fn max_attempts(mut self, n: u32) -> Self {
        self.policy.max_attempts = n;
        self
    }

    /// The delay before the first retry, before jitter; at most `max_delay`.
    pub const fn initial_delay(mut self, d: Duration) -> Self {
        self.policy.initial_delay = d;
        self
    }

    /// The cap on any single delay; at least `initial_delay`.
    pub const fn max_delay(mut self, d: Duration) -> Self {
        self.policy.max_delay = d;
        self
    }

    /// The growth factor of exponential backoff; finite and at least 1.0.
    pub const fn backoff_factor(mut self, f: f64) -> Self {
        self.policy.backoff_factor = f;
        self
    }

    /// The schedule of delays.
    pub const fn backoff(mut self, b: Backoff) -> Self {
        self.policy.backoff = b;
        self
    }

    /// The randomisation of delays.
    pub const fn jitter(mut self, j: Jitter) -> Self {
        self.policy.jitter = j;
        self
    }

    /// A budget for the whole call; greater than zero.
    pub const fn max_time(mut self, d: Duration) -> Self {
        self.policy.max_time = Some(d);
        self
    }

    /// Removes the budget for the whole call.
    pub const fn no_max_time(mut self) -> Self {
        self.policy.max_time = None;
        self
    }

    /// The longest `Retry-After` the call will sleep for; a longer hint gives up at once.
    pub const fn max_retry_after(mut self, d: Duration) -> Self {
        self.policy.max_retry_after = d;
        self
    }

    /// Validates and returns the policy.
    ///
    /// ```
    /// # use retry_runtime::{PolicyError, RetryPolicy};
    /// let err = RetryPolicy::builder().backoff_factor(0.5).build().unwrap_err();
    /// assert_eq!(err, PolicyError::BackoffFactor(0.5));
    /// assert_eq!(err.to_string(), "backoff_factor must be finite and at least 1.0, found 0.5");
    /// ```
    pub fn build(self) -> Result<RetryPolicy, PolicyError> {
        self.policy.validate().map(|()| self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.initial_delay(), Duration::from_secs(1));
        assert_eq!(p.max_delay(), Duration::from_secs(10));
        assert_eq!(p.backoff_factor(), 2.0);
        assert_eq!(p.backoff(), Backoff::Exponential);
        assert_eq!(p.jitter(), Jitter::Full);
        assert_eq!(p.max_time(), None);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn builder_rejects_each_rule() {
        let b = RetryPolicy::builder;
        assert_eq!(b().max_attempts(0).build(), Err(PolicyError::ZeroAttempts));
        assert_eq!(
            b().backoff_factor(f64::NAN)
                .build()
                .unwrap_err()
                .to_string(),
            "backoff_factor must be finite and at least 1.0, found NaN"
        );
        assert_eq!(
            b().backoff_factor(0.99).build(),
            Err(PolicyError::BackoffFactor(0.99))
        );
        assert_eq!(
            b().max_delay(Duration::from_millis(500)).build(),
            Err(PolicyError::MaxDelayBelowInitial {
                max_delay: Duration::from_millis(500),
                initial_delay: Duration::from_secs(1),
            })
        );
        assert_eq!(
            b().max_time(Duration::ZERO).build(),
            Err(PolicyError::ZeroMaxTime)
        );
    }

    #[test]
    fn seconds_rejects_what_a_duration_cannot_hold() {
        assert_eq!(
            seconds("initial_delay", 1.5),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(seconds("initial_delay", 0.0), Ok(Duration::ZERO));
        for bad in [
            -1.0,
            -0.0001,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e30,
        ] {
            let err = seconds("max_delay", bad).unwrap_err();
            assert!(
                matches!(err, PolicyError::Seconds { field: "max_delay", value } if value.to_bits() == bad.to_bits()),
                "{bad}: {err:?}"
            );
        }
    }
}
