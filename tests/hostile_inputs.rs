//! Untrusted text: `Retry-After` values, environment variables and Helicone's per-request
//! headers. Each hostile value is either a clear error naming the input or a documented safe
//! fallback, never a panic; each parser is also fuzzed with arbitrary strings (proptest).
//!
//! Figures (see RELIABILITY.md): the tables below try 89 `Retry-After` values (through both
//! parsers, a header map and a whole call), 7 variables × 30 environment values (strictly and
//! leniently), 5 headers × 29 values plus duplicates and opaque bytes; the fuzz properties run
//! 100,000 cases each for `Retry-After` (arbitrary Unicode, number-like text, date-like text) and
//! 25,000 each for the environment (7 variables a case) and the headers.
//! `PROPTEST_CASES=N` overrides every count.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm};
use retry_runtime::{
    retry_after, retry_on_failure, Backoff, EnvPolicy, EnvWarning, GiveUpEvent, GiveUpReason,
    Jitter, PolicyError, RetryPolicy, Retryable,
};

fn cases(n: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    Config {
        cases: n,
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// 2015-10-21 07:27:50 UTC: the clock the HTTP-date cases are measured from.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + S(1_445_412_470)
}

// ---- Strategies for text ----
//
// Built from vectors of numbers mapped to characters rather than from regexes: a regex strategy
// cost ~200 µs a case in a debug build, these a few µs, and they still shrink element-wise.

/// Arbitrary Unicode text: any scalar value, control characters and all.
fn unicode() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..48).prop_map(|c| c.into_iter().collect())
}

/// Text made of what numbers and their near misses are made of: digits, dots, signs, exponents,
/// commas, underscores, ASCII and Unicode spaces, other scripts' digits, and now and then any
/// character at all.
fn number_like() -> impl Strategy<Value = String> {
    const ODD: [char; 14] = [
        'e', 'E', ',', '_', 's', 'x', 'i', 'n', 'f', 'N', 'a', ':', '/', '%',
    ];
    const SPACES: [char; 10] = [
        '\u{A0}', '\u{2000}', '\u{200B}', '\u{FEFF}', '\u{3000}', '\n', '\r', '\0', '\u{B}',
        '\u{85}',
    ];
    const DIGITS: [char; 6] = ['٣', '５', 'Ⅻ', '𝟙', '߂', '໓'];
    prop::collection::vec(any::<u32>(), 0..32).prop_map(|xs| {
        xs.into_iter()
            .map(|x| {
                let pick = |n: usize| (x as usize / 16) % n;
                match x % 16 {
                    0..=6 => char::from(b'0' + pick(10) as u8),
                    7 => '.',
                    8 => ' ',
                    9 => '\t',
                    10 => '-',
                    11 => '+',
                    12 => ODD[pick(ODD.len())],
                    13 => SPACES[pick(SPACES.len())],
                    14 => DIGITS[pick(DIGITS.len())],
                    _ => char::from_u32(x / 16).unwrap_or('\u{FFFD}'),
                }
            })
            .collect()
    })
}

/// Either kind of text.
fn text() -> impl Strategy<Value = String> {
    (any::<bool>(), unicode(), number_like()).prop_map(|(n, u, d)| if n { d } else { u })
}

// ---- Retry-After ----

