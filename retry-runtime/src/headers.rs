//! Per-request settings from HTTP headers, as Helicone's gateway reads them
//! (`Helicone-Retry-Enabled`, `helicone-retry-num`, ...).

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::{Jitter, PolicyError, RetryPolicy};

/// Header suffixes after the prefix.
const ENABLED: &str = "retry-enabled";
const NUM: &str = "retry-num";
const FACTOR: &str = "retry-factor";
const MIN_TIMEOUT: &str = "retry-min-timeout";
const MAX_TIMEOUT: &str = "retry-max-timeout";

impl RetryPolicy {
    /// Helicone's defaults, used for whatever headers a request leaves out: 3 retries (4 attempts),
    /// factor 2, 1 000 ms minimum and 10 000 ms maximum between attempts, and no jitter, so that
    /// every delay lies between the minimum and the maximum as the header names promise.
    pub const HEADER_DEFAULTS: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        backoff_factor: 2.0,
        jitter: Jitter::None,
        ..RetryPolicy::DEFAULT
    };

    /// The policy a request asks for through headers named `<prefix>retry-*`, e.g. with prefix
    /// `helicone-`:
    ///
    /// | header | meaning | default |
    /// |---|---|---|
    /// | `helicone-retry-enabled` | `true` to retry at all (`false` or absent: one attempt) | `false` |
    /// | `helicone-retry-num` | retries after the first attempt (`max_attempts` = num + 1) | 3 |
    /// | `helicone-retry-factor` | exponential backoff factor, at least 1 | 2 |
    /// | `helicone-retry-min-timeout` | first delay, in milliseconds | 1000 |
    /// | `helicone-retry-max-timeout` | largest delay, in milliseconds | 10000 |
    ///
    /// Header names are case-insensitive (`Helicone-Retry-Enabled` works, so does prefix
    /// `Helicone-`); a missing trailing `-` on the prefix is added. Other settings are those of
    /// [`HEADER_DEFAULTS`](Self::HEADER_DEFAULTS); change them with
    /// [`to_builder`](Self::to_builder). When retries are not enabled, the other headers are not
    /// read and the policy makes a single attempt.
    ///
    /// A value that cannot be used (not a number, a factor below 1, a maximum below the minimum, a
    /// header sent twice, bytes that are not ASCII) is a [`PolicyError::Header`] naming the header
    /// and the value. The request chooses how many attempts it gets: a server applying these
    /// headers should cap [`max_attempts`](Self::max_attempts) or set a `max_time` of its own.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use retry_runtime::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("Helicone-Retry-Enabled", "true".parse()?);
    /// headers.insert("helicone-retry-num", "5".parse()?);
    /// headers.insert("helicone-retry-min-timeout", "500".parse()?);
    /// let policy = RetryPolicy::from_headers(&headers, "helicone-")?;
    /// assert_eq!(policy.max_attempts(), 6);
    /// assert_eq!(policy.initial_delay(), Duration::from_millis(500));
    /// assert_eq!(policy.max_delay(), Duration::from_secs(10));
    ///
    /// headers.insert("helicone-retry-factor", "0.5".parse()?);
    /// assert_eq!(
    ///     RetryPolicy::from_headers(&headers, "helicone-").unwrap_err().to_string(),
    ///     r#"header helicone-retry-factor: "0.5": backoff_factor must be finite and at least 1.0, found 0.5"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_headers(headers: &HeaderMap, prefix: &str) -> Result<RetryPolicy, PolicyError> {
        let reader = Reader::new(headers, prefix)?;
        let mut policy = RetryPolicy::HEADER_DEFAULTS;
        let enabled = match reader.get(ENABLED)? {
            None => false,
            Some((header, value)) => match value.trim() {
                v if v.eq_ignore_ascii_case("true") => true,
                v if v.eq_ignore_ascii_case("false") => false,
                _ => {
                    let problem = invalid(ENABLED, "`true` or `false`", &value);
                    return Err(header_error(header, value, problem));
                }
            },
        };
        if !enabled {
            policy.max_attempts = 1;
            return Ok(policy);
        }
        if let Some((header, value)) = reader.get(NUM)? {
            let attempts = value
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|retries| retries.checked_add(1));
            match attempts {
                Some(n) => policy.max_attempts = n,
                None => {
                    let problem = invalid(NUM, "a whole number of retries, 0 or more", &value);
                    return Err(header_error(header, value, problem));
                }
            }
        }
        if let Some((header, value)) = reader.get(FACTOR)? {
            match value.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f >= 1.0 => policy.backoff_factor = f,
                Ok(f) => return Err(header_error(header, value, PolicyError::BackoffFactor(f))),
                Err(_) => {
                    let problem = invalid(FACTOR, "a number of at least 1.0", &value);
                    return Err(header_error(header, value, problem));
                }
            }
        }
        let mut min_set = None;
        if let Some((header, value)) = reader.get(MIN_TIMEOUT)? {
            policy.initial_delay = millis(MIN_TIMEOUT, &header, &value)?;
            min_set = Some((header, value));
        }
        let mut max_set = None;
        if let Some((header, value)) = reader.get(MAX_TIMEOUT)? {
            policy.max_delay = millis(MAX_TIMEOUT, &header, &value)?;
            max_set = Some((header, value));
        }
        if let Err(problem) = policy.validate() {
            // Only the pair of timeouts can be inconsistent here: blame the one that was sent.
            return Err(match max_set.or(min_set) {
                Some((header, value)) => header_error(header, value, problem),
                None => problem,
            });
        }
        Ok(policy)
    }
}

