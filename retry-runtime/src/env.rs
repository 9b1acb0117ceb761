//! Settings from environment variables: [`RetryPolicy::from_env`] (strict, for code that builds a
//! policy itself) and [`EnvPolicy`] (read once, lenient: what `#[retry_on_failure(env_prefix = ..)]`
//! uses).

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::policy::seconds;
use crate::{Backoff, Jitter, PolicyError, RetryPolicy};

/// One setting read from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    MaxRetries,
    InitialDelay,
    MaxDelay,
    BackoffFactor,
    Backoff,
    Jitter,
    MaxTime,
}

impl Var {
    /// In the order they are read (and reported).
    const ALL: [Var; 7] = [
        Var::MaxRetries,
        Var::InitialDelay,
        Var::MaxDelay,
        Var::BackoffFactor,
        Var::Backoff,
        Var::Jitter,
        Var::MaxTime,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Var::MaxRetries => "MAX_RETRIES",
            Var::InitialDelay => "RETRY_INITIAL_DELAY",
            Var::MaxDelay => "RETRY_MAX_DELAY",
            Var::BackoffFactor => "RETRY_BACKOFF_FACTOR",
            Var::Backoff => "RETRY_BACKOFF",
            Var::Jitter => "RETRY_JITTER",
            Var::MaxTime => "RETRY_MAX_TIME",
        }
    }

    /// `LLM` + `MAX_RETRIES` -> `LLM_MAX_RETRIES`; an empty prefix gives the bare suffix, and a
    /// prefix already ending in `_` gets no second one.
    fn name(self, prefix: &str) -> String {
        if prefix.is_empty() {
            self.suffix().to_owned()
        } else if prefix.ends_with('_') {
            format!("{prefix}{}", self.suffix())
        } else {
            format!("{prefix}_{}", self.suffix())
        }
    }

    /// Writes the setting parsed from `text` into `policy`, with the checks that concern this
    /// setting alone (`max_delay >= initial_delay` is checked once all are read).
    fn apply(self, policy: &mut RetryPolicy, text: &str) -> Result<(), PolicyError> {
        let invalid = |field, expected| PolicyError::Invalid {
            field,
            expected,
            value: text.to_owned(),
        };
        let secs = |field| -> Result<_, PolicyError> {
            let v: f64 = text
                .parse()
                .map_err(|_| invalid(field, "a number of seconds"))?;
            seconds(field, v)
        };
        match self {
            Var::MaxRetries => {
                let n: u32 = text
                    .parse()
                    .map_err(|_| invalid("max_attempts", "a whole number of at least 1"))?;
                if n == 0 {
                    return Err(PolicyError::ZeroAttempts);
                }
                policy.max_attempts = n;
            }
            Var::InitialDelay => policy.initial_delay = secs("initial_delay")?,
            Var::MaxDelay => policy.max_delay = secs("max_delay")?,
            Var::BackoffFactor => {
                let f: f64 = text
                    .parse()
                    .map_err(|_| invalid("backoff_factor", "a number of at least 1.0"))?;
                if !(f.is_finite() && f >= 1.0) {
                    return Err(PolicyError::BackoffFactor(f));
                }
                policy.backoff_factor = f;
            }
            Var::Backoff => {
                policy.backoff = Backoff::from_name(text)
                    .ok_or_else(|| PolicyError::UnknownBackoff(text.to_owned()))?;
            }
            Var::Jitter => {
                policy.jitter = Jitter::from_name(text)
                    .ok_or_else(|| PolicyError::UnknownJitter(text.to_owned()))?;
            }
            Var::MaxTime => {
                if text.eq_ignore_ascii_case("none") {
                    policy.max_time = None;
                } else {
                    let d = secs("max_time")?;
                    if d.is_zero() {
                        return Err(PolicyError::ZeroMaxTime);
                    }
                    policy.max_time = Some(d);
                }
            }
        }
        Ok(())
    }

    /// The setting's value in `policy`, for "keeping ..." in warnings.
    fn describe(self, p: &RetryPolicy) -> String {
        match self {
            Var::MaxRetries => format!("max_attempts = {}", p.max_attempts),
            Var::InitialDelay => format!("initial_delay = {:?}", p.initial_delay),
            Var::MaxDelay => format!("max_delay = {:?}", p.max_delay),
            Var::BackoffFactor => format!("backoff_factor = {}", p.backoff_factor),
            Var::Backoff => format!("backoff = {}", p.backoff.name()),
            Var::Jitter => format!("jitter = {}", p.jitter.name()),
            Var::MaxTime => match p.max_time {
                Some(d) => format!("max_time = {d:?}"),
                None => "max_time = none".to_owned(),
            },
        }
    }
}

