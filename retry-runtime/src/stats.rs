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
//! nothing is sampled. A call is counted in an outcome when it returns. A call that retries is
//! [unfinished](FnStatsSnapshot::unfinished) from its first retry until it returns, and a call
//! dropped before it returns (a timeout, a `select!`, an aborted task, a panicking attempt) stays
//! unfinished, which is how cancelled calls show up; one dropped before its first retry is
//! counted when it is dropped. A snapshot taken while calls run therefore leaves out calls still
//! in their first attempt, and reads each counter at a slightly different moment, so its figures
//! can be off from each other by the calls that returned meanwhile; each is exact once they
//! return.
//!
//! A call that succeeds on its first attempt, the case a benchmark measures, costs one increment
//! of a counter that only the current thread writes (no locked instruction, no shared cache
//! line), found through a thread-local of the fn's own that remembers where the thread's counter
//! is, and one store into the call's own state (with `stats = true`; the `stats` feature's
//! recorder also notes the end in it). A call that retries adds two more such
//! bumps (at its first retry and when it returns) and a few relaxed atomic operations per retry,
//! next to a sleep that costs far more. Nothing allocates per call: a fn is added to the
//! registry, once, the first time it records a call, so fns never called are not listed.

mod snapshot;

#[cfg(feature = "serde")]
mod serialize;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::LocalKey;
use std::time::Duration;

use crate::per_thread::{CounterCache, PerThread};
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
    /// [`FIRST_TRY`], [`UNFINISHED_CALLS`] and [`UNFINISHED_RETURNED`], per thread.
    per_thread: PerThread<3>,
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
            per_thread: PerThread::new(),
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
    /// Records nothing yet: a call is counted when it first retries, returns, or is dropped.
    #[inline(always)]
    pub fn start(&'static self) -> CallRecorder {
        CallRecorder {
            sink: self,
            state: AtomicU32::new(0),
        }
    }

    /// This fn's figures so far.
    pub fn snapshot(&self) -> FnStatsSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let first = self.per_thread.sum(FIRST_TRY);
        let succeeded_after_retry = load(&self.succeeded_after_retry);
        let gave_up = GiveUpCounts::from_array(self.gave_up.each_ref().map(load));
        // Returned before unfinished: every call counted as returned is then counted as
        // unfinished too, so the difference never goes below zero.
        let returned = self.per_thread.sum(UNFINISHED_RETURNED);
        let unfinished = self.per_thread.sum(UNFINISHED_CALLS);
        let unfinished = unfinished.saturating_sub(returned);
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
    pub(crate) fn record_first_try(&'static self) {
        if self.per_thread.bump(FIRST_TRY) == 0 {
            // This thread slot's first call of this fn; registering is idempotent.
            self.register();
        }
    }

    /// Every other ending: `outcome` is `None` for a success. `state` is the recorder's.
    #[cold]
    #[inline(never)]
    fn record_end(&'static self, outcome: Option<GiveUpReason>, attempts: u32, state: u32) {
        self.register();
        let seen = state & !UNFINISHED;
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
        if state & UNFINISHED != 0 {
            self.per_thread.bump(UNFINISHED_RETURNED);
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

    /// A call that will be unfinished until it returns: it is about to sleep before its first
    /// retry, or it was dropped (or panicked) before it returned without having retried.
    #[cold]
    #[inline(never)]
    fn record_unfinished(&'static self) {
        self.register();
        self.per_thread.bump(UNFINISHED_CALLS);
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
/// A call is [unfinished](FnStatsSnapshot::unfinished) from its first retry (the sleep before it
/// is where a call spends its time and where it is most often dropped) until it returns. A call
/// dropped before it returns is caught by the recorder's `Drop`: one that had not retried yet
/// (cancelled, or panicking, during its first attempt or a wait before it) is counted as
/// unfinished then. So every call is counted exactly once, and a call still running its first
/// attempt shows up in a snapshot only once it returns or is dropped: watching each attempt for
/// the moment it suspends would cost the common case (a first try that succeeds) a branch and a
/// store, for the sake of calls that are in flight at the instant of a snapshot.
///
/// `#[retry_on_failure]` records through a recorder of its own kind (`CallRecorder<Keyed<K>>`),
/// which finds the current thread's counter through a thread-local of the fn's own: the same
/// figures, a few instructions less per call.
#[derive(Debug)]
pub struct CallRecorder<S: StatsSink = &'static FnStats> {
    sink: S,
    /// Retries so far, [`UNFINISHED`] once the call has been counted as unfinished, [`ENDED`]
    /// once it has returned. An atomic only so that the recorder is `Sync` (a future holding
    /// `&CallRecorder` across an await stays `Send`): only the call's own task touches it, with
    /// plain loads and stores.
    state: AtomicU32,
}

/// [`FnStats::per_thread`]'s counters: successes at the first attempt, calls counted as
/// unfinished, and those of them that returned.
const FIRST_TRY: usize = 0;
const UNFINISHED_CALLS: usize = 1;
const UNFINISHED_RETURNED: usize = 2;

const UNFINISHED: u32 = 1 << 31;
const ENDED: u32 = u32::MAX;

/// Where a [`CallRecorder`] records: a `&'static FnStats`, or (for the attribute) [`Keyed`].
#[doc(hidden)]
pub trait StatsSink {
    /// The fn's statistics.
    fn stats(&self) -> &'static FnStats;
    /// Counts a success on the first attempt.
    fn record_first_try(&self);
    /// Whether the recorder's owner calls [`CallRecorder::finish`] when the call returns, so that
    /// the recorder need not note the end in its state for its `Drop` to see.
    const FINISHED_BY_OWNER: bool;
}

impl StatsSink for &'static FnStats {
    #[inline(always)]
    fn stats(&self) -> &'static FnStats {
        self
    }

    #[inline(always)]
    fn record_first_try(&self) {
        FnStats::record_first_try(self);
    }

    const FINISHED_BY_OWNER: bool = false;
}

