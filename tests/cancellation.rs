//! Cancellation at every await point of a call made through `#[retry_on_failure]` with a circuit
//! breaker, a retry budget, an adaptive throttle and statistics.
//!
//! The harness polls the call on the test's task and drops it the k-th time it returns
//! `Pending`, for every k up to the number of suspensions of an undisturbed call. Each
//! suspension is labelled with where the call was: in an attempt (a half-open probe or not), in
//! the backoff sleep, or waiting for the throttle's slot. After each drop the paused clock is
//! moved an hour ahead and the shared state is checked against what the docs promise:
//!
//! - no attempt runs after the drop, and none is left in flight;
//! - the breaker counts only the attempts that were settled, and a probe dropped mid-attempt or
//!   while waiting for the throttle gives its slot back (the next caller probes and closes it);
//! - the budget spent exactly one token per retry decided before the drop (a token spent on a
//!   retry whose call is dropped in the backoff is not refunded, as `RetryBudget` documents), and
//!   `balance == initial + earned - retries` holds;
//! - the throttle refunds the slot of a call dropped while waiting for it, and the next caller
//!   gets that slot, not one after it; a call dropped mid-attempt refunds nothing;
//! - statistics count the call once, as unfinished, with the retries it made.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use retry_runtime::stats::{self, FnStatsSnapshot};
use retry_runtime::{
    retry_on_failure, AdaptiveThrottle, CircuitBreaker, CircuitOpen, CircuitState, Classification,
    Gate, RetryBudget,
};
use tokio::time::Instant;

const ATTEMPT: Duration = Duration::from_millis(100);
const MICRO_TOKENS: u64 = 1_000_000;

use retry_workspace::provider_error::ProviderError as Error;

/// Where a call was when it suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In attempt n (1-based).
    Attempt(u32),
    /// In the backoff sleep after attempt n.
    Backoff(u32),
    /// Waiting for the throttle's slot before attempt n.
    Throttle(u32),
}

/// Everything one call shares with others: a fresh set per drop point.
struct Shared {
    breaker: CircuitBreaker,
    budget: RetryBudget,
    throttle: AdaptiveThrottle,
    /// What attempt n returns (the last entry repeats).
    script: Vec<Result<u32, Error>>,
    started: AtomicU32,
    in_flight: AtomicU32,
    /// When each attempt started.
    starts: Mutex<Vec<Instant>>,
    /// Throttle admissions before the call under test.
    admitted_before: u64,
}

/// Decrements the in-flight count when the attempt ends or is dropped.
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Shared {
    fn new(script: Vec<Result<u32, Error>>) -> Self {
        Shared {
            breaker: CircuitBreaker::new("cancel")
                .failure_threshold(100)
                .cool_down(Duration::from_secs(5)),
            budget: RetryBudget::new().max_tokens(10).deposit(0.5),
            // One attempt a second, no burst: the retries after a short backoff wait for a slot.
            throttle: AdaptiveThrottle::new()
                .initial_rate(1.0)
                .max_rate(1.0)
                .burst(Duration::ZERO),
            script,
            started: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            starts: Mutex::new(Vec::new()),
            admitted_before: 0,
        }
    }

    /// The provider: one await inside every attempt.
    async fn attempt(&self) -> Result<u32, Error> {
        let n = self.started.fetch_add(1, SeqCst) + 1;
        self.starts.lock().unwrap().push(Instant::now());
        self.in_flight.fetch_add(1, SeqCst);
        let _in_flight = InFlight(&self.in_flight);
        tokio::time::sleep(ATTEMPT).await;
        self.script[(n as usize - 1).min(self.script.len() - 1)]
    }

    fn started(&self) -> u32 {
        self.started.load(SeqCst)
    }

    fn phase(&self) -> Phase {
        let started = self.started();
        let admitted = self.throttle.stats().admitted - self.admitted_before;
        if self.in_flight.load(SeqCst) > 0 {
            Phase::Attempt(started)
        } else if admitted > u64::from(started) {
            Phase::Throttle(started + 1)
        } else {
            Phase::Backoff(started)
        }
    }
}

#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 0.1,
    max_delay = 0.2,
    jitter = "none",
    circuit_breaker = shared.breaker,
    budget = shared.budget,
    throttle = shared.throttle,
    stats = true,
    name = "cancellation.closed"
)]
async fn closed_call(shared: &Shared) -> Result<u32, Error> {
    shared.attempt().await
}

#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 0.1,
    max_delay = 0.2,
    jitter = "none",
    circuit_breaker = shared.breaker,
    budget = shared.budget,
    throttle = shared.throttle,
    stats = true,
    name = "cancellation.probe"
)]
async fn probe_call(shared: &Shared) -> Result<u32, Error> {
    shared.attempt().await
}

