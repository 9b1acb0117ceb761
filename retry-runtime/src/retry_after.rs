//! Server-requested delays (`Retry-After`): how far above the hint a client returns.

use std::time::Duration;

/// The most a client adds on top of a server's hint.
const MAX_SPREAD: Duration = Duration::from_secs(1);

/// A random amount, up to a tenth of the hint and at most one second, added on top of a
/// `Retry-After` hint so that clients told the same instant do not all return at that instant.
/// `u` is a uniform sample in `[0, 1)`.
pub(crate) fn spread(hint: Duration, u: f64) -> Duration {
    let window = (hint / 10).min(MAX_SPREAD);
    let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
    window.mul_f64(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_a_tenth_of_the_hint_capped_at_one_second() {
        let s = Duration::from_secs;
        assert_eq!(spread(s(2), 0.5), Duration::from_millis(100));
        assert_eq!(spread(s(100), 0.999), Duration::from_millis(999));
        assert_eq!(spread(Duration::ZERO, 0.9), Duration::ZERO);
        assert_eq!(spread(Duration::MAX, f64::NAN), Duration::ZERO);
        assert!(spread(Duration::MAX, 1.0) <= MAX_SPREAD);
    }
}
