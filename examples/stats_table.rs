//! Prints the per-function retry statistics after a burst of calls against two flaky providers:
//! `cargo run --example stats_table` (add `--features serde` for the JSON as well).
//!
//! The clock is tokio's paused clock, so the backoff sleeps take no real time.

use std::sync::atomic::{AtomicU32, Ordering};

use retry_runtime::{retry_on_failure, stats, Retryable};

#[derive(Debug)]
enum ProviderError {
    RateLimited,
    BadRequest,
}

impl Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::RateLimited)
    }
}

/// Request `i` fails its first `i % 7 == 0 ? 2 : i % 5 == 0 ? 1 : 0` attempts with a rate limit;
/// every 23rd is a bad request, and every 31st is rate limited until the attempts run out.
fn flaky(i: u32, attempt: u32) -> Result<String, ProviderError> {
    let failures = match i {
        _ if i % 31 == 0 => u32::MAX,
        _ if i % 7 == 0 => 2,
        _ if i % 5 == 0 => 1,
        _ => 0,
    };
    if i % 23 == 0 {
        Err(ProviderError::BadRequest)
    } else if attempt <= failures {
        Err(ProviderError::RateLimited)
    } else {
        Ok(format!("completion {i}"))
    }
}

#[retry_on_failure(
    name = "openai.complete",
    stats = true,
    max_attempts = 4,
    initial_delay = 0.5
)]
async fn complete(i: u32, attempts: &AtomicU32) -> Result<String, ProviderError> {
    flaky(i, attempts.fetch_add(1, Ordering::Relaxed) + 1)
}

#[retry_on_failure(name = "anthropic.messages", stats = true, max_attempts = 3)]
async fn messages(i: u32, attempts: &AtomicU32) -> Result<String, ProviderError> {
    flaky(i + 3, attempts.fetch_add(1, Ordering::Relaxed) + 1)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    for i in 1..=200 {
        let _ = complete(i, &AtomicU32::new(0)).await;
        let _ = messages(i, &AtomicU32::new(0)).await;
    }
    print!("{}", stats::snapshot());
    #[cfg(feature = "serde")]
    println!(
        "{}",
        serde_json::to_string_pretty(&stats::snapshot()).unwrap()
    );
}
