//! Seeing retries: per-function statistics (exact under many threads), hooks and attempt context
//! on the paused clock, and, behind the features of the same names, what `tracing` and `metrics`
//! receive and how snapshots serialize.
//!
//! Calls are driven the way the attribute's expansion drives them (`expanded!` below): a
//! `CallState` stepped after each attempt, the attempt awaited through the stats recorder and the
//! tracing span, and the observers in the order the expansion lists them.

#[cfg(feature = "metrics")]
#[path = "observability/recorder.rs"]
mod recorder;
#[cfg(feature = "tracing")]
#[path = "observability/subscriber.rs"]
mod subscriber;

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use retry_runtime::stats::{self, FnStats};
use retry_runtime::{
    AttemptContext, Classification, GiveUpEvent, GiveUpReason, IdempotencyKey, Jitter, Observer,
    RetryEvent, RetryPolicy,
};
use retry_workspace::alloc_count::{allocations, PerThreadCounting};
use tokio::time::Instant;

/// Counts the allocations of the current thread, so that tests running in parallel do not see
/// each other's.
#[global_allocator]
static GLOBAL: PerThreadCounting = PerThreadCounting;

/// What the attribute generates for a fn returning `$ret`, with statistics into `$stats`, the
/// observers `$observers` (built from the call's clock: hooks, a veto) listed first, `context =
/// $ctx`, and the tracing and metrics observers (no-ops without their features).
macro_rules! expanded {
    (
        policy: $policy:expr,
        stats: $stats:expr,
        returns: $ret:ty,
        classify: $classify:expr,
        observers: |$clock:ident| $observers:expr,
        |$ctx:ident| $body:expr
    ) => {{
        use retry_runtime::__private as rt;
        let policy: RetryPolicy = $policy;
        let stats: &'static FnStats = $stats;
        let recorder = stats.start();
        let mut call = rt::CallState::<rt::Instant>::new();
        let context = rt::ContextState::new();
        let $clock = call.clock();
        let observers = $observers;
        let trace = rt::tracing_call::<$ret, _>(stats.name(), |e, f| {
            #[allow(unused_imports)]
            use rt::{DescribeOpaque as _, DescribeViaDebug as _, DescribeViaDisplay as _};
            (&&rt::ErrorRef(e)).__retry_describe(f)
        });
        let metrics = rt::metrics_call(stats);
        loop {
            let $ctx: AttemptContext = context.attempt(&call);
            let result: $ret = trace.instrument(recorder.watch(async { $body })).await;
            match call.step(
                &policy,
                stats.name(),
                result,
                $classify,
                rt::never,
                rt::no_gate,
                &(&observers, &recorder, &metrics, &trace),
            ) {
                ::core::ops::ControlFlow::Break(done) => break done,
                ::core::ops::ControlFlow::Continue(delay) => rt::sleep(delay).await,
            }
        }
    }};
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProviderError {
    Unavailable,
    BadKey,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderError::Unavailable => "503 service unavailable",
            ProviderError::BadKey => "401 bad key",
        })
    }
}

fn classify(e: &ProviderError) -> Classification {
    Classification::from_bool(*e == ProviderError::Unavailable)
}

/// 3 attempts, 100 ms then 200 ms, no jitter: exact times on the paused clock.
fn policy_100ms() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the hooks saw, with the paused clock's time of each sighting.
#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<(u32, Duration)>>,
    retries: Mutex<Vec<(String, RetryEvent, Duration)>>,
    give_ups: Mutex<Vec<(String, GiveUpEvent)>>,
}

type R = Result<u32, ProviderError>;

/// A call whose attempt `n` returns `outcomes[n - 1]` (the last repeating), with both hooks.
async fn hooked(stats: &'static FnStats, seen: &Seen, outcomes: &[R]) -> R {
    let start = Instant::now();
    expanded!(
        policy: policy_100ms(),
        stats: stats,
        returns: R,
        classify: classify,
        observers: |clock| (
            // The closures name no types: the expansion's helpers fix them from the return type.
            retry_runtime::__private::on_retry::<R, _>(|err, event| {
                seen.retries.lock().unwrap().push((err.to_string(), *event, start.elapsed()));
            }),
            retry_runtime::OnGiveUp::new(
                stats.name(),
                clock,
                retry_runtime::__private::give_up_hook::<R, _>(|err, event| {
                    seen.give_ups.lock().unwrap().push((err.to_string(), *event));
                }),
            ),
        ),
        |ctx| {
            seen.attempts.lock().unwrap().push((ctx.attempt(), start.elapsed()));
            outcomes[(ctx.attempt() as usize - 1).min(outcomes.len() - 1)]
        }
    )
}

