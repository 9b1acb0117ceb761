//! A panic inside an annotated fn's body propagates unchanged (the same payload, by type and
//! value) and is not retried; the shared state stays consistent: a half-open probe's slot is
//! given back, the breaker learns nothing from the panicking attempt, the budget's balance holds,
//! and statistics count the call as unfinished if it had suspended (not at all if it panicked in
//! its first poll, as `FnStatsSnapshot::unfinished` documents).
//!
//! Async fns are run with `tokio::spawn`, whose `JoinError` carries the payload; blocking fns and
//! the closure API with `std::panic::catch_unwind`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use retry_runtime::stats::{self, FnStatsSnapshot};
use retry_runtime::{
    retry_on_failure, AdaptiveThrottle, Admission, AttemptOutcome, CircuitBreaker, CircuitState,
    Classification, Gate, RetryBudget, RetryPolicy,
};

const MICRO_TOKENS: u64 = 1_000_000;

/// The payload: a type of our own, so that "unchanged" can be checked by downcasting.
#[derive(Debug, PartialEq)]
struct Boom(u32);

use retry_workspace::provider_error::ProviderError as Error;

/// What attempt n does.
#[derive(Clone, Copy, Debug)]
enum Step {
    Fail,
    /// Panic with `Boom(n)`, after suspending first or not.
    Panic {
        suspend: bool,
    },
    Succeed,
}

struct Shared {
    breaker: CircuitBreaker,
    budget: RetryBudget,
    throttle: AdaptiveThrottle,
    script: Vec<Step>,
    attempts: AtomicU32,
}

impl Shared {
    fn leak(script: Vec<Step>) -> &'static Shared {
        Box::leak(Box::new(Shared {
            breaker: CircuitBreaker::new("panics")
                .failure_threshold(100)
                .cool_down(Duration::from_secs(5)),
            budget: RetryBudget::new().max_tokens(10),
            throttle: AdaptiveThrottle::new().initial_rate(1000.0),
            script,
            attempts: AtomicU32::new(0),
        }))
    }

    async fn attempt(&self) -> Result<u32, Error> {
        let n = self.attempts.fetch_add(1, SeqCst) + 1;
        match self.script[(n as usize - 1).min(self.script.len() - 1)] {
            Step::Fail => Err(Error::Unavailable),
            Step::Panic { suspend } => {
                if suspend {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                std::panic::panic_any(Boom(n))
            }
            Step::Succeed => Ok(n),
        }
    }

    fn attempts(&self) -> u32 {
        self.attempts.load(SeqCst)
    }

    /// Opens the breaker and lets its cool-down pass: the next attempt is a probe.
    async fn half_open(&self) {
        while self.breaker.is_closed() {
            let Admission::Proceed(p) = (&self.breaker).admit() else {
                unreachable!("closed")
            };
            (&self.breaker).settle(p, AttemptOutcome::Failure(Classification::retry()));
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
}

#[retry_on_failure(
    max_attempts = 3,
    initial_delay = 0.1,
    jitter = "none",
    circuit_breaker = shared.breaker,
    budget = shared.budget,
    throttle = shared.throttle,
    stats = true,
    name = "panics.guarded"
)]
async fn guarded(shared: &'static Shared) -> Result<u32, Error> {
    shared.attempt().await
}

/// Runs a call in a task of its own, returning its panic payload.
async fn panic_of<T: Send + 'static>(
    call: impl std::future::Future<Output = T> + Send + 'static,
) -> Box<dyn Any + Send> {
    let joined = tokio::spawn(call).await;
    match joined {
        Err(e) if e.is_panic() => e.into_panic(),
        Err(e) => panic!("not a panic: {e}"),
        Ok(_) => panic!("the call returned instead of panicking"),
    }
}

fn stats_of(name: &str) -> Option<FnStatsSnapshot> {
    stats::snapshot().get(name).copied()
}

