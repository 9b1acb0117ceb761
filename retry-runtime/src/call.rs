//! The per-call state machine shared by the attribute's expansion and the closure API: after each
//! attempt it decides between returning and sleeping. It never sleeps itself; the caller does.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

use crate::{
    AttemptOutcome, Classification, GiveUpReason, Observer, Outlook, RetryEvent, RetryPolicy,
};

/// A `Result`, seen through a trait so that `#[retry_on_failure]` reports a non-`Result` return type
/// with one clear message, and so that aliases such as `anyhow::Result<T>` work.
#[diagnostic::on_unimplemented(
    message = "`#[retry_on_failure]` needs a fn that returns a `Result`, but this one returns `{Self}`",
    label = "this must be `Result<T, E>` (or an alias of it such as `anyhow::Result<T>`)",
    note = "a retry is decided by looking at the error: return `Err(..)` for a failed attempt"
)]
pub trait IsResult: Sized {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
    /// Splits into a plain `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
    /// Rebuilds from a plain `Result`.
    fn from_result(r: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    #[inline(always)]
    fn into_result(self) -> Self {
        self
    }
    #[inline(always)]
    fn from_result(r: Self) -> Self {
        r
    }
}

/// What a `settle` closure returns: nothing, or what the gate that admitted the attempt now
/// holds for the next one ([`Gate::outlook`](crate::Gate::outlook)).
pub trait Shut {
    /// The gate's outlook; clear when there is no gate.
    fn outlook(self) -> Outlook;
}

impl Shut for () {
    #[inline(always)]
    fn outlook(self) -> Outlook {
        Outlook::CLEAR
    }
}

impl Shut for Outlook {
    #[inline(always)]
    fn outlook(self) -> Outlook {
        self
    }
}

/// Where a call keeps its start time, if it needs one: `()` never reads the clock (the happy path
/// stays free of it), `Instant` reads it once when the call starts.
pub trait CallClock: Copy {
    /// Reads the clock if this kind of call needs it.
    fn start() -> Self;
    /// Time since the start, if recorded.
    fn elapsed(&self) -> Option<Duration>;
}

impl CallClock for () {
    #[inline(always)]
    fn start() -> Self {}
    #[inline(always)]
    fn elapsed(&self) -> Option<Duration> {
        None
    }
}

impl CallClock for Instant {
    #[inline(always)]
    fn start() -> Self {
        Instant::now()
    }
    #[inline(always)]
    fn elapsed(&self) -> Option<Duration> {
        Some(Instant::elapsed(self))
    }
}

/// The state one call keeps between attempts: the attempt number, the previous delay
/// (for decorrelated jitter) and, when needed, the start time.
#[derive(Clone, Copy, Debug)]
pub struct CallState<C: CallClock = ()> {
    attempt: u32,
    /// In nanoseconds (saturating): one word for the call to initialise, where a `Duration` takes
    /// two stores. Unread before the second retry.
    previous_nanos: u64,
    clock: C,
}

impl<C: CallClock> Default for CallState<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: CallClock> CallState<C> {
    /// State for a call about to make its first attempt.
    #[inline(always)]
    pub fn new() -> Self {
        CallState {
            attempt: 1,
            previous_nanos: 0,
            clock: C::start(),
        }
    }

    /// The attempt in progress (or just finished), 1-based.
    #[inline(always)]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Time since the call started, when this kind of call records it.
    #[inline(always)]
    pub fn elapsed(&self) -> Option<Duration> {
        self.clock.elapsed()
    }

    /// The call's start as recorded (`()` when it does not record one), for an observer that
    /// reports the elapsed time itself, such as [`OnGiveUp`](crate::OnGiveUp).
    #[inline(always)]
    pub fn clock(&self) -> C {
        self.clock
    }

    /// Looks at the result of the attempt that just ended: `Break(result)` to return it,
    /// `Continue(delay)` to sleep that long and run the next attempt.
    ///
    /// `classify` judges an error; `retry_ok` says whether an `Ok` value asks for another attempt
    /// (after the last attempt the last `Ok` is returned as is); `settle` hands the outcome to the
    /// [`Gate`](crate::Gate) that admitted the attempt, if any; `observer` sees the decision.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn step<R, O, S>(
        &mut self,
        policy: &RetryPolicy,
        name: &'static str,
        result: R,
        classify: impl FnOnce(&R::Err) -> Classification,
        retry_ok: impl FnOnce(&R::Ok) -> bool,
        settle: impl FnOnce(AttemptOutcome) -> S,
        observer: &O,
    ) -> ControlFlow<R, Duration>
    where
        R: IsResult,
        O: Observer<R::Err>,
        S: Shut,
    {
        match result.into_result() {
            Ok(ok) => {
                settle(AttemptOutcome::Success);
                if retry_ok(&ok) && self.attempt < policy.max_attempts {
                    // Jitter still applies; the server gave no hint.
                    if let Ok(delay) =
                        self.next_delay(policy, Classification::retry(), Duration::ZERO)
                    {
                        self.attempt += 1;
                        return ControlFlow::Continue(delay);
                    }
                }
                observer.on_success(self.attempt);
                ControlFlow::Break(R::from_result(Ok(ok)))
            }
            Err(err) => {
                let class = classify(&err);
                let outlook = settle(AttemptOutcome::Failure(class)).outlook();
                // The decision is out of line; the observers are called here, so that the
                // observer tuple is never handed to a function that is not inlined: a tuple whose
                // address escapes would be written out on every call, success included.
                let decision = match self.retry_decision(policy, name, class, outlook) {
                    // A `match`, not `.map(|()| ..)`: a closure here would be one more function
                    // per annotated fn for rustc to generate in debug builds.
                    Ok(event) => match observer.on_retry(&err, &event) {
                        Ok(()) => Ok(event.delay),
                        Err(reason) => Err(reason),
                    },
                    Err(reason) => Err(reason),
                };
                match decision {
                    Ok(delay) => {
                        self.attempt += 1;
                        ControlFlow::Continue(delay)
                    }
                    Err(reason) => {
                        observer.on_give_up(&err, reason, self.attempt);
                        ControlFlow::Break(R::from_result(Err(err)))
                    }
                }
            }
        }
    }

