//! Which errors are worth another attempt: the `Retryable` trait and the verdict it produces.

use std::time::Duration;

mod builtin;
#[cfg(feature = "reqwest")]
mod reqwest_error;

/// The verdict on one failed attempt: retry or give up, and how long the server asked to wait.
///
/// ```
/// use retry_runtime::Classification;
/// use std::time::Duration;
///
/// let c = Classification::retry().with_retry_after(Some(Duration::from_secs(2)));
/// assert!(c.is_retryable());
/// assert_eq!(c.retry_after_hint(), Some(Duration::from_secs(2)));
/// assert!(!Classification::give_up().is_retryable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    retryable: bool,
    rate_limited: bool,
    retry_after: Option<Duration>,
}

impl Classification {
    /// Another attempt may succeed (a timeout, a 503, a rate limit).
    pub const fn retry() -> Self {
        Classification {
            retryable: true,
            rate_limited: false,
            retry_after: None,
        }
    }

    /// Another attempt would fail the same way (a bad key, a bad request).
    pub const fn give_up() -> Self {
        Classification {
            retryable: false,
            rate_limited: false,
            retry_after: None,
        }
    }

    /// [`retry`](Self::retry) when `retryable`, else [`give_up`](Self::give_up).
    pub const fn from_bool(retryable: bool) -> Self {
        Classification {
            retryable,
            rate_limited: false,
            retry_after: None,
        }
    }

    /// The same verdict with `retryable` replaced (a `retry_if` predicate overriding the
    /// error's own classification keeps its `Retry-After` hint).
    pub const fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Adds the delay the server asked for (`Retry-After`); the call never retries sooner.
    pub const fn with_retry_after(mut self, hint: Option<Duration>) -> Self {
        self.retry_after = hint;
        self
    }

    /// Marks the failure as the provider pushing back on load (HTTP 429, a throttling error),
    /// which an [`AdaptiveThrottle`](crate::AdaptiveThrottle) learns its rate from.
    pub const fn with_rate_limited(mut self, rate_limited: bool) -> Self {
        self.rate_limited = rate_limited;
        self
    }

    /// Whether the provider was pushing back on load.
    pub const fn is_rate_limited(&self) -> bool {
        self.rate_limited
    }

    /// Whether another attempt is worth making.
    pub const fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The delay the server asked for, if any.
    pub const fn retry_after_hint(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// An error that knows whether another attempt could succeed.
///
/// When a `#[retry_on_failure]` fn's error type implements `Retryable` and the attribute has no
/// `retry_on`/`give_up_on` list, the trait decides. When it does not implement it, every error is
/// retried, as tenacity and backoff do.
///
/// ```
/// use retry_runtime::Retryable;
/// use std::time::Duration;
///
/// enum ProviderError {
///     RateLimited { retry_after: Option<Duration> },
///     Unavailable,
///     BadKey,
/// }
///
/// impl Retryable for ProviderError {
///     fn is_retryable(&self) -> bool {
///         !matches!(self, ProviderError::BadKey)
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             ProviderError::RateLimited { retry_after } => *retry_after,
///             _ => None,
///         }
///     }
/// }
/// # assert!(!ProviderError::BadKey.is_retryable());
/// # assert!(ProviderError::Unavailable.is_retryable());
/// ```
pub trait Retryable {
    /// Whether another attempt could succeed.
    fn is_retryable(&self) -> bool;

    /// How long the server asked the client to wait before the next attempt.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// Whether the failure is the provider pushing back on load (HTTP 429, a throttling
    /// error); an [`AdaptiveThrottle`](crate::AdaptiveThrottle) slows down on these.
    fn is_rate_limited(&self) -> bool {
        false
    }

    /// All answers in one value; the retry loop calls this.
    fn classification(&self) -> Classification {
        Classification::from_bool(self.is_retryable())
            .with_retry_after(self.retry_after())
            .with_rate_limited(self.is_rate_limited())
    }
}

impl<T: Retryable + ?Sized> Retryable for &T {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
    fn is_rate_limited(&self) -> bool {
        (**self).is_rate_limited()
    }
    fn classification(&self) -> Classification {
        (**self).classification()
    }
}

impl<T: Retryable + ?Sized> Retryable for Box<T> {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
    fn is_rate_limited(&self) -> bool {
        (**self).is_rate_limited()
    }
    fn classification(&self) -> Classification {
        (**self).classification()
    }
}

/// Picks `Retryable` when the error type implements it, "retry everything" when it does not,
/// without specialization: method resolution tries the by-value receiver (`ViaRetryable`) before
/// the auto-referenced one (`ViaDefault`). The expansion calls `(&Probe(err)).__retry_classify()`
/// with both traits in scope.
#[doc(hidden)]
pub struct Probe<'a, E: ?Sized>(pub &'a E);

#[doc(hidden)]
pub trait ViaRetryable {
    fn __retry_classify(&self) -> Classification;
}

impl<E: Retryable + ?Sized> ViaRetryable for Probe<'_, E> {
    #[inline]
    fn __retry_classify(&self) -> Classification {
        self.0.classification()
    }
}