/// What a value must give: `None` is "no hint, the backoff decides".
fn retry_after_cases() -> Vec<(String, Option<Duration>)> {
    let none = |v: &str| (v.to_owned(), None);
    let some = |v: &str, d: Duration| (v.to_owned(), Some(d));
    let mut cases = vec![
        // Negative, signed and NaN-like text: no hint.
        none("-1"),
        none("-0"),
        none("-0.5"),
        none("- 5"),
        none("+5"),
        none("NaN"),
        none("nan"),
        none("-NaN"),
        none("inf"),
        none("-inf"),
        none("Infinity"),
        none("1e3"),
        none("1E3"),
        none("1e400"),
        none("0x10"),
        none("0b1"),
        none("1_000"),
        none("1,5"),
        none("1."),
        none(".5"),
        none("1..2"),
        none("1.2.3"),
        none("5s"),
        none("5 s"),
        none("9 9"),
        none("soon"),
        none("null"),
        none("undefined"),
        none("true"),
        // Empty and whitespace only.
        none(""),
        none(" "),
        none("\t"),
        none("\r\n"),
        none(&" ".repeat(10_000)),
        // Unicode: other scripts' digits, full-width digits, emoji, invisible characters.
        none("٣"),
        none("١٢"),
        none("５"),
        none("Ⅻ"),
        none("🕐"),
        none("\u{200B}5"),
        none("5\u{200B}"),
        none("\u{FEFF}5"),
        none("\u{0}"),
        none("5\u{0}"),
        none("\u{7F}"),
        none("ğ"),
        // Malformed and out-of-range HTTP-dates.
        none("Wed, 32 Oct 2015 07:28:00 GMT"),
        none("Wed, 21 Oct 2015 25:28:00 GMT"),
        none("Wed, 21 Oct 2015 07:61:00 GMT"),
        none("Wed, 21 Foo 2015 07:28:00 GMT"),
        none("Wed, 21 Oct 10000 07:28:00 GMT"),
        none("Wed, 21 Oct 2015 07:28:00 PST"),
        none("Wed, 21 Oct 2015 07:28:00"),
        none("Wed, 21 Oct 2015"),
        none("2015-10-21T07:28:00Z"),
        none("Mon, 01 Jan 1900 00:00:00 GMT"),
        none("Sat, 01 Jan 0000 00:00:00 GMT"),
        none("Wed, 21 Oct 2015 07:28:00 GMT garbage"),
        none("ğ, 21 Oct 2015 07:28:00 GMT"),
        // Plain numbers, trimmed.
        some("0", Duration::ZERO),
        some("000", Duration::ZERO),
        some("0.0", Duration::ZERO),
        some("1", S(1)),
        some(" 7 ", S(7)),
        some("\t7\t", S(7)),
        some("1.5", MS(1500)),
        some("120", S(120)),
        some("0.000000001", Duration::from_nanos(1)),
        some("0.0000000009", Duration::ZERO),
        some("18446744073709551615", S(u64::MAX)),
        // More seconds than a `Duration` holds: the largest one, so the call gives up at once.
        some("18446744073709551616", Duration::MAX),
        some(&format!("1{}", "0".repeat(30)), Duration::MAX),
        some(&"9".repeat(100_000), Duration::MAX),
        some(&format!("1.{}", "0".repeat(100_000)), S(1)),
        some(&format!("{}7", "0".repeat(100_000)), S(7)),
        some(&format!("{}7", " ".repeat(10_000)), S(7)),
        // `str::trim` takes Unicode spaces too: lenient, and harmless (a header value holding
        // one is not visible ASCII and never reaches the parser through `from_headers`).
        some("\u{A0}5\u{3000}", S(5)),
        // HTTP-dates, in the three formats, measured from `now()`.
        some("Wed, 21 Oct 2015 07:28:00 GMT", S(10)),
        some("Wednesday, 21-Oct-15 07:28:00 GMT", S(10)),
        some("Wed Oct 21 07:28:00 2015", S(10)),
        // In the past, or exactly now: retry as soon as the backoff allows.
        some("Wed, 21 Oct 2015 07:27:50 GMT", Duration::ZERO),
        some("Wed, 21 Oct 2015 07:27:49 GMT", Duration::ZERO),
        some("Thu, 01 Jan 1970 00:00:00 GMT", Duration::ZERO),
        // Far in the future: huge but finite, compared with `max_retry_after` by the call.
        some(
            "Fri, 31 Dec 9999 23:59:59 GMT",
            S(253_402_300_799 - 1_445_412_470),
        ),
    ];
    // Very long garbage of every kind.
    for long in [
        "a".repeat(100_000),
        "1.".repeat(50_000),
        "-".repeat(100_000),
        "٣".repeat(50_000),
        format!("Wed, 21 Oct 2015 07:28:00 GMT{}", " x".repeat(50_000)),
    ] {
        cases.push((long, None));
    }
    cases
}

#[test]
fn hostile_retry_after_values_are_no_hint_or_saturate() {
    let cases = retry_after_cases();
    assert_eq!(cases.len(), 89);
    for (value, want) in &cases {
        let got = retry_after::parse_at(value, now());
        assert_eq!(got, *want, "Retry-After: {:.60?}", value);
        // `retry-after-ms` takes the same decimal numbers, in milliseconds, and no dates.
        let is_number = want.is_some() && !value.contains(',') && !value.contains(':');
        if !is_number {
            assert_eq!(retry_after::parse_millis(value), None, "ms: {:.60?}", value);
        }
        // A garbage `retry-after-ms` falls back to `Retry-After`, never the other way round.
        assert_eq!(
            retry_after::from_values(Some("garbage"), Some(value), now()),
            *want
        );
        // Through a header map: a value `http` refuses to hold cannot arrive at all; one it
        // holds but that is not visible ASCII is skipped.
        if let Ok(header) = HeaderValue::from_str(value) {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, header);
            let want = if value.is_ascii() { *want } else { None };
            assert_eq!(
                retry_after::from_headers_at(&headers, now()),
                want,
                "header: {:.60?}",
                value
            );
        }
    }
}

