//! The shared mechanisms under load and under cancellation: `CircuitBreaker`, `RetryBudget` and
//! `AdaptiveThrottle` shared by many concurrent calls, driven as `#[retry_on_failure]` expands
//! (`retry_workspace::drive::retry_call`).

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use retry_runtime::{
    AdaptiveThrottle, Admission, AttemptOutcome, CircuitBreaker, CircuitOpen, CircuitState,
    Classification, Gate, GiveUpReason, Observer, RetryBudget, RetryEvent, RetryPolicy, Retryable,
};
use retry_workspace::drive::retry_call;

#[derive(Debug, PartialEq)]
enum Error {
    Unavailable,
    RateLimited,
    BadKey,
    Open,
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable | Error::RateLimited)
    }
    fn is_rate_limited(&self) -> bool {
        *self == Error::RateLimited
    }
}

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}

const RETRYABLE: AttemptOutcome = AttemptOutcome::Failure(Classification::retry());

/// Counts why calls gave up, and the retries they were allowed.
#[derive(Default)]
struct Tally {
    retries: AtomicU64,
    budget_empty: AtomicU64,
    circuit_open: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    const fn new() -> Tally {
        Tally {
            retries: AtomicU64::new(0),
            budget_empty: AtomicU64::new(0),
            circuit_open: AtomicU64::new(0),
            other: AtomicU64::new(0),
        }
    }
}

/// The stress tests' calls: 4 attempts, 1 ms doubling to 3 ms.
fn stress_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(3))
        .build()
        .unwrap()
}

/// Waits for every caller: (succeeded, turned away by the breaker, failed otherwise).
async fn outcomes(mut tasks: tokio::task::JoinSet<Result<(), Error>>) -> (u64, u64, u64) {
    let (mut ok, mut open, mut failed) = (0u64, 0u64, 0u64);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => ok += 1,
            Err(Error::Open) => open += 1,
            Err(_) => failed += 1,
        }
    }
    (ok, open, failed)
}

impl<E> Observer<E> for Tally {
    fn on_retry(&self, _: &E, _: &RetryEvent) -> Result<(), GiveUpReason> {
        Ok(())
    }
    fn on_give_up(&self, _: &E, reason: GiveUpReason, _: u32) {
        match reason {
            GiveUpReason::BudgetEmpty => &self.budget_empty,
            GiveUpReason::CircuitOpen => &self.circuit_open,
            _ => &self.other,
        }
        .fetch_add(1, Relaxed);
    }
}

/// Counts the retries the budget allowed (it runs after the budget in the observer tuple).
struct AllowedRetries<'a>(&'a Tally);