/// Reads the variables over `base`. Every unusable value is passed to `reject` (as a
/// [`PolicyError::Env`] naming the variable and its value, with a description of what is kept) and
/// leaves the base's setting in place; the result is always valid when `base` is.
fn overlay(
    base: &RetryPolicy,
    prefix: &str,
    lookup: impl Fn(&str) -> Option<String>,
    mut reject: impl FnMut(PolicyError, String),
) -> RetryPolicy {
    let env_error = |variable: &str, value: &str, problem| PolicyError::Env {
        variable: variable.to_owned(),
        value: value.to_owned(),
        problem: Box::new(problem),
    };
    let mut policy = *base;
    // (name, value) of the initial and max delays taken from the environment, for the
    // cross-setting check below.
    let mut initial_set = None;
    let mut max_set = None;
    for var in Var::ALL {
        let name = var.name(prefix);
        let Some(value) = lookup(&name) else {
            continue;
        };
        let text = value.trim();
        if text.is_empty() {
            continue;
        }
        let mut candidate = policy;
        match var.apply(&mut candidate, text) {
            Ok(()) => {
                policy = candidate;
                match var {
                    Var::InitialDelay => initial_set = Some((name, value)),
                    Var::MaxDelay => max_set = Some((name, value)),
                    _ => {}
                }
            }
            Err(problem) => reject(env_error(&name, &value, problem), var.describe(base)),
        }
    }
    if policy.max_delay < policy.initial_delay {
        // Blame the cap if it was set, else the initial delay; either way both go back to the
        // base, whose pair is consistent.
        if let Some((name, value)) = max_set.or(initial_set) {
            let problem = PolicyError::MaxDelayBelowInitial {
                max_delay: policy.max_delay,
                initial_delay: policy.initial_delay,
            };
            let kept = format!(
                "{} and {}",
                Var::InitialDelay.describe(base),
                Var::MaxDelay.describe(base)
            );
            reject(env_error(&name, &value, problem), kept);
            policy.initial_delay = base.initial_delay;
            policy.max_delay = base.max_delay;
        }
    }
    policy
}