/// As `closed_call`, for the tests that do not read statistics: those of `closed_call` are read
/// as differences, which calls from a test running in parallel would upset.
#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 0.1,
    max_delay = 0.2,
    jitter = "none",
    circuit_breaker = shared.breaker,
    budget = shared.budget,
    throttle = shared.throttle
)]
async fn paced_call(shared: &Shared) -> Result<u32, Error> {
    shared.attempt().await
}

/// Polls `call` on the current task until it returns or has suspended `limit` times, then drops
/// it (before returning). Returns its output, if it finished, and where it was at each
/// suspension.
async fn drop_at_suspension<F: Future>(
    call: F,
    limit: usize,
    phase: impl Fn() -> Phase,
) -> (Option<F::Output>, Vec<Phase>) {
    let mut call = pin!(call);
    let mut phases = Vec::new();
    let output = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => {
            phases.push(phase());
            if phases.len() == limit {
                Poll::Ready(None)
            } else {
                // The call registered this task's waker with its timer; the paused clock moves
                // to it once every task is idle.
                Poll::Pending
            }
        }
    })
    .await;
    (output, phases)
}

fn stats_of(name: &str) -> Option<FnStatsSnapshot> {
    stats::snapshot().get(name).copied()
}

/// The statistics that changed between two snapshots of one fn, as (calls, unfinished,
/// succeeded, gave up, retries, attempts).
fn delta(before: Option<FnStatsSnapshot>, after: FnStatsSnapshot) -> [u64; 6] {
    let b = before.map_or([0; 6], |b| {
        [
            b.calls,
            b.unfinished,
            b.succeeded_first_attempt + b.succeeded_after_retry,
            b.gave_up.total(),
            b.retries,
            b.attempts,
        ]
    });
    let a = [
        after.calls,
        after.unfinished,
        after.succeeded_first_attempt + after.succeeded_after_retry,
        after.gave_up.total(),
        after.retries,
        after.attempts,
    ];
    std::array::from_fn(|i| a[i] - b[i])
}

/// Retries decided before the call was dropped at `phase`: one per backoff entered.
fn retries_before(phase: Phase) -> u32 {
    match phase {
        Phase::Attempt(n) | Phase::Throttle(n) => n - 1,
        Phase::Backoff(n) => n,
    }
}

/// A call whose attempts fail twice then succeed, the breaker closed: every suspension is
/// [attempt 1, backoff, throttle wait, attempt 2, backoff, throttle wait, attempt 3].
#[tokio::test(start_paused = true)]
async fn dropped_at_every_await_point_of_a_retrying_call() {
    let script = vec![Err(Error::Unavailable), Err(Error::Unavailable), Ok(3)];
    const NAME: &str = "cancellation.closed";

    // The undisturbed call, to learn its suspensions.
    let shared = Shared::new(script.clone());
    let before = stats_of(NAME);
    let (out, phases) =
        drop_at_suspension(closed_call(&shared), usize::MAX, || shared.phase()).await;
    assert_eq!(out, Some(Ok(3)));
    use Phase::*;
    assert_eq!(
        phases,
        [
            Attempt(1),
            Backoff(1),
            Throttle(2),
            Attempt(2),
            Backoff(2),
            Throttle(3),
            Attempt(3)
        ]
    );
    let after = stats_of(NAME).unwrap();
    assert_eq!(delta(before, after), [1, 0, 1, 0, 2, 3]);
    assert_eq!(shared.budget.stats().successes, 1);

    for (k, &phase) in phases.iter().enumerate() {
        let shared = Shared::new(script.clone());
        let before = stats_of(NAME);
        let (out, seen) = drop_at_suspension(closed_call(&shared), k + 1, || shared.phase()).await;
        assert_eq!(out, None, "dropped at {phase:?}");
        assert_eq!(seen.last(), Some(&phase));

        // Nothing left running, and nothing runs later.
        assert_eq!(shared.in_flight.load(SeqCst), 0, "{phase:?}");
        let started = shared.started();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            shared.started(),
            started,
            "an attempt ran after the drop at {phase:?}"
        );

        let retries = retries_before(phase);
        // The breaker saw the failures that were settled: the attempt in flight is not one.
        assert_eq!(
            shared.breaker.state(),
            CircuitState::Closed {
                consecutive_failures: u64::from(retries)
            },
            "{phase:?}"
        );
        assert_eq!(
            shared.breaker.stats().admitted,
            u64::from(started) + u64::from(matches!(phase, Throttle(_)))
        );

        // One token per retry decided, none refunded, none earned.
        let b = shared.budget.stats();
        assert_eq!(
            (b.retries_allowed, b.retries_denied, b.successes),
            (u64::from(retries), 0, 0),
            "{phase:?}"
        );
        assert_eq!(
            b.balance,
            b.initial + b.earned - b.retries_allowed * MICRO_TOKENS
        );
        assert_eq!(b.balance, (10 - u64::from(retries)) * MICRO_TOKENS);

        // The throttle: a slot given back only by a call dropped while waiting for it.
        let t = shared.throttle.stats();
        let waiting = matches!(phase, Throttle(_));
        assert_eq!(t.refunded, u64::from(waiting), "{phase:?}");
        assert_eq!(t.admitted, u64::from(started) + u64::from(waiting));

        // Statistics: one call, unfinished, with the retries it made; no outcome recorded.
        let after = stats_of(NAME).unwrap();
        assert_eq!(
            delta(before, after),
            [1, 1, 0, 0, u64::from(retries), u64::from(retries)],
            "{phase:?}"
        );

        // After the drop, the breaker and the budget serve the next call normally.
        assert_eq!(
            closed_call(&shared).await,
            Ok(3),
            "the call after a drop at {phase:?}"
        );
    }
}