#[test]
fn hostile_retry_after_millis() {
    for (value, want) in [
        ("", None),
        ("-1", None),
        ("NaN", None),
        ("1e3", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("0", Some(Duration::ZERO)),
        ("1500", Some(MS(1500))),
        ("0.5", Some(Duration::from_micros(500))),
        ("0.0000001", Some(Duration::ZERO)),
        (
            "18446744073709551615999",
            Some(Duration::new(u64::MAX, 999_000_000)),
        ),
        ("18446744073709551616000", Some(Duration::MAX)),
        ("1000000000000000000000000000000", Some(Duration::MAX)),
    ] {
        assert_eq!(retry_after::parse_millis(value), want, "{value:?}");
    }
    assert_eq!(
        retry_after::parse_millis(&"9".repeat(1_000_000)),
        Some(Duration::MAX)
    );
}

#[test]
fn opaque_and_repeated_retry_after_headers() {
    let mut headers = HeaderMap::new();
    for bytes in [&b"\xff\xfe"[..], b"caf\xc3\xa9", b"\x80", b"5\xa0"] {
        headers.append(
            http::header::RETRY_AFTER,
            HeaderValue::from_bytes(bytes).unwrap(),
        );
    }
    assert_eq!(retry_after::from_headers_at(&headers, now()), None);
    headers.append(http::header::RETRY_AFTER, HeaderValue::from_static("-3"));
    headers.append(http::header::RETRY_AFTER, HeaderValue::from_static("4"));
    headers.append(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    assert_eq!(retry_after::from_headers_at(&headers, now()), Some(S(4)));
    // `retry-after-ms` wins when it parses, whatever its position.
    headers.append("retry-after-ms", HeaderValue::from_static("NaN"));
    headers.append("retry-after-ms", HeaderValue::from_static("250"));
    assert_eq!(retry_after::from_headers_at(&headers, now()), Some(MS(250)));
}

/// An error carrying a server's raw `Retry-After` text, parsed as a provider would.
#[derive(Debug, PartialEq)]
struct Throttled(String);

impl Retryable for Throttled {
    fn is_retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        retry_after::parse(&self.0)
    }
}

static HOSTILE_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
static HOSTILE_GIVE_UP: Mutex<Option<GiveUpReason>> = Mutex::new(None);

#[retry_on_failure(
    max_attempts = 3,
    initial_delay = 1,
    max_delay = 10,
    jitter = "none",
    on_give_up = |_err, event: &GiveUpEvent| *HOSTILE_GIVE_UP.lock().unwrap() = Some(event.reason)
)]
async fn throttled(value: &str) -> Result<(), Throttled> {
    HOSTILE_ATTEMPTS.fetch_add(1, SeqCst);
    Err(Throttled(value.to_owned()))
}