/// A fn's statistics and the thread-local that caches where the current thread's first-try
/// counter of them is. `__retry_fn_stats!` declares both, and a type implementing this, for each
/// fn.
#[doc(hidden)]
pub trait FnStatsKey: 'static {
    /// The fn's statistics.
    const STATS: &'static FnStats;
    /// The fn's own cache: `const`-initialised to `None`, no destructor.
    const CACHE: &'static LocalKey<CounterCache>;
    /// See [`StatsSink::FINISHED_BY_OWNER`].
    const FINISHED_BY_OWNER: bool;
}

/// The [`StatsSink`] of the fn that `K` names: zero-sized, so a call's recorder is its state
/// word alone, and the first-try count is one thread-local load and an increment.
#[doc(hidden)]
pub struct Keyed<K>(PhantomData<fn() -> K>);

impl<K> std::fmt::Debug for Keyed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyed")
    }
}

impl<K: FnStatsKey> StatsSink for Keyed<K> {
    #[inline(always)]
    fn stats(&self) -> &'static FnStats {
        K::STATS
    }

    #[inline(always)]
    fn record_first_try(&self) {
        // The fn is listed by its first count on each thread: registering is idempotent.
        K::STATS
            .per_thread
            .bump_cached(FIRST_TRY, K::CACHE, || K::STATS.register());
    }

    const FINISHED_BY_OWNER: bool = K::FINISHED_BY_OWNER;
}

impl<K: FnStatsKey> CallRecorder<Keyed<K>> {
    /// Starts recording one call of the fn `K` names; see [`FnStats::start`].
    #[doc(hidden)]
    #[inline(always)]
    pub fn keyed() -> Self {
        CallRecorder {
            sink: Keyed(PhantomData),
            state: AtomicU32::new(0),
        }
    }
}

impl<S: StatsSink> CallRecorder<S> {
    /// The call returned, and its observers have seen how: the recorder goes without its `Drop`
    /// (which counts calls dropped before they return). What the expansion calls on its way out.
    #[doc(hidden)]
    #[inline(always)]
    pub fn finish(self) {
        std::mem::forget(self);
    }

    /// `fut` itself: statistics do not need to see an attempt suspend (see the type's docs), so
    /// the expansion no longer wraps attempts; kept for code that drives a recorder by hand.
    #[inline(always)]
    pub fn watch<F: Future>(&self, fut: F) -> F {
        fut
    }

    #[inline(always)]
    fn mark_unfinished(&self) {
        let state = self.state.load(Relaxed);
        if state & UNFINISHED == 0 {
            self.state.store(state | UNFINISHED, Relaxed);
            self.sink.stats().record_unfinished();
        }
    }
}

impl<S: StatsSink> Drop for CallRecorder<S> {
    #[inline(always)]
    fn drop(&mut self) {
        let state = *self.state.get_mut();
        if state != ENDED && state & UNFINISHED == 0 {
            // Dropped before it returned or retried (cancelled, or unwinding from a panicking
            // attempt): unfinished for good. A call that retried was counted then.
            self.sink.stats().record_unfinished();
        }
    }
}

impl<E, S: StatsSink> Observer<E> for CallRecorder<S> {
    #[inline(always)]
    fn on_success(&self, attempts: u32) {
        // A call that retried has more than one attempt: the first try needs no look at `state`.
        if attempts <= 1 {
            self.sink.record_first_try();
        } else {
            self.sink
                .stats()
                .record_end(None, attempts, self.state.load(Relaxed));
        }
        if !S::FINISHED_BY_OWNER {
            self.state.store(ENDED, Relaxed);
        }
    }

