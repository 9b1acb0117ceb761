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
//! nothing is sampled. A call is counted once, when it returns (or is dropped: see
//! [`FnStatsSnapshot::cancelled`]); calls still running are not in the figures yet. A snapshot
//! taken while calls run reads each counter at a slightly different moment, so its figures can
//! be off from each other by the calls that returned meanwhile; each is exact once they return.
//!
//! A call that succeeds on its first attempt, the common case, costs one plain load and store on
//! a counter that only the current thread writes (no locked instruction, no shared cache line);
//! every other outcome adds a few relaxed atomic operations next to a retry or a give-up that
//! costs far more. Nothing allocates per call: a fn is added to the registry, once, the first
//! time it records a call, so fns never called are not listed.

mod slot;
mod snapshot;

#[cfg(feature = "serde")]
mod serialize;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
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
    /// Calls that succeeded on their first attempt, one counter per thread slot.
    first_try: [slot::Padded; slot::SLOTS],
    first_try_overflow: AtomicU64,
    /// Everything else is recorded next to a retry or a give-up, where a shared atomic costs
    /// nothing noticeable.
    succeeded_after_retry: AtomicU64,
    gave_up: [AtomicU64; REASONS.len()],
    cancelled: AtomicU64,
    /// Attempts of every call but those counted in `first_try` (one attempt each).
    attempts: AtomicU64,
    retries: AtomicU64,
    max_retries: AtomicU64,
    /// Calls by retry count (see [`RetryHistogram`]), except those in `first_try`.
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
        const ZERO: AtomicU64 = AtomicU64::new(0);
        FnStats {
            name,
            first_try: [const { slot::Padded(AtomicU64::new(0)) }; slot::SLOTS],
            first_try_overflow: ZERO,
            succeeded_after_retry: ZERO,
            gave_up: [ZERO; REASONS.len()],
            cancelled: ZERO,
            attempts: ZERO,
            retries: ZERO,
            max_retries: ZERO,
            histogram: [ZERO; RetryHistogram::BUCKETS],
            slept_nanos: ZERO,
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
    /// Recording happens when the call returns, or when it is dropped before returning.
    #[inline(always)]
    pub fn start(&'static self) -> CallRecorder {
        CallRecorder {
            stats: self,
            retries: AtomicU32::new(0),
        }
    }

    /// This fn's figures so far.
    pub fn snapshot(&self) -> FnStatsSnapshot {
        let first = slot::sum(&self.first_try, &self.first_try_overflow);
        let load = |a: &AtomicU64| a.load(Relaxed);
        let gave_up = GiveUpCounts::from_array(self.gave_up.each_ref().map(load));
        let mut histogram = self.histogram.each_ref().map(load);
        histogram[0] = histogram[0].wrapping_add(first);
        let succeeded_after_retry = load(&self.succeeded_after_retry);
        let cancelled = load(&self.cancelled);
        FnStatsSnapshot {
            name: self.name,
            calls: first
                .wrapping_add(succeeded_after_retry)
                .wrapping_add(gave_up.total())
                .wrapping_add(cancelled),
            succeeded_first_attempt: first,
            succeeded_after_retry,
            gave_up,
            cancelled,
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
        if slot::bump(&self.first_try, &self.first_try_overflow) == 0 {
            // This thread slot's first call of this fn; registering is idempotent.
            self.register();
        }
    }

    /// Any other ending: `outcome` is `None` for a success after retries.
    #[cold]
    #[inline(never)]
    fn record_end(&'static self, outcome: Option<GiveUpReason>, attempts: u32, retries: u32) {
        self.register();
        match outcome {
            None => self.succeeded_after_retry.fetch_add(1, Relaxed),
            Some(reason) => self.gave_up[reason_index(reason)].fetch_add(1, Relaxed),
        };
        self.attempts.fetch_add(u64::from(attempts), Relaxed);
        self.add_retries(retries);
        self.histogram[RetryHistogram::bucket(u64::from(retries))].fetch_add(1, Relaxed);
        self.max_retries.fetch_max(u64::from(retries), Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn record_cancelled(&'static self, retries: u32) {
        self.register();
        self.cancelled.fetch_add(1, Relaxed);
        // Each retry followed a failed attempt that had completed; an attempt cut short by the
        // drop is not counted.
        self.attempts.fetch_add(u64::from(retries), Relaxed);
        self.add_retries(retries);
    }

    fn add_retries(&self, retries: u32) {
        if retries > 0 {
            self.retries.fetch_add(u64::from(retries), Relaxed);
        }
    }

    #[cold]
    fn record_sleep(&'static self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        // Saturating, as every duration in this crate: a sum of 584 years stays there.
        let _ = self
            .slept_nanos
            .fetch_update(Relaxed, Relaxed, |s| Some(s.saturating_add(nanos)));
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
/// Dropped before the call returned (the caller stopped polling, a timeout fired, an attempt
/// panicked), it counts the call as [cancelled](FnStatsSnapshot::cancelled).
#[derive(Debug)]
pub struct CallRecorder {
    stats: &'static FnStats,
    /// Retries so far, or [`FINISHED`] once the call's end is recorded. An atomic only so that
    /// the recorder is `Sync` (a future holding `&CallRecorder` across an await stays `Send`):
    /// it is only touched by the call's own task, with plain loads and stores.
    retries: AtomicU32,
}

const FINISHED: u32 = u32::MAX;

impl CallRecorder {
    #[inline(always)]
    fn finish(&self) -> u32 {
        let retries = self.retries.load(Relaxed);
        self.retries.store(FINISHED, Relaxed);
        retries
    }
}

impl<E> Observer<E> for CallRecorder {
    #[inline(always)]
    fn on_success(&self, attempts: u32) {
        let retries = self.finish();
        if attempts <= 1 {
            self.stats.record_first_try();
        } else {
            // `attempts - 1` also counts retries for an `Ok` that asked for another attempt
            // (`retry_if_ok`), which observers do not see as retries.
            self.stats
                .record_end(None, attempts, retries.max(attempts - 1));
        }
    }

    #[inline(always)]
    fn on_retry(&self, _err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        let retries = self.retries.load(Relaxed);
        self.retries.store(retries.saturating_add(1), Relaxed);
        self.stats.record_sleep(event.delay);
        Ok(())
    }

    #[inline(always)]
    fn on_give_up(&self, _err: &E, reason: GiveUpReason, attempts: u32) {
        let retries = self.finish();
        // A call turned away by a gate after `n` attempts slept `n` times: `retries` already
        // counts them, and `attempts - 1` would miss one.
        let retries = retries.max(attempts.saturating_sub(1));
        self.stats.record_end(Some(reason), attempts, retries);
    }
}

impl Drop for CallRecorder {
    #[inline(always)]
    fn drop(&mut self) {
        let retries = *self.retries.get_mut();
        if retries != FINISHED {
            self.stats.record_cancelled(retries);
        }
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

    #[test]
    fn a_recorder_dropped_mid_call_counts_a_cancelled_call() {
        static S: FnStats = FnStats::new("stats::unit::cancelled");
        let recorder = S.start();
        let event = RetryEvent {
            name: S.name(),
            attempt: 1,
            delay: Duration::from_millis(250),
            elapsed: None,
        };
        Observer::<()>::on_retry(&recorder, &(), &event).unwrap();
        drop(recorder); // dropped during the sleep or the second attempt
        drop(S.start()); // dropped during the first attempt
        let f = S.snapshot();
        assert_eq!((f.calls, f.cancelled), (2, 2));
        assert_eq!((f.attempts, f.retries), (1, 1));
        assert_eq!(f.slept, Duration::from_millis(250));
        assert_eq!(f.retry_histogram.counts.iter().sum::<u64>(), 0);
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
        S.record_sleep(Duration::MAX);
        S.record_sleep(Duration::from_secs(1));
        assert_eq!(S.snapshot().slept, Duration::from_nanos(u64::MAX));
    }
}
