//! Retries for async calls that fail the way network calls fail: rate limits, timeouts, server
//! errors, dropped connections.
//!
//! Put `#[retry_on_failure]` on an async fn that returns a `Result`. Each failed attempt is
//! followed by a sleep that grows exponentially (1 s, 2 s, 4 s, ... capped at 10 s by default)
//! with random jitter, until an attempt succeeds or the attempts run out; the last error is then
//! returned.
//!
//! ```
//! use retry_runtime::retry_on_failure;
//! # #[derive(Debug)] struct ProviderError;
//!
//! struct OpenAi {
//!     failures_left: std::sync::atomic::AtomicU32,
//! }
//!
//! impl OpenAi {
//!     #[retry_on_failure(max_attempts = 3, initial_delay = 1.0, max_delay = 10.0, backoff_factor = 2.0)]
//!     async fn complete(&self, prompt: &str) -> Result<String, ProviderError> {
//!         use std::sync::atomic::Ordering::SeqCst;
//!         if self.failures_left.fetch_sub(1, SeqCst) > 0 {
//!             return Err(ProviderError); // ends this attempt; the attribute retries
//!         }
//!         Ok(format!("echo: {prompt}"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let client = OpenAi { failures_left: 2.into() };
//! let started = tokio::time::Instant::now();
//! assert_eq!(client.complete("hi").await.unwrap(), "echo: hi");
//! // Two failures, two sleeps: at most 1 s + 2 s with full jitter.
//! assert!(started.elapsed() <= std::time::Duration::from_secs(3));
//! # }
//! ```
//!
//! The same policy is a value too, [`RetryPolicy`], whose delay math is pure and testable:
//! [`Backoff`] gives the schedule and [`Jitter`] randomises it.
//!
//! ## How the attribute rewrites a fn
//!
//! The body becomes a loop inside the same fn: each attempt runs the original body as a
//! non-`move` `async` block, so `?` and `return` end the attempt (not the call), `&self` and
//! `&mut self` are re-borrowed on every attempt, and the fn's future is `Send` whenever the body's
//! is. Nothing is boxed or cloned, and a call that succeeds on its first attempt does not allocate.
//! A body that moves an owned argument cannot be run twice: the compiler says so, pointing at the
//! argument. List such arguments in `clone = [..]` to give each attempt its own clone.
//!
//! ## Classification
//!
//! Which errors get another attempt is decided in this order, the first rule that applies winning:
//!
//! 1. `give_up_on = [..]`: an error matching a listed type is returned at once.
//! 2. `retry_on = [..]` / `retry_if = ..`: when either is given, only the errors they accept are
//!    retried.
//! 3. The [`Retryable`] trait, when the error type implements it: implemented here for
//!    `std::io::Error` (by [`ErrorKind`](std::io::ErrorKind)), tokio's `Elapsed`, and, with features,
//!    `http::StatusCode` and `reqwest::Error` (tables in [`http`]).
//! 4. Otherwise every error is retried.
//!
//! An error *matches* a type `T` when it, or any error in its `source()` chain, is a `T`
//! ([`chain_has`]): concrete error types, `Box<dyn Error + Send + Sync>` and `anyhow::Error` (through
//! its `.context(..)` layers) all work; see [`Inspect`] for `#[error(transparent)]`.
//!
//! A server's `Retry-After` (from [`Retryable::retry_after`], parsed by [`retry_after`]) is never
//! undercut: the sleep is the larger of the backoff and the hint, plus a spread of up to a tenth of
//! the hint (at most 1 s) so that clients told the same instant do not return together. A hint that
//! would end past `max_time`, or exceeds `max_retry_after` (120 s by default), gives up at once and
//! returns the error instead of sleeping.
//!
//! ```
//! use retry_runtime::{retry_on_failure, Retryable};
//! use std::time::Duration;
//!
//! #[derive(Debug)]
//! enum ProviderError { RateLimited(Duration), BadKey }
//!
//! impl Retryable for ProviderError {
//!     fn is_retryable(&self) -> bool {
//!         matches!(self, ProviderError::RateLimited(_))
//!     }
//!     fn retry_after(&self) -> Option<Duration> {
//!         match self {
//!             ProviderError::RateLimited(hint) => Some(*hint),
//!             ProviderError::BadKey => None,
//!         }
//!     }
//! }
//!
//! #[retry_on_failure(max_attempts = 3)]
//! async fn complete(bad_key: bool) -> Result<String, ProviderError> {
//!     Err(if bad_key { ProviderError::BadKey } else { ProviderError::RateLimited(Duration::from_secs(5)) })
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let start = tokio::time::Instant::now();
//! assert!(matches!(complete(true).await, Err(ProviderError::BadKey)));
//! assert_eq!(start.elapsed(), Duration::ZERO); // not retried
//!
//! complete(false).await.unwrap_err();
//! assert!(start.elapsed() >= Duration::from_secs(10)); // two sleeps of at least 5 s
//! # }
//! ```
//!
//! ## Settings at run time
//!
//! - **Environment**: [`RetryPolicy::from_env("LLM")`](RetryPolicy::from_env) reads
//!   `LLM_MAX_RETRIES`, `LLM_RETRY_INITIAL_DELAY`, ... and fails on a bad value;
//!   [`EnvPolicy`] (what the attribute's `env_prefix` uses) reads them once over compiled-in
//!   settings, keeping those and warning once per unusable variable.
//! - **Closures**: [`policy.retry(|| async { .. }).await`](RetryPolicy::retry) and
//!   [`policy.retry_blocking(|| ..).call()`](RetryPolicy::retry_blocking) run the attribute's
//!   engine without the attribute, with a classifier, observers and an
//!   [`attempt_timeout`](Retry::attempt_timeout).
//! - **Per request** (feature `http`): `RetryPolicy::from_headers(&headers, "helicone-")` reads
//!   Helicone's `helicone-retry-*` headers.
//!
//! ## Resilience across calls
//!
//! Shared by every call to one provider, usually as `static`s given to the attribute:
//! [`CircuitBreaker`] (`circuit_breaker = ..`: closed, open, half-open; opens after
//! [`failure_threshold`](CircuitBreaker::failure_threshold) consecutive retryable failures or,
//! opt-in, a [`failure_ratio`](CircuitBreaker::failure_ratio) over a time window; while open a
//! call returns [`CircuitOpen`] without touching the provider), [`RetryBudget`] (`budget = ..`: retries spend
//! tokens, successes earn them back) and [`AdaptiveThrottle`] (`throttle = ..`: learns the
//! provider's rate from 429s and paces every caller). Each is lock-free or holds a lock for a few
//! instructions, and is `Send + Sync`.
//!
//! ```
//! use retry_runtime::{retry_on_failure, CircuitBreaker, CircuitOpen, RetryBudget};
//! use std::time::Duration;
//!
//! static OPENAI: CircuitBreaker = CircuitBreaker::new("openai")
//!     .failure_threshold(5)
//!     .failure_ratio(0.5, Duration::from_secs(60), 20)
//!     .cool_down(Duration::from_secs(30));
//! static OPENAI_BUDGET: RetryBudget = RetryBudget::new();
//!
//! #[derive(Debug)]
//! enum ProviderError { Unavailable, Open(CircuitOpen) }
//! impl From<CircuitOpen> for ProviderError {
//!     fn from(open: CircuitOpen) -> Self { ProviderError::Open(open) }
//! }
//!
//! #[retry_on_failure(circuit_breaker = OPENAI, budget = OPENAI_BUDGET)]
//! async fn complete(prompt: &str) -> Result<String, ProviderError> {
//!     Ok(prompt.to_owned())
//! }
//! ```
//!
//! ## Seeing retries
//!
//! `stats = true` (or the `stats` feature, for every annotated fn) records each call in a
//! [`stats::FnStats`]; [`stats::snapshot()`] lists them all and prints as a table. `on_retry`,
//! `on_give_up` and `on_success` run closures with a [`RetryEvent`], a [`GiveUpEvent`] and a
//! [`SuccessEvent`]; `context = ctx` binds an
//! [`AttemptContext`] (attempt number, elapsed time, idempotency key) inside the body. The
//! `tracing` and `metrics` features report through [`tracing_observer`] and [`metrics_observer`].
//!
//! ```
//! use retry_runtime::{retry_on_failure, stats, AttemptContext, RetryEvent};
//! # #[derive(Debug)] struct Flaky;
//!
//! fn log(err: &Flaky, event: &RetryEvent) {
//!     eprintln!("{}: attempt {} failed ({err:?}), retrying in {:?}", event.name, event.attempt, event.delay);
//! }
//!
//! #[retry_on_failure(name = "demo.call", stats = true, on_retry = log, context = ctx, initial_delay = 0)]
//! async fn call(fail_first: bool) -> Result<String, Flaky> {
//!     let ctx: &AttemptContext = ctx;
//!     if fail_first && ctx.attempt() == 1 {
//!         return Err(Flaky);
//!     }
//!     Ok(ctx.idempotency_key().to_string())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! call(true).await.unwrap();
//! let snapshot = stats::snapshot();
//! let figures = snapshot.get("demo.call").unwrap();
//! assert_eq!((figures.calls, figures.retries), (1, 1));
//! println!("{snapshot}");
//! # }
//! ```
//!
//! ## Testing your own code
//!
//! Two ways to keep the retries of the code under test from slowing a test suite down:
//!
//! - **tokio's paused clock**, `#[tokio::test(start_paused = true)]`: every sleep completes at once
//!   and advances the clock by exactly its length, so a test can assert the delays themselves
//!   (with `Jitter::None` they are exact). Everything in the runtime sees the paused clock, which
//!   does not suit tests that talk to a real server or use real timeouts.
//! - **[`testing::no_sleep()`](testing::no_sleep)**: retries on the current thread skip their
//!   sleeps, on the real clock, in async and blocking code alike; everything else keeps its normal
//!   timing. Scoped to the thread (or, with [`testing::without_sleeping`], to one future), so tests
//!   running in parallel are not affected. Delays are still computed and reported to observers.
//!
//! ```
//! use retry_runtime::{retry_on_failure, testing};
//! # #[derive(Debug)] struct Down;
//!
//! #[retry_on_failure(max_attempts = 5, initial_delay = 10.0, max_delay = 60.0)]
//! async fn fetch(calls: &std::cell::Cell<u32>) -> Result<(), Down> {
//!     calls.set(calls.get() + 1);
//!     Err(Down)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let _no_sleep = testing::no_sleep(); // until the end of the test
//! let calls = std::cell::Cell::new(0);
//! let started = std::time::Instant::now();
//! assert!(fetch(&calls).await.is_err());
//! assert_eq!(calls.get(), 5); // every attempt ran...
//! assert!(started.elapsed() < std::time::Duration::from_secs(1)); // ...without the minutes of backoff
//! # }
//! ```
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod backoff;
mod breaker;
mod budget;
mod call;
mod classify;
mod context;
mod describe;
mod env;
mod epoch;
mod error;
mod events;
mod gate;
#[cfg(feature = "http")]
mod headers;
mod hooks;
pub mod http;
mod inspect;
mod jitter;
pub mod metrics_observer;
mod observe;
mod optional;
mod per_thread;
mod policy;
pub mod retry;
pub mod retry_after;
mod sleep;
pub mod stats;
pub mod testing;
mod throttle;
mod timeout;
pub mod tracing_observer;

