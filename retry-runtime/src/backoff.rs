//! Delay schedules before jitter: a pure function of the policy and the retry number.

use std::time::Duration;

/// How the delay grows from one retry to the next, before [`Jitter`](crate::Jitter) is applied.
///
/// `n` is the retry number: `n = 1` is the sleep after the first failed attempt. Every schedule is
/// capped at `max_delay`, and none of them can overflow or panic: retry 10,000 with factor 10 simply
/// gives `max_delay`.
///
/// ```
/// use retry_runtime::Backoff;
/// use std::time::Duration;
///
/// let s = Duration::from_secs;
/// let delays: Vec<_> = (1..=5)
///     .map(|n| Backoff::Exponential.base_delay(s(1), s(10), 2.0, n))
///     .collect();
/// assert_eq!(delays, [s(1), s(2), s(4), s(8), s(10)]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backoff {
    /// `initial_delay × backoff_factor^(n-1)`: 1 s, 2 s, 4 s, 8 s with the defaults.
    #[default]
    Exponential,
    /// `initial_delay` every time.
    Constant,
    /// `initial_delay × n`: 1 s, 2 s, 3 s, ...
    Linear,
    /// `initial_delay × fib(n)` with fib = 1, 1, 2, 3, 5, 8, ... (Python `backoff.fibo`).
    Fibonacci,
}

impl Backoff {
    /// Every schedule, in the order the attribute documents them.
    pub const ALL: [Backoff; 4] = [
        Backoff::Exponential,
        Backoff::Constant,
        Backoff::Linear,
        Backoff::Fibonacci,
    ];

    /// The name used by the attribute (`backoff = "exponential"`) and by configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Backoff::Exponential => "exponential",
            Backoff::Constant => "constant",
            Backoff::Linear => "linear",
            Backoff::Fibonacci => "fibonacci",
        }
    }

    /// Looks a schedule up by [`name`](Self::name), ignoring ASCII case.
    ///
    /// ```
    /// # use retry_runtime::Backoff;
    /// assert_eq!(Backoff::from_name("Linear"), Some(Backoff::Linear));
    /// assert_eq!(Backoff::from_name("quadratic"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Backoff> {
        Backoff::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The delay before retry `n` (1-based), capped at `max`.
    ///
    /// `factor` only matters for [`Backoff::Exponential`]. A non-finite or sub-1 factor is treated
    /// as 1 so that a bad value can never produce NaN; [`RetryPolicy`](crate::RetryPolicy) rejects
    /// such values before they get here. `n = 0` is treated as `n = 1`.
    #[inline]
    pub fn base_delay(self, initial: Duration, max: Duration, factor: f64, n: u32) -> Duration {
        let n = n.max(1);
        if initial.is_zero() {
            return Duration::ZERO;
        }
        let initial_nanos = nanos_f64(initial);
        let max_nanos = nanos_f64(max);
        let nanos = match self {
            Backoff::Constant => initial_nanos,
            Backoff::Linear => initial_nanos * f64::from(n),
            Backoff::Exponential => {
                let factor = if factor.is_finite() && factor >= 1.0 {
                    factor
                } else {
                    1.0
                };
                // An integer power: multiplications, not libm's `pow`.
                initial_nanos * factor.powi(i32::try_from(n - 1).unwrap_or(i32::MAX))
            }
            Backoff::Fibonacci => initial_nanos * fibonacci_up_to(n, max_nanos / initial_nanos),
        };
        nanos_to_capped_duration(nanos, max)
    }
}

/// fib(n) with fib(1) = fib(2) = 1, stopping early once it exceeds `limit`: the caller caps the
/// result anyway, and stopping keeps the loop short and the value finite.
fn fibonacci_up_to(n: u32, limit: f64) -> f64 {
    let (mut a, mut b) = (1.0_f64, 1.0_f64);
    for _ in 2..n {
        if b > limit {
            break;
        }
        (a, b) = (b, a + b);
    }
    b
}

// The delay arithmetic is done on nanoseconds held in an `f64`: exact up to 2^53 ns (104 days)
// and within one part in 2^53 beyond, and, unlike seconds, converted to and from `Duration` with
// multiplications only (`as_secs_f64` divides, `try_from_secs_f64` decomposes the float bit by bit).

