//! Seeing into an error: its `source()` chain, and the types `retry_on`/`give_up_on` match
//! against it.
//!
//! An error matches a type `T` when the error itself, or any error in its `source()` chain, is a
//! `T`. The chain is walked through `std::io::Error`'s custom payloads too (an `io::Error` built
//! with `io::Error::new(kind, inner)` reports `inner.source()` as its own source, skipping
//! `inner`; the walk looks at `inner` itself).

use std::error::Error;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

/// How many links the walk follows before it stops: a `source()` that returns its own error (a
/// bug, but one a user's type can have) must not hang the retry loop.
const MAX_CHAIN: usize = 64;

/// Whether `err` or any error in its `source()` chain is a `T`.
///
/// ```
/// use retry_runtime::chain_has;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("rate limited")]
/// struct RateLimitError;
///
/// #[derive(Debug, thiserror::Error)]
/// enum ProviderError {
///     #[error("provider call failed")]
///     Call(#[from] RateLimitError),
/// }
///
/// let err = ProviderError::from(RateLimitError);
/// assert!(chain_has::<RateLimitError>(&err));
/// assert!(chain_has::<ProviderError>(&err));
/// assert!(!chain_has::<std::io::Error>(&err));
/// ```
///
/// `#[error(transparent)]` hides the wrapped error from this walk: thiserror forwards `source()`
/// to the wrapped error's *own* source, so the wrapped value never appears in the chain. See
/// [`Inspect`] for the way out.
pub fn chain_has<T: Error + 'static>(err: &(dyn Error + 'static)) -> bool {
    chain_find::<T>(err).is_some()
}

/// The first error of type `T` in `err`'s `source()` chain, `err` included.
///
/// ```
/// use retry_runtime::chain_find;
/// use std::io;
///
/// let err = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
/// let inner = chain_find::<io::Error>(&err).unwrap();
/// // The outer io::Error comes first.
/// assert_eq!(inner.kind(), io::ErrorKind::Other);
/// ```
pub fn chain_find<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    chain(err).find_map(|e| e.downcast_ref::<T>())
}

/// `err` followed by its `source()` chain, looking inside `std::io::Error` custom payloads, and
/// stopping after 64 links.
///
/// ```
/// use retry_runtime::chain;
///
/// let err = anyhow::anyhow!("connection reset").context("calling the provider");
/// let messages: Vec<String> = chain(err.as_ref()).map(|e| e.to_string()).collect();
/// assert_eq!(messages, ["calling the provider", "connection reset"]);
/// ```
pub fn chain<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = inner(current);
        Some(current)
    })
    .take(MAX_CHAIN)
}

/// The next link: an `io::Error`'s custom payload if it has one (its `source()` would skip that
/// payload), else `source()`.
fn inner<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(payload) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        let payload: &(dyn Error + 'static) = payload;
        return Some(payload);
    }
    err.source()
}