/// (calls, unfinished, returned, attempts, retries) between two snapshots.
fn delta(before: Option<FnStatsSnapshot>, after: Option<FnStatsSnapshot>) -> [u64; 5] {
    let f = |s: Option<FnStatsSnapshot>| {
        s.map_or([0; 5], |s| {
            [
                s.calls,
                s.unfinished,
                s.succeeded_first_attempt + s.succeeded_after_retry + s.gave_up.total(),
                s.attempts,
                s.retries,
            ]
        })
    };
    let (b, a) = (f(before), f(after));
    std::array::from_fn(|i| a[i] - b[i])
}

/// The scenarios run one after another in one test: statistics are read as differences, which a
/// call of the same fn in a parallel test would upset.
#[tokio::test(start_paused = true)]
async fn a_panic_propagates_unchanged_and_leaves_shared_state_consistent() {
    const NAME: &str = "panics.guarded";

    // 1. The first attempt panics after suspending, as a probe of a half-open breaker.
    let shared = Shared::leak(vec![Step::Panic { suspend: true }, Step::Succeed]);
    shared.half_open().await;
    let before = stats_of(NAME);
    let payload = panic_of(guarded(shared)).await;
    assert_eq!(
        payload.downcast_ref::<Boom>(),
        Some(&Boom(1)),
        "the payload, unchanged"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(shared.attempts(), 1, "not retried");
    assert_eq!(
        shared.breaker.state(),
        CircuitState::HalfOpen {
            probes_admitted: 0,
            probes_succeeded: 0
        },
        "the probe's slot is given back"
    );
    assert_eq!(shared.budget.stats().retries_allowed, 0);
    assert_eq!(
        shared.throttle.stats().refunded,
        0,
        "the attempt was past its slot"
    );
    assert_eq!(delta(before, stats_of(NAME)), [1, 1, 0, 0, 0]);
    // The next caller probes and closes the breaker.
    assert_eq!(guarded(shared).await, Ok(2));
    assert!(shared.breaker.is_closed());

    // 2. The first attempt panics without suspending: not retried; the call is counted once, as
    //    unfinished (the statistics recorder's `Drop` sees it unwind), with no attempt returned.
    let shared = Shared::leak(vec![Step::Panic { suspend: false }]);
    let before = stats_of(NAME);
    let payload = panic_of(guarded(shared)).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(1)));
    assert_eq!(shared.attempts(), 1);
    assert_eq!(
        shared.breaker.state(),
        CircuitState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(delta(before, stats_of(NAME)), [1, 1, 0, 0, 0]);

    // 3. A retry, then a panic: the failure before it counts, the retry's token stays spent,
    //    the panicking attempt counts for nothing.
    let shared = Shared::leak(vec![Step::Fail, Step::Panic { suspend: false }]);
    let before = stats_of(NAME);
    let payload = panic_of(guarded(shared)).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(2)));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(shared.attempts(), 2);
    assert_eq!(
        shared.breaker.state(),
        CircuitState::Closed {
            consecutive_failures: 1
        }
    );
    let b = shared.budget.stats();
    assert_eq!((b.retries_allowed, b.successes), (1, 0));
    assert_eq!(
        b.balance,
        b.initial + b.earned - b.retries_allowed * MICRO_TOKENS
    );
    // Suspended in the backoff: one unfinished call, with its retry and the failed attempt.
    assert_eq!(delta(before, stats_of(NAME)), [1, 1, 0, 1, 1]);
}

/// `panic!` with a message: the message arrives as it was formatted.
#[tokio::test]
async fn a_formatted_panic_message_arrives_intact() {
    #[retry_on_failure(max_attempts = 5, initial_delay = 0.001)]
    async fn formatted(calls: &'static AtomicU32) -> Result<(), Error> {
        let n = calls.fetch_add(1, SeqCst) + 1;
        panic!("attempt {n} exploded: {:?}", Error::Unavailable);
    }
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let payload = panic_of(formatted(&CALLS)).await;
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("attempt 1 exploded: Unavailable")
    );
    assert_eq!(CALLS.load(SeqCst), 1);
}

