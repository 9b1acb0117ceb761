//! Per-function statistics: how often each retrying fn is called, how often it succeeds at once,
//! after retries, or gives up (and why), how many retries calls take, and how long they sleep.
//!
//! Every `#[retry_on_failure]` fn records into a `static` [`FnStats`] of its own; [`snapshot`]
//! reads the figures of every fn called so far, and prints as a table:
//!
//! ```
//! use retry_runtime::stats::{self, FnStats};
//! use retry_runtime::{CallState, Classification, RetryPolicy};
//! use std::ops::ControlFlow;
//!
//! // What `#[retry_on_failure(name = "docs.example")]` sets up for its fn:
//! static STATS: FnStats = FnStats::new("docs.example");
//!
//! fn call(failures: u32) -> Result<u32, &'static str> {
//!     let policy = RetryPolicy::DEFAULT;
//!     let recorder = STATS.start();
//!     let mut call = CallState::<()>::new();
//!     let mut left = failures;
//!     loop {
//!         let result = if left > 0 { left -= 1; Err("503") } else { Ok(7) };
//!         match call.step(&policy, STATS.name(), result, |_| Classification::retry(),
//!                         |_| false, |_| {}, &recorder) {
//!             ControlFlow::Break(done) => return done,
//!             ControlFlow::Continue(_delay) => {} // the attribute sleeps here
//!         }
//!     }
//! }
//!
//! call(0);
//! call(1);
//! call(5); // gives up after 3 attempts
//! let figures = stats::snapshot();
//! let f = figures.get("docs.example").unwrap();
//! assert_eq!((f.calls, f.succeeded_first_attempt, f.succeeded_after_retry), (3, 1, 1));
//! assert_eq!(f.gave_up.exhausted, 1);
//! assert_eq!((f.attempts, f.retries, f.max_retries), (1 + 2 + 3, 3, 2));
//! println!("{figures}");
//! ```
//!
//! # Exactness and cost
//!
//! Counts are exact under any number of concurrent callers: every figure is an atomic counter and
//! nothing is sampled. A call is counted in an outcome when it returns; until then it is
//! [unfinished](FnStatsSnapshot::unfinished) if it has suspended (awaited something not ready),
//! which is how calls cancelled mid-way (a timeout, a `select!`, a dropped task) show up: a call
//! that completes within one poll cannot be cancelled mid-way, so it never needs that counter. A
//! snapshot taken while calls run reads each counter at a slightly different moment, so its
//! figures can be off from each other by the calls that returned meanwhile; each is exact once
//! they return.
//!
//! A call that succeeds on its first attempt without suspending, the case a benchmark measures,
//! costs one plain load and store on a counter that only the current thread writes (no locked
//! instruction, no shared cache line). A call that suspends adds two more such bumps (when it
//! first suspends and when it returns), next to a wait that costs far more; retries and give-ups
//! add a few relaxed atomic operations. Nothing allocates per call: a fn is added to the
//! registry, once, the first time it records a call, so fns never called are not listed.

mod slot;
mod snapshot;

#[cfg(feature = "serde")]
mod serialize;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{GiveUpReason, Observer, RetryEvent};

pub use snapshot::{FnStatsSnapshot, GiveUpCounts, RetryHistogram, Snapshot};

/// The give-up reasons, in the order of [`GiveUpCounts`]'s fields.
const REASONS: [GiveUpReason; 6] = [
    GiveUpReason::Exhausted,
    GiveUpReason::NotRetryable,
    GiveUpReason::Deadline,
    GiveUpReason::RetryAfterTooLong,
    GiveUpReason::CircuitOpen,
    GiveUpReason::BudgetEmpty,
];

pub(crate) const fn reason_index(reason: GiveUpReason) -> usize {
    match reason {
        GiveUpReason::Exhausted => 0,
        GiveUpReason::NotRetryable => 1,
        GiveUpReason::Deadline => 2,
        GiveUpReason::RetryAfterTooLong => 3,
        GiveUpReason::CircuitOpen => 4,
        GiveUpReason::BudgetEmpty => 5,
    }
}