#[tokio::test(start_paused = true)]
async fn on_retry_runs_before_each_sleep_and_on_give_up_once() {
    static STATS: FnStats = FnStats::new("observability::hooks_exhausted");
    let seen = Seen::default();
    let result = hooked(&STATS, &seen, &[Err(ProviderError::Unavailable)]).await;
    assert_eq!(result, Err(ProviderError::Unavailable));

    let attempts = seen.attempts.lock().unwrap().clone();
    assert_eq!(attempts, [(1, ms(0)), (2, ms(100)), (3, ms(300))]);

    let retries = seen.retries.lock().unwrap().clone();
    assert_eq!(retries.len(), 2);
    for (i, (err, event, at)) in retries.iter().enumerate() {
        assert_eq!(err, "503 service unavailable");
        assert_eq!(event.name, "observability::hooks_exhausted");
        assert_eq!(event.attempt, i as u32 + 1);
        // Run right after attempt `i + 1`, before the sleep: the next attempt starts one delay
        // after the hook.
        assert_eq!(*at, attempts[i].1);
        assert_eq!(event.elapsed, Some(attempts[i].1));
        assert_eq!(attempts[i + 1].1 - *at, event.delay);
    }
    assert_eq!(retries[0].1.delay, ms(100));
    assert_eq!(retries[1].1.delay, ms(200));

    let give_ups = seen.give_ups.lock().unwrap().clone();
    assert_eq!(
        give_ups,
        [(
            "503 service unavailable".to_string(),
            GiveUpEvent::new(
                "observability::hooks_exhausted",
                GiveUpReason::Exhausted,
                3,
                Some(ms(300))
            )
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn on_give_up_says_why_and_success_calls_neither_give_up_nor_retry_needlessly() {
    static STATS: FnStats = FnStats::new("observability::hooks_reasons");

    let seen = Seen::default();
    let fatal = [Err(ProviderError::Unavailable), Err(ProviderError::BadKey)];
    assert_eq!(
        hooked(&STATS, &seen, &fatal).await,
        Err(ProviderError::BadKey)
    );
    assert_eq!(seen.retries.lock().unwrap().len(), 1);
    let give_ups = seen.give_ups.lock().unwrap().clone();
    assert_eq!(give_ups.len(), 1);
    assert_eq!(give_ups[0].0, "401 bad key");
    assert_eq!(give_ups[0].1.reason, GiveUpReason::NotRetryable);
    assert_eq!(
        (give_ups[0].1.attempts, give_ups[0].1.elapsed),
        (2, Some(ms(100)))
    );

    let seen = Seen::default();
    assert_eq!(hooked(&STATS, &seen, &[Ok(7)]).await, Ok(7));
    assert!(seen.retries.lock().unwrap().is_empty());
    assert!(seen.give_ups.lock().unwrap().is_empty());

    let seen = Seen::default();
    let flaky = [Err(ProviderError::Unavailable), Ok(7)];
    assert_eq!(hooked(&STATS, &seen, &flaky).await, Ok(7));
    assert_eq!(seen.retries.lock().unwrap().len(), 1);
    assert!(seen.give_ups.lock().unwrap().is_empty());

    let f = stats::snapshot();
    let f = f.get("observability::hooks_reasons").unwrap();
    assert_eq!(
        (f.calls, f.succeeded_first_attempt, f.succeeded_after_retry),
        (3, 1, 1)
    );
    assert_eq!(f.gave_up.not_retryable, 1);
}

/// An observer that vetoes every retry, as an empty retry budget does.
struct EmptyBudget;

impl<E> Observer<E> for EmptyBudget {
    fn on_retry(&self, _: &E, _: &RetryEvent) -> Result<(), GiveUpReason> {
        Err(GiveUpReason::BudgetEmpty)
    }
}

#[tokio::test(start_paused = true)]
async fn a_veto_listed_first_hides_the_retry_from_hooks_and_stats() {
    static STATS: FnStats = FnStats::new("observability::vetoed");
    let retried = Mutex::new(0);
    let gave_up = Mutex::new(Vec::new());
    let result: R = expanded!(
        policy: policy_100ms(),
        stats: &STATS,
        returns: R,
        classify: classify,
        observers: |clock| (
            EmptyBudget,
            retry_runtime::__private::on_retry::<R, _>(|_, _| *retried.lock().unwrap() += 1),
            retry_runtime::OnGiveUp::new(
                STATS.name(),
                clock,
                retry_runtime::__private::give_up_hook::<R, _>(|_, event| {
                    gave_up.lock().unwrap().push(event.reason)
                }),
            ),
        ),
        |_ctx| Err(ProviderError::Unavailable)
    );
    assert_eq!(result, Err(ProviderError::Unavailable));
    assert_eq!(*retried.lock().unwrap(), 0);
    assert_eq!(*gave_up.lock().unwrap(), [GiveUpReason::BudgetEmpty]);
    let f = STATS.snapshot();
    assert_eq!(
        (f.calls, f.gave_up.budget_empty, f.attempts, f.retries),
        (1, 1, 1, 0)
    );
    assert_eq!(f.slept, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn context_keeps_one_key_per_call_and_counts_attempts() {
    static STATS: FnStats = FnStats::new("observability::context");
    let seen: Mutex<Vec<AttemptContext>> = Mutex::new(Vec::new());
    let headers: Mutex<Vec<[(String, String); 2]>> = Mutex::new(Vec::new());
    for _call in 0..2 {
        let result: R = expanded!(
            policy: policy_100ms(),
            stats: &STATS,
            returns: R,
            classify: classify,
            observers: |_clock| (),
            |ctx| {
                seen.lock().unwrap().push(ctx);
                let [(k1, v1), (k2, v2)] = ctx.headers();
                headers.lock().unwrap().push([
                    (k1.to_string(), v1.to_string()),
                    (k2.to_string(), v2.to_string()),
                ]);
                assert_eq!(ctx.elapsed(), ms([0, 100, 300][ctx.retry_count() as usize]));
                if ctx.attempt() < 3 {
                    Err(ProviderError::Unavailable)
                } else {
                    Ok(ctx.attempt())
                }
            }
        );
        assert_eq!(result, Ok(3));
    }
    let seen = seen.lock().unwrap();
    let attempts: Vec<u32> = seen.iter().map(|c| c.attempt()).collect();
    assert_eq!(attempts, [1, 2, 3, 1, 2, 3]);
    let keys: Vec<IdempotencyKey> = seen.iter().map(|c| c.idempotency_key()).collect();
    assert!(keys[..3].iter().all(|k| *k == keys[0]), "one key per call");
    assert!(keys[3..].iter().all(|k| *k == keys[3]), "one key per call");
    assert_ne!(keys[0], keys[3], "a new key for a new call");

    let headers = headers.lock().unwrap();
    let key_text = keys[0].to_string();
    for (i, [(k1, v1), (k2, v2)]) in headers[..3].iter().enumerate() {
        assert_eq!(
            (k1.as_str(), v1.as_str()),
            ("Idempotency-Key", key_text.as_str())
        );
        assert_eq!(k2, "x-stainless-retry-count");
        assert_eq!(v2, &i.to_string());
    }
}

/// The call pattern of call `i` in the exactness test: `i % 8` picks one of eight behaviours.
async fn patterned(i: usize) -> Result<u32, ProviderError> {
    static STATS: FnStats = FnStats::new("observability::exact");
    use ProviderError::{BadKey, Unavailable};
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(ms(1))
        .max_delay(ms(10))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    expanded!(
        policy: policy,
        stats: &STATS,
        returns: R,
        classify: classify,
        observers: |_clock| (),
        |ctx| {
            let n = ctx.attempt();
            match (i % 8, n) {
                (0, 1) => Err(Unavailable),
                (1, 1 | 2) => Err(Unavailable),
                (2, _) => Err(Unavailable),
                (3, _) => Err(BadKey),
                (4, _) => {
                    // Suspends (and may resume on another worker) before succeeding.
                    tokio::task::yield_now().await;
                    Ok(n)
                }
                (5, 1) => Err(Unavailable),
                (5, _) => Err(BadKey),
                (6, _) => std::future::pending().await, // the caller's timeout drops the call
                _ => Ok(n),
            }
        }
    )
}

#[test]
fn stats_are_exact_under_eight_worker_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    const CALLS: usize = 8 * 250;
    rt.block_on(async {
        let tasks: Vec<_> = (0..CALLS)
            .map(|i| {
                tokio::spawn(async move {
                    if i % 8 == 6 {
                        assert!(tokio::time::timeout(ms(5), patterned(i)).await.is_err());
                    } else {
                        let _ = patterned(i).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let all = stats::snapshot();
    let f = all
        .get("observability::exact")
        .expect("listed after its first call");
    let per_pattern = (CALLS / 8) as u64;
    assert_eq!(f.calls, CALLS as u64);
    assert_eq!(f.succeeded_first_attempt, 2 * per_pattern); // patterns 4 and 7
    assert_eq!(f.succeeded_after_retry, 2 * per_pattern); // 0 and 1
    assert_eq!(f.gave_up.exhausted, per_pattern); // 2
    assert_eq!(f.gave_up.not_retryable, 2 * per_pattern); // 3 and 5
    assert_eq!(f.gave_up.total(), 3 * per_pattern);
    assert_eq!(f.unfinished, per_pattern); // 6
                                           // Attempts per pattern: 2, 3, 3, 1, 1, 2, 0 (the dropped attempt never completed), 1.
    assert_eq!(f.attempts, 13 * per_pattern);
    // Retries per pattern: 1, 2, 2, 0, 0, 1, 0, 0.
    assert_eq!(f.retries, 6 * per_pattern);
    assert_eq!(f.max_retries, 2);
    let p = per_pattern;
    assert_eq!(
        f.retry_histogram.counts,
        [3 * p, 2 * p, 2 * p, 0, 0, 0, 0, 0]
    );
    // Sleeps: 1 ms after a first failure, 2 ms after a second: 1 + 3 + 3 + 1 ms per 8 calls.
    assert_eq!(f.slept, ms(8) * per_pattern as u32);
    assert!((f.mean_retries() - 6.0 / 8.0).abs() < 1e-12);
}

/// Polls a future once with a no-op waker, as the happy-path bench does.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = std::pin::pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

async fn immediate(stats: &'static FnStats, x: u32) -> R {
    expanded!(
        policy: RetryPolicy::DEFAULT,
        stats: stats,
        returns: R,
        classify: classify,
        observers: |clock| (
            retry_runtime::__private::on_retry::<R, _>(|_, _| {}),
            retry_runtime::OnGiveUp::new(
                stats.name(),
                clock,
                retry_runtime::__private::give_up_hook::<R, _>(|_, _| {}),
            ),
        ),
        |ctx| Ok(x + ctx.attempt())
    )
}

#[test]
fn first_attempt_successes_are_exact_from_many_threads_and_never_allocate() {
    static STATS: FnStats = FnStats::new("observability::immediate");
    const THREADS: u64 = 16;
    const CALLS: u64 = 20_000;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                // The thread's first call registers the fn and seeds the thread's random
                // generator; after that, no call allocates.
                assert_eq!(poll_once(immediate(&STATS, 1)), Poll::Ready(Ok(2)));
                let before = allocations();
                for i in 1..CALLS as u32 {
                    assert_eq!(poll_once(immediate(&STATS, i)), Poll::Ready(Ok(i + 1)));
                }
                allocations() - before
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0, "allocations per thread after warm-up");
    }
    let f = STATS.snapshot();
    assert_eq!(
        (f.calls, f.succeeded_first_attempt),
        (THREADS * CALLS, THREADS * CALLS)
    );
    assert_eq!(
        (f.attempts, f.retries, f.unfinished),
        (THREADS * CALLS, 0, 0)
    );
    assert_eq!(f.retry_histogram.counts[0], THREADS * CALLS);
}

/// `immediate` as the attribute writes it: its recorder finds each thread's counter through a
/// thread-local of the fn's own.
#[retry_runtime::retry_on_failure(stats = true, name = "observability::immediate_attribute")]
async fn immediate_through_the_attribute(x: u32) -> R {
    Ok(x + 1)
}

#[test]
fn first_attempt_successes_through_the_attribute_are_exact_from_many_threads() {
    const THREADS: u64 = 16;
    const CALLS: u64 = 20_000;
    let name = "observability::immediate_attribute";
    // Two rounds of threads: the second round reuses the slots (and finds its caches empty).
    for round in 1..=2 {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                std::thread::spawn(|| {
                    // The thread's first call fills its cache (and registers the fn); after
                    // that, no call allocates.
                    let first = poll_once(immediate_through_the_attribute(1));
                    assert_eq!(first, Poll::Ready(Ok(2)));
                    let before = allocations();
                    for i in 1..CALLS as u32 {
                        let call = poll_once(immediate_through_the_attribute(i));
                        assert_eq!(call, Poll::Ready(Ok(i + 1)));
                    }
                    allocations() - before
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 0, "allocations per thread after warm-up");
        }
        let f = *stats::snapshot().get(name).unwrap();
        let n = round * THREADS * CALLS;
        assert_eq!((f.calls, f.succeeded_first_attempt), (n, n));
        assert_eq!((f.attempts, f.retries, f.unfinished), (n, 0, 0));
    }
}

#[tokio::test(start_paused = true)]
async fn the_table_lists_each_fn_with_its_give_ups_and_retries() {
    static STATS: FnStats = FnStats::new("observability::table");
    let seen = Seen::default();
    for outcomes in [
        &[Ok(1)][..],
        &[Err(ProviderError::Unavailable), Ok(1)],
        &[Err(ProviderError::Unavailable)],
        &[Err(ProviderError::BadKey)],
    ] {
        let _ = hooked(&STATS, &seen, outcomes).await;
    }
    let table = stats::snapshot().to_string();
    let row = table
        .lines()
        .find(|l| l.starts_with("observability::table "))
        .expect("a row for the fn");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // calls, ok 1st, ok retried, gave up, unfinished, attempts, retries/call, max, slept
    assert_eq!(
        cells[1..],
        ["4", "1", "1", "2", "0", "7", "0.75", "2", "0.4s"]
    );
    assert!(table.contains("  observability::table gave up: exhausted 1, not_retryable 1\n"));
    assert!(table.contains("  observability::table retries per call: 0: 2, 1: 1, 2: 1\n"));
}

#[tokio::test(start_paused = true)]
async fn fallback_turns_the_final_error_into_a_result_after_the_give_up_is_recorded() {
    static STATS: FnStats = FnStats::new("observability::fallback");
    let seen = Seen::default();
    // `fallback = |err| ..`: the closure's argument type comes from the call's result.
    let recovered = retry_runtime::__private::recover(
        hooked(&STATS, &seen, &[Err(ProviderError::BadKey)]).await,
        |err| match err {
            ProviderError::BadKey => Ok(0),
            other => Err(other),
        },
    );
    assert_eq!(recovered, Ok(0));
    let untouched = retry_runtime::__private::recover(Ok::<u32, ProviderError>(5), |_| Ok(0));
    assert_eq!(untouched, Ok(5));
    assert_eq!(
        seen.give_ups.lock().unwrap().len(),
        1,
        "on_give_up ran before the fallback"
    );
    assert_eq!(STATS.snapshot().gave_up.not_retryable, 1);
}

/// The observers the expansion adds keep a fn's future `Send` (and so spawnable).
#[test]
fn the_future_with_every_observer_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    static STATS: FnStats = FnStats::new("observability::send");
    let seen = Seen::default();
    assert_send(&hooked(&STATS, &seen, &[Ok(1)]));
    assert_send(&patterned(0));
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn snapshots_serialize_to_json() {
    static STATS: FnStats = FnStats::new("observability::json");
    let seen = Seen::default();
    let _ = hooked(&STATS, &seen, &[Err(ProviderError::Unavailable), Ok(1)]).await;
    let json = serde_json::to_value(stats::snapshot()).unwrap();
    let f = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "observability::json")
        .unwrap();
    assert_eq!(f["calls"], 1);
    assert_eq!(f["succeeded_after_retry"], 1);
    assert_eq!(f["gave_up"]["exhausted"], 0);
    assert_eq!(f["gave_up"]["budget_empty"], 0);
    assert_eq!(f["attempts"], 2);
    assert_eq!(f["retries"], 1);
    assert_eq!(f["mean_retries"], 1.0);
    assert_eq!(f["retry_histogram"]["1"], 1);
    assert_eq!(f["retry_histogram"]["16+"], 0);
    assert_eq!(f["slept_secs"], 0.1);
    assert_eq!(f["unfinished"], 0);
}

#[cfg(feature = "tracing")]
mod tracing_feature {
    use super::subscriber::Capture;
    use super::*;

    /// Runs `f` with `capture` as this thread's subscriber.
    ///
    /// Tests run in parallel, and tracing caches each callsite's interest process-wide. While a
    /// single dispatcher exists, tracing-core computes that cache from the *registering thread's*
    /// default, so a callsite first hit by another test's thread would be cached as disabled for
    /// every thread. Two dispatchers that stay alive (and want nothing) make it consult every live
    /// dispatcher instead, and the rebuild below recomputes whatever was cached before.
    pub(super) fn traced<T>(capture: &Capture, f: impl FnOnce() -> T) -> T {
        use tracing::subscriber::NoSubscriber;
        static KEEP_ALIVE: std::sync::OnceLock<[tracing::Dispatch; 2]> = std::sync::OnceLock::new();
        KEEP_ALIVE.get_or_init(|| {
            [
                tracing::Dispatch::new(NoSubscriber::default()),
                tracing::Dispatch::new(NoSubscriber::default()),
            ]
        });
        tracing::subscriber::with_default(capture.clone(), || {
            tracing::callsite::rebuild_interest_cache();
            f()
        })
    }

    pub(super) fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_span_per_call_and_events_for_retries_and_the_give_up() {
        static STATS: FnStats = FnStats::new("observability::traced");
        let capture = Capture::default();
        traced(&capture, || {
            paused_runtime().block_on(async {
                let result: R = expanded!(
                    policy: policy_100ms(),
                    stats: &STATS,
                    returns: R,
                    classify: classify,
                    observers: |_clock| (),
                    |ctx| {
                        tracing::info!(attempt = ctx.attempt(), "calling the provider");
                        Err(ProviderError::Unavailable)
                    }
                );
                assert!(result.is_err());
            })
        });

        let spans = capture.spans();
        let retry_spans: Vec<_> = spans.iter().filter(|s| s.name == "retry").collect();
        assert_eq!(retry_spans.len(), 1, "one span per call");
        let span = retry_spans[0];
        assert_eq!(span.target, "retry_runtime");
        assert_eq!(span.fields["name"], "observability::traced");
        assert_eq!(span.fields["attempts"], "3");

        let events = capture.events();
        let body: Vec<_> = events
            .iter()
            .filter(|e| e.fields["message"] == "calling the provider")
            .collect();
        assert_eq!(body.len(), 3, "one per attempt");
        assert!(
            body.iter().all(|e| e.parent == Some(span.id)),
            "each attempt runs inside the call's span"
        );

        let retries: Vec<_> = events
            .iter()
            .filter(|e| e.fields["message"] == "retrying")
            .collect();
        assert_eq!(retries.len(), 2);
        for (i, e) in retries.iter().enumerate() {
            assert_eq!(e.level, tracing::Level::WARN);
            assert_eq!(e.target, "retry_runtime");
            assert_eq!(e.parent, Some(span.id));
            assert_eq!(e.fields["name"], "observability::traced");
            assert_eq!(e.fields["attempt"], (i + 1).to_string());
            assert_eq!(e.fields["delay_ms"], ["100", "200"][i]);
            assert_eq!(e.fields["elapsed_ms"], ["0", "100"][i]);
            assert_eq!(e.fields["error"], "503 service unavailable");
        }

        let give_ups: Vec<_> = events
            .iter()
            .filter(|e| e.fields["message"] == "giving up")
            .collect();
        assert_eq!(give_ups.len(), 1);
        let e = give_ups[0];
        assert_eq!(e.level, tracing::Level::ERROR);
        assert_eq!(e.parent, Some(span.id));
        assert_eq!(e.fields["reason"], "exhausted");
        assert_eq!(e.fields["attempts"], "3");
        assert_eq!(e.fields["error"], "503 service unavailable");
        assert_eq!(e.fields["name"], "observability::traced");
    }

    /// Errors without `Display` are logged with `Debug`, and those without either by type name:
    /// the feature adds no bound on error types.
    #[test]
    fn errors_without_display_are_still_described() {
        #[derive(Debug)]
        struct DebugOnly {
            #[allow(dead_code)] // read by Debug
            status: u16,
        }
        struct Opaque;

        static DEBUG: FnStats = FnStats::new("observability::traced_debug");
        static OPAQUE: FnStats = FnStats::new("observability::traced_opaque");
        let capture = Capture::default();
        let give_up = |_: &_| Classification::give_up();
        traced(&capture, || {
            paused_runtime().block_on(async {
                let _: Result<(), DebugOnly> = expanded!(
                    policy: policy_100ms(),
                    stats: &DEBUG,
                    returns: Result<(), DebugOnly>,
                    classify: give_up,
                    observers: |_clock| (),
                    |_ctx| Err(DebugOnly { status: 418 })
                );
                let _: Result<(), Opaque> = expanded!(
                    policy: policy_100ms(),
                    stats: &OPAQUE,
                    returns: Result<(), Opaque>,
                    classify: |_: &Opaque| Classification::give_up(),
                    observers: |_clock| (),
                    |_ctx| Err(Opaque)
                );
            })
        });
        let errors: Vec<String> = capture
            .events()
            .into_iter()
            .filter(|e| e.fields["message"] == "giving up")
            .map(|e| e.fields["error"].clone())
            .collect();
        assert_eq!(
            errors,
            [
                "DebugOnly { status: 418 }".to_string(),
                format!("an error of type `{}`", std::any::type_name::<Opaque>()),
            ]
        );
    }
}

#[cfg(feature = "metrics")]
mod metrics_feature {
    use super::recorder::Capture;
    use super::*;
    use retry_runtime::metrics_observer::{ATTEMPTS, BACKOFF_SECONDS, CALLS_TOTAL, RETRIES_TOTAL};

    #[test]
    fn counters_and_histograms_with_fn_and_outcome_labels() {
        static STATS: FnStats = FnStats::new("observability::metered");
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(async {
                    let seen = Seen::default();
                    let unavailable = Err(ProviderError::Unavailable);
                    let _ = hooked(&STATS, &seen, &[Ok(1)]).await;
                    let _ = hooked(&STATS, &seen, &[unavailable, unavailable, Ok(1)]).await;
                    let _ = hooked(&STATS, &seen, &[unavailable]).await;
                    let _ = hooked(&STATS, &seen, &[Err(ProviderError::BadKey)]).await;
                    let always_failing = [unavailable];
                    let dropped = hooked(&STATS, &seen, &always_failing);
                    let dropped = tokio::time::timeout(ms(50), dropped).await;
                    assert!(dropped.is_err(), "dropped during its first sleep");
                })
        });
        let f = "observability::metered";
        let calls =
            |outcome: &str| capture.counter(CALLS_TOTAL, &[("fn", f), ("outcome", outcome)]);
        assert_eq!(calls("success"), 2);
        assert_eq!(calls("exhausted"), 1);
        assert_eq!(calls("not_retryable"), 1);
        assert_eq!(calls("cancelled"), 1);
        assert_eq!(calls("deadline"), 0);
        assert_eq!(capture.counter(RETRIES_TOTAL, &[("fn", f)]), 2 + 2 + 1);
        let mut attempts = capture.histogram(ATTEMPTS, &[("fn", f)]);
        attempts.sort_by(f64::total_cmp);
        assert_eq!(
            attempts,
            [1.0, 1.0, 3.0, 3.0],
            "one sample per call that returned"
        );
        let backoff = capture.histogram(BACKOFF_SECONDS, &[("fn", f)]);
        assert_eq!(backoff, [0.1, 0.2, 0.1, 0.2, 0.1]);
    }
}

// ---- Through the attribute: the keys a user writes (`stats`, `on_retry`, `on_give_up`,
// `on_success`, `context`, `name`) and the features that apply to every annotated fn. ----

mod attribute {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Mutex;
    use std::time::Duration;

    use retry_runtime::{
        retry_on_failure, stats, AttemptContext, GiveUpEvent, GiveUpReason, RetryEvent, Retryable,
        SuccessEvent,
    };
    use tokio::time::Instant;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum ApiError {
        #[error("503 service unavailable")]
        Unavailable,
        #[error("401 bad key")]
        BadKey,
    }

    impl Retryable for ApiError {
        fn is_retryable(&self) -> bool {
            *self == ApiError::Unavailable
        }
    }

    /// Replays `script` (one result per attempt, the last one repeating).
    pub struct Script {
        pub steps: Vec<Result<u32, ApiError>>,
        pub next: AtomicU32,
    }

    impl Script {
        pub fn new(steps: Vec<Result<u32, ApiError>>) -> Self {
            Script {
                steps,
                next: AtomicU32::new(0),
            }
        }
        pub fn next(&self) -> Result<u32, ApiError> {
            let i = self.next.fetch_add(1, SeqCst) as usize;
            self.steps[i.min(self.steps.len() - 1)]
        }
    }

    /// What `on_retry` saw: name, attempt, delay, elapsed, error.
    type RetrySeen = (&'static str, u32, Duration, Option<Duration>, ApiError);
    /// What `on_give_up` saw: name, reason, attempts, elapsed.
    type GiveUpSeen = (&'static str, GiveUpReason, u32, Option<Duration>);

    static RETRIES: Mutex<Vec<RetrySeen>> = Mutex::new(Vec::new());
    static GIVE_UPS: Mutex<Vec<GiveUpSeen>> = Mutex::new(Vec::new());

    fn log_retry(err: &ApiError, event: &RetryEvent) {
        let entry = (event.name, event.attempt, event.delay, event.elapsed, *err);
        RETRIES.lock().unwrap().push(entry);
    }

    #[retry_on_failure(
        max_attempts = 3,
        initial_delay = 0.1,
        jitter = "none",
        name = "openai.complete",
        on_retry = log_retry,
        on_give_up = |_err, event: &GiveUpEvent| {
            GIVE_UPS.lock().unwrap().push((event.name, event.reason, event.attempts, event.elapsed));
        },
    )]
    async fn hooked(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[tokio::test(start_paused = true)]
    async fn hooks_see_each_retry_before_its_sleep_and_the_give_up_once() {
        let s = Script::new(vec![Err(ApiError::Unavailable)]);
        assert_eq!(hooked(&s).await, Err(ApiError::Unavailable));
        let ms = Duration::from_millis;
        assert_eq!(
            *RETRIES.lock().unwrap(),
            [
                (
                    "openai.complete",
                    1,
                    ms(100),
                    Some(ms(0)),
                    ApiError::Unavailable
                ),
                (
                    "openai.complete",
                    2,
                    ms(200),
                    Some(ms(100)),
                    ApiError::Unavailable
                ),
            ]
        );
        assert_eq!(
            *GIVE_UPS.lock().unwrap(),
            [("openai.complete", GiveUpReason::Exhausted, 3, Some(ms(300)))]
        );
    }

    /// What `on_success` saw, per test: each test's fn has its own name.
    static SUCCESSES: Mutex<Vec<SuccessEvent>> = Mutex::new(Vec::new());

    fn successes_of(name: &str) -> Vec<SuccessEvent> {
        let all = SUCCESSES.lock().unwrap();
        all.iter().filter(|e| e.name == name).copied().collect()
    }

    #[retry_on_failure(
        max_attempts = 3,
        initial_delay = 0.1,
        jitter = "none",
        name = "attribute.on_success",
        on_success = |event| SUCCESSES.lock().unwrap().push(*event),
    )]
    async fn reports_success(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[tokio::test(start_paused = true)]
    async fn on_success_runs_once_per_successful_call_with_its_attempts_and_elapsed_time() {
        let ms = Duration::from_millis;
        let name = "attribute.on_success";
        // At once; after two retries (100 ms, then 200 ms); a give-up; a bad key.
        let scripts = [
            vec![Ok(1)],
            vec![
                Err(ApiError::Unavailable),
                Err(ApiError::Unavailable),
                Ok(2),
            ],
            vec![Err(ApiError::Unavailable)],
            vec![Err(ApiError::BadKey)],
        ];
        let mut results = Vec::new();
        for steps in scripts {
            results.push(reports_success(&Script::new(steps)).await);
        }
        assert_eq!(
            results,
            [
                Ok(1),
                Ok(2),
                Err(ApiError::Unavailable),
                Err(ApiError::BadKey)
            ]
        );
        assert_eq!(
            successes_of(name),
            [
                SuccessEvent::new(name, 1, Some(ms(0))),
                SuccessEvent::new(name, 3, Some(ms(300))),
            ],
            "one event per call that returned Ok, none for the two that failed"
        );
    }

    fn log_success(event: &SuccessEvent) {
        SUCCESSES.lock().unwrap().push(*event);
    }

    /// A fn path as the hook, next to the other hooks and a fallback: a result the fallback makes
    /// up is not a success.
    #[retry_on_failure(
        max_attempts = 2,
        initial_delay = 1,
        jitter = "none",
        name = "attribute.on_success_with_fallback",
        on_retry = |_err, _event| {},
        on_give_up = |_err, _event| {},
        on_success = log_success,
        fallback = |_err| Ok(0),
    )]
    async fn falls_back(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[tokio::test(start_paused = true)]
    async fn a_fallback_result_is_not_a_success() {
        let name = "attribute.on_success_with_fallback";
        let down = Script::new(vec![Err(ApiError::Unavailable)]);
        assert_eq!(falls_back(&down).await, Ok(0));
        assert_eq!(successes_of(name), []);
        let flaky = Script::new(vec![Err(ApiError::Unavailable), Ok(5)]);
        assert_eq!(falls_back(&flaky).await, Ok(5));
        assert_eq!(
            successes_of(name),
            [SuccessEvent::new(name, 2, Some(Duration::from_secs(1)))]
        );
    }

    #[retry_on_failure(max_attempts = 4, initial_delay = 1, jitter = "none", context = ctx)]
    async fn with_context(
        s: &Script,
        seen: &Mutex<Vec<(u32, String, Duration)>>,
    ) -> Result<u32, ApiError> {
        let ctx: &AttemptContext = ctx;
        let [(key_name, key), (count_name, count)] = ctx.headers();
        assert_eq!(
            (key_name, count_name),
            ("Idempotency-Key", "x-stainless-retry-count")
        );
        assert_eq!(count.as_str(), ctx.retry_count().to_string());
        seen.lock()
            .unwrap()
            .push((ctx.attempt(), key.to_string(), ctx.elapsed()));
        s.next()
    }

    #[tokio::test(start_paused = true)]
    async fn context_numbers_attempts_and_keeps_one_idempotency_key_per_call() {
        let seen = Mutex::new(Vec::new());
        let s = Script::new(vec![
            Err(ApiError::Unavailable),
            Err(ApiError::Unavailable),
            Ok(1),
        ]);
        assert_eq!(with_context(&s, &seen).await, Ok(1));
        let first = std::mem::take(&mut *seen.lock().unwrap());
        let s = Script::new(vec![Ok(2)]);
        with_context(&s, &seen).await.unwrap();
        let second = seen.lock().unwrap().clone();

        let attempts: Vec<u32> = first.iter().map(|(a, ..)| *a).collect();
        assert_eq!(attempts, [1, 2, 3]);
        let elapsed: Vec<Duration> = first.iter().map(|(.., e)| *e).collect();
        assert_eq!(elapsed, [0, 1, 3].map(Duration::from_secs));
        assert!(
            first.iter().all(|(_, key, _)| *key == first[0].1),
            "same key on every attempt"
        );
        assert_eq!(first[0].1.len(), 36, "a UUID: {}", first[0].1);
        assert_ne!(second[0].1, first[0].1, "a new key for a new call");
    }

    #[retry_on_failure(
        max_attempts = 3,
        initial_delay = 0,
        name = "attribute.stats",
        stats = true
    )]
    async fn counted(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[test]
    fn stats_are_exact_under_a_multi_thread_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(8)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..4000u32 {
                tasks.push(tokio::spawn(async move {
                    let s = match i % 4 {
                        0 => Script::new(vec![Ok(1)]),
                        1 => Script::new(vec![Err(ApiError::Unavailable), Ok(1)]),
                        2 => Script::new(vec![Err(ApiError::Unavailable)]),
                        _ => Script::new(vec![Err(ApiError::BadKey)]),
                    };
                    let _ = counted(&s).await;
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let snap = stats::snapshot();
        let s = snap.get("attribute.stats").expect("listed");
        assert_eq!(s.calls, 4000);
        assert_eq!(s.succeeded_first_attempt, 1000);
        assert_eq!(s.succeeded_after_retry, 1000);
        assert_eq!(s.gave_up.get(GiveUpReason::Exhausted), 1000);
        assert_eq!(s.gave_up.get(GiveUpReason::NotRetryable), 1000);
        assert_eq!(s.attempts, 1000 + 2000 + 3000 + 1000);
        assert_eq!(s.retries, 1000 + 2000);
        assert_eq!(s.max_retries, 2);
        assert_eq!(s.unfinished, 0);
    }

    #[retry_on_failure(
        max_attempts = 2,
        initial_delay = 0,
        name = "attribute.not_counted",
        stats = false
    )]
    async fn not_counted(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[retry_on_failure(max_attempts = 2, initial_delay = 0, name = "attribute.default_stats")]
    async fn default_stats(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    /// Without the `stats` feature only `stats = true` records; with it, every fn but
    /// `stats = false` does.
    #[tokio::test(start_paused = true)]
    async fn the_stats_feature_decides_for_fns_that_do_not_say() {
        not_counted(&Script::new(vec![Ok(1)])).await.unwrap();
        default_stats(&Script::new(vec![Ok(1)])).await.unwrap();
        let snap = stats::snapshot();
        assert!(snap.get("attribute.not_counted").is_none());
        assert_eq!(
            snap.get("attribute.default_stats").is_some(),
            cfg!(feature = "stats")
        );
    }

    #[retry_on_failure(
        max_attempts = 5,
        initial_delay = 1,
        jitter = "none",
        name = "attribute.dropped",
        stats = true
    )]
    async fn slow_to_fail(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_dropped_during_its_backoff_is_unfinished_not_lost() {
        let s = Script::new(vec![Err(ApiError::Unavailable)]);
        let start = Instant::now();
        let dropped = tokio::time::timeout(Duration::from_millis(1500), slow_to_fail(&s)).await;
        assert!(dropped.is_err());
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        let snap = stats::snapshot();
        let f = snap.get("attribute.dropped").unwrap();
        assert_eq!((f.calls, f.unfinished, f.retries), (1, 1, 2));
    }
}

#[cfg(feature = "tracing")]
mod attribute_tracing {
    use super::attribute::{ApiError, Script};
    use super::subscriber::Capture;
    use retry_runtime::retry_on_failure;

    #[retry_on_failure(
        max_attempts = 2,
        initial_delay = 0.1,
        jitter = "none",
        name = "attribute.traced"
    )]
    async fn traced_call(s: &Script) -> Result<u32, ApiError> {
        tracing::info!("calling");
        s.next()
    }

    #[test]
    fn the_tracing_feature_instruments_every_annotated_fn() {
        let capture = Capture::default();
        super::tracing_feature::traced(&capture, || {
            super::tracing_feature::paused_runtime().block_on(async {
                let s = Script::new(vec![Err(ApiError::Unavailable), Err(ApiError::BadKey)]);
                assert_eq!(traced_call(&s).await, Err(ApiError::BadKey));
            })
        });
        let spans = capture.spans();
        let span = spans
            .iter()
            .find(|s| s.name == "retry" && s.fields["name"] == "attribute.traced")
            .expect("a span for the call");
        let events = capture.events();
        let calling = events
            .iter()
            .filter(|e| e.fields["message"] == "calling")
            .count();
        assert_eq!(calling, 2);
        let retry = events
            .iter()
            .find(|e| e.fields["message"] == "retrying" && e.parent == Some(span.id))
            .expect("a retry event");
        assert_eq!(retry.fields["delay_ms"], "100");
        assert_eq!(retry.fields["error"], "503 service unavailable");
        let give_up = events
            .iter()
            .find(|e| e.fields["message"] == "giving up" && e.parent == Some(span.id))
            .expect("a give-up event");
        assert_eq!(give_up.fields["reason"], "not_retryable");
        assert_eq!(give_up.fields["error"], "401 bad key");
    }
}

#[cfg(feature = "metrics")]
mod attribute_metrics {
    use super::attribute::{ApiError, Script};
    use super::recorder::Capture;
    use retry_runtime::metrics_observer::{CALLS_TOTAL, RETRIES_TOTAL};
    use retry_runtime::retry_on_failure;

    #[retry_on_failure(max_attempts = 3, initial_delay = 0, name = "attribute.metered")]
    async fn metered(s: &Script) -> Result<u32, ApiError> {
        s.next()
    }

    #[test]
    fn the_metrics_feature_counts_every_annotated_fn() {
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(async {
                    metered(&Script::new(vec![Ok(1)])).await.unwrap();
                    metered(&Script::new(vec![Err(ApiError::Unavailable), Ok(1)]))
                        .await
                        .unwrap();
                    metered(&Script::new(vec![Err(ApiError::Unavailable)]))
                        .await
                        .unwrap_err();
                })
        });
        let f = "attribute.metered";
        let calls =
            |outcome: &str| capture.counter(CALLS_TOTAL, &[("fn", f), ("outcome", outcome)]);
        assert_eq!(calls("success"), 2);
        assert_eq!(calls("exhausted"), 1);
        assert_eq!(capture.counter(RETRIES_TOTAL, &[("fn", f)]), 1 + 2);
    }
}