impl<E> Observer<E> for AllowedRetries<'_> {
    fn on_retry(&self, _: &E, _: &RetryEvent) -> Result<(), GiveUpReason> {
        self.0.retries.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// A deterministic verdict per (caller, attempt): 60% success, 25% unavailable, 10% rate
/// limited, 5% bad key.
fn verdict(caller: u64, attempt: u64) -> Result<(), Error> {
    let mut z = caller
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(attempt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 29;
    match z % 100 {
        0..60 => Ok(()),
        60..85 => Err(Error::Unavailable),
        85..95 => Err(Error::RateLimited),
        _ => Err(Error::BadKey),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_callers_share_a_breaker_a_budget_and_a_throttle() {
    const CALLERS: u64 = 10_000;
    static BREAKER: CircuitBreaker = CircuitBreaker::new("stress")
        .failure_threshold(5)
        .cool_down(Duration::from_millis(2))
        .probes(3);
    static BUDGET: RetryBudget = RetryBudget::new().max_tokens(500).deposit(0.2);
    // A high floor keeps the real-time pacing short while still exercising the schedule.
    static THROTTLE: AdaptiveThrottle = AdaptiveThrottle::new()
        .min_rate(200_000.0)
        .burst(Duration::from_micros(100));
    static TALLY: Tally = Tally::new();
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    static RATE_LIMITED: AtomicU64 = AtomicU64::new(0);

    let policy = stress_policy();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        tasks.spawn(async move {
            let mut attempt = 0;
            retry_call(
                &policy,
                (&BREAKER, &THROTTLE),
                (&TALLY, &BUDGET, AllowedRetries(&TALLY)),
                || {
                    attempt += 1;
                    let result = verdict(caller, attempt);
                    async move {
                        ATTEMPTS.fetch_add(1, Relaxed);
                        if result == Err(Error::RateLimited) {
                            RATE_LIMITED.fetch_add(1, Relaxed);
                        }
                        tokio::task::yield_now().await;
                        result
                    }
                },
            )
            .await
        });
    }
    let (ok, open, failed) = outcomes(tasks).await;
    let attempts = ATTEMPTS.load(Relaxed);
    let breaker = BREAKER.stats();
    let budget = BUDGET.stats();
    let throttle = THROTTLE.stats();
    let retries = TALLY.retries.load(Relaxed);

    assert_eq!(ok + open + failed, CALLERS);
    // Every admission is a first attempt or an allowed retry, and is admitted or rejected.
    assert_eq!(breaker.admitted + breaker.rejected, CALLERS + retries);
    assert_eq!(breaker.admitted, attempts);
    assert_eq!(breaker.rejected, open);
    assert_eq!(TALLY.circuit_open.load(Relaxed), open);
    // The throttle sees exactly the attempts the breaker let through, and every 429.
    assert_eq!(throttle.admitted, attempts);
    assert_eq!(throttle.rate_limited, RATE_LIMITED.load(Relaxed));
    assert!(
        throttle.paced > 0 && throttle.paced <= throttle.admitted,
        "{throttle:?}"
    );
    // The budget: every retry spent a token, every veto ended a call, every success deposited.
    assert_eq!(budget.retries_allowed, retries);
    assert_eq!(budget.retries_denied, TALLY.budget_empty.load(Relaxed));
    assert_eq!(budget.successes, ok);
    assert_eq!(
        budget.balance,
        budget.initial + budget.earned - budget.retries_allowed * 1_000_000
    );
    // The breaker was exercised, and no probe slot leaked.
    assert!(breaker.opened > 0, "{breaker:?}");
    assert!(breaker.rejected > 0);
    if let CircuitState::HalfOpen {
        probes_admitted,
        probes_succeeded,
    } = BREAKER.state()
    {
        assert_eq!(probes_admitted, probes_succeeded, "a probe permit leaked");
    }
}

#[test]
fn exactly_one_opening_however_many_failures_race() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 625; // 10,000 in all
    let breaker = CircuitBreaker::new("race").failure_threshold(100);
    let permits: Vec<Vec<_>> = (0..THREADS)
        .map(|_| {
            (0..PER_THREAD)
                .map(|_| match (&breaker).admit() {
                    Admission::Proceed(p) => p,
                    _ => unreachable!("closed"),
                })
                .collect()
        })
        .collect();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for batch in permits {
            let (breaker, barrier) = (&breaker, &barrier);
            s.spawn(move || {
                barrier.wait();
                for p in batch {
                    breaker.settle(p, RETRYABLE);
                }
            });
        }
    });
    // The 100th failure opened it; the 9,900 others belong to the closed generation and are
    // ignored rather than re-opening or extending the cool-down.
    assert_eq!(breaker.stats().opened, 1);
    assert!(matches!(breaker.state(), CircuitState::Open { .. }));
}