/// The whole call, on the paused clock: a hint that is no hint leaves the backoff in charge, a
/// zero or past hint changes nothing, and an absurd one gives up at once instead of sleeping.
#[tokio::test(start_paused = true)]
async fn a_call_survives_every_hostile_retry_after() {
    let far_future = "Fri, 31 Dec 9999 23:59:59 GMT".to_owned();
    let e30 = format!("1{}", "0".repeat(30));
    let cases: Vec<(&str, u32, Duration, GiveUpReason)> = vec![
        // No hint: the backoff, 1 s then 2 s.
        ("NaN", 3, S(3), GiveUpReason::Exhausted),
        ("-5", 3, S(3), GiveUpReason::Exhausted),
        ("", 3, S(3), GiveUpReason::Exhausted),
        ("５", 3, S(3), GiveUpReason::Exhausted),
        (
            "Wed, 32 Oct 2015 07:28:00 GMT",
            3,
            S(3),
            GiveUpReason::Exhausted,
        ),
        // A zero or past hint: the backoff is never undercut and the hint adds nothing.
        ("0", 3, S(3), GiveUpReason::Exhausted),
        (
            "Thu, 01 Jan 1970 00:00:00 GMT",
            3,
            S(3),
            GiveUpReason::Exhausted,
        ),
        // More than `max_retry_after` (120 s): return the error at once.
        (&e30, 1, Duration::ZERO, GiveUpReason::RetryAfterTooLong),
        (
            &far_future,
            1,
            Duration::ZERO,
            GiveUpReason::RetryAfterTooLong,
        ),
        ("121", 1, Duration::ZERO, GiveUpReason::RetryAfterTooLong),
    ];
    for (value, attempts, slept, reason) in cases {
        HOSTILE_ATTEMPTS.store(0, SeqCst);
        let start = tokio::time::Instant::now();
        assert_eq!(throttled(value).await, Err(Throttled(value.to_owned())));
        assert_eq!(HOSTILE_ATTEMPTS.load(SeqCst), attempts, "{value:.40?}");
        assert_eq!(start.elapsed(), slept, "{value:.40?}");
        assert_eq!(HOSTILE_GIVE_UP.lock().unwrap().take(), Some(reason));
    }
    // A sane hint is honoured: 5 s plus a spread of up to 0.5 s, twice.
    HOSTILE_ATTEMPTS.store(0, SeqCst);
    let start = tokio::time::Instant::now();
    throttled("5").await.unwrap_err();
    let slept = start.elapsed();
    assert!(slept >= S(10) && slept <= S(11), "{slept:?}");
}

proptest! {
    #![proptest_config(cases(100_000))]

    /// Arbitrary Unicode text: never a panic, and a hint only for what the grammar allows.
    #[test]
    fn retry_after_fuzz_arbitrary_text(value in unicode()) {
        let got = retry_after::parse_at(&value, now());
        let trimmed = value.trim();
        if got.is_some() {
            let number = is_decimal(trimmed);
            let date = httpdate::parse_http_date(trimmed).is_ok();
            prop_assert!(number || date, "{value:?} gave {got:?}");
        }
        if is_decimal(trimmed) {
            prop_assert_eq!(got, Some(reference(trimmed, 1_000_000_000)));
        }
        let ms = retry_after::parse_millis(&value);
        prop_assert_eq!(ms.is_some(), is_decimal(trimmed), "{:?}", value);
    }

    /// Text made of what numbers are made of, so that the near misses are tried too; decimal
    /// values must match an independent computation.
    #[test]
    fn retry_after_fuzz_number_like_text(value in number_like()) {
        let trimmed = value.trim();
        let seconds = retry_after::parse_at(&value, now());
        let millis = retry_after::parse_millis(&value);
        if is_decimal(trimmed) {
            prop_assert_eq!(seconds, Some(reference(trimmed, 1_000_000_000)));
            prop_assert_eq!(millis, Some(reference(trimmed, 1_000_000)));
        } else {
            prop_assert_eq!(seconds, None, "{:?}", value);
            prop_assert_eq!(millis, None, "{:?}", value);
        }
    }

    /// Date-shaped text with every field out of range now and then, from any clock.
    #[test]
    fn retry_after_fuzz_dates(
        day in prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Foo", ""]),
        dd in 0u32..40, mon in prop::sample::select(vec!["Jan", "Feb", "Oct", "Dec", "Xyz"]),
        year in prop::sample::select(vec![0u32, 1, 1900, 1969, 1970, 2015, 2038, 2106, 9999, 10000, 99999]),
        hh in 0u32..30, mm in 0u32..70, ss in 0u32..70,
        now_secs in prop::sample::select(vec![0u64, 1_445_412_470, 4_102_444_800, 253_402_300_799, 1 << 40]),
    ) {
        let value = format!("{day}, {dd:02} {mon} {year} {hh:02}:{mm:02}:{ss:02} GMT");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
        let got = retry_after::parse_at(&value, now);
        match httpdate::parse_http_date(&value) {
            Ok(at) => prop_assert_eq!(got, Some(at.duration_since(now).unwrap_or(Duration::ZERO))),
            Err(_) => prop_assert_eq!(got, None),
        }
    }
}

/// `1*DIGIT [ "." 1*DIGIT ]`.
fn is_decimal(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((w, f)) => digits(w) && digits(f),
        None => digits(s),
    }
}

