//! The one-retry path: a call whose first attempt fails and whose second succeeds, with the sleep
//! between them skipped (`testing::no_sleep`), so that what is measured is deciding the retry:
//! classifying the error (the `retry_on`/`give_up_on` lists walk its source chain), computing the
//! jittered delay, honouring a `Retry-After` hint, and telling the observers.
//!
//! Run: `cargo bench --bench one_retry` (add `-- --quick` for a short run).
//!
//! Each variant is measured next to its happy path (the same fn, first attempt succeeding) in the
//! same interleaved run; "retry costs" is the median over rounds of the difference, the price of
//! one retry on top of a call. The hand-written loop draws its jitter and skips its sleep too.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::Duration;

use retry_runtime::__private::{never, no_gate};
use retry_runtime::{retry_on_failure, CallState, Classification, RetryPolicy, Retryable};

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

thread_local! {
    /// Set before a call whose first attempt must fail; the attempt clears it.
    static FAIL_NEXT: Cell<bool> = const { Cell::new(false) };
}

#[inline(always)]
fn fails_now() -> bool {
    FAIL_NEXT.replace(false)
}

#[derive(Debug)]
struct ProviderError;

#[inline(always)]
fn provider(x: u64) -> Result<u64, ProviderError> {
    if fails_now() {
        Err(ProviderError)
    } else {
        Ok(black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// The same defaults as the attribute (3 attempts, 1 s doubling to 10 s, full jitter); the delay
/// is drawn and handed to `black_box` instead of a sleep.
async fn hand_loop(x: u64) -> Result<u64, ProviderError> {
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match async { provider(x) }.await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => {
                black_box(delay.mul_f64(rand::random::<f64>()));
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

#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
struct RateLimitError;

#[derive(Debug, thiserror::Error)]
#[error("bad key")]
struct AuthenticationError;

/// The transport layer wraps the provider's error, the client wraps the transport's: the rate
/// limit is two links down the source chain.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("request failed")]
    RateLimited(#[from] RateLimitError),
    #[error("unauthorised")]
    Auth(#[from] AuthenticationError),
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("transport")]
    Transport(#[from] TransportError),
}

/// `retry_on` walks the source chain: `ClientError` -> `TransportError` -> `RateLimitError`
/// (`give_up_on` is checked first, on every link).
#[retry_on_failure(retry_on = [RateLimitError], give_up_on = [AuthenticationError])]
async fn annotated_with_lists(x: u64) -> Result<u64, ClientError> {
    provider(x).map_err(|_| TransportError::from(RateLimitError).into())
}

/// A 429 whose `Retry-After` asks for 10 ms: the delay is the larger of the backoff and the hint
/// plus its spread.
#[derive(Debug)]
struct Throttled;

impl Retryable for Throttled {
    fn is_retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_millis(10))
    }
    fn is_rate_limited(&self) -> bool {
        true
    }
}

#[retry_on_failure]
async fn annotated_with_retry_after(x: u64) -> Result<u64, Throttled> {
    provider(x).map_err(|_| Throttled)
}

#[retry_on_failure(stats = true)]
async fn annotated_with_stats(x: u64) -> Result<u64, ProviderError> {
    provider(x)
}

/// `CallState::step` alone, no future: what the runtime does between two attempts.
async fn step_alone(x: u64) -> Result<u64, ProviderError> {
    let mut call = CallState::<()>::new();
    loop {
        let result = provider(x);
        match call.step(
            &RetryPolicy::DEFAULT,
            "bench",
            result,
            |_| Classification::retry(),
            never,
            no_gate,
            &(),
        ) {
            ControlFlow::Break(done) => return done,
            ControlFlow::Continue(delay) => {
                black_box(delay);
            }
        }
    }
}

/// A variant failing once (`retry`) and its happy-path twin.
macro_rules! pair {
    ($name:literal, $f:ident) => {
        [
            common::Variant {
                name: concat!($name, ", one retry"),
                call: |x| {
                    FAIL_NEXT.set(true);
                    common::run($f(x)).unwrap()
                },
                future_size: std::mem::size_of_val(&$f(0)),
            },
            common::Variant {
                name: concat!($name, ", first attempt succeeds"),
                call: |x| common::run($f(x)).unwrap(),
                future_size: std::mem::size_of_val(&$f(0)),
            },
        ]
    };
}

fn main() {
    // Sleeps are skipped on this thread; delays are still computed and reported.
    let _no_sleep = retry_runtime::testing::no_sleep();
    let pairs = [
        pair!("hand-written retry loop", hand_loop),
        pair!("CallState::step alone (defaults)", step_alone),
        pair!("#[retry_on_failure] (defaults)", annotated),
        pair!(
            "#[retry_on_failure] + retry_on/give_up_on lists",
            annotated_with_lists
        ),
        pair!(
            "#[retry_on_failure] + Retry-After hint",
            annotated_with_retry_after
        ),
        pair!("#[retry_on_failure] + stats = true", annotated_with_stats),
    ];
    let variants: Vec<common::Variant> = pairs.into_iter().flatten().collect();
    if common::callgrind_mode(&variants) {
        return;
    }
    for v in &variants {
        (v.call)(0); // the thread's random generator is set up on its first use
        assert_eq!(
            common::allocations_per_call(v.call, 10_000),
            0.0,
            "{}",
            v.name
        );
    }

    let (rounds, per_round) = common::rounds();
    let ns = common::interleaved(&variants, rounds, per_round);
    println!(
        "one retry (sleep skipped), {rounds} rounds x {per_round} calls, variants interleaved; medians over rounds"
    );
    println!("| variant | ns/call, one retry | ns/call, first attempt succeeds | retry costs (ns) | vs hand loop's retry |");
    println!("|---|---:|---:|---:|---:|");
    let retry_cost = |i: usize| common::median_of(&ns[2 * i], &ns[2 * i + 1], |a, b| a - b);
    let hand = retry_cost(0);
    for i in 0..variants.len() / 2 {
        let name = variants[2 * i].name.trim_end_matches(", one retry");
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2}x |",
            common::median(&ns[2 * i]),
            common::median(&ns[2 * i + 1]),
            retry_cost(i),
            retry_cost(i) / hand,
        );
    }
}
