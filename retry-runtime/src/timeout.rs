//! A deadline on each attempt (`attempt_timeout`): the error an attempt that ran too long ends
//! with, and the wrapper that imposes it.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::{IsResult, Retryable};

/// The error of an attempt cut off by `attempt_timeout`. It is retryable: the next attempt may be
/// faster.
///
/// A fn or closure with an attempt timeout returns it through its own error type, which must
/// implement `From<AttemptTimedOut>` (`anyhow::Error`, `Box<dyn Error + Send + Sync>` and
/// `std::io::Error` already do):
///
/// ```
/// use retry_runtime::{AttemptTimedOut, Retryable};
///
/// #[derive(Debug, thiserror::Error)]
/// enum ProviderError {
///     #[error("the provider is overloaded")]
///     Overloaded,
///     #[error(transparent)]
///     Timeout(#[from] AttemptTimedOut),
/// }
///
/// impl Retryable for ProviderError {
///     fn is_retryable(&self) -> bool {
///         match self {
///             ProviderError::Overloaded => true,
///             ProviderError::Timeout(t) => t.is_retryable(),
///         }
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the attempt did not finish within {after:?}")]
pub struct AttemptTimedOut {
    /// The timeout that expired.
    pub after: Duration,
}

impl Retryable for AttemptTimedOut {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// `io::ErrorKind::TimedOut`, so that fns returning `io::Result` can take an attempt timeout.
impl From<AttemptTimedOut> for std::io::Error {
    fn from(t: AttemptTimedOut) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, t)
    }
}

/// An error type that can carry [`AttemptTimedOut`]: every `E: From<AttemptTimedOut>`. A trait of
/// its own so that a missing conversion is reported in terms of `attempt_timeout`.
#[diagnostic::on_unimplemented(
    message = "`attempt_timeout` needs the error type `{Self}` to implement `From<AttemptTimedOut>`",
    label = "an attempt that times out must be returned as this error type",
    note = "add a variant such as `#[error(transparent)] Timeout(#[from] retry_runtime::AttemptTimedOut)`, or implement `From<retry_runtime::AttemptTimedOut> for {Self}`"
)]
pub trait FromAttemptTimeout {
    /// Converts the timeout into this error.
    fn from_attempt_timeout(timeout: AttemptTimedOut) -> Self;
}

// `do_not_recommend` makes rustc report the unmet `FromAttemptTimeout` (and its message above)
// rather than the `From` bound of this impl.
#[diagnostic::do_not_recommend]
impl<E: From<AttemptTimedOut>> FromAttemptTimeout for E {
    #[inline]
    fn from_attempt_timeout(timeout: AttemptTimedOut) -> Self {
        E::from(timeout)
    }
}

/// Runs `attempt` for at most `after`; past that it is dropped and its result is
/// `on_timeout(AttemptTimedOut { after })`. An attempt that is ready when first polled succeeds
/// even with a zero timeout.
///
/// `on_timeout` comes from [`timeout_error`], a separate call so that the attribute's expansion
/// can place it on the `attempt_timeout` key: a missing `From<AttemptTimedOut>` is then reported
/// there, once, rather than on the whole fn body.
pub fn with_timeout<A: IntoFuture>(
    after: Duration,
    attempt: A,
    on_timeout: fn(AttemptTimedOut) -> A::Output,
) -> WithTimeout<A::IntoFuture, A::Output> {
    WithTimeout::new(after, attempt.into_future(), on_timeout)
}

/// The conversion of a timeout into the result type `R`: `Err(AttemptTimedOut.into())`. The bound
/// on `R`'s error type carries the message a user sees when the conversion is missing.
pub fn timeout_error<R>() -> fn(AttemptTimedOut) -> R
where
    R: IsResult,
    R::Err: FromAttemptTimeout,
{
    |timeout| R::from_result(Err(R::Err::from_attempt_timeout(timeout)))
}

pin_project! {
    /// An attempt with a deadline, whose result is `R`; see [`with_timeout`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct WithTimeout<A, R> {
        #[pin]
        inner: tokio::time::Timeout<A>,
        after: Duration,
        on_timeout: fn(AttemptTimedOut) -> R,
    }
}

impl<A: Future> WithTimeout<A, A::Output> {
    pub(crate) fn new(
        after: Duration,
        attempt: A,
        on_timeout: fn(AttemptTimedOut) -> A::Output,
    ) -> Self {
        WithTimeout {
            inner: tokio::time::timeout(after, attempt),
            after,
            on_timeout,
        }
    }
}

impl<A: Future> Future for WithTimeout<A, A::Output> {
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(result) => result,
            Err(_elapsed) => (this.on_timeout)(AttemptTimedOut { after: *this.after }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_attempts_become_the_callers_error() {
        let started = tokio::time::Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u8, AttemptTimedOut>(1)
        };
        let after = Duration::from_millis(1500);
        let result = with_timeout(after, slow, timeout_error()).await;
        assert_eq!(result, Err(AttemptTimedOut { after }));
        assert_eq!(started.elapsed(), after);

        let fast = async { Ok::<u8, std::io::Error>(2) };
        // Ready at once: succeeds even with a zero timeout.
        let result = with_timeout(Duration::ZERO, fast, timeout_error()).await;
        assert_eq!(result.unwrap(), 2);

        let never = std::future::pending::<std::io::Result<()>>();
        let err = with_timeout(after, never, timeout_error())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "the attempt did not finish within 1.5s");
    }
}