/// Reads a variable of the process environment; a value that is not valid Unicode is returned
/// lossily, so that it is reported as unusable rather than silently ignored.
///
/// This is the `lookup` that [`RetryPolicy::from_env`] and [`EnvPolicy::new`] use.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl RetryPolicy {
    /// [`RetryPolicy::DEFAULT`] with the settings found in the process environment under `prefix`
    /// (see the table in [`EnvPolicy`]); the first unusable value is an error naming the variable
    /// and the value.
    ///
    /// ```
    /// use retry_runtime::RetryPolicy;
    ///
    /// // With none of the variables set, the defaults.
    /// let policy = RetryPolicy::from_env("MY_APP_UNSET_PREFIX")?;
    /// assert_eq!(policy, RetryPolicy::DEFAULT);
    /// # Ok::<(), retry_runtime::PolicyError>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<RetryPolicy, PolicyError> {
        RetryPolicy::DEFAULT.env_overrides(prefix, process_env)
    }

    /// This policy with the settings that `lookup` finds under `prefix` (pass [`process_env`] for
    /// the process environment, a closure in tests). Strict: the first unusable value, or a
    /// `max_delay` below `initial_delay` once all are read, is an error naming the variable.
    ///
    /// ```
    /// use retry_runtime::{PolicyError, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// let vars = [("LLM_MAX_RETRIES", "5"), ("LLM_RETRY_INITIAL_DELAY", "1.5")];
    /// let lookup = |name: &str| {
    ///     vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    /// };
    /// let policy = RetryPolicy::DEFAULT.env_overrides("LLM", lookup)?;
    /// assert_eq!(policy.max_attempts(), 5);
    /// assert_eq!(policy.initial_delay(), Duration::from_millis(1500));
    ///
    /// let bad = |name: &str| (name == "LLM_MAX_RETRIES").then(|| "abc".to_string());
    /// assert_eq!(
    ///     RetryPolicy::DEFAULT.env_overrides("LLM", bad).unwrap_err().to_string(),
    ///     r#"LLM_MAX_RETRIES="abc": max_attempts must be a whole number of at least 1, found "abc""#
    /// );
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn env_overrides(
        &self,
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RetryPolicy, PolicyError> {
        let mut first = None;
        let policy = overlay(self, prefix, lookup, |err, _| {
            first.get_or_insert(err);
        });
        match first {
            Some(err) => Err(err),
            None => policy.validate().map(|()| policy),
        }
    }

    /// This policy with the usable settings that `lookup` finds under `prefix`. Lenient: an
    /// unusable value keeps this policy's setting and is reported once to `warn`; never fails.
    /// This is what [`EnvPolicy`] runs once.
    ///
    /// ```
    /// use retry_runtime::RetryPolicy;
    ///
    /// let vars = [("LLM_MAX_RETRIES", "5"), ("LLM_RETRY_BACKOFF_FACTOR", "NaN")];
    /// let lookup = |name: &str| {
    ///     vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    /// };
    /// let mut warnings = Vec::new();
    /// let policy = RetryPolicy::DEFAULT.env_overrides_lenient("LLM", lookup, |w| {
    ///     warnings.push(w.to_string())
    /// });
    /// assert_eq!(policy.max_attempts(), 5);
    /// assert_eq!(policy.backoff_factor(), 2.0);
    /// assert_eq!(
    ///     warnings,
    ///     [r#"ignoring LLM_RETRY_BACKOFF_FACTOR="NaN": backoff_factor must be finite and at least 1.0, found NaN; keeping backoff_factor = 2"#]
    /// );
    /// ```
    pub fn env_overrides_lenient(
        &self,
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
        mut warn: impl FnMut(&EnvWarning),
    ) -> RetryPolicy {
        let policy = overlay(self, prefix, lookup, |error, kept| {
            warn(&EnvWarning { error, kept });
        });
        // Only reachable with an invalid base, which the attribute never produces.
        match policy.validate() {
            Ok(()) => policy,
            Err(_) => *self,
        }
    }
}

/// An environment variable that was ignored because its value cannot be used.
///
/// Displays as ``ignoring LLM_RETRY_JITTER="fast": unknown jitter "fast"; expected one of: full,
/// equal, decorrelated, none; keeping jitter = full``.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EnvWarning {
    /// A [`PolicyError::Env`]: the variable, its value and what is wrong with it.
    pub error: PolicyError,
    /// The setting(s) kept instead, e.g. `backoff_factor = 2`.
    pub kept: String,
}

impl EnvWarning {
    /// The variable, e.g. `LLM_RETRY_JITTER`.
    pub fn variable(&self) -> &str {
        match &self.error {
            PolicyError::Env { variable, .. } => variable,
            _ => "",
        }
    }

    /// The variable's value as set.
    pub fn value(&self) -> &str {
        match &self.error {
            PolicyError::Env { value, .. } => value,
            _ => "",
        }
    }
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ignoring {}; keeping {}", self.error, self.kept)
    }
}

