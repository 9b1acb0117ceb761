//! The observers that the runtime's cargo features add to every annotated fn. The attribute
//! cannot see this crate's features, so it calls these `macro_rules!`, which are defined once per
//! feature state: with a feature off, they expand to a zero-sized no-op and cost nothing, at run
//! time or at compile time.

use std::future::Future;

use crate::Observer;

/// An observer that observes nothing, and wraps an attempt's future in nothing: what a feature
/// that is off contributes.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Off;

impl Off {
    /// The future itself.
    #[inline(always)]
    pub fn watch<F: Future>(&self, fut: F) -> F {
        fut
    }

    /// The future itself.
    #[inline(always)]
    pub fn instrument<F: Future>(&self, fut: F) -> F {
        fut
    }
}

impl<E> Observer<E> for Off {}

/// Per-fn statistics when the `stats` feature is on (every annotated fn records, unless it says
/// `stats = false`); [`Off`] otherwise.
#[doc(hidden)]
#[cfg(feature = "stats")]
#[macro_export]
macro_rules! __retry_stats {
    ($name:expr) => {
        $crate::__retry_fn_stats!(unfinished, $name)
    };
}

#[doc(hidden)]
#[cfg(not(feature = "stats"))]
#[macro_export]
macro_rules! __retry_stats {
    ($name:expr) => {
        $crate::__private::Off
    };
}

/// A span per call and events per retry and give-up with the `tracing` feature; [`Off`]
/// otherwise. The error is shown with `Display`, else `Debug`, else its type name.
#[doc(hidden)]
#[cfg(feature = "tracing")]
#[macro_export]
macro_rules! __retry_trace {
    (@by_type_name $name:expr) => {
        $crate::__private::tracing_call_by_type_name($name)
    };
    ($ret:ty, $name:expr) => {
        $crate::__private::tracing_call::<$ret, _>($name, |e, f| {
            #[allow(unused_imports)]
            use $crate::__private::{
                DescribeOpaque as _, DescribeViaDebug as _, DescribeViaDisplay as _,
            };
            (&&$crate::__private::ErrorRef(e)).__retry_describe(f)
        })
    };
}

#[doc(hidden)]
#[cfg(not(feature = "tracing"))]
#[macro_export]
macro_rules! __retry_trace {
    (@by_type_name $name:expr) => {
        $crate::__private::Off
    };
    ($ret:ty, $name:expr) => {
        $crate::__private::Off
    };
}

/// An attempt's future inside the call's tracing span with the `tracing` feature; the future
/// itself otherwise, so that a fn pays nothing, not even type checking, for a feature that is off.
#[doc(hidden)]
#[cfg(feature = "tracing")]
#[macro_export]
macro_rules! __retry_instrument {
    ($trace:ident, $attempt:ident) => {
        $trace.instrument($attempt)
    };
}

#[doc(hidden)]
#[cfg(not(feature = "tracing"))]
#[macro_export]
macro_rules! __retry_instrument {
    ($trace:ident, $attempt:ident) => {
        $attempt
    };
}

/// Counters and histograms through the `metrics` facade with the `metrics` feature; [`Off`]
/// otherwise.
#[doc(hidden)]
#[cfg(feature = "metrics")]
#[macro_export]
macro_rules! __retry_metrics {
    ($name:expr) => {{
        static __RETRY_LABELS: $crate::__private::FnStats = $crate::__private::FnStats::new($name);
        $crate::__private::metrics_call(&__RETRY_LABELS)
    }};
}

#[doc(hidden)]
#[cfg(not(feature = "metrics"))]
#[macro_export]
macro_rules! __retry_metrics {
    ($name:expr) => {
        $crate::__private::Off
    };
}

/// The observers of a call with `$obs` added last (`($inner, &$obs)`) when the `stats` feature is
/// on; `$inner` alone when it is off, so that a feature that is off adds nothing for the type
/// checker to prove about the call's observers.
#[doc(hidden)]
#[cfg(feature = "stats")]
#[macro_export]
macro_rules! __retry_with_stats {
    ($obs:ident, $inner:expr) => {
        ($inner, &$obs)
    };
}

#[doc(hidden)]
#[cfg(not(feature = "stats"))]
#[macro_export]
macro_rules! __retry_with_stats {
    ($obs:ident, $inner:expr) => {
        $inner
    };
}

