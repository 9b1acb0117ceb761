//! Retries without sleeping, for the test suites of code that uses this crate (stamina's
//! `set_testing`), scoped so that tests running in parallel do not affect each other.
//!
//! Two ways to scope it, both per thread of execution rather than per process:
//!
//! - [`no_sleep`] returns a guard; until it is dropped, retries on the current thread do not sleep.
//!   `#[tokio::test]` runs the test's own future on the test thread (with either runtime flavor),
//!   so a guard taken at the top of the test covers everything the test awaits directly.
//! - [`without_sleeping`] wraps a future: retries inside it do not sleep, on whichever thread it
//!   is polled. Use it for tasks a test spawns, which run on other threads.
//!
//! Delays are still computed and reported to observers; only the sleep is skipped. The switch is
//! consulted only when a retry is about to sleep, so a call that succeeds at once never reads it.
//!
//! ```
//! use retry_runtime::{testing, RetryPolicy};
//! use std::time::{Duration, Instant};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let _no_sleep = testing::no_sleep();
//! let policy = RetryPolicy::builder().max_attempts(5).initial_delay(Duration::from_secs(30))
//!     .max_delay(Duration::from_secs(60)).build().unwrap();
//! let started = Instant::now(); // the real clock: nothing is paused here
//! let mut calls = 0;
//! let result: Result<(), &str> = policy.retry(|| { calls += 1; async { Err("down") } }).await;
//! assert_eq!((result, calls), (Err("down"), 5));
//! assert!(started.elapsed() < Duration::from_secs(1)); // not the minutes of backoff
//! # }
//! ```

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

thread_local! {
    /// How many guards are alive on this thread.
    static NO_SLEEP: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread asked for no sleeping. During thread teardown, sleep as usual.
#[inline]
pub(crate) fn sleeping_disabled() -> bool {
    NO_SLEEP.try_with(|n| n.get() > 0).unwrap_or(false)
}

/// Switches sleeping off on the current thread until the guard is dropped. Guards nest.
///
/// The guard cannot be sent to another thread: the switch belongs to the thread that took it.
pub fn no_sleep() -> NoSleepGuard {
    NO_SLEEP.with(|n| n.set(n.get().saturating_add(1)));
    NoSleepGuard {
        _thread_bound: PhantomData,
    }
}

/// Returned by [`no_sleep`]: retries on this thread do not sleep while it is alive.
#[must_use = "sleeping is switched back on when the guard is dropped"]
#[derive(Debug)]
pub struct NoSleepGuard {
    _thread_bound: PhantomData<*const ()>,
}

impl Drop for NoSleepGuard {
    fn drop(&mut self) {
        let _ = NO_SLEEP.try_with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Runs `fut` with sleeping switched off while it is polled, on whichever thread polls it; the
/// rest of that thread is not affected.
///
/// ```
/// use retry_runtime::{testing, RetryPolicy};
///
/// # #[tokio::main]
/// # async fn main() {
/// let task = tokio::spawn(testing::without_sleeping(async {
///     let mut calls = 0;
///     let result: Result<(), &str> =
///         RetryPolicy::DEFAULT.retry(|| { calls += 1; async { Err("down") } }).await;
///     (result, calls)
/// }));
/// assert_eq!(task.await.unwrap(), (Err("down"), 3));
/// # }
/// ```
pub fn without_sleeping<F: IntoFuture>(fut: F) -> WithoutSleeping<F::IntoFuture> {
    WithoutSleeping {
        inner: fut.into_future(),
    }
}

pin_project! {
    /// Returned by [`without_sleeping`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct WithoutSleeping<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for WithoutSleeping<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _guard = no_sleep();
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_nest_and_stay_on_their_thread() {
        assert!(!sleeping_disabled());
        let outer = no_sleep();
        {
            let _inner = no_sleep();
            assert!(sleeping_disabled());
            std::thread::spawn(|| assert!(!sleeping_disabled()))
                .join()
                .unwrap();
        }
        assert!(sleeping_disabled());
        drop(outer);
        assert!(!sleeping_disabled());
    }
}