/// Where [`EnvPolicy`] sends its warnings unless told otherwise: a `WARN` event of `tracing`
/// (target `retry_runtime::env`, fields `variable` and `value`) with the `tracing` feature, a line
/// on stderr without it.
///
/// Several fns sharing a prefix each read the environment once; a warning identical to one
/// already given (same variable, value and kept setting) is not repeated.
pub fn default_warning_sink(warning: &EnvWarning) {
    let message = warning.to_string();
    if !first_time(&message) {
        return;
    }
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "retry_runtime::env",
        variable = warning.variable(),
        value = warning.value(),
        "{message}"
    );
    #[cfg(not(feature = "tracing"))]
    eprintln!("warning: retry_runtime: {message}");
}

/// Whether `message` is given for the first time in this process.
fn first_time(message: &str) -> bool {
    static GIVEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    if given.iter().any(|m| m == message) {
        return false;
    }
    given.push(message.to_owned());
    true
}

/// A policy whose compiled-in settings can be overridden by environment variables, read once, on
/// first use.
///
/// `#[retry_on_failure(env_prefix = "LLM", ..)]` keeps one in a `static`, built from its literals,
/// and reads it on every call: the first call reads the environment; later calls cost one atomic
/// load. An unusable value never fails a call nor panics: the compiled-in setting is kept and one
/// warning per variable goes to the warning sink ([`default_warning_sink`] unless replaced).
///
/// | variable (prefix `LLM`) | setting | value |
/// |---|---|---|
/// | `LLM_MAX_RETRIES` | `max_attempts` | a whole number, at least 1 (total attempts, as the seed pairs them) |
/// | `LLM_RETRY_INITIAL_DELAY` | `initial_delay` | seconds, e.g. `1.5` |
/// | `LLM_RETRY_MAX_DELAY` | `max_delay` | seconds, at least the initial delay |
/// | `LLM_RETRY_BACKOFF_FACTOR` | `backoff_factor` | a number, at least 1 |
/// | `LLM_RETRY_BACKOFF` | `backoff` | `exponential`, `constant`, `linear` or `fibonacci` |
/// | `LLM_RETRY_JITTER` | `jitter` | `full`, `equal`, `decorrelated` or `none` |
/// | `LLM_RETRY_MAX_TIME` | `max_time` | seconds, greater than 0, or `none` to remove the deadline |
///
/// Values are trimmed, and an empty value counts as unset. When `max_delay` would end up below
/// `initial_delay`, both keep their compiled-in values (one warning, naming the cap if it was set).
///
/// ```
/// use retry_runtime::{EnvPolicy, EnvWarning, RetryPolicy};
///
/// static POLICY: EnvPolicy = EnvPolicy::new("LLM", RetryPolicy::DEFAULT)
///     // In tests, a fixed environment instead of the process's:
///     .with_lookup(|name| (name == "LLM_MAX_RETRIES").then(|| "5".to_string()))
///     .with_warning_sink(|w: &EnvWarning| panic!("unexpected: {w}"));
///
/// assert_eq!(POLICY.get().max_attempts(), 5);
/// assert_eq!(POLICY.get().max_delay(), RetryPolicy::DEFAULT.max_delay());
/// ```
#[derive(Debug)]
pub struct EnvPolicy {
    prefix: &'static str,
    base: RetryPolicy,
    lookup: fn(&str) -> Option<String>,
    warn: fn(&EnvWarning),
    loaded: OnceLock<RetryPolicy>,
}

impl EnvPolicy {
    /// `base` overridden by the process environment under `prefix`, warnings to
    /// [`default_warning_sink`]. Nothing is read until [`get`](Self::get).
    pub const fn new(prefix: &'static str, base: RetryPolicy) -> Self {
        EnvPolicy {
            prefix,
            base,
            lookup: process_env,
            warn: default_warning_sink,
            loaded: OnceLock::new(),
        }
    }