#[doc(hidden)]
pub mod __private;

pub use backoff::Backoff;
pub use breaker::{
    BreakerPermit, BreakerStats, CircuitBreaker, CircuitState, FailureRatio, WindowCounts,
};
pub use budget::{BudgetStats, RetryBudget};
pub use call::{CallClock, CallState, DynCallState, IsResult, Shut};
pub use classify::{Classification, Retryable};
pub use context::{
    AttemptContext, ContextState, HeaderStr, IdempotencyKey, IDEMPOTENCY_KEY_HEADER,
    RETRY_COUNT_HEADER,
};
pub use env::{default_warning_sink, process_env, EnvPolicy, EnvWarning};
pub use error::PolicyError;
pub use events::{GiveUpEvent, GiveUpReason, RetryEvent, SuccessEvent};
pub use gate::{Admission, AttemptOutcome, CircuitOpen, FromCircuitOpen, Gate, Outlook};
pub use hooks::{OnGiveUp, OnRetry, OnSuccess};
pub use inspect::{chain, chain_find, chain_has, Inspect};
pub use jitter::Jitter;
pub use observe::Observer;
pub use policy::{RetryPolicy, RetryPolicyBuilder};
pub use retry::{Retry, RetryFuture};
pub use throttle::{AdaptiveThrottle, ThrottlePermit, ThrottleStats};
pub use timeout::{AttemptTimedOut, FromAttemptTimeout};

#[doc(inline)]
pub use retry_macro::retry_on_failure;
