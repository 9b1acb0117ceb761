//! `max_time` through the attribute, on the paused clock: "no sleep is started that would end
//! past it; the last error is returned instead" (README). tests/properties.rs checks the state
//! machine with 100,000 scripted calls; these check whole calls, attempts taking time included.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

use retry_runtime::{retry_on_failure, AdaptiveThrottle, GiveUpEvent, GiveUpReason, Retryable};
use tokio::time::Instant;

/// A failure whose attempt took `took`, with an optional server hint.
#[derive(Debug, PartialEq)]
struct Slow {
    hint: Option<Duration>,
}

impl Retryable for Slow {
    fn is_retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        self.hint
    }
}

static REASON: Mutex<Option<GiveUpReason>> = Mutex::new(None);
static ATTEMPT_MS: AtomicU64 = AtomicU64::new(0);
static HINT_MS: AtomicU64 = AtomicU64::new(0);

fn remember(_: &Slow, event: &GiveUpEvent) {
    *REASON.lock().unwrap() = Some(event.reason);
}

#[retry_on_failure(
    max_attempts = 1000,
    initial_delay = 0.3,
    max_delay = 5,
    backoff_factor = 1.7,
    max_time = 10,
    on_give_up = remember
)]
async fn deadline_bound() -> Result<(), Slow> {
    let took = Duration::from_millis(ATTEMPT_MS.load(SeqCst));
    tokio::time::sleep(took).await;
    let hint = HINT_MS.load(SeqCst);
    Err(Slow {
        hint: (hint > 0).then(|| Duration::from_millis(hint)),
    })
}

/// Calls whose attempts take 0 to 1.9 s, with and without server hints: the last sleep ends by
/// 10 s, so the call ends by 10 s plus its last attempt, and always for the deadline.
#[tokio::test(start_paused = true)]
async fn no_sleep_ends_past_max_time() {
    let mut calls = 0;
    for attempt_ms in (0..2_000).step_by(100) {
        for hint_ms in [0, 1, 700, 4_000, 9_999, 10_001] {
            ATTEMPT_MS.store(attempt_ms, SeqCst);
            HINT_MS.store(hint_ms, SeqCst);
            let start = Instant::now();
            deadline_bound().await.unwrap_err();
            let took = start.elapsed();
            let bound = Duration::from_secs(10) + Duration::from_millis(attempt_ms);
            assert!(
                took <= bound,
                "{attempt_ms} ms attempts, hint {hint_ms} ms: {took:?}"
            );
            assert_eq!(REASON.lock().unwrap().take(), Some(GiveUpReason::Deadline));
            calls += 1;
        }
    }
    assert_eq!(calls, 20 * 6);
}

static PACED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
/// One attempt every 10 s.
static SLOW_LANE: AdaptiveThrottle = AdaptiveThrottle::new()
    .min_rate(0.01)
    .initial_rate(0.1)
    .burst(Duration::ZERO);

#[retry_on_failure(
    max_attempts = 5,
    initial_delay = 0.1,
    max_time = 2,
    jitter = "none",
    throttle = SLOW_LANE
)]
async fn paced() -> Result<(), &'static str> {
    PACED_ATTEMPTS.fetch_add(1, SeqCst);
    Err("down")
}

/// The wait for a throttle's slot counts against the deadline: when the retry is decided, the
/// throttle says how long the next attempt would wait for its slot (`Gate::outlook`), and a retry
/// whose attempt would start past `max_time` is not made. Here the next slot is 10 s away with 2 s
/// of budget: the call returns its error at once after the first attempt.
#[tokio::test(start_paused = true)]
async fn a_throttle_wait_does_not_cross_max_time() {
    let start = Instant::now();
    assert_eq!(paced().await, Err("down"));
    assert!(
        start.elapsed() <= Duration::from_secs(2),
        "{:?} for {} attempts",
        start.elapsed(),
        PACED_ATTEMPTS.load(SeqCst)
    );
    assert_eq!(PACED_ATTEMPTS.load(SeqCst), 1);
}