    /// Reads variables through `lookup` instead of the process environment (for tests).
    pub const fn with_lookup(mut self, lookup: fn(&str) -> Option<String>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Sends warnings to `sink` instead of [`default_warning_sink`].
    pub const fn with_warning_sink(mut self, sink: fn(&EnvWarning)) -> Self {
        self.warn = sink;
        self
    }

    /// The policy: read from the environment on the first call (by any thread), then the same
    /// value for the life of the process.
    #[inline]
    pub fn get(&self) -> &RetryPolicy {
        self.loaded.get_or_init(|| self.load())
    }

    #[cold]
    fn load(&self) -> RetryPolicy {
        self.base
            .env_overrides_lenient(self.prefix, self.lookup, self.warn)
    }

    /// The prefix of the variables, as given.
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The compiled-in policy the environment overrides.
    pub const fn base(&self) -> &RetryPolicy {
        &self.base
    }
}

impl AsRef<RetryPolicy> for EnvPolicy {
    #[inline]
    fn as_ref(&self) -> &RetryPolicy {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A fixed environment: `lookup` over these pairs.
    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn lenient(pairs: &[(&str, &str)]) -> (RetryPolicy, Vec<EnvWarning>) {
        let mut warnings = Vec::new();
        let p = RetryPolicy::DEFAULT
            .env_overrides_lenient("LLM", vars(pairs), |w| warnings.push(w.clone()));
        (p, warnings)
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn every_variable_is_read() {
        let (p, warnings) = lenient(&[
            ("LLM_MAX_RETRIES", "5"),
            ("LLM_RETRY_INITIAL_DELAY", "1.5"),
            ("LLM_RETRY_MAX_DELAY", " 15.0 "),
            ("LLM_RETRY_BACKOFF_FACTOR", "3"),
            ("LLM_RETRY_BACKOFF", "Linear"),
            ("LLM_RETRY_JITTER", "none"),
            ("LLM_RETRY_MAX_TIME", "60"),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(p.max_attempts(), 5);
        assert_eq!(p.initial_delay(), Duration::from_millis(1500));
        assert_eq!(p.max_delay(), S(15));
        assert_eq!(p.backoff_factor(), 3.0);
        assert_eq!(p.backoff(), Backoff::Linear);
        assert_eq!(p.jitter(), Jitter::None);
        assert_eq!(p.max_time(), Some(S(60)));
    }

    #[test]
    fn unset_and_empty_variables_keep_the_base() {
        let base = RetryPolicy::builder().max_time(S(30)).build().unwrap();
        let p = base
            .env_overrides_lenient("LLM", vars(&[("LLM_MAX_RETRIES", "  ")]), |w| panic!("{w}"));
        assert_eq!(p, base);
        let p = base.env_overrides_lenient("LLM", vars(&[("LLM_RETRY_MAX_TIME", "None")]), |w| {
            panic!("{w}")
        });
        assert_eq!(p.max_time(), None);
    }

    #[test]
    fn each_bad_value_keeps_the_base_with_one_warning() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "LLM_MAX_RETRIES",
                "abc",
                r#"LLM_MAX_RETRIES="abc": max_attempts must be a whole number of at least 1, found "abc"; keeping max_attempts = 3"#,
            ),
            (
                "LLM_MAX_RETRIES",
                "-1",
                r#"LLM_MAX_RETRIES="-1": max_attempts must be a whole number of at least 1, found "-1"; keeping max_attempts = 3"#,
            ),
            (
                "LLM_MAX_RETRIES",
                "0",
                r#"LLM_MAX_RETRIES="0": max_attempts must be at least 1, found 0; keeping max_attempts = 3"#,
            ),
            (
                "LLM_MAX_RETRIES",
                "99999999999",
                r#"LLM_MAX_RETRIES="99999999999": max_attempts must be a whole number of at least 1, found "99999999999"; keeping max_attempts = 3"#,
            ),
            (
                "LLM_RETRY_INITIAL_DELAY",
                "NaN",
                r#"LLM_RETRY_INITIAL_DELAY="NaN": initial_delay must be a finite number of seconds, at least 0, found NaN; keeping initial_delay = 1s"#,
            ),
            (
                "LLM_RETRY_INITIAL_DELAY",
                "-1",
                r#"LLM_RETRY_INITIAL_DELAY="-1": initial_delay must be a finite number of seconds, at least 0, found -1; keeping initial_delay = 1s"#,
            ),
            (
                "LLM_RETRY_MAX_DELAY",
                "1e400",
                r#"LLM_RETRY_MAX_DELAY="1e400": max_delay must be a finite number of seconds, at least 0, found inf; keeping max_delay = 10s"#,
            ),
            (
                "LLM_RETRY_MAX_DELAY",
                "10s",
                r#"LLM_RETRY_MAX_DELAY="10s": max_delay must be a number of seconds, found "10s"; keeping max_delay = 10s"#,
            ),
            (
                "LLM_RETRY_BACKOFF_FACTOR",
                "0.5",
                r#"LLM_RETRY_BACKOFF_FACTOR="0.5": backoff_factor must be finite and at least 1.0, found 0.5; keeping backoff_factor = 2"#,
            ),
            (
                "LLM_RETRY_BACKOFF_FACTOR",
                "inf",
                r#"LLM_RETRY_BACKOFF_FACTOR="inf": backoff_factor must be finite and at least 1.0, found inf; keeping backoff_factor = 2"#,
            ),
            (
                "LLM_RETRY_JITTER",
                "fast",
                r#"LLM_RETRY_JITTER="fast": unknown jitter "fast"; expected one of: full, equal, decorrelated, none; keeping jitter = full"#,
            ),
            (
                "LLM_RETRY_BACKOFF",
                "quadratic",
                r#"LLM_RETRY_BACKOFF="quadratic": unknown backoff "quadratic"; expected one of: exponential, constant, linear, fibonacci; keeping backoff = exponential"#,
            ),
            (
                "LLM_RETRY_MAX_TIME",
                "0",
                r#"LLM_RETRY_MAX_TIME="0": max_time must be greater than 0; keeping max_time = none"#,
            ),
        ];
        for (var, value, message) in cases {
            let (p, warnings) = lenient(&[(var, value)]);
            assert_eq!(p, RetryPolicy::DEFAULT, "{var}={value}");
            assert_eq!(warnings.len(), 1, "{var}={value}: {warnings:?}");
            assert_eq!(warnings[0].to_string(), format!("ignoring {message}"));
            assert_eq!(warnings[0].variable(), *var);
            assert_eq!(warnings[0].value(), *value);
        }
    }

    #[test]
    fn a_bad_value_does_not_spoil_the_good_ones() {
        let (p, warnings) = lenient(&[
            ("LLM_MAX_RETRIES", "7"),
            ("LLM_RETRY_BACKOFF_FACTOR", "abc"),
            ("LLM_RETRY_JITTER", "equal"),
        ]);
        assert_eq!(p.max_attempts(), 7);
        assert_eq!(p.backoff_factor(), 2.0);
        assert_eq!(p.jitter(), Jitter::Equal);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].variable(), "LLM_RETRY_BACKOFF_FACTOR");
    }

