//! How an error of any type is shown in logs: with `Display` when it has one, else `Debug`, else
//! its type name. Picked without specialization, so that turning on the `tracing` feature never
//! adds a bound that some fn's error type fails: method resolution tries `&&ErrorRef` (Display),
//! then `&ErrorRef` (Debug), then `ErrorRef` (neither). The expansion calls
//! `(&&ErrorRef(err)).__retry_describe(f)` with the three traits in scope.

use std::fmt;

#[doc(hidden)]
pub struct ErrorRef<'a, E>(pub &'a E);

impl<E> Clone for ErrorRef<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for ErrorRef<'_, E> {}

#[doc(hidden)]
pub trait DescribeViaDisplay {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<E: fmt::Display> DescribeViaDisplay for &&ErrorRef<'_, E> {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

#[doc(hidden)]
pub trait DescribeViaDebug {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<E: fmt::Debug> DescribeViaDebug for &ErrorRef<'_, E> {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

#[doc(hidden)]
pub trait DescribeOpaque {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<E> DescribeOpaque for ErrorRef<'_, E> {
    fn __retry_describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an error of type `{}`", std::any::type_name::<E>())
    }
}

/// Shows `err` through a formatter closure such as the expansion's.
#[cfg(any(feature = "tracing", test))]
pub(crate) struct Shown<'a, E, F>(pub(crate) &'a E, pub(crate) &'a F);

#[cfg(any(feature = "tracing", test))]
impl<E, F: Describe<E>> fmt::Display for Shown<'_, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.1.describe(self.0, f)
    }
}

/// How an observer shows an error: the expansion's autoref closure (`Display`, else `Debug`, else
/// the type name), or [`ByTypeName`] where the error type cannot be named up front.
#[doc(hidden)]
pub trait Describe<E> {
    /// Writes `err`.
    fn describe(&self, err: &E, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<E, F: Fn(&E, &mut fmt::Formatter<'_>) -> fmt::Result> Describe<E> for F {
    #[inline]
    fn describe(&self, err: &E, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self(err, f)
    }
}

/// Shows any error by its type name; for a fn whose return type has an `impl Trait` in it, where
/// the expansion cannot name the error type before the first attempt.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ByTypeName;

impl<E> Describe<E> for ByTypeName {
    fn describe(&self, _: &E, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an error of type `{}`", std::any::type_name::<E>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use super::{DescribeOpaque as _, DescribeViaDebug as _, DescribeViaDisplay as _};

    struct Both;
    impl fmt::Display for Both {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("display")
        }
    }
    impl fmt::Debug for Both {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("debug")
        }
    }
    #[derive(Debug)]
    struct DebugOnly;
    struct Neither;

    /// Formats through a closure written as the expansion writes it: the closure's argument
    /// type is known from `err` when the closure is checked.
    fn shown<E>(err: E, fmt: impl Fn(&E, &mut fmt::Formatter<'_>) -> fmt::Result) -> String {
        Shown(&err, &fmt).to_string()
    }

    macro_rules! describe {
        ($e:expr) => {
            shown($e, |e, f| (&&ErrorRef(e)).__retry_describe(f))
        };
    }

    #[test]
    fn display_then_debug_then_the_type_name() {
        assert_eq!(describe!(Both), "display");
        assert_eq!(describe!(DebugOnly), "DebugOnly");
        assert_eq!(
            describe!(Neither),
            format!("an error of type `{}`", std::any::type_name::<Neither>())
        );
        assert_eq!(describe!(std::io::Error::other("reset")), "reset");
    }
}