/// The statistics of one retrying fn. `#[retry_on_failure]` declares one per fn as a `static`;
/// [`start`](Self::start) gives each call the [`Observer`] that records into it.
///
/// ```
/// use retry_runtime::stats::FnStats;
///
/// static STATS: FnStats = FnStats::new("openai.complete");
/// assert_eq!(STATS.name(), "openai.complete");
/// assert_eq!(STATS.snapshot().calls, 0);
/// ```
pub struct FnStats {
    name: &'static str,
    /// Successes on the first attempt and the suspended-call counts, one slot per thread.
    slots: [slot::Slot; slot::SLOTS],
    overflow: slot::Slot,
    /// Everything else is recorded next to a retry or a give-up, where a shared atomic costs
    /// nothing noticeable.
    succeeded_after_retry: AtomicU64,
    gave_up: [AtomicU64; REASONS.len()],
    /// Attempts of every call but those that succeeded at once (one attempt each).
    attempts: AtomicU64,
    retries: AtomicU64,
    max_retries: AtomicU64,
    /// Calls by retry count (see [`RetryHistogram`]), except those that succeeded at once.
    histogram: [AtomicU64; RetryHistogram::BUCKETS],
    slept_nanos: AtomicU64,
    registered: std::sync::atomic::AtomicBool,
    #[cfg(feature = "metrics")]
    pub(crate) labels: crate::metrics_observer::Labels,
}

/// Every `FnStats` that has recorded a call, in the order of their first calls.
static REGISTRY: Mutex<Vec<&'static FnStats>> = Mutex::new(Vec::new());

impl FnStats {
    /// Statistics for the fn called `name`, all zero. `const`, for a `static`.
    pub const fn new(name: &'static str) -> Self {
        FnStats {
            name,
            slots: [const { slot::Slot::new() }; slot::SLOTS],
            overflow: slot::Slot::new(),
            succeeded_after_retry: AtomicU64::new(0),
            gave_up: [const { AtomicU64::new(0) }; REASONS.len()],
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            max_retries: AtomicU64::new(0),
            histogram: [const { AtomicU64::new(0) }; RetryHistogram::BUCKETS],
            slept_nanos: AtomicU64::new(0),
            registered: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            labels: crate::metrics_observer::Labels::new(name),
        }
    }

    /// The fn's name, as listed in snapshots.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Starts recording one call: the returned [`CallRecorder`] is the call's [`Observer`].
    /// Records nothing yet: a call is counted when it suspends or returns.
    #[inline(always)]
    pub fn start(&'static self) -> CallRecorder {
        CallRecorder {
            stats: self,
            state: AtomicU32::new(0),
        }
    }

