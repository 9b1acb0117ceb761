//! Randomisation of delays (AWS "Exponential Backoff and Jitter"): pure functions of a uniform sample.

use std::time::Duration;

use crate::backoff::{nanos_f64, nanos_to_capped_duration};

/// How a [`Backoff`](crate::Backoff) delay is randomised so that clients that failed together do not
/// retry together.
///
/// The formulas are those of the AWS Architecture Blog's "Exponential Backoff and Jitter", with
/// `base` the capped schedule value and `u` a uniform sample in `[0, 1)`:
///
/// | mode | delay |
/// |---|---|
/// | `Full` (default) | `u × base` |
/// | `Equal` | `base/2 + u × base/2` |
/// | `Decorrelated` | `min(max_delay, initial + u × (3 × previous − initial))` |
/// | `None` | `base` |
///
/// ```
/// use retry_runtime::Jitter;
/// use std::time::Duration;
///
/// let s = Duration::from_secs;
/// // With the sample fixed, the result is exact: the functions are pure.
/// assert_eq!(Jitter::Full.apply(s(8), s(4), s(1), s(10), 0.5), s(4));
/// assert_eq!(Jitter::Equal.apply(s(8), s(4), s(1), s(10), 0.5), s(6));
/// assert_eq!(Jitter::None.apply(s(8), s(4), s(1), s(10), 0.5), s(8));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Jitter {
    /// Uniform in `[0, base]`: the fewest calls in the AWS simulation; the default.
    #[default]
    Full,
    /// Half the delay fixed, half random: never retries immediately.
    Equal,
    /// Grows from the previous delay rather than the schedule: uniform in
    /// `[initial_delay, 3 × previous]`, capped at `max_delay`.
    Decorrelated,
    /// No randomness: the schedule as is.
    None,
}

impl Jitter {
    /// Every mode, in the order the attribute documents them.
    pub const ALL: [Jitter; 4] = [
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
        Jitter::None,
    ];

    /// The name used by the attribute (`jitter = "full"`) and by configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
            Jitter::None => "none",
        }
    }

    /// Looks a mode up by [`name`](Self::name), ignoring ASCII case.
    ///
    /// ```
    /// # use retry_runtime::Jitter;
    /// assert_eq!(Jitter::from_name("equal"), Some(Jitter::Equal));
    /// assert_eq!(Jitter::from_name("half"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Jitter> {
        Jitter::ALL
            .into_iter()
            .find(|j| j.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Applies the jitter to `base` (the schedule's delay for this retry).
    ///
    /// `previous` is the delay slept before the previous retry (`initial` before the first one); only
    /// `Decorrelated` uses it. `u` is a uniform sample in `[0, 1)`; values outside are clamped, NaN
    /// counts as 0. The result is always within `[0, max]`.
    #[inline]
    pub fn apply(
        self,
        base: Duration,
        previous: Duration,
        initial: Duration,
        max: Duration,
        u: f64,
    ) -> Duration {
        let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
        let base = base.min(max);
        match self {
            Jitter::None => base,
            Jitter::Full => nanos_to_capped_duration(nanos_f64(base) * u, max),
            Jitter::Equal => {
                let half = nanos_f64(base) / 2.0;
                nanos_to_capped_duration(half + half * u, max)
            }
            Jitter::Decorrelated => {
                let low = nanos_f64(initial);
                let high = (nanos_f64(previous) * 3.0).max(low);
                nanos_to_capped_duration(low + (high - low) * u, max)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn full_spans_zero_to_base() {
        assert_eq!(
            Jitter::Full.apply(ms(800), ms(0), ms(100), ms(1000), 0.0),
            ms(0)
        );
        assert_eq!(
            Jitter::Full.apply(ms(800), ms(0), ms(100), ms(1000), 0.25),
            ms(200)
        );
        assert!(Jitter::Full.apply(ms(800), ms(0), ms(100), ms(1000), 0.999_999) < ms(800));
    }

    #[test]
    fn equal_spans_half_to_base() {
        assert_eq!(
            Jitter::Equal.apply(ms(800), ms(0), ms(100), ms(1000), 0.0),
            ms(400)
        );
        assert_eq!(
            Jitter::Equal.apply(ms(800), ms(0), ms(100), ms(1000), 0.5),
            ms(600)
        );
    }

    #[test]
    fn decorrelated_spans_initial_to_three_times_previous() {
        let d = |prev, u| Jitter::Decorrelated.apply(ms(0), ms(prev), ms(100), ms(1000), u);
        assert_eq!(d(200, 0.0), ms(100));
        assert_eq!(d(200, 0.5), ms(350));
        // Capped at max_delay even when 3 × previous is far above it.
        assert_eq!(d(900, 0.99), ms(1000));
        // A previous delay below initial/3 still never goes under initial.
        assert_eq!(d(10, 0.7), ms(100));
    }

    #[test]
    fn out_of_range_samples_are_clamped() {
        for u in [f64::NAN, -1.0, 2.0, f64::INFINITY, f64::NEG_INFINITY] {
            for j in Jitter::ALL {
                let got = j.apply(ms(800), ms(300), ms(100), ms(1000), u);
                assert!(got <= ms(1000), "{j:?} with u = {u} gave {got:?}");
            }
        }
    }

    #[test]
    fn base_above_max_is_capped_first() {
        assert_eq!(
            Jitter::None.apply(ms(5000), ms(0), ms(100), ms(1000), 0.3),
            ms(1000)
        );
        assert_eq!(
            Jitter::Full.apply(ms(5000), ms(0), ms(100), ms(1000), 0.5),
            ms(500)
        );
    }

    #[test]
    fn names_round_trip() {
        for j in Jitter::ALL {
            assert_eq!(Jitter::from_name(j.name()), Some(j));
        }
    }
}
