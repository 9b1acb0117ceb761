//! Server-requested delays: parsing `retry-after-ms` and `Retry-After`, and how far above the hint a
//! client returns.
//!
//! Every parser here takes untrusted text and never panics. The mapping of hostile values:
//!
//! | value | hint |
//! |---|---|
//! | `120`, `1.5`, ` 7 ` (delta-seconds, fractions allowed, spaces trimmed) | that many seconds |
//! | `Wed, 21 Oct 2015 07:28:00 GMT` (an HTTP-date) | the time from now until then |
//! | an HTTP-date in the past, `0` | zero: retry as soon as the backoff allows |
//! | `1000000000000000000000000000000` (more seconds than a `Duration` holds) | [`Duration::MAX`] |
//! | a date centuries ahead | that many centuries |
//! | `-5`, `+5`, `5s`, `1e3`, `NaN`, `inf`, `soon`, empty, non-ASCII | none: the backoff decides |
//!
//! A huge hint is kept huge on purpose: the retry loop compares it with the policy's
//! `max_retry_after` (120 s by default) and with `max_time`, and gives up at once rather than
//! sleeping, returning the error. Clamping it to something "reasonable" would instead turn a
//! server's "come back tomorrow" into a retry storm.
//!
//! When both headers are present, `retry-after-ms` wins (it is the more precise, and OpenAI and
//! Azure send both); a value that does not parse is ignored in favour of the other header.
//!
//! ```
//! use retry_runtime::retry_after;
//! use std::time::{Duration, SystemTime};
//!
//! assert_eq!(retry_after::parse("2"), Some(Duration::from_secs(2)));
//! assert_eq!(retry_after::parse_millis("1500"), Some(Duration::from_millis(1500)));
//! assert_eq!(retry_after::parse("-1"), None);
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
//! let date = "Wed, 21 Oct 2015 07:28:00 GMT"; // 1_445_412_480
//! assert_eq!(retry_after::parse_at(date, now), Some(Duration::from_secs(10)));
//! assert_eq!(retry_after::from_values(Some("250"), Some("3"), now), Some(Duration::from_millis(250)));
//! ```

use std::time::{Duration, SystemTime};

/// The header OpenAI and Azure send next to `Retry-After`, in milliseconds.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// The most a client adds on top of a server's hint.
const MAX_SPREAD: Duration = Duration::from_secs(1);

/// A random amount, up to a tenth of the hint and at most one second, added on top of a
/// `Retry-After` hint so that clients told the same instant do not all return at that instant.
/// `u` is a uniform sample in `[0, 1)`.
pub(crate) fn spread(hint: Duration, u: f64) -> Duration {
    let window = (hint / 10).min(MAX_SPREAD);
    let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
    crate::backoff::nanos_to_capped_duration(crate::backoff::nanos_f64(window) * u, window)
}

/// A `Retry-After` value, delta-seconds or HTTP-date, relative to the system clock.
///
/// ```
/// # use retry_runtime::retry_after;
/// # use std::time::Duration;
/// assert_eq!(retry_after::parse("30"), Some(Duration::from_secs(30)));
/// assert_eq!(retry_after::parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
/// assert_eq!(retry_after::parse("later"), None);
/// ```
pub fn parse(value: &str) -> Option<Duration> {
    parse_at(value, SystemTime::now())
}

