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
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod backoff;
mod call;
mod classify;
mod context;
mod describe;
mod error;
mod events;
mod gate;
mod hooks;
mod jitter;
pub mod metrics_observer;
mod observe;
mod policy;
mod retry_after;
pub mod stats;
pub mod tracing_observer;

#[doc(hidden)]
pub mod __private;

pub use backoff::Backoff;
pub use call::{CallClock, CallState, IsResult};
pub use classify::{Classification, Retryable};
pub use context::{
    AttemptContext, ContextState, HeaderStr, IdempotencyKey, IDEMPOTENCY_KEY_HEADER,
    RETRY_COUNT_HEADER,
};
pub use error::PolicyError;
pub use events::{GiveUpEvent, GiveUpReason, RetryEvent};
pub use gate::{Admission, AttemptOutcome, CircuitOpen, Gate};
pub use hooks::{OnGiveUp, OnRetry};
pub use jitter::Jitter;
pub use observe::Observer;
pub use policy::{RetryPolicy, RetryPolicyBuilder};

#[doc(inline)]
pub use retry_macro::retry_on_failure;