    /// This fn's figures so far.
    pub fn snapshot(&self) -> FnStatsSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let first = slot::sum(&self.slots, &self.overflow, |s| &s.first_try);
        let succeeded_after_retry = load(&self.succeeded_after_retry);
        let gave_up = GiveUpCounts::from_array(self.gave_up.each_ref().map(load));
        // Returned before suspended: every call counted as returned is then counted as
        // suspended too, so the difference never goes below zero.
        let returned = slot::sum(&self.slots, &self.overflow, |s| &s.suspended_returned);
        let suspended = slot::sum(&self.slots, &self.overflow, |s| &s.suspended);
        let unfinished = suspended.saturating_sub(returned);
        let mut histogram = self.histogram.each_ref().map(load);
        histogram[0] = histogram[0].wrapping_add(first);
        FnStatsSnapshot {
            name: self.name,
            calls: first
                .wrapping_add(succeeded_after_retry)
                .wrapping_add(gave_up.total())
                .wrapping_add(unfinished),
            succeeded_first_attempt: first,
            succeeded_after_retry,
            gave_up,
            unfinished,
            attempts: first.wrapping_add(load(&self.attempts)),
            retries: load(&self.retries),
            max_retries: load(&self.max_retries),
            retry_histogram: RetryHistogram { counts: histogram },
            slept: Duration::from_nanos(load(&self.slept_nanos)),
        }
    }

    /// A success on the first attempt: the only thing most calls record.
    #[inline(always)]
    fn record_first_try(&'static self) {
        if slot::bump(&self.slots, &self.overflow, |s| &s.first_try) == 0 {
            // This thread slot's first call of this fn; registering is idempotent.
            self.register();
        }
    }

    /// Every other ending: `outcome` is `None` for a success. `state` is the recorder's.
    #[cold]
    #[inline(never)]
    fn record_end(&'static self, outcome: Option<GiveUpReason>, attempts: u32, state: u32) {
        self.register();
        let seen = state & !SUSPENDED;
        match outcome {
            None if attempts <= 1 => self.record_first_try(),
            _ => {
                match outcome {
                    None => self.succeeded_after_retry.fetch_add(1, Relaxed),
                    Some(reason) => self.gave_up[reason_index(reason)].fetch_add(1, Relaxed),
                };
                // Retries and the attempts before them were counted as they happened; what is
                // left is the last attempt (none if a gate turned the call away) and retries
                // that observers do not see (an `Ok` that `retry_if_ok` sent back).
                let retries = seen.max(attempts.saturating_sub(1));
                self.attempts
                    .fetch_add(u64::from(attempts.saturating_sub(seen)), Relaxed);
                if retries > seen {
                    self.retries.fetch_add(u64::from(retries - seen), Relaxed);
                }
                self.histogram[RetryHistogram::bucket(u64::from(retries))].fetch_add(1, Relaxed);
                self.max_retries.fetch_max(u64::from(retries), Relaxed);
            }
        }
        if state & SUSPENDED != 0 {
            slot::bump(&self.slots, &self.overflow, |s| &s.suspended_returned);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_retry(&'static self, delay: Duration) {
        self.register();
        // The failed attempt before this retry, and the retry.
        self.attempts.fetch_add(1, Relaxed);
        self.retries.fetch_add(1, Relaxed);
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        // Saturating, as every duration in this crate: a sum of 584 years stays there.
        let _ = self
            .slept_nanos
            .fetch_update(Relaxed, Relaxed, |s| Some(s.saturating_add(nanos)));
    }

    #[cold]
    #[inline(never)]
    fn record_suspended(&'static self) {
        self.register();
        slot::bump(&self.slots, &self.overflow, |s| &s.suspended);
    }

    #[cold]
    #[inline(never)]
    fn register(&'static self) {
        if self.registered.load(Relaxed) || self.registered.swap(true, Relaxed) {
            return;
        }
        REGISTRY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(self);
    }
}

impl std::fmt::Debug for FnStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.snapshot(), f)
    }
}

/// The figures of every fn that has recorded a call, sorted by name; fns that share a name are
/// added up.
///
/// ```
/// for f in retry_runtime::stats::snapshot().iter() {
///     println!("{}: {} calls, {:.2} retries per call", f.name, f.calls, f.mean_retries());
/// }
/// ```
pub fn snapshot() -> Snapshot {
    let registered: Vec<&'static FnStats> = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Snapshot::merge(registered.iter().map(|s| s.snapshot()))
}

/// Records one call into its [`FnStats`]: the [`Observer`] that [`FnStats::start`] returns.
///
/// Place it after any observer that can veto a retry (a retry budget): it counts a retry when it
/// sees one, and a veto by an observer after it would leave that retry counted.
///
/// The expansion awaits each attempt (and any wait before one) through
/// [`watch`](Self::watch), which notices when the call first suspends: from then on, the call
/// is [unfinished](FnStatsSnapshot::unfinished) until it returns, so a call dropped mid-way stays
/// visible. The backoff sleep is watched too: a retry marks the call as suspended, but a retry
/// decided on an `Ok` (`retry_if_ok`) is not shown to observers.
#[derive(Debug)]
pub struct CallRecorder {
    stats: &'static FnStats,
    /// Retries so far, and [`SUSPENDED`] once the call has suspended. An atomic only so that the
    /// recorder is `Sync` (a future holding `&CallRecorder` across an await stays `Send`): only
    /// the call's own task touches it, with plain loads and stores.
    state: AtomicU32,
}

