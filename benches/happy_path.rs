//! The happy path: a call whose first attempt succeeds. Compares an unannotated fn, a hand-written
//! retry loop and `#[retry_on_failure]`: ns per call, allocations per call, future size.
//!
//! Run: `cargo bench --bench happy_path` (add `-- --quick` for a short run).
//!
//! Each call creates the fn's future, pins it on the stack and polls it once with a no-op waker:
//! what is measured is the retry machinery itself, not a runtime's scheduler. Variants are run
//! round-robin, many rounds, and each ratio is the median of per-round ratios against the hand
//! loop, so that the machine's drift affects every variant alike.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use retry_runtime::retry_on_failure;

/// Counts every allocation made by the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

#[retry_on_failure]
async fn annotated(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

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

#[retry_on_failure(context = ctx)]
async fn annotated_with_context(x: u64) -> Result<u64, ProviderError> {
    provider(x ^ u64::from(ctx.attempt()))
}

/// Creates the future, polls it once, returns its output. Panics if it is not ready at once.
#[inline(always)]
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the happy path never sleeps"),
    }
}

struct Variant {
    name: &'static str,
    call: fn(u64) -> u64,
    future_size: usize,
}

macro_rules! variant {
    ($name:literal, $f:ident) => {
        Variant {
            name: $name,
            call: |x| run($f(x)).unwrap(),
            future_size: std::mem::size_of_val(&$f(0)),
        }
    };
}

fn time_calls(call: fn(u64) -> u64, n: u64) -> f64 {
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(call(black_box(i)));
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / n as f64
}

fn allocations_per_call(call: fn(u64) -> u64, n: u64) -> f64 {
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..n {
        black_box(call(black_box(i)));
    }
    (ALLOCATIONS.load(Relaxed) - before) as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick {
        (21, 200_000)
    } else {
        (101, 1_000_000)
    };

    let variants = [
        variant!("unannotated fn", unannotated),
        variant!("hand-written retry loop", hand_loop),
        variant!("#[retry_on_failure] (defaults)", annotated),
        variant!("#[retry_on_failure] + max_time", annotated_with_deadline),
        variant!("backon 1.6 (with jitter)", backon),
        variant!("tokio-retry2 0.9 (with jitter)", tokio_retry2),
        variant!("tryhard 0.5 (no jitter)", tryhard),
        variant!(
            "#[retry_on_failure] + retry_on/give_up_on lists",
            annotated_with_lists
        ),
        variant!("#[retry_on_failure] + stats = true", annotated_with_stats),
        variant!(
            "#[retry_on_failure] + breaker + budget",
            annotated_with_breaker_and_budget
        ),
        variant!(
            "#[retry_on_failure] + context (clock, random key)",
            annotated_with_context
        ),
    ];
    const BASELINE: usize = 1;

    for v in &variants {
        time_calls(v.call, per_round / 10); // warm up
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        let this_round: Vec<f64> = variants
            .iter()
            .map(|v| time_calls(v.call, per_round))
            .collect();
        for (i, t) in this_round.iter().enumerate() {
            ns[i].push(*t);
            ratio[i].push(t / this_round[BASELINE]);
        }
    }

    println!(
        "happy path, {rounds} rounds x {per_round} calls, variants interleaved; ratio = median of per-round ratios"
    );
    println!(
        "| variant | ns/call (median) | vs hand loop | allocations/call | future size (bytes) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut allocating = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let allocations = allocations_per_call(v.call, 100_000);
        if allocations > 0.0 {
            allocating.push(v.name);
        }
        println!(
            "| {} | {:.2} | {:.3}x | {} | {} |",
            v.name,
            median(&mut ns[i]),
            median(&mut ratio[i]),
            allocations,
            v.future_size,
        );
    }
    // The zero-allocation claim is checked, not just printed.
    assert!(
        allocating.is_empty(),
        "allocating on the happy path: {allocating:?}"
    );
}