/// As [`__retry_with_stats!`] for the `metrics` feature.
#[doc(hidden)]
#[cfg(feature = "metrics")]
#[macro_export]
macro_rules! __retry_with_metrics {
    ($obs:ident, $inner:expr) => {
        ($inner, &$obs)
    };
}

#[doc(hidden)]
#[cfg(not(feature = "metrics"))]
#[macro_export]
macro_rules! __retry_with_metrics {
    ($obs:ident, $inner:expr) => {
        $inner
    };
}

/// As [`__retry_with_stats!`] for the `tracing` feature.
#[doc(hidden)]
#[cfg(feature = "tracing")]
#[macro_export]
macro_rules! __retry_with_trace {
    ($obs:ident, $inner:expr) => {
        ($inner, &$obs)
    };
}

#[doc(hidden)]
#[cfg(not(feature = "tracing"))]
#[macro_export]
macro_rules! __retry_with_trace {
    ($obs:ident, $inner:expr) => {
        $inner
    };
}

/// The three feature observers of a call, declared with the names the expansion passes in:
/// `default` leaves statistics to the `stats` feature, `given` means the fn chose for itself
/// (`stats = true` declares its own recorder, `stats = false` none). `@by_type_name` in place of
/// the return type is for a return type with an `impl Trait` in it.
#[doc(hidden)]
#[macro_export]
macro_rules! __retry_features {
    (default, $s:ident, $m:ident, $t:ident, $name:expr, $($ret:tt)+) => {
        #[allow(unused_variables)]
        let $s = $crate::__retry_stats!($name);
        $crate::__retry_features!(given, $s, $m, $t, $name, $($ret)+);
    };
    (given, $s:ident, $m:ident, $t:ident, $name:expr, @by_type_name) => {
        #[allow(unused_variables)]
        let $m = $crate::__retry_metrics!($name);
        #[allow(unused_variables)]
        let $t = $crate::__retry_trace!(@by_type_name $name);
    };
    (given, $s:ident, $m:ident, $t:ident, $name:expr, $ret:ty) => {
        #[allow(unused_variables)]
        let $m = $crate::__retry_metrics!($name);
        #[allow(unused_variables)]
        let $t = $crate::__retry_trace!($ret, $name);
    };
}

/// The observer tuple `step` sees: the fn's own observers, then those of the features that are on
/// (statistics only in `default` mode, see [`__retry_features!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __retry_observers {
    (default, $s:ident, $m:ident, $t:ident; $($own:ident),*) => {
        $crate::__retry_with_trace!($t, $crate::__retry_with_metrics!($m,
            $crate::__retry_with_stats!($s, ($(&$own,)*))))
    };
    (given, $s:ident, $m:ident, $t:ident; $($own:ident),*) => {
        $crate::__retry_with_trace!($t, $crate::__retry_with_metrics!($m, ($(&$own,)*)))
    };
}

/// The classification of an attribute without lists or predicates: the error's `Retryable` impl
/// when it has one (autoref dispatch), else "retry".
#[doc(hidden)]
#[macro_export]
macro_rules! __retry_classify {
    // The fn's result type `R` can be named: a `fn` pointer chosen by type, no closure.
    ($r:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::{ViaDefaultType as _, ViaRetryableType as _};
        (&$crate::__private::ClassifierOf::<<$r as $crate::__private::IsResult>::Err>::NEW)
            .__retry_classifier()
    }};
    () => {
        |err| {
            #[allow(unused_imports)]
            use $crate::__private::{ViaDefault as _, ViaRetryable as _};
            (&$crate::__private::Probe(err)).__retry_classify()
        }
    };
}

/// After `step`: return what it decided, or sleep before the next attempt.
#[doc(hidden)]
#[macro_export]
macro_rules! __retry_next {
    (async $flow:ident) => {
        match $flow {
            ::core::ops::ControlFlow::Break(done) => break done,
            ::core::ops::ControlFlow::Continue(delay) => $crate::__private::sleep(delay).await,
        }
    };
    (blocking $flow:ident) => {
        match $flow {
            ::core::ops::ControlFlow::Break(done) => break done,
            ::core::ops::ControlFlow::Continue(delay) => $crate::__private::sleep_blocking(delay),
        }
    };
}
