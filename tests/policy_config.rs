//! `config = <expr>`: the policy is a value evaluated at each call, e.g. a provider's settings.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use retry_runtime::{retry_on_failure, Jitter, RetryPolicy};
use tokio::time::Instant;

#[derive(Debug, PartialEq, Eq)]
struct Unavailable;

struct Provider {
    retry_settings: RetryPolicy,
    calls: AtomicU32,
}

impl Provider {
    #[retry_on_failure(config = self.retry_settings)]
    async fn complete(&self) -> Result<u32, Unavailable> {
        self.calls.fetch_add(1, SeqCst);
        Err(Unavailable)
    }
}

fn settings(attempts: u32, initial_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(initial_ms))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn config_from_a_field_is_read_per_instance() {
    for (attempts, initial_ms, slept_ms) in [(5, 100, 100 + 200 + 400 + 800), (2, 1500, 1500)] {
        let p = Provider {
            retry_settings: settings(attempts, initial_ms),
            calls: AtomicU32::new(0),
        };
        let start = Instant::now();
        assert_eq!(p.complete().await, Err(Unavailable));
        assert_eq!(p.calls.load(SeqCst), attempts);
        assert_eq!(start.elapsed(), Duration::from_millis(slept_ms));
    }
}

static SHARED: std::sync::LazyLock<RetryPolicy> = std::sync::LazyLock::new(|| {
    RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_secs(1))
        .jitter(Jitter::None)
        .max_time(Duration::from_secs(2))
        .build()
        .unwrap()
});

static STATIC_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry_on_failure(config = SHARED)]
async fn from_static() -> Result<u32, Unavailable> {
    STATIC_CALLS.fetch_add(1, SeqCst);
    Err(Unavailable)
}

#[tokio::test(start_paused = true)]
async fn config_from_a_static_honours_max_time() {
    let start = Instant::now();
    assert_eq!(from_static().await, Err(Unavailable));
    // 1 s, then a 2 s sleep would end at 3 s > max_time 2 s.
    assert_eq!(STATIC_CALLS.load(SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