#[test]
fn half_open_admits_exactly_the_configured_probes() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 625;
    let breaker = CircuitBreaker::new("probes")
        .failure_threshold(1)
        .cool_down(Duration::from_millis(1))
        .probes(7);
    if let Admission::Proceed(p) = (&breaker).admit() {
        (&breaker).settle(p, RETRYABLE);
    }
    std::thread::sleep(Duration::from_millis(5));
    let probes = AtomicU64::new(0);
    let rejected = AtomicU64::new(0);
    let barrier = Barrier::new(THREADS);
    let held = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (breaker, barrier, probes, rejected) = (&breaker, &barrier, &probes, &rejected);
                s.spawn(move || {
                    barrier.wait();
                    // Held until every thread is done: a dropped probe frees its slot.
                    let mut held = Vec::new();
                    for _ in 0..PER_THREAD {
                        match breaker.admit() {
                            Admission::Proceed(p) => {
                                assert!(p.is_probe());
                                probes.fetch_add(1, Relaxed);
                                held.push(p);
                            }
                            Admission::Reject(_) => {
                                rejected.fetch_add(1, Relaxed);
                            }
                            Admission::Wait(..) => unreachable!(),
                        }
                    }
                    held
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(probes.load(Relaxed), 7);
    assert_eq!(rejected.load(Relaxed), 10_000 - 7);
    // Dropped unsettled (cancelled), the probes free every slot.
    drop(held);
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen {
            probes_admitted: 0,
            probes_succeeded: 0
        }
    );
}

#[test]
fn budget_balance_is_exact_under_contention() {
    let budget = RetryBudget::new().max_tokens(50).deposit(0.3);
    let barrier = Barrier::new(16);
    std::thread::scope(|s| {
        for t in 0..16 {
            let (budget, barrier) = (&budget, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..5_000 {
                    if (i + t) % 3 == 0 {
                        budget.deposit_success();
                    } else {
                        budget.try_withdraw();
                    }
                }
            });
        }
    });
    let s = budget.stats();
    assert_eq!(s.retries_allowed + s.retries_denied + s.successes, 80_000);
    assert_eq!(
        s.balance,
        s.initial + s.earned - s.retries_allowed * 1_000_000
    );
    assert!(s.balance <= 50_000_000);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_returns_at_once_without_calling_the_provider() {
    let breaker = CircuitBreaker::new("provider").failure_threshold(3);
    let policy = RetryPolicy::builder().max_attempts(10).build().unwrap();
    let calls = AtomicU64::new(0);
    let provider = || async {
        calls.fetch_add(1, Relaxed);
        Err::<(), _>(Error::Unavailable)
    };
    let started = tokio::time::Instant::now();
    assert_eq!(
        retry_call(&policy, &breaker, (), provider).await,
        Err(Error::Open)
    );
    assert_eq!(calls.load(Relaxed), 3, "the third failure opened it");
    let elapsed = started.elapsed();
    assert_eq!(
        retry_call(&policy, &breaker, (), provider).await,
        Err(Error::Open)
    );
    assert_eq!(calls.load(Relaxed), 3);
    assert_eq!(started.elapsed(), elapsed, "rejected without sleeping");
    // A bad key is not the provider's fault: it never trips the breaker.
    let fresh = CircuitBreaker::new("keys").failure_threshold(1);
    for _ in 0..5 {
        let bad_key = || async { Err::<(), _>(Error::BadKey) };
        assert_eq!(
            retry_call(&policy, &fresh, (), bad_key).await,
            Err(Error::BadKey)
        );
    }
    assert!(fresh.is_closed());
}

#[tokio::test(start_paused = true)]
async fn cancelled_mid_attempt_a_probe_frees_its_slot() {
    let breaker = CircuitBreaker::new("cancel").failure_threshold(1);
    let policy = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let fail = || async { Err::<(), _>(Error::Unavailable) };
    assert_eq!(
        retry_call(&policy, &breaker, (), fail).await,
        Err(Error::Unavailable)
    );
    tokio::time::advance(breaker.cool_down_period() + Duration::from_millis(1)).await;
    // The probe's attempt never finishes; the caller gives up on it after a second.
    let hung = retry_call(&policy, &breaker, (), pending::<Result<(), Error>>);
    assert!(tokio::time::timeout(Duration::from_secs(1), hung)
        .await
        .is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen {
            probes_admitted: 0,
            probes_succeeded: 0
        }
    );
    // The next caller probes, succeeds and closes the breaker.
    let ok = || async { Ok::<_, Error>(()) };
    assert_eq!(retry_call(&policy, &breaker, (), ok).await, Ok(()));
    assert!(breaker.is_closed());
    assert_eq!(breaker.stats().probes, 2);
}