/// A `Retry-After` value, delta-seconds or HTTP-date, with an HTTP-date measured from `now`.
/// A date before `now` is a zero hint.
///
/// ```
/// # use retry_runtime::retry_after;
/// # use std::time::{Duration, SystemTime};
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_767);
/// assert_eq!(retry_after::parse_at("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(retry_after::parse_at("Sunday, 06-Nov-94 08:49:37 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(retry_after::parse_at("1.25", now), Some(Duration::from_millis(1250)));
/// ```
pub fn parse_at(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        return decimal(value, Unit::Seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A `retry-after-ms` value: milliseconds, fractions allowed.
///
/// ```
/// # use retry_runtime::retry_after;
/// # use std::time::Duration;
/// assert_eq!(retry_after::parse_millis("20"), Some(Duration::from_millis(20)));
/// assert_eq!(retry_after::parse_millis("0.5"), Some(Duration::from_micros(500)));
/// assert_eq!(retry_after::parse_millis("NaN"), None);
/// ```
pub fn parse_millis(value: &str) -> Option<Duration> {
    decimal(value.trim(), Unit::Millis)
}

/// The hint from the raw values of the two headers, `retry-after-ms` preferred, as
/// `from_headers` (feature `http`) computes it, for HTTP clients whose header types this crate does not know.
///
/// ```
/// # use retry_runtime::retry_after;
/// # use std::time::{Duration, SystemTime};
/// let now = SystemTime::now();
/// assert_eq!(retry_after::from_values(Some("garbage"), Some("4"), now), Some(Duration::from_secs(4)));
/// assert_eq!(retry_after::from_values(None, None, now), None);
/// ```
pub fn from_values(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    retry_after_ms
        .and_then(parse_millis)
        .or_else(|| retry_after.and_then(|v| parse_at(v, now)))
}

/// The hint a response's headers carry: `retry-after-ms`, else `Retry-After` (seconds or
/// HTTP-date). Values that are not visible ASCII, or do not parse, are ignored; of repeated
/// headers the first that parses counts.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use retry_runtime::retry_after;
/// use std::time::Duration;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
/// assert_eq!(retry_after::from_headers(&headers), Some(Duration::from_secs(7)));
/// ```
#[cfg(feature = "http")]
pub fn from_headers(headers: &::http::HeaderMap) -> Option<Duration> {
    from_headers_at(headers, SystemTime::now())
}

/// [`from_headers`] with an HTTP-date measured from `now`.
#[cfg(feature = "http")]
pub fn from_headers_at(headers: &::http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let first = |name: &str, parse: &dyn Fn(&str) -> Option<Duration>| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse)
    };
    first(RETRY_AFTER_MS, &parse_millis)
        .or_else(|| first(::http::header::RETRY_AFTER.as_str(), &|v| parse_at(v, now)))
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    const fn nanos(self) -> u128 {
        match self {
            Unit::Seconds => 1_000_000_000,
            Unit::Millis => 1_000_000,
        }
    }
}