/// The value of a decimal in a unit of `unit_nanos`, truncated to the nanosecond, saturating at
/// `Duration::MAX`: computed digit by digit on strings, independently of the crate's arithmetic.
fn reference(s: &str, unit_nanos: u128) -> Duration {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole = whole.trim_start_matches('0');
    // 10^25 ms is already past `Duration::MAX`; below that, u128 holds the nanoseconds.
    if whole.len() > 25 {
        return Duration::MAX;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().unwrap()
    };
    // Digits of the fraction that still count at nanosecond resolution in this unit.
    let places = (unit_nanos.ilog10()) as usize;
    let frac: String = frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(places)
        .collect();
    let frac: u128 = if places == 0 {
        0
    } else {
        frac.parse().unwrap()
    };
    let nanos = whole * unit_nanos + frac;
    match u64::try_from(nanos / 1_000_000_000) {
        Ok(secs) => Duration::new(secs, (nanos % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

// ---- Environment variables ----

/// The variables of prefix `HX`, in the order they are read.
const VARS: [&str; 7] = [
    "HX_MAX_RETRIES",
    "HX_RETRY_INITIAL_DELAY",
    "HX_RETRY_MAX_DELAY",
    "HX_RETRY_BACKOFF_FACTOR",
    "HX_RETRY_BACKOFF",
    "HX_RETRY_JITTER",
    "HX_RETRY_MAX_TIME",
];

/// Values every variable is tried with.
fn env_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "abc",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "infinity",
        "-1",
        "0",
        "-0",
        "1",
        "+1",
        "1e400",
        "1e-400",
        "0x10",
        "1_000",
        "18446744073709551616",
        "4294967296",
        "",
        "   ",
        "\t",
        "５",
        "١",
        "🚀",
        "\u{0}",
        "\u{FFFD}",
        "none",
        " Linear ",
        "EQUAL",
        "2.5",
    ]
    .map(String::from)
    .to_vec();
    v.push("9".repeat(10_000));
    v
}

/// What a variable set to `value` (and nothing else) must do to `RetryPolicy::DEFAULT`: `Ok(p)`
/// for an accepted value (`p` the resulting policy), `Err(())` for one that must be rejected.
fn env_expectation(var: &str, value: &str) -> Result<RetryPolicy, ()> {
    let base = RetryPolicy::DEFAULT;
    let b = base.to_builder();
    let text = value.trim();
    if text.is_empty() {
        return Ok(base); // unset
    }
    let built = |b: retry_runtime::RetryPolicyBuilder| b.build().map_err(drop);
    match (var, text) {
        ("HX_MAX_RETRIES", "1" | "+1") => built(b.max_attempts(1)),
        ("HX_RETRY_INITIAL_DELAY", "0" | "-0" | "1e-400") => built(b.initial_delay(Duration::ZERO)),
        ("HX_RETRY_INITIAL_DELAY", "1" | "+1") => built(b.initial_delay(S(1))),
        ("HX_RETRY_INITIAL_DELAY", "2.5") => built(b.initial_delay(MS(2500))),
        // Below the 1 s initial delay: rejected once all are read.
        ("HX_RETRY_MAX_DELAY", "1" | "+1") => built(b.max_delay(S(1))),
        ("HX_RETRY_MAX_DELAY", "2.5") => built(b.max_delay(MS(2500))),
        // 136 years: a `Duration` holds it; 2^64 seconds it does not.
        ("HX_RETRY_MAX_DELAY", "4294967296") => built(b.max_delay(S(1 << 32))),
        ("HX_RETRY_BACKOFF_FACTOR", "1" | "+1") => built(b.backoff_factor(1.0)),
        ("HX_RETRY_BACKOFF_FACTOR", "2.5") => built(b.backoff_factor(2.5)),
        // Finite and at least 1: absurd but valid, the delays saturate at max_delay.
        ("HX_RETRY_BACKOFF_FACTOR", "4294967296") => built(b.backoff_factor(4294967296.0)),
        ("HX_RETRY_BACKOFF_FACTOR", "18446744073709551616") => {
            built(b.backoff_factor(18446744073709551616.0))
        }
        ("HX_RETRY_BACKOFF", "Linear") => built(b.backoff(Backoff::Linear)),
        ("HX_RETRY_JITTER", "EQUAL") => built(b.jitter(Jitter::Equal)),
        ("HX_RETRY_JITTER", "none") => built(b.jitter(Jitter::None)),
        ("HX_RETRY_MAX_TIME", "none") => built(b.no_max_time()),
        ("HX_RETRY_MAX_TIME", "1" | "+1") => built(b.max_time(S(1))),
        ("HX_RETRY_MAX_TIME", "2.5") => built(b.max_time(MS(2500))),
        ("HX_RETRY_MAX_TIME", "4294967296") => built(b.max_time(S(1 << 32))),
        _ => Err(()),
    }
}

#[test]
fn every_variable_with_every_hostile_value() {
    let values = env_values();
    let mut tried = 0;
    for var in VARS {
        for value in &values {
            tried += 1;
            let lookup = |name: &str| (name == var).then(|| value.clone());
            let strict = RetryPolicy::DEFAULT.env_overrides("HX", lookup);
            let mut warnings = Vec::new();
            let lenient =
                RetryPolicy::DEFAULT
                    .env_overrides_lenient("HX", lookup, |w: &EnvWarning| warnings.push(w.clone()));
            match env_expectation(var, value) {
                Ok(want) => {
                    assert_eq!(strict, Ok(want), "{var}={value:.40?}");
                    assert_eq!(lenient, want, "{var}={value:.40?}");
                    assert!(warnings.is_empty(), "{var}={value:.40?}: {warnings:?}");
                }
                Err(()) => {
                    // Strict: an error naming the variable and the value as set.
                    let err = strict.expect_err(&format!("{var}={value:.40?} accepted"));
                    match &err {
                        PolicyError::Env {
                            variable, value: v, ..
                        } => {
                            assert_eq!(variable, var);
                            assert_eq!(v, value);
                        }
                        other => panic!("{var}={value:.40?}: {other:?}"),
                    }
                    assert!(err.to_string().starts_with(&format!("{var}=")), "{err}");
                    // Lenient: the base kept, one warning saying so.
                    assert_eq!(lenient, RetryPolicy::DEFAULT, "{var}={value:.40?}");
                    assert_eq!(warnings.len(), 1, "{var}={value:.40?}");
                    assert_eq!(warnings[0].variable(), var);
                    assert_eq!(warnings[0].value(), value);
                    assert!(warnings[0].to_string().contains("; keeping "));
                }
            }
        }
    }
    assert_eq!(tried, 7 * 30);
}

#[test]
fn every_variable_hostile_at_once_keeps_the_base_with_one_warning_each() {
    for value in env_values() {
        if value.trim().is_empty() {
            continue;
        }
        let lookup = |_: &str| Some(value.clone());
        let mut warnings = Vec::new();
        let p = RetryPolicy::DEFAULT
            .env_overrides_lenient("HX", lookup, |w: &EnvWarning| warnings.push(w.clone()));
        // Whatever was accepted, the result is a valid policy.
        assert_eq!(p.to_builder().build(), Ok(p), "{value:.40?}");
        assert!(warnings.len() <= VARS.len(), "{value:.40?}: {warnings:?}");
        // Strict loading fails exactly when the lenient one warned.
        assert_eq!(
            RetryPolicy::DEFAULT.env_overrides("HX", lookup).is_ok(),
            warnings.is_empty(),
            "{value:.40?}"
        );
    }
}

/// A value that is not Unicode is reported as unusable (replacement characters), not ignored.
#[cfg(unix)]
#[test]
fn non_unicode_process_environment_is_an_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    std::env::set_var("HARDEN_BYTES_MAX_RETRIES", OsStr::from_bytes(b"3\xff"));
    let err = RetryPolicy::from_env("HARDEN_BYTES").unwrap_err();
    assert_eq!(
        err.to_string(),
        "HARDEN_BYTES_MAX_RETRIES=\"3\u{FFFD}\": max_attempts must be a whole number of at least 1, found \"3\u{FFFD}\""
    );
}

static ENV_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[retry_on_failure(
    env_prefix = "HARDEN_HOSTILE",
    max_attempts = 3,
    initial_delay = 0.5,
    max_delay = 4,
    jitter = "none"
)]
async fn env_configured() -> Result<(), &'static str> {
    ENV_ATTEMPTS.fetch_add(1, SeqCst);
    Err("down")
}