#[tokio::test(start_paused = true)]
async fn cancelled_mid_attempt_a_closed_breaker_counts_nothing() {
    let breaker = CircuitBreaker::new("cancel").failure_threshold(2);
    let policy = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let fail = || async { Err::<(), _>(Error::Unavailable) };
    let _ = retry_call(&policy, &breaker, (), fail).await;
    let hung = retry_call(&policy, &breaker, (), pending::<Result<(), Error>>);
    assert!(tokio::time::timeout(Duration::from_secs(1), hung)
        .await
        .is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::Closed {
            consecutive_failures: 1
        }
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_during_the_backoff_sleep_the_token_stays_spent() {
    let budget = RetryBudget::new().max_tokens(5);
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_secs(1))
        .jitter(retry_runtime::Jitter::None)
        .build()
        .unwrap();
    let attempts = AtomicU64::new(0);
    let call = retry_call(&policy, (), &budget, || async {
        attempts.fetch_add(1, Relaxed);
        Err::<(), _>(Error::Unavailable)
    });
    // The first attempt fails at once; the call sleeps 1 s before the retry and is dropped.
    assert!(tokio::time::timeout(Duration::from_millis(500), call)
        .await
        .is_err());
    assert_eq!(attempts.load(Relaxed), 1);
    let s = budget.stats();
    assert_eq!((s.retries_allowed, s.successes, s.earned), (1, 0, 0));
    assert_eq!(budget.tokens(), 4.0, "spent, not refunded");
}

#[tokio::test(start_paused = true)]
async fn cancelled_while_paced_a_caller_gives_its_slot_back() {
    // A known ceiling: one attempt a second, no probing above it.
    let throttle = AdaptiveThrottle::new()
        .initial_rate(1.0)
        .max_rate(1.0)
        .burst(Duration::ZERO);
    let policy = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let ok = || async { Ok::<_, Error>(()) };
    let start = tokio::time::Instant::now();
    assert_eq!(retry_call(&policy, &throttle, (), ok).await, Ok(()));
    // The next slot is 1 s away; this caller gives up after half of it.
    let paced = retry_call(&policy, &throttle, (), ok);
    assert!(tokio::time::timeout(Duration::from_millis(500), paced)
        .await
        .is_err());
    assert_eq!(throttle.stats().refunded, 1);
    // The slot it held is the next caller's, not one after it.
    assert_eq!(retry_call(&policy, &throttle, (), ok).await, Ok(()));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // Cancelled mid-attempt, after its slot: no refund and no rate change.
    let rate = throttle.rate();
    let hung = retry_call(&policy, &throttle, (), pending::<Result<(), Error>>);
    assert!(tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .is_err());
    assert_eq!(throttle.stats().refunded, 1);
    assert_eq!(throttle.rate(), rate);
}

#[tokio::test(start_paused = true)]
async fn the_throttle_spreads_a_burst_of_callers() {
    let throttle = Arc::new(
        AdaptiveThrottle::new()
            .initial_rate(10.0)
            .max_rate(10.0)
            .burst(Duration::ZERO),
    );
    let policy = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let throttle = throttle.clone();
        tasks.spawn(async move {
            let at = std::sync::Mutex::new(Duration::ZERO);
            retry_call(&policy, &*throttle, (), || async {
                *at.lock().unwrap() = start.elapsed();
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
            at.into_inner().unwrap()
        });
    }
    let mut at: Vec<Duration> = tasks.join_all().await;
    at.sort();
    let want: Vec<Duration> = (0..20).map(|i| Duration::from_millis(100 * i)).collect();
    assert_eq!(at, want);
}

// ---- The attribute's keys: circuit_breaker, budget and throttle as a user writes them. ----

mod attribute {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::Duration;

    use retry_runtime::{
        retry_on_failure, AdaptiveThrottle, CircuitBreaker, CircuitState, RetryBudget,
    };
    use tokio::time::Instant;

    use retry_workspace::provider_error::ProviderError;

    struct Provider {
        calls: AtomicU32,
        reply: std::sync::Mutex<Result<u32, ProviderError>>,
    }

    impl Provider {
        fn new() -> Self {
            Provider {
                calls: AtomicU32::new(0),
                reply: std::sync::Mutex::new(Err(ProviderError::Unavailable)),
            }
        }
        fn set(&self, reply: Result<u32, ProviderError>) {
            *self.reply.lock().unwrap() = reply;
        }
        fn answer(&self) -> Result<u32, ProviderError> {
            self.calls.fetch_add(1, SeqCst);
            match &*self.reply.lock().unwrap() {
                Ok(v) => Ok(*v),
                Err(ProviderError::Unavailable) => Err(ProviderError::Unavailable),
                Err(ProviderError::RateLimited) => Err(ProviderError::RateLimited),
                Err(_) => Err(ProviderError::BadKey),
            }
        }
        fn calls(&self) -> u32 {
            self.calls.load(SeqCst)
        }
    }

    static OPENAI: CircuitBreaker = CircuitBreaker::new("openai")
        .failure_threshold(3)
        .cool_down(Duration::from_secs(30))
        .probes(1);

    #[retry_on_failure(max_attempts = 2, initial_delay = 1, jitter = "none", circuit_breaker = OPENAI)]
    async fn complete(p: &Provider) -> Result<u32, ProviderError> {
        p.answer()
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_rejects_without_calling_then_probes_and_closes() {
        let p = Provider::new();
        // Not retryable: a bad key neither trips nor resets the breaker.
        p.set(Err(ProviderError::BadKey));
        for _ in 0..5 {
            assert_eq!(complete(&p).await, Err(ProviderError::BadKey));
        }
        assert!(OPENAI.is_closed(), "{:?}", OPENAI.state());

        // Three consecutive retryable failures open it. The call whose failure opened it returns
        // that failure at once, rather than sleeping only to be turned away.
        p.set(Err(ProviderError::Unavailable));
        let before = p.calls();
        assert_eq!(complete(&p).await, Err(ProviderError::Unavailable));
        let start = Instant::now();
        assert_eq!(complete(&p).await, Err(ProviderError::Unavailable));
        assert_eq!(p.calls() - before, 3, "no 4th attempt");
        assert_eq!(start.elapsed(), Duration::ZERO, "no sleep before giving up");
        assert!(matches!(OPENAI.state(), CircuitState::Open { .. }));

        // While open: at once, without touching the provider.
        let start = Instant::now();
        let calls = p.calls();
        let err = complete(&p).await.unwrap_err();
        match err {
            ProviderError::Open(open) => {
                assert_eq!(open.name, "openai");
                // The cool-down is kept in whole milliseconds, rounded up.
                assert!(
                    open.retry_in <= Duration::from_millis(30_001),
                    "{:?}",
                    open.retry_in
                );
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
        assert_eq!((p.calls(), start.elapsed()), (calls, Duration::ZERO));

        // After the cool-down one probe goes through; its success closes the breaker.
        tokio::time::sleep(Duration::from_secs(31)).await;
        p.set(Ok(7));
        assert_eq!(complete(&p).await, Ok(7));
        assert!(OPENAI.is_closed(), "{:?}", OPENAI.state());
    }

    /// The failure ratio alone (the consecutive threshold is out of reach): half of at least 6
    /// outcomes over 10 s.
    static RATIO: CircuitBreaker = CircuitBreaker::new("ratio")
        .failure_threshold(1_000)
        .failure_ratio(0.5, Duration::from_secs(10), 6)
        .cool_down(Duration::from_secs(30));

    #[retry_on_failure(max_attempts = 1, circuit_breaker = RATIO)]
    async fn ratio_guarded(p: &Provider) -> Result<u32, ProviderError> {
        p.answer()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_ratio_opens_the_breaker_through_the_attribute() {
        let p = Provider::new();
        // Never two failures in a row, and bad keys in between that do not count: 3 of 6
        // retryable failures opens it at the 6th counted outcome.
        for round in 0..3 {
            p.set(Ok(round));
            assert_eq!(ratio_guarded(&p).await, Ok(round));
            p.set(Err(ProviderError::BadKey));
            assert_eq!(ratio_guarded(&p).await, Err(ProviderError::BadKey));
            let window = RATIO.window().unwrap();
            assert_eq!(
                (window.failures, window.total),
                (round as u64, 2 * round as u64 + 1)
            );
            p.set(Err(ProviderError::Unavailable));
            assert_eq!(ratio_guarded(&p).await, Err(ProviderError::Unavailable));
            assert_eq!(RATIO.is_closed(), round < 2, "after round {round}");
        }
        assert_eq!(RATIO.stats().opened_by_ratio, 1);
        // Open: at once, without touching the provider.
        let calls = p.calls();
        assert!(matches!(
            ratio_guarded(&p).await,
            Err(ProviderError::Open(_))
        ));
        assert_eq!(p.calls(), calls);
        // A successful probe closes it with an empty window: one more failure does not reopen it.
        tokio::time::sleep(Duration::from_secs(31)).await;
        p.set(Ok(9));
        assert_eq!(ratio_guarded(&p).await, Ok(9));
        assert!(RATIO.is_closed());
        p.set(Err(ProviderError::Unavailable));
        assert_eq!(ratio_guarded(&p).await, Err(ProviderError::Unavailable));
        let window = RATIO.window().unwrap();
        assert_eq!((window.failures, window.total), (1, 1));
        assert!(RATIO.is_closed());
    }

    static BUDGET: RetryBudget = RetryBudget::new().max_tokens(2).deposit(0.5);

    #[retry_on_failure(max_attempts = 5, initial_delay = 0.1, jitter = "none", budget = BUDGET)]
    async fn budgeted(p: &Provider) -> Result<u32, ProviderError> {
        p.answer()
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_returns_the_failure_instead_of_retrying() {
        let p = Provider::new();
        // Two tokens: the first call makes 1 attempt + 2 retries, then the budget is empty.
        assert_eq!(budgeted(&p).await, Err(ProviderError::Unavailable));
        assert_eq!(p.calls(), 3);
        // Empty: no retry at all.
        assert_eq!(budgeted(&p).await, Err(ProviderError::Unavailable));
        assert_eq!(p.calls(), 4);
        // Two successes earn a token back (0.5 each): one retry is allowed again.
        p.set(Ok(1));
        budgeted(&p).await.unwrap();
        budgeted(&p).await.unwrap();
        p.set(Err(ProviderError::Unavailable));
        let before = p.calls();
        budgeted(&p).await.unwrap_err();
        assert_eq!(p.calls() - before, 2);
    }

    static THROTTLE: AdaptiveThrottle = AdaptiveThrottle::new().initial_rate(10.0).max_rate(10.0);

    #[retry_on_failure(max_attempts = 1, throttle = throttle)]
    async fn paced(
        throttle: &AdaptiveThrottle,
        p: &Provider,
        at: &std::sync::Mutex<Vec<Duration>>,
        start: Instant,
    ) -> Result<u32, ProviderError> {
        at.lock().unwrap().push(start.elapsed());
        p.answer()
    }

    /// `n` concurrent calls of `paced` through `throttle`, all accepted: when each attempt
    /// started, in order.
    async fn starts_of_paced_calls(throttle: &AdaptiveThrottle, n: usize) -> Vec<Duration> {
        let p = Provider::new();
        p.set(Ok(1));
        let at = std::sync::Mutex::new(Vec::new());
        let start = Instant::now();
        let calls = (0..n).map(|_| paced(throttle, &p, &at, start));
        let results = futures_join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(p.calls(), n as u32);
        let mut at = at.into_inner().unwrap();
        at.sort();
        at
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_paces_every_caller_that_shares_it() {
        let at = starts_of_paced_calls(&THROTTLE, 20).await;
        // 10 per second with a one-second burst: the first 10 go at once, the next 10 every 100 ms.
        assert!(at[..10].iter().all(|t| *t == Duration::ZERO), "{at:?}");
        let paced: Vec<Duration> = at[10..].to_vec();
        let expected: Vec<Duration> = (1..=10).map(|i| Duration::from_millis(i * 100)).collect();
        assert_eq!(paced, expected);
    }

    static LOW_GUESS: AdaptiveThrottle = AdaptiveThrottle::new()
        .initial_rate(5.0)
        .burst(Duration::ZERO);

    /// Callers queued at a rate guessed too low are not stuck at it: as the provider keeps
    /// accepting, the rate climbs and the callers already waiting are booked anew at it.
    #[tokio::test(start_paused = true)]
    async fn callers_queued_at_a_low_guess_follow_the_rate_as_it_climbs() {
        let at = starts_of_paced_calls(&LOW_GUESS, 100).await;
        let last = *at.last().unwrap();
        // At the guessed 5 per second the last caller would start at 19.8 s.
        assert!(
            last < Duration::from_secs(10),
            "the last caller started at {last:?}"
        );
        assert!(LOW_GUESS.rate().unwrap() > 10.0, "{:?}", LOW_GUESS.rate());
        // Booking anew is not admitting anew: one admission per attempt.
        assert_eq!(LOW_GUESS.stats().admitted, 100);
    }

    /// Polls every future to completion on the current task.
    async fn futures_join_all<F: std::future::Future>(
        futures: impl IntoIterator<Item = F>,
    ) -> Vec<F::Output> {
        let mut set = Vec::new();
        for f in futures {
            set.push(Box::pin(f));
        }
        let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (f, slot) in set.iter_mut().zip(out.iter_mut()) {
                if slot.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *slot = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().map(Option::unwrap).collect()
    }
}

// ---- The breaker's failure ratio under contention. ----

/// Three episodes of one closed generation each: 8 threads settle 10,000 outcomes at once below
/// the ratio (the window must hold every one of them), then 10,000 failures at once (exactly one
/// of them opens the breaker); a probe closes it, and the next episode's window starts empty.
#[test]
fn a_failure_ratio_opens_exactly_once_per_episode_and_counts_add_up() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 1_250; // 10,000 per phase
    let breaker = CircuitBreaker::new("ratio.race")
        .failure_threshold(u32::MAX)
        .failure_ratio(0.5, Duration::from_secs(3_600), 1_000)
        .cool_down(Duration::from_millis(1));
    let admit = || match (&breaker).admit() {
        Admission::Proceed(p) => p,
        _ => unreachable!("closed"),
    };
    let settle_at_once = |batches: Vec<Vec<(_, AttemptOutcome)>>| {
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for batch in batches {
                let (breaker, barrier) = (&breaker, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for (p, outcome) in batch {
                        breaker.settle(p, outcome);
                    }
                });
            }
        });
    };
    for episode in 1..=3 {
        assert!(breaker.is_closed());
        let window = breaker.window().unwrap();
        assert_eq!((window.failures, window.total), (0, 0));
        // Every permit of both phases, and one held past the close, admitted in this generation.
        let stale = admit();
        let below: Vec<Vec<_>> = (0..THREADS)
            .map(|_| {
                (0..PER_THREAD)
                    .map(|i| {
                        let outcome = if i % 5 < 2 {
                            RETRYABLE
                        } else {
                            AttemptOutcome::Success
                        };
                        (admit(), outcome)
                    })
                    .collect()
            })
            .collect();
        let failing: Vec<Vec<_>> = (0..THREADS)
            .map(|_| (0..PER_THREAD).map(|_| (admit(), RETRYABLE)).collect())
            .collect();

        // 40% failing: every outcome counted, none lost to a race, and still closed.
        settle_at_once(below);
        let window = breaker.window().unwrap();
        assert_eq!(
            (window.failures, window.total),
            (THREADS as u64 * 500, THREADS as u64 * 1_250)
        );
        assert!(breaker.is_closed());

        // The 2,000th failure or so reaches one half; exactly one caller opens the breaker.
        settle_at_once(failing);
        let s = breaker.stats();
        assert_eq!((s.opened, s.opened_by_ratio), (episode, episode), "{s:?}");
        assert!(matches!(breaker.state(), CircuitState::Open { .. }));

        std::thread::sleep(Duration::from_millis(3));
        let probe = admit();
        assert!(probe.is_probe());
        (&breaker).settle(probe, AttemptOutcome::Success);
        assert!(breaker.is_closed());
        (&breaker).settle(stale, RETRYABLE); // from before the open: ignored
        let window = breaker.window().unwrap();
        assert_eq!((window.failures, window.total), (0, 0));
        let s = breaker.stats();
        assert_eq!(s.closed, episode);
        assert_eq!(s.admitted, episode * (2 * 10_000 + 2));
    }
}

/// 10,000 callers on 8 worker threads, a breaker that only the ratio opens (the consecutive
/// threshold is out of reach) over a 20 ms window: the books balance, and each closed episode
/// ends with exactly one opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ten_thousand_callers_share_a_ratio_breaker() {
    const CALLERS: u64 = 10_000;
    // 35 of every 95 counted outcomes fail (bad keys do not count): about 0.37, above 0.3.
    static BREAKER: CircuitBreaker = CircuitBreaker::new("ratio.stress")
        .failure_threshold(u32::MAX)
        .failure_ratio(0.3, Duration::from_millis(10), 20)
        .cool_down(Duration::from_millis(1))
        .probes(1);
    static TALLY: Tally = Tally::new();
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

    let policy = stress_policy();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        tasks.spawn(async move {
            // Spread over 100 ms, so that the breaker closes and opens again many times.
            tokio::time::sleep(Duration::from_micros(caller % 200 * 500)).await;
            let mut attempt = 0;
            retry_call(&policy, &BREAKER, (&TALLY, AllowedRetries(&TALLY)), || {
                attempt += 1;
                let result = verdict(caller, attempt);
                async move {
                    ATTEMPTS.fetch_add(1, Relaxed);
                    tokio::task::yield_now().await;
                    result
                }
            })
            .await
        });
    }
    let (ok, open, failed) = outcomes(tasks).await;
    let s = BREAKER.stats();
    let retries = TALLY.retries.load(Relaxed);
    assert_eq!(ok + open + failed, CALLERS);
    assert_eq!(s.admitted + s.rejected, CALLERS + retries);
    assert_eq!(s.admitted, ATTEMPTS.load(Relaxed));
    assert_eq!(s.rejected, open);
    assert_eq!(TALLY.circuit_open.load(Relaxed), open);
    // Only the ratio opens a closed breaker here, once per closed episode: the episodes that
    // ended (each by a probe closing it) plus the current one if it ended too.
    let state = BREAKER.state();
    let current = u64::from(!matches!(state, CircuitState::Closed { .. }));
    assert_eq!(s.opened_by_ratio, s.closed + current, "{s:?} {state:?}");
    assert!(s.opened_by_ratio > 0 && s.rejected > 0, "{s:?}");
    assert!(s.opened >= s.opened_by_ratio);
    if let CircuitState::HalfOpen {
        probes_admitted,
        probes_succeeded,
    } = state
    {
        assert_eq!(probes_admitted, probes_succeeded, "a probe permit leaked");
    }
}
