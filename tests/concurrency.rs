//! 10,000 concurrent calls through `#[retry_on_failure]`, sharing a circuit breaker, a retry
//! budget, an adaptive throttle and the fn's statistics, on a multi-thread runtime: once without
//! cancellation, where every figure of every mechanism must agree exactly, and once with a tenth
//! of the calls cancelled at arbitrary instants by timeouts, where the books must still balance.
//! (tests/resilience.rs drives the runtime directly with the same mix; this goes through the
//! attribute's expansion.)

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use retry_runtime::stats::{self, FnStatsSnapshot};
use retry_runtime::{
    retry_on_failure, AdaptiveThrottle, CircuitBreaker, CircuitState, GiveUpReason, RetryBudget,
};

const CALLERS: u64 = 10_000;
const MICRO_TOKENS: u64 = 1_000_000;

use retry_workspace::provider_error::ProviderError as Error;

/// A deterministic verdict per (caller, attempt): 60% success, 25% unavailable, 10% rate
/// limited, 5% bad key; the first attempts of the first 64 callers all fail, so that the breaker
/// opens early in every run (the exact test runs those callers first).
fn verdict(caller: u64, attempt: u64) -> Result<(), Error> {
    if caller < 64 && attempt == 1 {
        return Err(Error::Unavailable);
    }
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

/// What the provider saw.
struct Provider {
    started: AtomicU64,
    completed: AtomicU64,
    rate_limited: AtomicU64,
}

impl Provider {
    const fn new() -> Self {
        Provider {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    async fn answer(&self, caller: u64, attempt: &AtomicU32) -> Result<(), Error> {
        self.started.fetch_add(1, Relaxed);
        let n = attempt.fetch_add(1, Relaxed) + 1;
        // Every attempt suspends once, so that cancellation can land inside it.
        tokio::task::yield_now().await;
        let result = verdict(caller, u64::from(n));
        if result == Err(Error::RateLimited) {
            self.rate_limited.fetch_add(1, Relaxed);
        }
        self.completed.fetch_add(1, Relaxed);
        result
    }
}

/// The mechanisms one test shares among its callers.
macro_rules! mechanisms {
    ($breaker:ident, $budget:ident, $throttle:ident, $provider:ident) => {
        // 8 failures in a row (0.4^8 per attempt) trip it now and then, so that most calls
        // reach the throttle and the budget while the breaker still opens, probes and closes.
        static $breaker: CircuitBreaker = CircuitBreaker::new("concurrency")
            .failure_threshold(8)
            .cool_down(Duration::from_millis(2))
            .probes(3);
        static $budget: RetryBudget = RetryBudget::new().max_tokens(500).deposit(0.2);
        // A high floor keeps the real-time pacing short while still exercising the schedule.
        static $throttle: AdaptiveThrottle = AdaptiveThrottle::new()
            .min_rate(200_000.0)
            .burst(Duration::from_micros(100));
        static $provider: Provider = Provider::new();
    };
}

mechanisms!(BREAKER, BUDGET, THROTTLE, PROVIDER);

#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 0.001,
    max_delay = 0.003,
    circuit_breaker = BREAKER,
    budget = BUDGET,
    throttle = THROTTLE,
    stats = true,
    name = "concurrency.exact"
)]
async fn exact(caller: u64, attempt: &AtomicU32) -> Result<(), Error> {
    PROVIDER.answer(caller, attempt).await
}

fn snapshot(name: &str) -> FnStatsSnapshot {
    *stats::snapshot().get(name).expect("recorded")
}

/// If the breaker is half-open with nobody in flight, every admitted probe must have settled.
fn assert_no_leaked_probe(breaker: &CircuitBreaker) {
    if let CircuitState::HalfOpen {
        probes_admitted,
        probes_succeeded,
    } = breaker.state()
    {
        assert_eq!(probes_admitted, probes_succeeded, "a probe slot leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_calls_through_the_attribute_agree_exactly() {
    let (mut ok, mut open, mut failed) = (0u64, 0u64, 0u64);
    // The first 64 callers, whose first attempts all fail, run together before the rest: on four
    // worker threads the others' successes could otherwise land between their failures and keep
    // the breaker from ever seeing 8 in a row (it happened in CI). The rest then run together.
    for callers in [0..64, 64..CALLERS] {
        let mut tasks = tokio::task::JoinSet::new();
        for caller in callers {
            tasks.spawn(async move { exact(caller, &AtomicU32::new(0)).await });
        }
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(()) => ok += 1,
                Err(Error::Open(_)) => open += 1,
                Err(_) => failed += 1,
            }
        }
    }
    let s = snapshot("concurrency.exact");
    let breaker = BREAKER.stats();
    let budget = BUDGET.stats();
    let throttle = THROTTLE.stats();
    let started = PROVIDER.started.load(Relaxed);

    assert_eq!(ok + open + failed, CALLERS);
    // Statistics: every call once, by outcome; every attempt; every retry.
    assert_eq!(s.calls, CALLERS);
    assert_eq!(s.unfinished, 0);
    assert_eq!(s.succeeded_first_attempt + s.succeeded_after_retry, ok);
    // Turned away before an attempt (the call returns `Open`), or by its own failure opening the
    // breaker (the call returns that failure at once rather than sleep to be turned away).
    assert!(s.gave_up.get(GiveUpReason::CircuitOpen) >= open);
    assert_eq!(s.gave_up.total(), open + failed);
    assert_eq!(s.attempts, started);
    assert_eq!(s.attempts, PROVIDER.completed.load(Relaxed));
    assert_eq!(s.retry_histogram.counts.iter().sum::<u64>(), CALLERS);
    // The breaker: asked before every first attempt and every allowed retry.
    assert_eq!(breaker.admitted + breaker.rejected, CALLERS + s.retries);
    assert_eq!(breaker.admitted, started);
    assert_eq!(breaker.rejected, open);
    assert!(breaker.opened > 0, "the breaker was exercised: {breaker:?}");
    assert_no_leaked_probe(&BREAKER);
    // The throttle: every attempt the breaker let through, every 429.
    assert_eq!(throttle.admitted, started);
    assert_eq!(throttle.rate_limited, PROVIDER.rate_limited.load(Relaxed));
    assert_eq!(throttle.refunded, 0, "nothing was cancelled");
    // The budget: a token per retry, a veto per give-up it caused, a deposit per success.
    assert_eq!(budget.retries_allowed, s.retries);
    assert_eq!(
        budget.retries_denied,
        s.gave_up.get(GiveUpReason::BudgetEmpty)
    );
    assert_eq!(budget.successes, ok);
    assert_eq!(
        budget.balance,
        budget.initial + budget.earned - budget.retries_allowed * MICRO_TOKENS
    );
}

mod cancelled {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    use super::*;

    mechanisms!(BREAKER, BUDGET, THROTTLE, PROVIDER);

    #[retry_on_failure(
        max_attempts = 4,
        initial_delay = 0.001,
        max_delay = 0.003,
        circuit_breaker = BREAKER,
        budget = BUDGET,
        throttle = THROTTLE,
        stats = true,
        name = "concurrency.cancelled"
    )]
    async fn cancellable(caller: u64, attempt: &AtomicU32) -> Result<(), Error> {
        PROVIDER.answer(caller, attempt).await
    }

    /// Polls `call` once; drops it if it did not finish in that poll.
    async fn poll_once_then_drop<F: Future>(call: F) -> Option<F::Output> {
        let mut call = pin!(call);
        std::future::poll_fn(|cx| {
            Poll::Ready(match call.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }

    /// A tenth of the calls get a timeout between 0 and 2 ms, which cuts them during an attempt,
    /// a backoff or a throttle wait, or not at all; another tenth is dropped at its first
    /// suspension (mid-attempt or in a throttle wait), or returns at once if the breaker turns it
    /// away. Callers 7, 17, .. 57 fail their first attempt early, before the breaker can have
    /// opened, so some calls are always cancelled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_calls_with_cancellations_keep_the_books_balanced() {
        let mut tasks = tokio::task::JoinSet::new();
        for caller in 0..CALLERS {
            tasks.spawn(async move {
                let attempt = AtomicU32::new(0);
                let call = cancellable(caller, &attempt);
                match caller % 10 {
                    3 => {
                        let after = Duration::from_micros(caller % 2_000);
                        tokio::time::timeout(after, call).await.ok()
                    }
                    7 => poll_once_then_drop(call).await,
                    _ => Some(call.await),
                }
            });
        }
        let (mut ok, mut returned, mut cancelled) = (0u64, 0u64, 0u64);
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Some(Ok(())) => {
                    ok += 1;
                    returned += 1;
                }
                Some(Err(_)) => returned += 1,
                None => cancelled += 1,
            }
        }
        assert!(cancelled > 0, "some timeouts must have cut calls short");
        let s = snapshot("concurrency.cancelled");
        let breaker = BREAKER.stats();
        let budget = BUDGET.stats();
        let throttle = THROTTLE.stats();
        let started = PROVIDER.started.load(Relaxed);

        // Every call counted once; the cancelled ones as unfinished (each had suspended).
        assert_eq!(returned + cancelled, CALLERS);
        assert_eq!(s.calls, CALLERS);
        assert_eq!(s.unfinished, cancelled);
        assert_eq!(s.succeeded_first_attempt + s.succeeded_after_retry, ok);
        assert_eq!(s.gave_up.total(), returned - ok);
        // Attempts that completed; a cancelled attempt never reaches the statistics.
        assert_eq!(s.attempts, PROVIDER.completed.load(Relaxed));
        assert!(started - s.attempts <= cancelled);
        // Admitted attempts that never started were cancelled while waiting for the throttle.
        assert!(breaker.admitted >= started && breaker.admitted - started <= cancelled);
        assert_eq!(throttle.admitted, breaker.admitted);
        assert!(throttle.refunded <= breaker.admitted - started);
        assert_no_leaked_probe(&BREAKER);
        // The budget's books balance, and it saw exactly the retries the statistics saw.
        assert_eq!(budget.retries_allowed, s.retries);
        assert_eq!(budget.successes, ok);
        assert_eq!(
            budget.balance,
            budget.initial + budget.earned - budget.retries_allowed * MICRO_TOKENS
        );
        // After the storm, the breaker serves normally: a success eventually closes it.
        let attempt = AtomicU32::new(0);
        for _ in 0..1000 {
            if BREAKER.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            // Caller 64's first attempt succeeds (see `verdict`).
            let _ = cancellable(64, &attempt).await;
            attempt.store(0, Relaxed);
        }
        assert!(BREAKER.is_closed(), "{:?}", BREAKER.state());
    }
}