#[doc(hidden)]
pub trait ViaDefault {
    fn __retry_classify(&self) -> Classification;
}

impl<E: ?Sized> ViaDefault for &Probe<'_, E> {
    #[inline]
    fn __retry_classify(&self) -> Classification {
        Classification::retry()
    }
}

/// [`Probe`] by type: `(&ClassifierOf::<E>::NEW).__retry_classifier()`, with
/// `ViaRetryableType` and `ViaDefaultType` in scope, is a plain `fn(&E) -> Classification`, `E`'s
/// `Retryable` impl when it has one and "retry everything" when not. The expansion passes it to
/// `step` where the fn's error type can be named: unlike a closure, it is not a function of its own
/// in every annotated fn for rustc to generate, only one per error type.
#[doc(hidden)]
pub struct ClassifierOf<E: ?Sized>(std::marker::PhantomData<fn(&E)>);

impl<E: ?Sized> ClassifierOf<E> {
    /// The probe.
    pub const NEW: Self = ClassifierOf(std::marker::PhantomData);
}

#[doc(hidden)]
pub trait ViaRetryableType<E: ?Sized> {
    fn __retry_classifier(&self) -> fn(&E) -> Classification;
}

impl<E: Retryable + ?Sized> ViaRetryableType<E> for ClassifierOf<E> {
    #[inline(always)]
    fn __retry_classifier(&self) -> fn(&E) -> Classification {
        E::classification
    }
}

#[doc(hidden)]
pub trait ViaDefaultType<E: ?Sized> {
    fn __retry_classifier(&self) -> fn(&E) -> Classification;
}

impl<E: ?Sized> ViaDefaultType<E> for &ClassifierOf<E> {
    #[inline(always)]
    fn __retry_classifier(&self) -> fn(&E) -> Classification {
        retry_everything::<E>
    }
}

fn retry_everything<E: ?Sized>(_: &E) -> Classification {
    Classification::retry()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;
    struct Fatal;
    impl Retryable for Fatal {
        fn is_retryable(&self) -> bool {
            false
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_secs(3))
        }
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow is what selects the fallback
    fn probe_prefers_the_trait_and_falls_back_to_retry() {
        #[allow(unused_imports)]
        use super::{ViaDefault as _, ViaRetryable as _};
        let fatal = (&Probe(&Fatal)).__retry_classify();
        assert_eq!(
            fatal,
            Classification::give_up().with_retry_after(Some(Duration::from_secs(3)))
        );
        assert_eq!((&Probe(&Plain)).__retry_classify(), Classification::retry());
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow is what selects the fallback
    fn the_type_probe_picks_the_same_classifier_as_the_value_probe() {
        #[allow(unused_imports)]
        use super::{ViaDefaultType as _, ViaRetryableType as _};
        let fatal = (&ClassifierOf::<Fatal>::NEW).__retry_classifier();
        assert_eq!(
            fatal(&Fatal),
            Classification::give_up().with_retry_after(Some(Duration::from_secs(3)))
        );
        let plain = (&ClassifierOf::<Plain>::NEW).__retry_classifier();
        assert_eq!(plain(&Plain), Classification::retry());
    }

    #[test]
    fn boxed_and_borrowed_errors_delegate() {
        let boxed: Box<Fatal> = Box::new(Fatal);
        assert!(!boxed.is_retryable());
        assert!(!(&&Fatal).is_retryable());
    }
}
