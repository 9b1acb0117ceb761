//! User hooks: closures run before each retry's sleep, once when a call gives up and once when it
//! succeeds, as [`Observer`]s (tenacity's `before_sleep`, `retry_error_callback` and `after`,
//! backoff's `on_backoff`, `on_giveup` and `on_success`).

use crate::{CallClock, GiveUpEvent, GiveUpReason, Observer, RetryEvent, SuccessEvent};

/// Runs a closure before each retry's sleep with the error and the [`RetryEvent`] (attempt,
/// chosen delay, elapsed time, fn name): `on_retry = ..` of the attribute.
///
/// Place it after any observer that can veto a retry (a retry budget), so that it only sees
/// retries that happen.
///
/// ```
/// use retry_runtime::{OnRetry, Observer, RetryEvent};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let retries = AtomicU32::new(0);
/// let hook = OnRetry::new(|err: &std::io::Error, event: &RetryEvent| {
///     retries.fetch_add(1, Ordering::Relaxed);
///     eprintln!("{}: attempt {} failed ({err}); retrying in {:?}", event.name, event.attempt, event.delay);
/// });
/// let event = RetryEvent::new("docs.retry", 1, std::time::Duration::from_secs(1), None);
/// hook.on_retry(&std::io::Error::other("503"), &event).unwrap();
/// # assert_eq!(retries.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OnRetry<F>(F);

impl<F> OnRetry<F> {
    /// Wraps `f`, which is called as `f(&error, &event)`.
    pub const fn new(f: F) -> Self {
        OnRetry(f)
    }
}

impl<E, F: Fn(&E, &RetryEvent)> Observer<E> for OnRetry<F> {
    #[inline]
    fn on_retry(&self, err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        (self.0)(err, event);
        Ok(())
    }
}

/// Runs a closure once when a call gives up, with the error it returns and a [`GiveUpEvent`]
/// (reason, attempts, elapsed time, fn name): `on_give_up = ..` of the attribute.
///
/// The elapsed time comes from the call's clock, `CallState::<Instant>`'s
/// [`clock()`](crate::CallState::clock); with `()` it is `None`.
///
/// ```
/// use retry_runtime::{CallState, GiveUpEvent, GiveUpReason, OnGiveUp, Observer};
/// use std::sync::Mutex;
///
/// let seen = Mutex::new(None);
/// let call = CallState::<()>::new();
/// let hook = OnGiveUp::new("docs.give_up", call.clock(), |err: &&str, event: &GiveUpEvent| {
///     *seen.lock().unwrap() = Some((err.to_string(), event.reason, event.attempts));
/// });
/// hook.on_give_up(&"401", GiveUpReason::NotRetryable, 1);
/// assert_eq!(*seen.lock().unwrap(), Some(("401".into(), GiveUpReason::NotRetryable, 1)));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OnGiveUp<F, C = ()> {
    name: &'static str,
    clock: C,
    f: F,
}

impl<F, C: CallClock> OnGiveUp<F, C> {
    /// Wraps `f`, called as `f(&error, &event)`, for the fn `name` whose call started at `clock`.
    pub const fn new(name: &'static str, clock: C, f: F) -> Self {
        OnGiveUp { name, clock, f }
    }
}

impl<E, F: Fn(&E, &GiveUpEvent), C: CallClock> Observer<E> for OnGiveUp<F, C> {
    #[inline]
    fn on_give_up(&self, err: &E, reason: GiveUpReason, attempts: u32) {
        let event = GiveUpEvent {
            name: self.name,
            reason,
            attempts,
            elapsed: self.clock.elapsed(),
        };
        (self.f)(err, &event);
    }
}

/// Runs a closure once when a call returns `Ok`, with a [`SuccessEvent`] (attempts, elapsed time,
/// fn name): `on_success = ..` of the attribute, backoff's `on_success`.
///
/// The elapsed time comes from the call's clock, as for [`OnGiveUp`]. The closure does not see
/// the value: it runs before the fn returns it, and the value is the caller's.
///
/// ```
/// use retry_runtime::{CallState, OnSuccess, Observer, SuccessEvent};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let after_retries = AtomicU32::new(0);
/// let call = CallState::<()>::new();
/// let hook = OnSuccess::new("docs.success", call.clock(), |event: &SuccessEvent| {
///     if event.attempts > 1 {
///         after_retries.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// Observer::<std::io::Error>::on_success(&hook, 1);
/// Observer::<std::io::Error>::on_success(&hook, 3);
/// assert_eq!(after_retries.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OnSuccess<F, C = ()> {
    name: &'static str,
    clock: C,
    f: F,
}

impl<F, C: CallClock> OnSuccess<F, C> {
    /// Wraps `f`, called as `f(&event)`, for the fn `name` whose call started at `clock`.
    pub const fn new(name: &'static str, clock: C, f: F) -> Self {
        OnSuccess { name, clock, f }
    }
}

impl<E, F: Fn(&SuccessEvent), C: CallClock> Observer<E> for OnSuccess<F, C> {
    #[inline]
    fn on_success(&self, attempts: u32) {
        let event = SuccessEvent {
            name: self.name,
            attempts,
            elapsed: self.clock.elapsed(),
        };
        (self.f)(&event);
    }
}