/// Through the attribute: every variable hostile in the process environment, and the call runs
/// with its compiled-in settings (3 attempts, 0.5 s then 1 s).
#[tokio::test(start_paused = true)]
async fn the_attribute_keeps_its_literals_when_every_variable_is_hostile() {
    for (var, value) in [
        ("HARDEN_HOSTILE_MAX_RETRIES", "1e400"),
        ("HARDEN_HOSTILE_RETRY_INITIAL_DELAY", "NaN"),
        ("HARDEN_HOSTILE_RETRY_MAX_DELAY", "-1"),
        ("HARDEN_HOSTILE_RETRY_BACKOFF_FACTOR", "inf"),
        ("HARDEN_HOSTILE_RETRY_BACKOFF", "🚀"),
        ("HARDEN_HOSTILE_RETRY_JITTER", "\u{FFFD}"),
        ("HARDEN_HOSTILE_RETRY_MAX_TIME", "0"),
    ] {
        std::env::set_var(var, value);
    }
    let start = tokio::time::Instant::now();
    assert_eq!(env_configured().await, Err("down"));
    assert_eq!(ENV_ATTEMPTS.load(SeqCst), 3);
    assert_eq!(start.elapsed(), MS(1500));
}

/// `EnvPolicy` under a lookup returning every hostile value for every variable.
#[test]
fn env_policy_with_a_hostile_lookup_is_the_base() {
    static WARNED: AtomicU32 = AtomicU32::new(0);
    static POLICY: EnvPolicy = EnvPolicy::new("HX", RetryPolicy::DEFAULT)
        .with_lookup(|_| Some("1e400".to_owned()))
        .with_warning_sink(|_| {
            WARNED.fetch_add(1, SeqCst);
        });
    assert_eq!(*POLICY.get(), RetryPolicy::DEFAULT);
    assert_eq!(WARNED.load(SeqCst), 7);
}