/// Blocking fns: the panic unwinds out of the call, unchanged, on the first attempt.
#[test]
fn a_blocking_fn_panic_propagates_unchanged() {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    static BREAKER: CircuitBreaker = CircuitBreaker::new("panics.blocking").failure_threshold(1);

    #[retry_on_failure(max_attempts = 4, initial_delay = 0.001, circuit_breaker = BREAKER)]
    fn blocking(fail: bool) -> Result<u32, Error> {
        let n = CALLS.fetch_add(1, SeqCst) + 1;
        if fail {
            return Err(Error::Unavailable);
        }
        std::panic::panic_any(Boom(n))
    }

    let payload = catch_unwind(AssertUnwindSafe(|| blocking(false))).unwrap_err();
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(1)));
    assert_eq!(CALLS.load(SeqCst), 1);
    assert!(
        BREAKER.is_closed(),
        "a panic is not a failure of the provider"
    );
    // A failure opens this breaker (threshold 1): the call returns that failure at once, with no
    // retry that could panic, and the next call is turned away before its first attempt.
    assert!(matches!(blocking(true), Err(Error::Unavailable)));
    assert_eq!(CALLS.load(SeqCst), 2);
    assert!(matches!(blocking(false), Err(Error::Open(_))));
    assert_eq!(CALLS.load(SeqCst), 2);
}

/// The closure API: the same engine, the same propagation.
#[tokio::test(start_paused = true)]
async fn the_closure_api_propagates_panics_unchanged() {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
    let payload = panic_of(async move {
        policy
            .retry(|| async {
                let n = CALLS.fetch_add(1, SeqCst) + 1;
                if n < 3 {
                    return Err::<(), _>(Error::Unavailable);
                }
                std::panic::panic_any(Boom(n))
            })
            .await
    })
    .await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(3)));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(CALLS.load(SeqCst), 3, "no attempt after the panic");

    let blocking_calls = AtomicU32::new(0);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        policy
            .retry_blocking(|| -> Result<(), Error> {
                blocking_calls.fetch_add(1, SeqCst);
                std::panic::panic_any(Boom(9))
            })
            .call()
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(9)));
    assert_eq!(blocking_calls.load(SeqCst), 1);
}

/// A panicking hook or predicate is user code too: it propagates, and the call stops there.
#[tokio::test(start_paused = true)]
async fn a_panic_in_a_hook_or_predicate_propagates() {
    static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
    static BUDGET: RetryBudget = RetryBudget::new().max_tokens(5);

    #[retry_on_failure(
        max_attempts = 5,
        initial_delay = 0.1,
        budget = BUDGET,
        on_retry = |_err, _event| std::panic::panic_any(Boom(100))
    )]
    async fn hooked() -> Result<(), Error> {
        ATTEMPTS.fetch_add(1, SeqCst);
        Err(Error::Unavailable)
    }

    #[retry_on_failure(max_attempts = 5, retry_if = |_e: &Error| std::panic::panic_any(Boom(200)))]
    async fn predicated() -> Result<(), Error> {
        ATTEMPTS.fetch_add(1, SeqCst);
        Err(Error::Unavailable)
    }

    let payload = panic_of(hooked()).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(100)));
    assert_eq!(ATTEMPTS.load(SeqCst), 1);
    // The budget, consulted before the hook, spent the retry's token: its books still balance.
    let b = BUDGET.stats();
    assert_eq!(b.retries_allowed, 1);
    assert_eq!(
        b.balance,
        b.initial + b.earned - b.retries_allowed * MICRO_TOKENS
    );

    let payload = panic_of(predicated()).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(200)));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(ATTEMPTS.load(SeqCst), 2);
}