/// `d` in nanoseconds.
#[inline]
pub(crate) fn nanos_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// Nanoseconds to a `Duration` no larger than `max`, rounded to the nearest nanosecond; NaN,
/// negative and huge inputs saturate.
#[inline]
pub(crate) fn nanos_to_capped_duration(nanos: f64, max: Duration) -> Duration {
    if nanos.is_nan() || nanos <= 0.0 {
        return Duration::ZERO;
    }
    if nanos >= nanos_f64(max) {
        return max;
    }
    // Below `max`; below 2^64 ns (584 years) too, for any delay but absurd ones.
    if nanos < 18_446_744_073_709_551_615.0 {
        return Duration::from_nanos((nanos + 0.5) as u64).min(max);
    }
    Duration::try_from_secs_f64(nanos / 1e9).map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn schedule(b: Backoff, initial: Duration, max: Duration, factor: f64) -> Vec<Duration> {
        (1..=8)
            .map(|n| b.base_delay(initial, max, factor, n))
            .collect()
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let got = schedule(Backoff::Exponential, ms(1000), ms(10_000), 2.0);
        let want = [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000].map(ms);
        assert_eq!(got, want);
    }

    #[test]
    fn exponential_with_fractional_factor() {
        let got = schedule(Backoff::Exponential, ms(100), ms(10_000), 1.5);
        assert_eq!(
            &got[..4],
            &[ms(100), ms(150), ms(225), Duration::from_micros(337_500)]
        );
    }

    #[test]
    fn constant_linear_fibonacci() {
        let s = Duration::from_secs;
        assert_eq!(
            schedule(Backoff::Constant, s(1), s(10), 2.0),
            [s(1); 8].to_vec()
        );
        assert_eq!(
            schedule(Backoff::Linear, s(1), s(6), 2.0),
            [1, 2, 3, 4, 5, 6, 6, 6].map(s).to_vec()
        );
        assert_eq!(
            schedule(Backoff::Fibonacci, s(1), s(20), 2.0),
            [1, 1, 2, 3, 5, 8, 13, 20].map(s).to_vec()
        );
    }

    #[test]
    fn huge_retry_numbers_saturate_at_max() {
        let max = Duration::from_secs(10);
        for b in Backoff::ALL {
            for n in [10_000, 1_000_000, u32::MAX] {
                let got = b.base_delay(Duration::from_secs(1), max, 10.0, n);
                let want = if b == Backoff::Constant {
                    Duration::from_secs(1)
                } else {
                    max
                };
                assert_eq!(got, want, "{b:?} at n = {n}");
            }
        }
    }

    #[test]
    fn zero_initial_delay_is_always_zero() {
        for b in Backoff::ALL {
            let got = b.base_delay(Duration::ZERO, Duration::from_secs(1), 1e300, u32::MAX);
            assert_eq!(got, Duration::ZERO);
        }
    }

    #[test]
    fn bad_factor_never_produces_nan() {
        for f in [f64::NAN, f64::INFINITY, -3.0, 0.0] {
            let got = Backoff::Exponential.base_delay(ms(100), ms(1000), f, 50);
            assert!(got <= ms(1000), "factor {f} gave {got:?}");
        }
        let inf_after_one = Backoff::Exponential.base_delay(ms(100), ms(1000), f64::MAX, 3);
        assert_eq!(inf_after_one, ms(1000));
    }

    #[test]
    fn duration_max_as_cap_does_not_panic() {
        let got = Backoff::Exponential.base_delay(ms(1), Duration::MAX, 10.0, 10_000);
        assert!(got <= Duration::MAX);
        assert!(got >= Duration::from_secs(1 << 40));
    }

    #[test]
    fn names_round_trip() {
        for b in Backoff::ALL {
            assert_eq!(Backoff::from_name(b.name()), Some(b));
        }
        assert_eq!(
            Backoff::from_name("EXPONENTIAL"),
            Some(Backoff::Exponential)
        );
        assert_eq!(Backoff::from_name(""), None);
    }
}