proptest! {
    #![proptest_config(cases(25_000))]

    /// Arbitrary text (number-like or any Unicode) in arbitrary variables, some unset: strict and
    /// lenient loading agree, the lenient one always yields a valid policy, and every warning
    /// names a variable that was set.
    #[test]
    fn env_fuzz(values in prop::collection::vec((0u8..4, text()), 7)) {
        let values: Vec<Option<String>> =
            values.into_iter().map(|(set, v)| (set > 0).then_some(v)).collect();
        let lookup = |name: &str| {
            VARS.iter().position(|v| *v == name).and_then(|i| values[i].clone())
        };
        let strict = RetryPolicy::DEFAULT.env_overrides("HX", lookup);
        let mut warnings = Vec::new();
        let lenient = RetryPolicy::DEFAULT
            .env_overrides_lenient("HX", lookup, |w: &EnvWarning| warnings.push(w.clone()));
        prop_assert_eq!(lenient.to_builder().build(), Ok(lenient));
        match strict {
            Ok(p) => {
                prop_assert!(warnings.is_empty());
                prop_assert_eq!(p, lenient);
            }
            Err(e) => {
                prop_assert!(!warnings.is_empty());
                prop_assert!(matches!(e, PolicyError::Env { .. }), "{:?}", e);
            }
        }
        for w in &warnings {
            let i = VARS.iter().position(|v| *v == w.variable());
            prop_assert!(i.is_some_and(|i| values[i].is_some()), "{}", w);
        }
    }
}

// ---- Helicone's headers ----

const HEADERS: [&str; 5] = [
    "helicone-retry-enabled",
    "helicone-retry-num",
    "helicone-retry-factor",
    "helicone-retry-min-timeout",
    "helicone-retry-max-timeout",
];

fn header_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "abc",
        "NaN",
        "inf",
        "-inf",
        "-1",
        "0",
        "-0",
        "1",
        "+1",
        "1e400",
        "1e308",
        "1e-400",
        "",
        " ",
        "\t",
        "0x10",
        "1_000",
        "18446744073709551616",
        "4294967295",
        "4294967294",
        "true",
        " TRUE ",
        "false",
        "yes",
        "1.5",
        "20000",
        "500",
        "none",
    ]
    .map(String::from)
    .to_vec();
    v.push("9".repeat(10_000));
    v
}

