//! The `tracing` feature: a span per call, a `WARN` event per retry and an `ERROR` event per
//! give-up, all with target `retry_runtime`. Without the feature, [`TracingCall`] is an empty
//! observer that compiles away.
//!
//! | what | level | fields |
//! |---|---|---|
//! | span `retry`, one per call, entered during each attempt | `INFO` | `name`; `attempts` when the call returns |
//! | event "retrying", before each sleep | `WARN` | `name`, `attempt`, `delay_ms`, `elapsed_ms` (when measured), `error` |
//! | event "giving up" | `ERROR` | `name`, `attempts`, `reason` ([`GiveUpReason::as_str`](crate::GiveUpReason::as_str)), `error` |
//!
//! `error` is the error's `Display`, or its `Debug` when it has no `Display`, or its type name
//! when it has neither: enabling the feature adds no bound on any fn's error type.

#[cfg(feature = "tracing")]
pub use enabled::TracingCall;

#[cfg(not(feature = "tracing"))]
pub use disabled::TracingCall;

#[cfg(feature = "tracing")]
mod enabled {
    use std::future::Future;
    use std::time::Duration;

    use tracing::instrument::{Instrument, Instrumented};
    use tracing::Span;

    use crate::describe::{Describe, Shown};
    use crate::{GiveUpReason, Observer, RetryEvent};

    /// One call's span and its error formatter: an [`Observer`] that logs retries and give-ups.
    #[derive(Debug)]
    pub struct TracingCall<F> {
        name: &'static str,
        span: Span,
        fmt: F,
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    impl<F> TracingCall<F> {
        /// Opens the call's span. `fmt` shows an error in events.
        pub fn new(name: &'static str, fmt: F) -> Self {
            let span = tracing::info_span!(
                target: "retry_runtime",
                "retry",
                name = name,
                attempts = tracing::field::Empty,
            );
            TracingCall { name, span, fmt }
        }

        /// Runs one attempt inside the call's span.
        #[inline]
        pub fn instrument<Fut: Future>(&self, attempt: Fut) -> Instrumented<Fut> {
            attempt.instrument(self.span.clone())
        }

        /// The call's span.
        pub fn span(&self) -> &Span {
            &self.span
        }
    }

    impl<E, F: Describe<E>> Observer<E> for TracingCall<F> {
        #[inline]
        fn on_success(&self, attempts: u32) {
            self.span.record("attempts", attempts);
        }

        fn on_retry(&self, err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
            tracing::warn!(
                target: "retry_runtime",
                parent: &self.span,
                name = event.name,
                attempt = event.attempt,
                delay_ms = millis(event.delay),
                elapsed_ms = event.elapsed.map(millis),
                error = %Shown(err, &self.fmt),
                "retrying",
            );
            Ok(())
        }

        fn on_give_up(&self, err: &E, reason: GiveUpReason, attempts: u32) {
            self.span.record("attempts", attempts);
            tracing::error!(
                target: "retry_runtime",
                parent: &self.span,
                name = self.name,
                attempts = attempts,
                reason = reason.as_str(),
                error = %Shown(err, &self.fmt),
                "giving up",
            );
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod disabled {
    use std::marker::PhantomData;

    use crate::Observer;

    /// Without the `tracing` feature: observes nothing, instruments nothing, holds nothing.
    #[derive(Debug)]
    pub struct TracingCall<F>(PhantomData<fn() -> F>);

    impl<F> TracingCall<F> {
        /// Does nothing without the `tracing` feature.
        #[inline(always)]
        pub fn new(_name: &'static str, _fmt: F) -> Self {
            TracingCall(PhantomData)
        }

        /// Returns `attempt` as is without the `tracing` feature.
        #[inline(always)]
        pub fn instrument<Fut>(&self, attempt: Fut) -> Fut {
            attempt
        }
    }

    impl<E, F> Observer<E> for TracingCall<F> {}
}
