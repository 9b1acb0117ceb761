//! The happy path: a call whose first attempt succeeds. Compares an unannotated fn, a hand-written
//! retry loop and `#[retry_on_failure]`: ns per call, allocations per call, future size.
//!
//! Run: `cargo bench --bench happy_path` (add `-- --quick` for a short run).
//!
//! Each call creates the fn's future, pins it on the stack and polls it once with a no-op waker:
//! what is measured is the retry machinery itself, not a runtime's scheduler. Variants are run
//! round-robin, many rounds, and each ratio is the median of per-round ratios against the hand
//! loop, so that the machine's drift affects every variant alike.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::variant;
use retry_runtime::retry_on_failure;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

#[derive(Debug)]
struct ProviderError;

/// The provider call: cheap, opaque to the optimiser, and never failing at run time.
#[inline(always)]
fn provider(x: u64) -> Result<u64, ProviderError> {
    if black_box(false) {
        Err(ProviderError)
    } else {
        Ok(black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

async fn unannotated(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

/// The unannotated fn plus one read of tokio's clock, the clock `max_time` and `context` read
/// (with the root package's tokio `test-util` feature on, as in every bench and test here; it
/// adds well under 1 ns to the read).
async fn unannotated_reading_the_clock(x: u64) -> Result<u64, ProviderError> {
    black_box(tokio::time::Instant::now());
    provider(x)
}

/// What a careful user writes by hand: the same defaults (3 attempts, 1 s doubling to 10 s, full
/// jitter).
async fn hand_loop(x: u64) -> Result<u64, ProviderError> {
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match async { provider(x) }.await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay.mul_f64(rand::random::<f64>())).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
        }
    }
}

thread_local! {
    static FIRST_TRIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The hand loop counting its first-try successes in a plain thread-local: the least any exact
/// per-call statistic can cost (no slot lookup, no registration, nobody else can read it).
async fn hand_loop_counting(x: u64) -> Result<u64, ProviderError> {
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match async { provider(x) }.await {
            Ok(v) => {
                if attempt == 1 {
                    FIRST_TRIES.set(FIRST_TRIES.get() + 1);
                }
                return Ok(v);
            }
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay.mul_f64(rand::random::<f64>())).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
        }
    }
}

