//! `retry_if` (errors a type list cannot express), `retry_if_ok` (an `Ok` that asks for another
//! attempt) and `fallback` (the final error turned into a result), on the paused clock.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use retry_runtime::{retry_on_failure, Retryable};
use tokio::time::Instant;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ApiError {
    Status(u16),
    Timeout,
}

impl ApiError {
    fn is_transient(&self) -> bool {
        matches!(self, ApiError::Timeout | ApiError::Status(500..=599))
    }
}

/// Replays a script of results, one per attempt, counting attempts.
struct Script<T: Copy> {
    steps: Vec<T>,
    next: AtomicU32,
}

impl<T: Copy> Script<T> {
    fn new(steps: Vec<T>) -> Self {
        Script {
            steps,
            next: AtomicU32::new(0),
        }
    }
    fn next(&self) -> T {
        let i = self.next.fetch_add(1, SeqCst) as usize;
        self.steps[i.min(self.steps.len() - 1)]
    }
    fn attempts(&self) -> u32 {
        self.next.load(SeqCst)
    }
}

#[retry_on_failure(max_attempts = 5, initial_delay = 0.1, jitter = "none", retry_if = |e| e.is_transient())]
async fn closure_predicate(s: &Script<Result<u32, ApiError>>) -> Result<u32, ApiError> {
    s.next()
}

fn only_timeouts(e: &ApiError) -> bool {
    *e == ApiError::Timeout
}

#[retry_on_failure(max_attempts = 5, initial_delay = 0.1, jitter = "none", retry_if = only_timeouts)]
async fn path_predicate(s: &Script<Result<u32, ApiError>>) -> Result<u32, ApiError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn retry_if_decides_which_errors_are_retried() {
    let s = Script::new(vec![
        Err(ApiError::Status(503)),
        Err(ApiError::Timeout),
        Ok(7),
    ]);
    assert_eq!(closure_predicate(&s).await, Ok(7));
    assert_eq!(s.attempts(), 3);

    // A 404 is not transient: returned after one attempt, without sleeping.
    let s = Script::new(vec![Err(ApiError::Status(404)), Ok(7)]);
    let start = Instant::now();
    assert_eq!(closure_predicate(&s).await, Err(ApiError::Status(404)));
    assert_eq!((s.attempts(), start.elapsed()), (1, Duration::ZERO));

    // A fn path works the same; a 503 is not a timeout, so it is not retried here.
    let s = Script::new(vec![
        Err(ApiError::Timeout),
        Err(ApiError::Status(503)),
        Ok(1),
    ]);
    assert_eq!(path_predicate(&s).await, Err(ApiError::Status(503)));
    assert_eq!(s.attempts(), 2);
}

/// An error type with its own classification and a Retry-After hint.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Throttled {
    fatal: bool,
}

impl Retryable for Throttled {
    fn is_retryable(&self) -> bool {
        !self.fatal
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(4))
    }
}

#[retry_on_failure(max_attempts = 2, initial_delay = 0.1, jitter = "none", retry_if = |_| true)]
async fn predicate_overrides_trait(s: &Script<Result<u32, Throttled>>) -> Result<u32, Throttled> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn retry_if_overrides_the_trait_but_keeps_its_retry_after_hint() {
    let s = Script::new(vec![Err(Throttled { fatal: true }), Ok(3)]);
    let start = Instant::now();
    assert_eq!(predicate_overrides_trait(&s).await, Ok(3));
    // The trait said "give up"; retry_if said "retry" and wins. The hint (4 s) still applies,
    // plus at most a tenth of it as spread.
    let slept = start.elapsed();
    assert!(
        slept >= Duration::from_secs(4) && slept <= Duration::from_millis(4400),
        "{slept:?}"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Pending,
    Done(u32),
}

#[retry_on_failure(max_attempts = 4, initial_delay = 1, jitter = "none", retry_if_ok = |job| *job == Job::Pending)]
async fn poll_job(s: &Script<Result<Job, ApiError>>) -> Result<Job, ApiError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn retry_if_ok_retries_pending_results_with_backoff() {
    let s = Script::new(vec![Ok(Job::Pending), Ok(Job::Pending), Ok(Job::Done(9))]);
    let start = Instant::now();
    assert_eq!(poll_job(&s).await, Ok(Job::Done(9)));
    assert_eq!(s.attempts(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(1 + 2));
}

#[tokio::test(start_paused = true)]
async fn retry_if_ok_returns_the_last_ok_after_the_last_attempt() {
    let s = Script::new(vec![Ok(Job::Pending)]);
    assert_eq!(poll_job(&s).await, Ok(Job::Pending));
    assert_eq!(s.attempts(), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_if_ok_still_retries_errors() {
    let s = Script::new(vec![
        Err(ApiError::Timeout),
        Ok(Job::Pending),
        Ok(Job::Done(1)),
    ]);
    assert_eq!(poll_job(&s).await, Ok(Job::Done(1)));
    assert_eq!(s.attempts(), 3);
}

#[retry_on_failure(max_attempts = 2, initial_delay = 0.1, fallback = |e| match e {
    ApiError::Timeout => Ok(0),
    other => Err(other),
})]
async fn with_fallback(s: &Script<Result<u32, ApiError>>) -> Result<u32, ApiError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn fallback_turns_the_final_error_into_a_result() {
    let s = Script::new(vec![Err(ApiError::Timeout)]);
    assert_eq!(with_fallback(&s).await, Ok(0));
    assert_eq!(
        s.attempts(),
        2,
        "the fallback runs after the retries, not instead of them"
    );

    let s = Script::new(vec![Err(ApiError::Status(500))]);
    assert_eq!(with_fallback(&s).await, Err(ApiError::Status(500)));

    let s = Script::new(vec![Ok(5)]);
    assert_eq!(with_fallback(&s).await, Ok(5));
}