/// The throttle gives the slot of a call dropped while waiting back to the next caller: that
/// caller waits until the instant the dropped call would have started its attempt, not one
/// interval later.
#[tokio::test(start_paused = true)]
async fn a_slot_given_back_goes_to_the_next_caller() {
    let script = vec![Err(Error::Unavailable), Err(Error::Unavailable), Ok(3)];
    // When each attempt starts in an undisturbed call: at its slot.
    let shared = Shared::new(script.clone());
    let start = Instant::now();
    paced_call(&shared).await.unwrap();
    let slots: Vec<Duration> = shared
        .starts
        .lock()
        .unwrap()
        .iter()
        .map(|t| *t - start)
        .collect();
    assert_eq!(slots[1], Duration::from_secs(1));
    for k in [3, 6] {
        let shared = Shared::new(script.clone());
        let start = Instant::now();
        let (_, seen) = drop_at_suspension(paced_call(&shared), k, || shared.phase()).await;
        let Phase::Throttle(n) = seen[k - 1] else {
            panic!("expected a throttle wait at suspension {k}: {seen:?}")
        };
        let slot = start + slots[n as usize - 1];
        let (wait, permit) = shared.throttle.acquire();
        // The timer wakes on the millisecond after the slot: within 1 ms of it. Without the
        // refund the wait would be a whole interval (about 1 s) longer.
        let wait = wait.expect("paced");
        let want = slot - Instant::now();
        assert!(
            wait <= want && want - wait < Duration::from_millis(1),
            "dropped before attempt {n}: waits {wait:?}, the slot is in {want:?}"
        );
        drop(permit);
    }
}

/// A half-open breaker: the call's first attempt is the probe, admitted by the breaker and then
/// paced by the throttle. Dropped while waiting for the throttle or mid-probe, the call gives the
/// probe slot back, and the next caller's probe closes the breaker.
#[tokio::test(start_paused = true)]
async fn dropped_during_a_half_open_probe() {
    const NAME: &str = "cancellation.probe";
    /// Opens the breaker, lets the cool-down pass and books the throttle's next second, so that
    /// the call under test probes after waiting for its slot.
    async fn half_open(shared: &mut Shared) {
        for _ in 0..100 {
            let Ok(permit) = admit(&shared.breaker) else {
                break;
            };
            (&shared.breaker).settle(
                permit,
                retry_runtime::AttemptOutcome::Failure(Classification::retry()),
            );
        }
        assert!(matches!(shared.breaker.state(), CircuitState::Open { .. }));
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (_, booked) = shared.throttle.acquire();
        (&shared.throttle).settle(booked, retry_runtime::AttemptOutcome::Success);
        shared.admitted_before = shared.throttle.stats().admitted;
    }
    fn admit(b: &CircuitBreaker) -> Result<retry_runtime::BreakerPermit<'_>, CircuitOpen> {
        match b.admit() {
            retry_runtime::Admission::Proceed(p) => Ok(p),
            retry_runtime::Admission::Wait(_, p) => Ok(p),
            retry_runtime::Admission::Reject(open) => Err(open),
        }
    }

    let mut shared = Shared::new(vec![Ok(1)]);
    half_open(&mut shared).await;
    let (out, phases) =
        drop_at_suspension(probe_call(&shared), usize::MAX, || shared.phase()).await;
    assert_eq!(out, Some(Ok(1)));
    assert_eq!(phases, [Phase::Throttle(1), Phase::Attempt(1)]);
    assert!(shared.breaker.is_closed());

    for (k, &phase) in phases.iter().enumerate() {
        let mut shared = Shared::new(vec![Ok(1)]);
        half_open(&mut shared).await;
        let probes = shared.breaker.stats().probes;
        let before = stats_of(NAME);
        let (out, _) = drop_at_suspension(probe_call(&shared), k + 1, || shared.phase()).await;
        assert_eq!(out, None);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(shared.started(), u32::from(phase == Phase::Attempt(1)));
        assert_eq!(shared.in_flight.load(SeqCst), 0);
        // The probe slot is free again; nothing was learned from the dropped probe.
        assert_eq!(
            shared.breaker.state(),
            CircuitState::HalfOpen {
                probes_admitted: 0,
                probes_succeeded: 0
            },
            "{phase:?}"
        );
        assert_eq!(shared.breaker.stats().probes, probes + 1);
        assert_eq!(
            shared.throttle.stats().refunded,
            u64::from(phase == Phase::Throttle(1))
        );
        assert_eq!(shared.budget.stats().retries_allowed, 0);
        let after = stats_of(NAME).unwrap();
        assert_eq!(delta(before, after), [1, 1, 0, 0, 0, 0], "{phase:?}");
        // The next caller probes and closes the breaker.
        assert_eq!(probe_call(&shared).await, Ok(1));
        assert!(shared.breaker.is_closed(), "{:?}", shared.breaker.state());
        assert_eq!(shared.breaker.stats().probes, probes + 2);
    }
}