/// `1*DIGIT [ "." 1*DIGIT ]` in `unit`, saturating at [`Duration::MAX`]; anything else is `None`.
/// Digits past the nanosecond are dropped.
fn decimal(s: &str, unit: Unit) -> Option<Duration> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !frac.is_none_or(digits) {
        return None;
    }
    let whole = whole.bytes().fold(0u128, |n, b| {
        n.saturating_mul(10).saturating_add(u128::from(b - b'0'))
    });
    // The fraction, in billionths of the unit: at most nine digits count.
    let billionths = frac.map_or(0u128, |f| {
        let nine = f.bytes().chain(std::iter::repeat(b'0')).take(9);
        nine.fold(0u128, |n, b| n * 10 + u128::from(b - b'0'))
    });
    let nanos = whole
        .saturating_mul(unit.nanos())
        .saturating_add(billionths * unit.nanos() / 1_000_000_000);
    let secs = nanos / 1_000_000_000;
    match u64::try_from(secs) {
        // `nanos % 1e9` is below 1e9, so it fits in u32.
        Ok(secs) => Some(Duration::new(secs, (nanos % 1_000_000_000) as u32)),
        Err(_) => Some(Duration::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn spread_is_a_tenth_of_the_hint_capped_at_one_second() {
        assert_eq!(spread(S(2), 0.5), MS(100));
        assert_eq!(spread(S(100), 0.999), MS(999));
        assert_eq!(spread(Duration::ZERO, 0.9), Duration::ZERO);
        assert_eq!(spread(Duration::MAX, f64::NAN), Duration::ZERO);
        assert!(spread(Duration::MAX, 1.0) <= MAX_SPREAD);
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("120"), Some(S(120)));
        assert_eq!(parse(" 7\t"), Some(S(7)));
        assert_eq!(parse("007"), Some(S(7)));
        assert_eq!(parse("1.5"), Some(MS(1500)));
        assert_eq!(parse("0.000000001"), Some(Duration::from_nanos(1)));
        // Digits past the nanosecond are dropped, not rounded.
        assert_eq!(parse("0.0000000019"), Some(Duration::from_nanos(1)));
    }

    #[test]
    fn milliseconds() {
        assert_eq!(parse_millis("0"), Some(Duration::ZERO));
        assert_eq!(parse_millis("1500"), Some(MS(1500)));
        assert_eq!(parse_millis("2.5"), Some(Duration::from_micros(2500)));
        assert_eq!(parse_millis("0.000001"), Some(Duration::from_nanos(1)));
        assert_eq!(parse_millis("18446744073709551615000"), Some(S(u64::MAX)));
        assert_eq!(parse_millis("18446744073709551616000"), Some(Duration::MAX));
    }

    #[test]
    fn absurdly_large_values_saturate_instead_of_wrapping() {
        let e30 = format!("1{}", "0".repeat(30));
        assert_eq!(parse(&e30), Some(Duration::MAX));
        assert_eq!(parse_millis(&e30), Some(Duration::MAX));
        assert_eq!(parse_millis("1000000000000000"), Some(S(1_000_000_000_000)));
        assert_eq!(parse(&"9".repeat(100_000)), Some(Duration::MAX));
        assert_eq!(parse_millis(&"9".repeat(100_000)), Some(Duration::MAX));
        // u64::MAX seconds plus a fraction is still the largest Duration, not a wrap to zero.
        assert_eq!(parse("18446744073709551615.999999999"), Some(Duration::MAX));
        assert_eq!(
            parse("18446744073709551616"),
            Some(Duration::MAX),
            "one past u64::MAX seconds"
        );
    }

    #[test]
    fn hostile_text_is_no_hint() {
        for v in [
            "",
            " ",
            "-1",
            "-0",
            "+5",
            "5s",
            "1e3",
            "1E3",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "0x10",
            "1.",
            ".5",
            "1..2",
            "1.2.3",
            "1,5",
            "١٢",
            "５",
            "soon",
            "null",
            "\u{0}",
            "9 9",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 25:28:00 GMT",
            "Wed, 21 Oct 10000 07:28:00 GMT",
        ] {
            assert_eq!(parse(v), None, "Retry-After: {v:?}");
            assert_eq!(parse_millis(v), None, "retry-after-ms: {v:?}");
        }
    }

    #[test]
    fn http_dates_are_relative_to_now() {
        let epoch = SystemTime::UNIX_EPOCH;
        let now = epoch + S(1_445_412_470); // 2015-10-21 07:27:50 UTC
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_at(date, now), Some(S(10)));
        // The three formats HTTP allows.
        assert_eq!(
            parse_at("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(S(10))
        );
        assert_eq!(parse_at("Wed Oct 21 07:28:00 2015", now), Some(S(10)));
        // A date in the past, or exactly now, means "now".
        assert_eq!(parse_at(date, now + S(3600)), Some(Duration::ZERO));
        assert_eq!(
            parse_at(date, epoch + S(1_445_412_480)),
            Some(Duration::ZERO)
        );
        // The latest date the format allows is a huge but finite hint.
        let far = parse_at("Fri, 31 Dec 9999 23:59:59 GMT", now).unwrap();
        assert!(far > S(7_900 * 365 * 86_400), "{far:?}");
        // A clock far in the future does not break a date in the past.
        assert_eq!(
            parse_at(date, epoch + Duration::from_secs(u32::MAX as u64 * 100)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn from_values_prefers_milliseconds_and_falls_back() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(from_values(Some("250"), Some("3"), now), Some(MS(250)));
        assert_eq!(from_values(Some("-250"), Some("3"), now), Some(S(3)));
        assert_eq!(from_values(None, Some("3"), now), Some(S(3)));
        assert_eq!(from_values(Some("0"), None, now), Some(Duration::ZERO));
        assert_eq!(from_values(Some("x"), Some("y"), now), None);
    }

    #[cfg(feature = "http")]
    #[test]
    fn header_map_hints() {
        use ::http::{header::RETRY_AFTER, HeaderMap, HeaderValue};
        let now = SystemTime::UNIX_EPOCH + S(1_445_412_470);
        let mut h = HeaderMap::new();
        assert_eq!(from_headers_at(&h, now), None);

        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(from_headers_at(&h, now), Some(S(10)));

        h.insert(RETRY_AFTER_MS, HeaderValue::from_static("1234"));
        assert_eq!(from_headers_at(&h, now), Some(MS(1234)));

        // A garbage ms value falls back to Retry-After.
        h.insert(RETRY_AFTER_MS, HeaderValue::from_static("soon"));
        assert_eq!(from_headers_at(&h, now), Some(S(10)));

        // Repeated headers: the first that parses counts; opaque bytes are skipped.
        let mut h = HeaderMap::new();
        h.append(RETRY_AFTER, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        h.append(RETRY_AFTER, HeaderValue::from_static("-3"));
        h.append(RETRY_AFTER, HeaderValue::from_static("4"));
        h.append(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(from_headers_at(&h, now), Some(S(4)));

        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("100000000000000000000000000000"),
        );
        assert_eq!(from_headers_at(&h, now), Some(Duration::MAX));
    }
}