/// Looks headers up under one prefix.
struct Reader<'a> {
    headers: &'a HeaderMap,
    prefix: String,
}

impl<'a> Reader<'a> {
    fn new(headers: &'a HeaderMap, prefix: &str) -> Result<Self, PolicyError> {
        let mut prefix = prefix.to_ascii_lowercase();
        if !prefix.is_empty() && !prefix.ends_with('-') {
            prefix.push('-');
        }
        // Checked once here so that every name built below is a valid header name.
        if HeaderName::from_bytes(format!("{prefix}{ENABLED}").as_bytes()).is_err() {
            return Err(PolicyError::Invalid {
                field: "header prefix",
                expected: "made of header-name characters, such as `helicone-`",
                value: prefix,
            });
        }
        Ok(Reader { headers, prefix })
    }

    /// The header `<prefix><suffix>` and its value, if sent; an error if it was sent more than once
    /// or its value is not visible ASCII.
    fn get(&self, suffix: &'static str) -> Result<Option<(String, String)>, PolicyError> {
        let name = format!("{}{suffix}", self.prefix);
        let mut values = self.headers.get_all(name.as_str()).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        let lossy = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        if let Some(second) = values.next() {
            let value = format!("{}, {}", lossy(first), lossy(second));
            let problem = invalid(suffix, "sent once", &value);
            return Err(header_error(name, value, problem));
        }
        match first.to_str() {
            Ok(v) => Ok(Some((name, v.to_owned()))),
            Err(_) => {
                let value = lossy(first);
                let problem = invalid(suffix, "visible ASCII text", &value);
                Err(header_error(name, value, problem))
            }
        }
    }
}

fn invalid(field: &'static str, expected: &'static str, value: &str) -> PolicyError {
    PolicyError::Invalid {
        field,
        expected,
        value: value.to_owned(),
    }
}

fn header_error(header: String, value: String, problem: PolicyError) -> PolicyError {
    PolicyError::Header {
        header,
        value,
        problem: Box::new(problem),
    }
}