/// Headers `pairs` on top of `helicone-retry-enabled: true` (unless it is among them).
fn request(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    if !pairs.iter().any(|(n, _)| *n == HEADERS[0]) {
        map.insert(HEADERS[0], HeaderValue::from_static("true"));
    }
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

/// A result of `from_headers` that is either a valid policy or an error naming `header`.
fn assert_clear(result: &Result<RetryPolicy, PolicyError>, header: &str, value: &str) {
    match result {
        Ok(p) => assert_eq!(p.to_builder().build(), Ok(*p), "{header}: {value:.40?}"),
        Err(PolicyError::Header {
            header: h,
            value: v,
            problem,
        }) => {
            assert_eq!(h, header, "{value:.40?}");
            assert!(
                v.contains(value.trim()) || !value.is_ascii(),
                "{v:.40?} vs {value:.40?}"
            );
            assert!(!problem.to_string().is_empty());
        }
        Err(other) => panic!("{header}: {value:.40?}: not a header error: {other:?}"),
    }
}

#[test]
fn every_header_with_every_hostile_value() {
    let values = header_values();
    let mut tried = 0;
    for header in HEADERS {
        for value in &values {
            tried += 1;
            let result =
                RetryPolicy::from_headers(&request(&[(header, value.as_bytes())]), "helicone-");
            assert_clear(&result, header, value);
            let accepted = result.is_ok();
            let t = value.trim();
            let number = t.parse::<f64>().ok();
            let want = match header {
                "helicone-retry-enabled" => {
                    t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
                }
                "helicone-retry-num" => t.parse::<u32>().is_ok_and(|n| n < u32::MAX),
                "helicone-retry-factor" => number.is_some_and(|f| f.is_finite() && f >= 1.0),
                // Milliseconds, finite, at least 0, and on the right side of the other bound.
                "helicone-retry-min-timeout" => {
                    number.is_some_and(|ms| ms.is_finite() && (0.0..=10_000.0).contains(&ms))
                }
                _ => {
                    number.is_some_and(|ms| ms.is_finite() && ms >= 1000.0 && ms / 1000.0 < 1.8e19)
                }
            };
            assert_eq!(accepted, want, "{header}: {value:.40?}: {result:?}");
        }
        // Sent twice, even with the same good value: an error naming the header.
        let dup =
            RetryPolicy::from_headers(&request(&[(header, b"2"), (header, b"2")]), "helicone-");
        let err = dup.expect_err(header);
        assert!(err.to_string().contains("must be sent once"), "{err}");
        assert_clear(&Err(err), header, "2, 2");
        // Bytes a header may carry but that are not visible ASCII.
        for bytes in [&b"\xff"[..], b"caf\xc3\xa9", b"1\xa0", b"\x80\x80"] {
            let result = RetryPolicy::from_headers(&request(&[(header, bytes)]), "helicone-");
            let err = result.expect_err(header);
            assert!(err.to_string().contains("visible ASCII"), "{err}");
        }
        tried += 5;
    }
    assert_eq!(tried, 5 * 34);
}

#[test]
fn hostile_prefixes_are_errors_not_panics() {
    let map = request(&[]);
    for prefix in [
        "bad prefix",
        "ü-",
        "\u{0}",
        "a\nb",
        &"x".repeat(100_000),
        "héader-",
    ] {
        let err = RetryPolicy::from_headers(&map, prefix).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::Invalid {
                    field: "header prefix",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // An empty prefix reads `retry-enabled` and the like; none is sent here.
    assert_eq!(
        RetryPolicy::from_headers(&map, "").unwrap().max_attempts(),
        1
    );
}

proptest! {
    #![proptest_config(cases(25_000))]

    /// Arbitrary bytes (that a header may hold) in arbitrary headers, some repeated: a valid
    /// policy or an error naming one of the headers sent.
    #[test]
    fn header_fuzz(
        sent in prop::collection::vec((0usize..5, prop::collection::vec(any::<u8>(), 0..12)), 0..7),
        printable in prop::collection::vec((0usize..5, "[ -~]{0,16}"), 0..4),
    ) {
        let mut map = HeaderMap::new();
        let mut names = Vec::new();
        for (i, bytes) in sent {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                map.append(HEADERS[i], v);
                names.push(HEADERS[i]);
            }
        }
        for (i, text) in printable {
            if let Ok(v) = HeaderValue::from_str(&text) {
                map.append(HEADERS[i], v);
                names.push(HEADERS[i]);
            }
        }
        match RetryPolicy::from_headers(&map, "Helicone") {
            Ok(p) => prop_assert_eq!(p.to_builder().build(), Ok(p)),
            Err(PolicyError::Header { header, .. }) => prop_assert!(names.contains(&header.as_str())),
            Err(other) => prop_assert!(false, "{:?}", other),
        }
    }
}