    #[test]
    fn max_below_initial_after_overrides_keeps_both_delays() {
        // Only the cap set, below the compiled-in initial delay.
        let (p, w) = lenient(&[("LLM_RETRY_MAX_DELAY", "0.5")]);
        assert_eq!((p.initial_delay(), p.max_delay()), (S(1), S(10)));
        assert_eq!(
            w.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                r#"ignoring LLM_RETRY_MAX_DELAY="0.5": max_delay must be at least initial_delay (1s), found 500ms; keeping initial_delay = 1s and max_delay = 10s"#
            ]
        );
        // Only the initial delay set, above the compiled-in cap: blamed on the initial delay.
        let (p, w) = lenient(&[("LLM_RETRY_INITIAL_DELAY", "20")]);
        assert_eq!((p.initial_delay(), p.max_delay()), (S(1), S(10)));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].variable(), "LLM_RETRY_INITIAL_DELAY");
        // Both set, inconsistent: one warning, both back to the base.
        let (p, w) = lenient(&[
            ("LLM_RETRY_INITIAL_DELAY", "20"),
            ("LLM_RETRY_MAX_DELAY", "5"),
        ]);
        assert_eq!((p.initial_delay(), p.max_delay()), (S(1), S(10)));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].variable(), "LLM_RETRY_MAX_DELAY");
        // Both set and consistent, even though each alone would clash with the base.
        let (p, w) = lenient(&[
            ("LLM_RETRY_INITIAL_DELAY", "20"),
            ("LLM_RETRY_MAX_DELAY", "30"),
        ]);
        assert!(w.is_empty());
        assert_eq!((p.initial_delay(), p.max_delay()), (S(20), S(30)));
    }

    #[test]
    fn strict_reports_the_first_bad_value() {
        let lookup = vars(&[
            ("LLM_RETRY_BACKOFF_FACTOR", "0.5"),
            ("LLM_RETRY_JITTER", "fast"),
        ]);
        let err = RetryPolicy::DEFAULT
            .env_overrides("LLM", lookup)
            .unwrap_err();
        assert_eq!(
            err,
            PolicyError::Env {
                variable: "LLM_RETRY_BACKOFF_FACTOR".into(),
                value: "0.5".into(),
                problem: Box::new(PolicyError::BackoffFactor(0.5)),
            }
        );
        let lookup = vars(&[("LLM_RETRY_MAX_DELAY", "0.25")]);
        let err = RetryPolicy::DEFAULT
            .env_overrides("LLM", lookup)
            .unwrap_err();
        assert!(matches!(
            err.problem(),
            PolicyError::MaxDelayBelowInitial { .. }
        ));
    }

    #[test]
    fn prefixes_join_with_one_underscore() {
        let lookup = |name: &str| (name == "APP_MAX_RETRIES").then(|| "9".to_string());
        for prefix in ["APP", "APP_"] {
            let p = RetryPolicy::DEFAULT.env_overrides(prefix, lookup).unwrap();
            assert_eq!(p.max_attempts(), 9, "{prefix}");
        }
        let bare = |name: &str| (name == "MAX_RETRIES").then(|| "4".to_string());
        assert_eq!(
            RetryPolicy::DEFAULT
                .env_overrides("", bare)
                .unwrap()
                .max_attempts(),
            4
        );
    }

    #[test]
    fn the_default_sink_gives_each_warning_once() {
        assert!(first_time("ignoring X=\"1\"; keeping a"));
        assert!(!first_time("ignoring X=\"1\"; keeping a"));
        assert!(first_time("ignoring X=\"1\"; keeping b"));
    }

    #[test]
    fn env_policy_reads_once() {
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        static LOOKUPS: AtomicU32 = AtomicU32::new(0);
        static POLICY: EnvPolicy = EnvPolicy::new("ONCE", RetryPolicy::DEFAULT)
            .with_lookup(|name| {
                LOOKUPS.fetch_add(1, SeqCst);
                (name == "ONCE_MAX_RETRIES").then(|| "6".to_string())
            })
            .with_warning_sink(|w| panic!("{w}"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(POLICY.get().max_attempts(), 6));
            }
        });
        assert_eq!(POLICY.get().max_attempts(), 6);
        assert_eq!(LOOKUPS.load(SeqCst), Var::ALL.len() as u32);
    }

    #[test]
    fn env_policy_warns_once_per_bad_variable() {
        use std::sync::Mutex;
        static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
        static POLICY: EnvPolicy = EnvPolicy::new("WARN", RetryPolicy::DEFAULT)
            .with_lookup(|name| (name == "WARN_RETRY_JITTER").then(|| "sometimes".to_string()))
            .with_warning_sink(|w| WARNINGS.lock().unwrap().push(w.variable().to_owned()));
        for _ in 0..3 {
            assert_eq!(POLICY.get().jitter(), Jitter::Full);
        }
        assert_eq!(*WARNINGS.lock().unwrap(), ["WARN_RETRY_JITTER"]);
    }
}