    /// Ends the call without running an attempt (a gate rejected it), returning `err`.
    /// Observers are told the attempts that ran, which excludes the rejected one.
    #[cold]
    pub fn reject<R, O>(&self, err: R::Err, reason: GiveUpReason, observer: &O) -> R
    where
        R: IsResult,
        O: Observer<R::Err>,
    {
        observer.on_give_up(&err, reason, self.attempt - 1);
        R::from_result(Err(err))
    }

    /// After a failed attempt: the retry to announce, or why there is none. Kept out of line, and
    /// free of the call's generic types, so that the success path of `step` stays small and each
    /// fn does not get a copy of the delay computation.
    #[cold]
    #[inline(never)]
    fn retry_decision(
        &mut self,
        policy: &RetryPolicy,
        name: &'static str,
        class: Classification,
        outlook: Outlook,
    ) -> Result<RetryEvent, GiveUpReason> {
        let delay = self.next_delay(policy, class, outlook.wait_for)?;
        // The attempt just opened the breaker (or found it open): the next attempt would be
        // turned away, so return this error now rather than sleep to be rejected.
        if outlook.shut_for.is_some_and(|shut| shut > delay) {
            return Err(GiveUpReason::CircuitOpen);
        }
        Ok(RetryEvent {
            name,
            attempt: self.attempt,
            delay,
            elapsed: self.clock.elapsed(),
        })
    }

    /// The delay before the next attempt, or why there must not be one. `gate_wait` is how long a
    /// gate (a throttle) would make the next attempt wait if it asked now: the next attempt
    /// starts after the longer of the two, and that is what `max_time` is checked against.
    fn next_delay(
        &mut self,
        policy: &RetryPolicy,
        class: Classification,
        gate_wait: Duration,
    ) -> Result<Duration, GiveUpReason> {
        if !class.is_retryable() {
            return Err(GiveUpReason::NotRetryable);
        }
        if self.attempt >= policy.max_attempts {
            return Err(GiveUpReason::Exhausted);
        }
        let previous = if self.attempt == 1 {
            policy.initial_delay
        } else {
            Duration::from_nanos(self.previous_nanos)
        };
        let backoff = policy.delay(self.attempt, previous, rand::random());
        let delay = match class.retry_after_hint() {
            Some(hint) if hint > policy.max_retry_after => {
                return Err(GiveUpReason::RetryAfterTooLong)
            }
            Some(hint) => {
                backoff.max(hint.saturating_add(crate::retry_after::spread(hint, rand::random())))
            }
            None => backoff,
        };
        if let (Some(max_time), Some(elapsed)) = (policy.max_time, self.clock.elapsed()) {
            if elapsed.saturating_add(delay.max(gate_wait)) > max_time {
                return Err(GiveUpReason::Deadline);
            }
        }
        self.previous_nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        Ok(delay)
    }
}

/// A [`CallState`] whose clock is chosen from the policy at run time: the start time is read only
/// when the policy has a `max_time`. For policies not known at compile time (read from the
/// environment, passed as `config = ..`, or given to [`RetryPolicy::retry`]), where the
/// `CallState<()>`/`CallState<Instant>` choice cannot be made by the compiler.
#[derive(Clone, Copy, Debug)]
pub enum DynCallState {
    /// No deadline: the clock is never read.
    Untimed(CallState<()>),
    /// A deadline: the start time was read when the call began.
    Timed(CallState<Instant>),
}

impl DynCallState {
    /// State for a call under `policy` about to make its first attempt.
    #[inline]
    pub fn new(policy: &RetryPolicy) -> Self {
        if policy.max_time.is_some() {
            DynCallState::Timed(CallState::new())
        } else {
            DynCallState::Untimed(CallState::new())
        }
    }

    /// The attempt in progress (or just finished), 1-based.
    #[inline]
    pub fn attempt(&self) -> u32 {
        match self {
            DynCallState::Untimed(c) => c.attempt(),
            DynCallState::Timed(c) => c.attempt(),
        }
    }

    /// [`CallState::step`], with the same arguments; `policy` must be the one given to
    /// [`new`](Self::new).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn step<R, O, S>(
        &mut self,
        policy: &RetryPolicy,
        name: &'static str,
        result: R,
        classify: impl FnOnce(&R::Err) -> Classification,
        retry_ok: impl FnOnce(&R::Ok) -> bool,
        settle: impl FnOnce(AttemptOutcome) -> S,
        observer: &O,
    ) -> ControlFlow<R, Duration>
    where
        R: IsResult,
        O: Observer<R::Err>,
        S: Shut,
    {
        match self {
            DynCallState::Untimed(c) => {
                c.step(policy, name, result, classify, retry_ok, settle, observer)
            }
            DynCallState::Timed(c) => {
                c.step(policy, name, result, classify, retry_ok, settle, observer)
            }
        }
    }

    /// [`CallState::reject`].
    #[cold]
    pub fn reject<R, O>(&self, err: R::Err, reason: GiveUpReason, observer: &O) -> R
    where
        R: IsResult,
        O: Observer<R::Err>,
    {
        match self {
            DynCallState::Untimed(c) => c.reject(err, reason, observer),
            DynCallState::Timed(c) => c.reject(err, reason, observer),
        }
    }
}