#[retry_on_failure]
async fn annotated(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

/// `max_time` reads the clock when the call starts: that read is nearly all of its cost (compare
/// the "one clock read" line).
#[retry_on_failure(max_attempts = 5, initial_delay = 0.5, max_delay = 30, max_time = 60)]
async fn annotated_with_deadline(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

/// backon 1.x with the same defaults: 1 s doubling to 10 s, 3 attempts, jitter.
async fn backon(x: u64) -> Result<u64, ProviderError> {
    use backon::{ExponentialBuilder, Retryable};
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_max_times(2)
        .with_jitter();
    (|| async { provider(x) }).retry(backoff).await
}

/// tokio-retry2 0.9 with the same defaults.
async fn tokio_retry2(x: u64) -> Result<u64, ProviderError> {
    use tokio_retry2::strategy::{jitter, ExponentialFactorBackoff};
    use tokio_retry2::{Retry, RetryError};
    let strategy = ExponentialFactorBackoff::from_millis(1000, 2.0)
        .max_delay_millis(10_000)
        .map(jitter)
        .take(2);
    Retry::spawn(strategy, || async {
        provider(x).map_err(RetryError::transient)
    })
    .await
}

/// tryhard 0.5 with the same defaults (it has no jitter).
async fn tryhard(x: u64) -> Result<u64, ProviderError> {
    tryhard::retry_fn(|| async { provider(x) })
        .retries(2)
        .exponential_backoff(Duration::from_secs(1))
        .max_delay(Duration::from_secs(10))
        .await
}

#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
struct RateLimitError;

#[derive(Debug, thiserror::Error)]
#[error("bad key")]
struct AuthenticationError;

#[derive(Debug, thiserror::Error)]
enum ClassifiedError {
    #[error(transparent)]
    RateLimited(#[from] RateLimitError),
    #[error(transparent)]
    Auth(#[from] AuthenticationError),
    #[error(transparent)]
    Open(#[from] retry_runtime::CircuitOpen),
}

#[inline(always)]
fn classified_provider(x: u64) -> Result<u64, ClassifiedError> {
    if black_box(false) {
        Err(RateLimitError.into())
    } else {
        Ok(black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

#[retry_on_failure(retry_on = [RateLimitError], give_up_on = [AuthenticationError])]
async fn annotated_with_lists(x: u64) -> Result<u64, ClassifiedError> {
    classified_provider(x)
}

#[retry_on_failure(stats = true)]
async fn annotated_with_stats(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

static BREAKER: retry_runtime::CircuitBreaker = retry_runtime::CircuitBreaker::new("bench");
static BUDGET: retry_runtime::RetryBudget = retry_runtime::RetryBudget::new();

#[retry_on_failure(circuit_breaker = BREAKER, budget = BUDGET)]
async fn annotated_with_breaker_and_budget(x: u64) -> Result<u64, ClassifiedError> {
    classified_provider(x)
}

static RATIO_BREAKER: retry_runtime::CircuitBreaker =
    retry_runtime::CircuitBreaker::new("bench").failure_ratio(0.5, Duration::from_secs(10), 20);

/// A breaker with a failure-ratio window: each success also reads the clock and counts itself in
/// a shared bucket (one compare-and-swap).
#[retry_on_failure(circuit_breaker = RATIO_BREAKER, budget = BUDGET)]
async fn annotated_with_ratio_breaker_and_budget(x: u64) -> Result<u64, ClassifiedError> {
    classified_provider(x)
}

/// `context = ctx` reads the clock and draws a 128-bit idempotency key (rand's `ThreadRng`, a
/// ChaCha12 generator) per call.
#[retry_on_failure(context = ctx)]
async fn annotated_with_context(x: u64) -> Result<u64, ProviderError> {
    provider(x ^ u64::from(ctx.attempt()))
}

fn main() {
    let variants = [
        variant!("unannotated fn", unannotated),
        variant!("hand-written retry loop", hand_loop),
        variant!("#[retry_on_failure] (defaults)", annotated),
        variant!(
            "#[retry_on_failure] + retry_on/give_up_on lists",
            annotated_with_lists
        ),
        variant!("#[retry_on_failure] + max_time", annotated_with_deadline),
        variant!(
            "unannotated fn + one clock read",
            unannotated_reading_the_clock
        ),
        variant!("#[retry_on_failure] + stats = true", annotated_with_stats),
        variant!(
            "hand-written loop + thread-local first-try count",
            hand_loop_counting
        ),
        variant!(
            "#[retry_on_failure] + breaker + budget",
            annotated_with_breaker_and_budget
        ),
        variant!(
            "#[retry_on_failure] + breaker (failure ratio) + budget",
            annotated_with_ratio_breaker_and_budget
        ),
        variant!(
            "#[retry_on_failure] + context (clock, random key)",
            annotated_with_context
        ),
        variant!("backon 1.6 (with jitter)", backon),
        variant!("tokio-retry2 0.9 (with jitter)", tokio_retry2),
        variant!("tryhard 0.5 (no jitter)", tryhard),
    ];
    const BASELINE: usize = 1;
    if common::callgrind_mode(&variants) {
        return;
    }

    let (rounds, per_round) = common::rounds();
    let ns = common::interleaved(&variants, rounds, per_round);
    println!(
        "happy path, {rounds} rounds x {per_round} calls, variants interleaved; ratio = median of per-round ratios"
    );
    println!(
        "| variant | ns/call (median) | vs hand loop | allocations/call | future size (bytes) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut allocating = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let allocations = common::allocations_per_call(v.call, 100_000);
        if allocations > 0.0 {
            allocating.push(v.name);
        }
        println!(
            "| {} | {:.2} | {:.3}x | {} | {} |",
            v.name,
            common::median(&ns[i]),
            common::median_of(&ns[i], &ns[BASELINE], |a, b| a / b),
            allocations,
            v.future_size,
        );
    }
    // The zero-allocation claim is checked, not just printed.
    assert!(
        allocating.is_empty(),
        "allocating on the happy path: {allocating:?}"
    );
    // So is the future-size claim: the attribute's future is no larger than the hand loop's, with
    // or without classification lists and statistics.
    for name in [
        "#[retry_on_failure] (defaults)",
        "#[retry_on_failure] + retry_on/give_up_on lists",
        "#[retry_on_failure] + stats = true",
    ] {
        let v = variants.iter().find(|v| v.name == name).expect("a variant");
        let hand = variants[BASELINE].future_size;
        assert!(
            v.future_size <= hand,
            "{name}: a {} B future, the hand loop's is {hand} B",
            v.future_size
        );
    }
}