/// Milliseconds as sent (`1000`, `1500.5`) to a `Duration`.
fn millis(field: &'static str, header: &str, value: &str) -> Result<Duration, PolicyError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .ok_or_else(|| {
            let problem = invalid(field, "a number of milliseconds, at least 0", value);
            header_error(header.to_owned(), value.to_owned(), problem)
        })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn policy(pairs: &[(&'static str, &str)]) -> Result<RetryPolicy, PolicyError> {
        RetryPolicy::from_headers(&headers(pairs), "helicone-")
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn absent_or_disabled_means_one_attempt() {
        assert_eq!(policy(&[]).unwrap().max_attempts(), 1);
        assert_eq!(
            policy(&[("helicone-retry-enabled", "false")])
                .unwrap()
                .max_attempts(),
            1
        );
        // Disabled: the other headers are not read, even unusable ones.
        let p = policy(&[
            ("helicone-retry-enabled", "FALSE"),
            ("helicone-retry-num", "abc"),
        ])
        .unwrap();
        assert_eq!(p.max_attempts(), 1);
    }

    #[test]
    fn enabled_alone_gives_helicones_defaults() {
        let p = policy(&[("Helicone-Retry-Enabled", "true")]).unwrap();
        assert_eq!(p, RetryPolicy::HEADER_DEFAULTS);
        assert_eq!(p.max_attempts(), 4);
        assert_eq!((p.initial_delay(), p.max_delay()), (MS(1000), MS(10_000)));
        assert_eq!(p.backoff_factor(), 2.0);
        // Without jitter, delays stay within [min-timeout, max-timeout]: 1 s, 2 s, 4 s.
        let mut prev = p.initial_delay();
        for n in 1..=3 {
            prev = p.delay(n, prev, 0.0);
            assert_eq!(prev, MS(1000 << (n - 1)));
        }
    }

    #[test]
    fn every_header_is_read_case_insensitively() {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("HELICONE-RETRY-ENABLED", " True "),
            ("Helicone-Retry-Num", "5"),
            ("helicone-retry-factor", "1.5"),
            ("helicone-retry-MIN-timeout", "250"),
            ("helicone-retry-max-timeout", "2500.5"),
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.insert(name, HeaderValue::from_static(value));
        }
        for prefix in ["helicone-", "Helicone-", "HELICONE"] {
            let p = RetryPolicy::from_headers(&map, prefix).unwrap();
            assert_eq!(p.max_attempts(), 6, "{prefix}");
            assert_eq!(p.backoff_factor(), 1.5);
            assert_eq!(p.initial_delay(), MS(250));
            assert_eq!(p.max_delay(), Duration::from_micros(2_500_500));
        }
        // Zero retries is one attempt.
        let p = policy(&[
            ("helicone-retry-enabled", "true"),
            ("helicone-retry-num", "0"),
        ]);
        assert_eq!(p.unwrap().max_attempts(), 1);
    }

    #[test]
    fn hostile_values_are_errors_naming_header_and_value() {
        let on = ("helicone-retry-enabled", "true");
        let cases: &[(&[(&'static str, &str)], &str)] = &[
            (
                &[("helicone-retry-enabled", "yes")],
                r#"header helicone-retry-enabled: "yes": retry-enabled must be `true` or `false`, found "yes""#,
            ),
            (
                &[on, ("helicone-retry-num", "-1")],
                r#"header helicone-retry-num: "-1": retry-num must be a whole number of retries, 0 or more, found "-1""#,
            ),
            (
                &[on, ("helicone-retry-num", "4294967295")],
                r#"header helicone-retry-num: "4294967295": retry-num must be a whole number of retries, 0 or more, found "4294967295""#,
            ),
            (
                &[on, ("helicone-retry-num", "99999999999999999999999")],
                r#"header helicone-retry-num: "99999999999999999999999": retry-num must be a whole number of retries, 0 or more, found "99999999999999999999999""#,
            ),
            (
                &[on, ("helicone-retry-factor", "NaN")],
                r#"header helicone-retry-factor: "NaN": backoff_factor must be finite and at least 1.0, found NaN"#,
            ),
            (
                &[on, ("helicone-retry-factor", "two")],
                r#"header helicone-retry-factor: "two": retry-factor must be a number of at least 1.0, found "two""#,
            ),
            (
                &[on, ("helicone-retry-min-timeout", "-5")],
                r#"header helicone-retry-min-timeout: "-5": retry-min-timeout must be a number of milliseconds, at least 0, found "-5""#,
            ),
            (
                &[on, ("helicone-retry-max-timeout", "1e300")],
                r#"header helicone-retry-max-timeout: "1e300": retry-max-timeout must be a number of milliseconds, at least 0, found "1e300""#,
            ),
            (
                &[on, ("helicone-retry-max-timeout", "500")],
                r#"header helicone-retry-max-timeout: "500": max_delay must be at least initial_delay (1s), found 500ms"#,
            ),
            (
                &[on, ("helicone-retry-min-timeout", "20000")],
                r#"header helicone-retry-min-timeout: "20000": max_delay must be at least initial_delay (20s), found 10s"#,
            ),
            (
                &[on, ("helicone-retry-num", "2"), ("helicone-retry-num", "9")],
                r#"header helicone-retry-num: "2, 9": retry-num must be sent once, found "2, 9""#,
            ),
        ];
        for (pairs, message) in cases {
            let err = policy(pairs).unwrap_err();
            assert!(matches!(err, PolicyError::Header { .. }), "{err:?}");
            assert_eq!(err.to_string(), *message);
        }
    }

    #[test]
    fn non_ascii_values_and_bad_prefixes_are_errors() {
        let mut map = HeaderMap::new();
        map.insert(
            "helicone-retry-enabled",
            HeaderValue::from_bytes("tr\u{fc}e".as_bytes()).unwrap(),
        );
        let err = RetryPolicy::from_headers(&map, "helicone-").unwrap_err();
        assert_eq!(
            err.to_string(),
            "header helicone-retry-enabled: \"tr\u{fc}e\": retry-enabled must be visible ASCII text, found \"tr\u{fc}e\""
        );
        let err = RetryPolicy::from_headers(&map, "bad prefix").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"header prefix must be made of header-name characters, such as `helicone-`, found "bad prefix-""#
        );
    }
}