    #[inline(always)]
    fn on_retry(&self, _err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        // The sleep that follows is where the call spends its time (and may be dropped).
        self.mark_unfinished();
        let state = self.state.load(Relaxed);
        if state & !UNFINISHED != !UNFINISHED {
            self.state.store(state + 1, Relaxed);
        }
        self.sink.stats().record_retry(event.delay);
        Ok(())
    }

    #[inline(always)]
    fn on_give_up(&self, _err: &E, reason: GiveUpReason, attempts: u32) {
        let state = self.state.load(Relaxed);
        self.sink.stats().record_end(Some(reason), attempts, state);
        if !S::FINISHED_BY_OWNER {
            self.state.store(ENDED, Relaxed);
        }
    }
}

/// One fn's statistics and the recorder of one call of it: what `stats = true` (or the `stats`
/// feature) adds to an annotated fn. The `static`s live in the fn's body, so each fn has its own,
/// shared by its monomorphisations. `finished`: the expansion calls the recorder's `finish` on
/// every way out of the call but a panic or a drop, and the recorder need not note the end;
/// `unfinished`: it does not, and the recorder notes it.
#[doc(hidden)]
#[macro_export]
macro_rules! __retry_fn_stats {
    (finished, $name:expr) => {
        $crate::__retry_fn_stats!(@ true, $name)
    };
    (unfinished, $name:expr) => {
        $crate::__retry_fn_stats!(@ false, $name)
    };
    (@ $finished:literal, $name:expr) => {{
        static __RETRY_STATS: $crate::__private::FnStats = $crate::__private::FnStats::new($name);
        $crate::__private::thread_local! {
            static __RETRY_CACHE: $crate::__private::CounterCache =
                const { $crate::__private::CounterCache::new(::core::option::Option::None) };
        }
        struct __RetryStats;
        impl $crate::__private::FnStatsKey for __RetryStats {
            const STATS: &'static $crate::__private::FnStats = &__RETRY_STATS;
            const CACHE: &'static ::std::thread::LocalKey<$crate::__private::CounterCache> =
                &__RETRY_CACHE;
            const FINISHED_BY_OWNER: bool = $finished;
        }
        $crate::__private::CallRecorder::<$crate::__private::Keyed<__RetryStats>>::keyed()
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallState, Classification, RetryPolicy};
    use std::ops::ControlFlow;
    use std::task::{Context, Poll};

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
    fn a_call_dropped_before_it_returned_stays_unfinished() {
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
        {
            // Dropped during the second sleep: still one call.
            let recorder = S.start();
            let event = RetryEvent::new(S.name(), 1, Duration::from_millis(100), None);
            Observer::<()>::on_retry(&recorder, &(), &event).unwrap();
            Observer::<()>::on_retry(&recorder, &(), &event).unwrap();
        }
        let f = S.snapshot();
        assert_eq!((f.calls, f.unfinished), (3, 3));
        assert_eq!((f.attempts, f.retries), (3, 3));
        assert_eq!(f.slept, Duration::from_millis(450));
        assert_eq!(f.retry_histogram.counts.iter().sum::<u64>(), 0);
    }

    #[test]
    fn a_panicking_attempt_leaves_its_call_unfinished() {
        static S: FnStats = FnStats::new("stats::unit::panicked");
        let panicked = std::panic::catch_unwind(|| {
            let _recorder = S.start();
            panic!("the attempt panics");
        });
        assert!(panicked.is_err());
        let f = S.snapshot();
        assert_eq!((f.calls, f.unfinished, f.attempts), (1, 1, 0));
    }

    #[test]
    fn a_retrying_call_is_unfinished_until_it_returns() {
        static S: FnStats = FnStats::new("stats::unit::retrying");
        let recorder = S.start();
        let event = RetryEvent::new(S.name(), 1, Duration::from_millis(10), None);
        Observer::<()>::on_retry(&recorder, &(), &event).unwrap();
        assert_eq!(
            (S.snapshot().calls, S.snapshot().unfinished),
            (1, 1),
            "sleeping before its retry: counted as unfinished"
        );
        Observer::<()>::on_success(&recorder, 2);
        drop(recorder);
        let f = S.snapshot();
        assert_eq!((f.calls, f.unfinished, f.succeeded_after_retry), (1, 0, 1));
        assert_eq!((f.attempts, f.retry_histogram.counts[1]), (2, 1));
    }

    #[test]
    fn a_call_that_suspended_in_its_first_attempt_and_returned_is_a_first_try() {
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
        assert_eq!(
            S.snapshot().calls,
            0,
            "in its first attempt: not counted yet"
        );
        assert!(attempt.as_mut().poll(cx).is_ready());
        Observer::<()>::on_success(&recorder, 1);
        drop(recorder);
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