const SUSPENDED: u32 = 1 << 31;

impl CallRecorder {
    /// Awaits `fut` as part of this call, noting if it suspends the call.
    #[inline(always)]
    pub fn watch<F: Future>(&self, fut: F) -> Watch<'_, F> {
        Watch {
            recorder: self,
            fut,
        }
    }

    #[inline(always)]
    fn mark_suspended(&self) {
        let state = self.state.load(Relaxed);
        if state & SUSPENDED == 0 {
            self.state.store(state | SUSPENDED, Relaxed);
            self.stats.record_suspended();
        }
    }
}

pin_project_lite::pin_project! {
    /// A future awaited as part of a recorded call: see [`CallRecorder::watch`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Watch<'a, F> {
        recorder: &'a CallRecorder,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Watch<'_, F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let poll = this.fut.poll(cx);
        if poll.is_pending() {
            this.recorder.mark_suspended();
        }
        poll
    }
}

impl<E> Observer<E> for CallRecorder {
    #[inline(always)]
    fn on_success(&self, attempts: u32) {
        let state = self.state.load(Relaxed);
        if attempts <= 1 && state == 0 {
            self.stats.record_first_try();
        } else {
            self.stats.record_end(None, attempts, state);
        }
    }

    #[inline(always)]
    fn on_retry(&self, _err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        // The sleep that follows suspends the call (and may be where it is dropped).
        self.mark_suspended();
        let state = self.state.load(Relaxed);
        if state & !SUSPENDED != !SUSPENDED {
            self.state.store(state + 1, Relaxed);
        }
        self.stats.record_retry(event.delay);
        Ok(())
    }

    #[inline(always)]
    fn on_give_up(&self, _err: &E, reason: GiveUpReason, attempts: u32) {
        let state = self.state.load(Relaxed);
        self.stats.record_end(Some(reason), attempts, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallState, Classification, RetryPolicy};
    use std::ops::ControlFlow;

    /// Runs one call whose attempts return `results` in order (the last one repeats), with the
    /// classification each error string implies, as the expansion drives `step`.
    fn run(stats: &'static FnStats, results: &[Result<u32, &'static str>]) -> Result<u32, String> {
        let policy = RetryPolicy::DEFAULT;
        let recorder = stats.start();
        let mut call = CallState::<()>::new();
        let mut i = 0;
        loop {
            let result = results[i.min(results.len() - 1)].map_err(String::from);
            i += 1;
            let classify = |e: &String| Classification::from_bool(e != "fatal");
            match call.step(
                &policy,
                stats.name(),
                result,
                classify,
                |_| false,
                |_| {},
                &recorder,
            ) {
                ControlFlow::Break(done) => return done,
                ControlFlow::Continue(_) => {}
            }
        }
    }

    #[test]
    fn each_outcome_lands_in_its_counter() {
        static S: FnStats = FnStats::new("stats::unit::outcomes");
        run(&S, &[Ok(1)]).unwrap();
        run(&S, &[Err("503"), Ok(1)]).unwrap();
        run(&S, &[Err("503"), Err("503"), Ok(1)]).unwrap();
        run(&S, &[Err("503")]).unwrap_err();
        run(&S, &[Err("fatal")]).unwrap_err();
        run(&S, &[Err("503"), Err("fatal")]).unwrap_err();
        let f = S.snapshot();
        assert_eq!(f.calls, 6);
        assert_eq!(f.succeeded_first_attempt, 1);
        assert_eq!(f.succeeded_after_retry, 2);
        assert_eq!(f.gave_up.exhausted, 1);
        assert_eq!(f.gave_up.not_retryable, 2);
        assert_eq!(f.gave_up.total(), 3);
        assert_eq!(f.attempts, 1 + 2 + 3 + 3 + 1 + 2);
        assert_eq!(f.retries, 1 + 2 + 2 + 1);
        assert_eq!(f.max_retries, 2);
        assert_eq!(f.retry_histogram.counts, [2, 2, 2, 0, 0, 0, 0, 0]);
        assert!((f.mean_retries() - 1.0).abs() < 1e-12);
        // Full jitter: each sleep is at most the un-jittered delay (1 s, then 2 s).
        assert!(f.slept <= Duration::from_secs(1 + (1 + 2) + (1 + 2) + 1));
    }

