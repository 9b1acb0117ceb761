//! The `metrics` feature: every retrying fn reports to the [`metrics`](https://docs.rs/metrics)
//! facade, so whichever exporter the application installs (Prometheus, StatsD, ...) gets them.
//! Without the feature, the expansion's metrics observer is `()`.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`retry_calls_total`](CALLS_TOTAL) | counter | `fn`, `outcome` | calls that ended; `outcome` is `success`, `cancelled`, or a give-up reason ([`GiveUpReason::as_str`](crate::GiveUpReason::as_str)) |
//! | [`retry_retries_total`](RETRIES_TOTAL) | counter | `fn` | retries: sleeps before another attempt |
//! | [`retry_attempts`](ATTEMPTS) | histogram | `fn` | attempts per call that returned |
//! | [`retry_backoff_seconds`](BACKOFF_SECONDS) | histogram | `fn` | each sleep chosen before a retry |
//!
//! `fn` is the attribute's `name`, or the fn's module path and name. Label values are the fn's
//! `&'static str` name and fixed strings, so recording allocates nothing for the labels.

/// Counter of calls that ended, labelled `fn` and `outcome`.
pub const CALLS_TOTAL: &str = "retry_calls_total";
/// Counter of retries (sleeps before another attempt), labelled `fn`.
pub const RETRIES_TOTAL: &str = "retry_retries_total";
/// Histogram of attempts per call that returned, labelled `fn`.
pub const ATTEMPTS: &str = "retry_attempts";
/// Histogram of the sleep chosen before each retry, in seconds, labelled `fn`.
pub const BACKOFF_SECONDS: &str = "retry_backoff_seconds";

#[cfg(feature = "metrics")]
pub use enabled::{describe, MetricsCall};

#[cfg(feature = "metrics")]
pub(crate) use enabled::Labels;

#[cfg(feature = "metrics")]
mod enabled {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use metrics::{Key, Label, Level, Metadata};

    use super::{ATTEMPTS, BACKOFF_SECONDS, CALLS_TOTAL, RETRIES_TOTAL};
    use crate::stats::FnStats;
    use crate::{GiveUpReason, Observer, RetryEvent};

    static METADATA: Metadata<'static> =
        Metadata::new("retry_runtime", Level::INFO, Some(module_path!()));

    /// `success`, then the give-up reasons in the order of `stats::REASONS`, then `cancelled`.
    const OUTCOMES: usize = 1 + 6 + 1;
    const CANCELLED: usize = OUTCOMES - 1;

    /// One fn's label sets, built at compile time inside its [`FnStats`] so that recording builds
    /// its keys from `'static` parts.
    #[derive(Debug)]
    pub(crate) struct Labels {
        by_fn: [Label; 1],
        by_outcome: [[Label; 2]; OUTCOMES],
    }

    impl Labels {
        pub(crate) const fn new(name: &'static str) -> Self {
            const fn outcome(name: &'static str, outcome: &'static str) -> [Label; 2] {
                [
                    Label::from_static_parts("fn", name),
                    Label::from_static_parts("outcome", outcome),
                ]
            }
            Labels {
                by_fn: [Label::from_static_parts("fn", name)],
                by_outcome: [
                    outcome(name, "success"),
                    outcome(name, GiveUpReason::Exhausted.as_str()),
                    outcome(name, GiveUpReason::NotRetryable.as_str()),
                    outcome(name, GiveUpReason::Deadline.as_str()),
                    outcome(name, GiveUpReason::RetryAfterTooLong.as_str()),
                    outcome(name, GiveUpReason::CircuitOpen.as_str()),
                    outcome(name, GiveUpReason::BudgetEmpty.as_str()),
                    outcome(name, "cancelled"),
                ],
            }
        }
    }

    /// Describes the metrics (help text, units) to the installed recorder; call it once after
    /// installing one. Recording works without it.
    pub fn describe() {
        metrics::describe_counter!(CALLS_TOTAL, "Calls of retrying fns that ended, by outcome");
        metrics::describe_counter!(RETRIES_TOTAL, "Retries: sleeps before another attempt");
        metrics::describe_histogram!(ATTEMPTS, "Attempts per call that returned");
        metrics::describe_histogram!(
            BACKOFF_SECONDS,
            metrics::Unit::Seconds,
            "Sleep chosen before each retry"
        );
    }

    /// Reports one call to the `metrics` recorder: an [`Observer`], and a guard that reports the
    /// call as `cancelled` if it is dropped before it returns. Place it after any observer that
    /// can veto a retry.
    #[derive(Debug)]
    pub struct MetricsCall {
        labels: &'static Labels,
        ended: AtomicBool,
    }

    impl MetricsCall {
        /// Starts reporting one call of the fn whose statistics are `stats`.
        #[inline]
        pub fn new(stats: &'static FnStats) -> Self {
            MetricsCall {
                labels: &stats.labels,
                ended: AtomicBool::new(false),
            }
        }

        fn ended(&self, outcome: usize, attempts: Option<u32>) {
            self.ended.store(true, Relaxed);
            let labels = self.labels;
            metrics::with_recorder(|r| {
                let calls = Key::from_static_parts(CALLS_TOTAL, &labels.by_outcome[outcome]);
                r.register_counter(&calls, &METADATA).increment(1);
                if let Some(attempts) = attempts {
                    let key = Key::from_static_parts(ATTEMPTS, &labels.by_fn);
                    r.register_histogram(&key, &METADATA)
                        .record(f64::from(attempts));
                }
            });
        }
    }

    impl<E> Observer<E> for MetricsCall {
        #[inline]
        fn on_success(&self, attempts: u32) {
            self.ended(0, Some(attempts));
        }

        fn on_retry(&self, _err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
            let labels = &self.labels.by_fn;
            metrics::with_recorder(|r| {
                let retries = Key::from_static_parts(RETRIES_TOTAL, labels);
                r.register_counter(&retries, &METADATA).increment(1);
                let backoff = Key::from_static_parts(BACKOFF_SECONDS, labels);
                r.register_histogram(&backoff, &METADATA)
                    .record(event.delay.as_secs_f64());
            });
            Ok(())
        }

        fn on_give_up(&self, _err: &E, reason: GiveUpReason, attempts: u32) {
            self.ended(1 + crate::stats::reason_index(reason), Some(attempts));
        }
    }

    impl Drop for MetricsCall {
        fn drop(&mut self) {
            if !*self.ended.get_mut() {
                self.ended(CANCELLED, None);
            }
        }
    }
}