/// `tokio::time::timeout` around the call, expiring at many instants of its life: the same
/// accounting holds whatever the instant.
#[tokio::test(start_paused = true)]
async fn timeouts_at_arbitrary_instants() {
    for ms in (0..2_400).step_by(37) {
        let shared = Shared::new(vec![
            Err(Error::Unavailable),
            Err(Error::Unavailable),
            Ok(3),
        ]);
        let out = tokio::time::timeout(Duration::from_millis(ms), paced_call(&shared)).await;
        let started = shared.started();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(shared.started(), started, "timeout at {ms} ms");
        assert_eq!(shared.in_flight.load(SeqCst), 0);
        let b = shared.budget.stats();
        assert_eq!(
            b.balance,
            b.initial + b.earned - b.retries_allowed * MICRO_TOKENS
        );
        match out {
            Ok(result) => assert_eq!(result, Ok(3), "{ms} ms"),
            Err(_) => {
                assert_eq!(b.successes, 0);
                let failures = match shared.breaker.state() {
                    CircuitState::Closed {
                        consecutive_failures,
                    } => consecutive_failures,
                    other => panic!("{other:?}"),
                };
                // A failure is settled and its retry decided in the same poll: a drop can
                // never fall between the two.
                assert_eq!(failures, b.retries_allowed, "{ms} ms");
            }
        }
    }
}

static POLLS: AtomicU32 = AtomicU32::new(0);

/// Polls a job until it reports done (`retry_if_ok`); each poll answers at once.
#[retry_on_failure(
    max_attempts = 5,
    initial_delay = 1,
    jitter = "none",
    retry_if_ok = |done: &bool| !*done,
    stats = true,
    name = "cancellation.poll_until_done"
)]
async fn poll_until_done() -> Result<bool, Error> {
    Ok(POLLS.fetch_add(1, SeqCst) >= 3)
}

/// A retry decided on an `Ok` (`retry_if_ok`) is not shown to observers, so it did not mark the
/// call as suspended: a call dropped in the backoff that follows vanished from the statistics
/// (not counted at all, not even as unfinished). The expansion now watches the backoff sleep.
#[tokio::test(start_paused = true)]
async fn dropped_in_the_backoff_after_an_ok_retry_the_call_is_unfinished() {
    const NAME: &str = "cancellation.poll_until_done";
    let before = stats_of(NAME);
    let out = tokio::time::timeout(Duration::from_millis(500), poll_until_done()).await;
    assert!(out.is_err(), "dropped during the first backoff");
    assert_eq!(POLLS.load(SeqCst), 1);
    let after = stats_of(NAME).expect("the call is counted");
    assert_eq!(
        delta(before, after)[..2],
        [1, 1],
        "one call, unfinished: {after:?}"
    );
    // Undisturbed, the same call is counted once, as a success after retries.
    let before = stats_of(NAME);
    assert_eq!(poll_until_done().await, Ok(true));
    let after = stats_of(NAME).unwrap();
    assert_eq!(delta(before, after)[..3], [1, 0, 1]);
}