    /// Polls `fut` once with a no-op waker.
    fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
        let mut fut = std::pin::pin!(fut);
        fut.as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn a_call_dropped_after_it_suspended_stays_unfinished() {
        static S: FnStats = FnStats::new("stats::unit::unfinished");
        {
            // Dropped while its first attempt waits.
            let recorder = S.start();
            assert!(poll_once(recorder.watch(std::future::pending::<()>())).is_pending());
        }
        {
            // Dropped during the sleep after a failed attempt.
            let recorder = S.start();
            let event = RetryEvent::new(S.name(), 1, Duration::from_millis(250), None);
            Observer::<()>::on_retry(&recorder, &(), &event).unwrap();
        }
        // Dropped before it ever suspended: it cannot have been cancelled mid-way, and is not
        // counted (the attribute's fn never gets here without being polled to the end).
        let _ = S.start();
        let f = S.snapshot();
        assert_eq!((f.calls, f.unfinished), (2, 2));
        assert_eq!((f.attempts, f.retries), (1, 1));
        assert_eq!(f.slept, Duration::from_millis(250));
        assert_eq!(f.retry_histogram.counts.iter().sum::<u64>(), 0);
    }

    #[test]
    fn a_call_that_suspended_and_returned_is_not_unfinished() {
        static S: FnStats = FnStats::new("stats::unit::suspended_then_returned");
        let recorder = S.start();
        let mut ready_on_second_poll = false;
        let attempt = std::future::poll_fn(|cx| {
            if std::mem::replace(&mut ready_on_second_poll, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let mut attempt = std::pin::pin!(recorder.watch(attempt));
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        assert!(attempt.as_mut().poll(cx).is_pending());
        assert_eq!(S.snapshot().unfinished, 1, "running: counted as unfinished");
        assert!(attempt.as_mut().poll(cx).is_ready());
        Observer::<()>::on_success(&recorder, 1);
        let f = S.snapshot();
        assert_eq!(
            (f.calls, f.unfinished, f.succeeded_first_attempt),
            (1, 0, 1)
        );
        assert_eq!((f.attempts, f.retry_histogram.counts[0]), (1, 1));
    }

    #[test]
    fn a_gate_rejection_counts_the_attempts_that_ran() {
        static S: FnStats = FnStats::new("stats::unit::rejected");
        let recorder = S.start();
        let call = CallState::<()>::new();
        let _: Result<(), ()> = call.reject((), GiveUpReason::CircuitOpen, &recorder);
        let f = S.snapshot();
        assert_eq!((f.calls, f.gave_up.circuit_open, f.attempts), (1, 1, 0));
    }

    #[test]
    fn registered_once_and_listed_by_name() {
        static S: FnStats = FnStats::new("stats::unit::registered");
        for _ in 0..3 {
            std::thread::spawn(|| run(&S, &[Ok(1)]))
                .join()
                .unwrap()
                .unwrap();
        }
        let all = snapshot();
        assert_eq!(all.get("stats::unit::registered").unwrap().calls, 3);
        let listed = REGISTRY
            .lock()
            .unwrap()
            .iter()
            .filter(|s| std::ptr::eq(**s, &S))
            .count();
        assert_eq!(listed, 1);
    }

    #[test]
    fn slept_time_saturates() {
        static S: FnStats = FnStats::new("stats::unit::saturates");
        S.record_retry(Duration::MAX);
        S.record_retry(Duration::from_secs(1));
        assert_eq!(S.snapshot().slept, Duration::from_nanos(u64::MAX));
    }
}