/// An error value whose `source()` chain `retry_on`/`give_up_on` can walk, for the types that do
/// not implement `std::error::Error` themselves.
///
/// The lists accept, in this order of preference:
/// 1. a type implementing `Inspect` (this crate implements it for `Box<dyn Error + Send + Sync>`,
///    `Box<dyn Error + Send>`, `Box<dyn Error>`, `Arc<dyn Error + Send + Sync>` and
///    `Arc<dyn Error>`);
/// 2. any type implementing `std::error::Error` (every thiserror type);
/// 3. any type implementing `AsRef<dyn std::error::Error>`, which is how `anyhow::Error` (its
///    `.context(..)` layers included) and `eyre::Report` are inspected.
///
/// Implement `Inspect` yourself for an error report type of your own, or to let the lists see
/// through an `#[error(transparent)]` variant, whose wrapped error the `source()` chain skips:
///
/// ```
/// use retry_runtime::{chain_has, Inspect};
/// use std::error::Error;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("rate limited")]
/// struct RateLimitError;
///
/// #[derive(Debug, thiserror::Error)]
/// enum ProviderError {
///     #[error(transparent)]
///     RateLimited(#[from] RateLimitError),
///     #[error("bad key")]
///     BadKey,
/// }
///
/// // The chain of a transparent variant does not contain the wrapped error...
/// let err = ProviderError::from(RateLimitError);
/// assert!(!chain_has::<RateLimitError>(&err));
///
/// // ...unless the error type says where to look: `retry_on`/`give_up_on` prefer this impl over
/// // the `Error` one.
/// impl Inspect for ProviderError {
///     fn as_dyn_error(&self) -> &(dyn Error + 'static) {
///         match self {
///             ProviderError::RateLimited(inner) => inner,
///             other => other,
///         }
///     }
/// }
/// assert!(chain_has::<RateLimitError>(err.as_dyn_error()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be inspected for `retry_on`/`give_up_on`",
    label = "this error type implements neither `std::error::Error` nor `AsRef<dyn std::error::Error>`",
    note = "`retry_on = [..]` and `give_up_on = [..]` match the error and its `source()` chain by type, which needs a `std::error::Error` to look at",
    note = "implement `std::error::Error` for `{Self}` (thiserror's `#[derive(Error)]` does), or `retry_runtime::Inspect`, or decide with `retry_if = |err| ..` instead"
)]
pub trait Inspect {
    /// The error to start the `source()` walk from.
    fn as_dyn_error(&self) -> &(dyn Error + 'static);
}

macro_rules! inspect_dyn {
    ($($ty:ty),* $(,)?) => {$(
        impl Inspect for $ty {
            #[inline]
            fn as_dyn_error(&self) -> &(dyn Error + 'static) {
                &**self
            }
        }
    )*};
}

inspect_dyn!(
    Box<dyn Error + Send + Sync>,
    Box<dyn Error + Send>,
    Box<dyn Error>,
    Arc<dyn Error + Send + Sync>,
    Arc<dyn Error>,
    Rc<dyn Error>,
);

/// Finds the `&dyn Error` of any inspectable error type without specialization. Method resolution
/// walks the receiver `&&&&Inspector(err)` from the most to the least referenced impl and takes
/// the first whose bounds hold: `Inspect` (most specific, user-overridable), then `Error`, then
/// `AsRef<dyn Error>`. The last level has no bound on its impl but requires `Inspect` on its method,
/// so that an uninspectable type fails there, with `Inspect`'s diagnostic.
///
/// The expansion calls, with all four traits in scope:
/// `(&&&&::retry_runtime::__private::Inspector(err)).__retry_inspect()`.
#[doc(hidden)]
pub struct Inspector<'a, E: ?Sized>(pub &'a E);

#[doc(hidden)]
pub trait InspectViaTrait<'a> {
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static);
}

impl<'a, E: Inspect + ?Sized> InspectViaTrait<'a> for &&&Inspector<'a, E> {
    #[inline(always)]
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static) {
        self.0.as_dyn_error()
    }
}

#[doc(hidden)]
pub trait InspectViaError<'a> {
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static);
}

impl<'a, E: Error + 'static> InspectViaError<'a> for &&Inspector<'a, E> {
    #[inline(always)]
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static) {
        self.0
    }
}

#[doc(hidden)]
pub trait InspectViaAsRef<'a> {
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static);
}

impl<'a, E: AsRef<dyn Error + 'static> + ?Sized> InspectViaAsRef<'a> for &Inspector<'a, E> {
    #[inline(always)]
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static) {
        self.0.as_ref()
    }
}

#[doc(hidden)]
pub trait InspectRequired<'a> {
    type Inspected: ?Sized;
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static)
    where
        Self::Inspected: Inspect;
}

impl<'a, E: ?Sized> InspectRequired<'a> for Inspector<'a, E> {
    type Inspected = E;
    #[inline(always)]
    fn __retry_inspect(&self) -> &'a (dyn Error + 'static)
    where
        E: Inspect,
    {
        self.0.as_dyn_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Looping;
    impl fmt::Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("looping")
        }
    }
    impl Error for Looping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self)
        }
    }

    #[test]
    fn a_source_that_points_at_itself_ends_the_walk() {
        assert_eq!(chain(&Looping).count(), MAX_CHAIN);
        assert!(!chain_has::<io::Error>(&Looping));
    }

    #[test]
    fn io_error_payloads_are_walked() {
        let err = io::Error::other(Looping);
        // `io::Error::source` would skip `Looping` and report `Looping::source`.
        assert!(chain_has::<Looping>(&err));
        assert!(chain_has::<io::Error>(&err));
        // A simple io::Error has no payload and no source.
        assert_eq!(chain(&io::Error::from(io::ErrorKind::TimedOut)).count(), 1);
    }
}
