//! `retry_on` and `give_up_on` through the attribute: an error matches a listed type when it, or
//! any error in its `source()` chain, is of that type. Paused clock: every retry is observable as
//! an attempt count and exact elapsed time.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use retry_runtime::{retry_on_failure, Inspect, Retryable};
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
struct RateLimitError;

#[derive(Debug, thiserror::Error)]
#[error("timed out")]
struct TimeoutError;

/// A bad key, possibly reported while the provider was also rate limiting.
#[derive(Debug, thiserror::Error, Default)]
#[error("bad key")]
struct AuthenticationError {
    #[source]
    while_rate_limited: Option<RateLimitError>,
}

/// The transport layer: wraps the provider's errors with `#[from]` and `#[source]`.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("request failed")]
    RateLimited(#[from] RateLimitError),
    #[error("request timed out")]
    Timeout(#[source] TimeoutError),
    #[error("unauthorised")]
    Auth(#[source] AuthenticationError),
    #[error("malformed")]
    Malformed,
}

/// The client's error: a second layer over the transport's.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("transport")]
    Transport(#[from] TransportError),
}

/// Returns the scripted errors in order, then `Ok(attempt)`.
struct Script<E> {
    errors: std::sync::Mutex<Vec<E>>,
    attempts: AtomicU32,
}

impl<E> Script<E> {
    fn new(mut errors: Vec<E>) -> Self {
        errors.reverse();
        Script {
            errors: std::sync::Mutex::new(errors),
            attempts: AtomicU32::new(0),
        }
    }
    fn next(&self) -> Result<u32, E> {
        let n = self.attempts.fetch_add(1, SeqCst) + 1;
        match self.errors.lock().unwrap().pop() {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
    fn attempts(&self) -> u32 {
        self.attempts.load(SeqCst)
    }
}

fn rate() -> ClientError {
    ClientError::Transport(TransportError::RateLimited(RateLimitError))
}
fn timeout() -> ClientError {
    ClientError::Transport(TransportError::Timeout(TimeoutError))
}
fn auth() -> ClientError {
    ClientError::Transport(TransportError::Auth(AuthenticationError::default()))
}

#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 1,
    jitter = "none",
    retry_on = [RateLimitError, TimeoutError],
    give_up_on = [AuthenticationError],
)]
async fn complete(s: &Script<ClientError>) -> Result<u32, ClientError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn listed_errors_match_through_two_layers_of_sources() {
    // RateLimitError is two layers down (#[from] then #[from]); TimeoutError behind #[source].
    let s = Script::new(vec![rate(), timeout()]);
    let start = Instant::now();
    assert_eq!(complete(&s).await.unwrap(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(1 + 2));
}

#[tokio::test(start_paused = true)]
async fn give_up_on_returns_at_once() {
    let s = Script::new(vec![rate(), auth()]);
    let start = Instant::now();
    let err = complete(&s).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Transport(TransportError::Auth(_))
    ));
    assert_eq!((s.attempts(), start.elapsed()), (2, Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn with_retry_on_unlisted_errors_are_not_retried() {
    let s = Script::new(vec![ClientError::Transport(TransportError::Malformed)]);
    assert!(complete(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn give_up_on_wins_over_retry_on_in_the_same_chain() {
    // The chain holds an AuthenticationError and, under it, a RateLimitError.
    let both = ClientError::Transport(TransportError::Auth(AuthenticationError {
        while_rate_limited: Some(RateLimitError),
    }));
    let s = Script::new(vec![both]);
    assert!(complete(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

/// `give_up_on` alone: everything else keeps the default (retry).
#[retry_on_failure(max_attempts = 3, initial_delay = 0.5, jitter = "none", give_up_on = AuthenticationError)]
async fn only_give_up(s: &Script<ClientError>) -> Result<u32, ClientError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn give_up_on_alone_retries_everything_else() {
    let s = Script::new(vec![
        ClientError::Transport(TransportError::Malformed),
        timeout(),
    ]);
    assert_eq!(only_give_up(&s).await.unwrap(), 3);
    let s = Script::new(vec![auth()]);
    assert!(only_give_up(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[retry_on_failure(max_attempts = 3, initial_delay = 0, retry_on = [RateLimitError])]
async fn boxed(s: &Script<BoxError>) -> Result<u32, BoxError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn boxed_dyn_errors_are_inspected() {
    let s = Script::new(vec![Box::new(rate()) as BoxError, Box::new(RateLimitError)]);
    assert_eq!(boxed(&s).await.unwrap(), 3);
    let s = Script::new(vec![Box::new(auth()) as BoxError]);
    assert!(boxed(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0, retry_on = [RateLimitError, TimeoutError])]
async fn with_anyhow(s: &Script<anyhow::Error>) -> anyhow::Result<u32> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn anyhow_errors_match_through_context_layers() {
    use anyhow::Context;
    let wrapped: Result<(), ClientError> = Err(rate());
    let wrapped = wrapped
        .context("calling the provider")
        .context("answering the user")
        .unwrap_err();
    let s = Script::new(vec![wrapped, anyhow::Error::new(TimeoutError)]);
    assert_eq!(with_anyhow(&s).await.unwrap(), 3);

    let s = Script::new(vec![anyhow::Error::new(auth()).context("layer")]);
    assert!(with_anyhow(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

/// `#[error(transparent)]` forwards `source()` to the wrapped error's own source, so the wrapped
/// type is invisible to a chain walk; three lines of `Inspect` show it.
#[derive(Debug, thiserror::Error)]
enum Transparent {
    #[error(transparent)]
    Rate(#[from] RateLimitError),
    #[error(transparent)]
    Other(#[from] AuthenticationError),
}

impl Inspect for Transparent {
    fn as_dyn_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Transparent::Rate(e) => e,
            Transparent::Other(e) => e,
        }
    }
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0, retry_on = [RateLimitError])]
async fn transparent(s: &Script<Transparent>) -> Result<u32, Transparent> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn transparent_variants_match_with_an_inspect_impl() {
    let s = Script::new(vec![Transparent::Rate(RateLimitError)]);
    assert_eq!(transparent(&s).await.unwrap(), 2);
    let s = Script::new(vec![Transparent::Other(AuthenticationError::default())]);
    assert!(transparent(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}

/// A listed error keeps its own `Retry-After` hint.
#[derive(Debug, thiserror::Error)]
#[error("slow down")]
struct SlowDown;

impl Retryable for SlowDown {
    fn is_retryable(&self) -> bool {
        false // the list overrides this...
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(5)) // ...but keeps this
    }
}

#[retry_on_failure(max_attempts = 2, initial_delay = 0.1, jitter = "none", retry_on = SlowDown)]
async fn slow_down(s: &Script<SlowDown>) -> Result<u32, SlowDown> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn retry_on_keeps_the_errors_retry_after_hint() {
    let s = Script::new(vec![SlowDown]);
    let start = Instant::now();
    assert_eq!(slow_down(&s).await.unwrap(), 2);
    let slept = start.elapsed();
    assert!(
        slept >= Duration::from_secs(5) && slept <= Duration::from_millis(5500),
        "{slept:?}"
    );
}

/// `retry_if` and `retry_on` together: either accepts.
#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 0,
    retry_on = [TimeoutError],
    retry_if = |e: &ClientError| matches!(e, ClientError::Transport(TransportError::Malformed)),
)]
async fn list_or_predicate(s: &Script<ClientError>) -> Result<u32, ClientError> {
    s.next()
}

#[tokio::test(start_paused = true)]
async fn retry_if_and_retry_on_are_alternatives() {
    let s = Script::new(vec![
        timeout(),
        ClientError::Transport(TransportError::Malformed),
    ]);
    assert_eq!(list_or_predicate(&s).await.unwrap(), 3);
    let s = Script::new(vec![rate()]);
    assert!(list_or_predicate(&s).await.is_err());
    assert_eq!(s.attempts(), 1);
}
