//! Property tests of the delay math, the policy validation and the per-call state machine:
//! whatever the inputs (attempt numbers up to `u32::MAX`, NaN/infinite/negative/huge factors,
//! delays up to `Duration::MAX`, samples outside `[0, 1)`), nothing panics, every delay is
//! within `[0, max_delay]`, schedules grow monotonically, the builder accepts exactly the valid
//! policies, and a call never starts a sleep that would end past its `max_time`.
//!
//! Case counts (see RELIABILITY.md): 100,000 per property, the whole-call simulation included
//! (each case up to 24 attempts); the file runs in a few seconds in a debug build.
//! `PROPTEST_CASES=N` overrides every count, e.g.
//! `PROPTEST_CASES=1000000 cargo test --release --test properties`.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm};
use retry_runtime::{
    AttemptOutcome, Backoff, CallClock, CallState, Classification, GiveUpReason, Jitter, Observer,
    PolicyError, RetryEvent, RetryPolicy,
};

/// `n` cases, unless `PROPTEST_CASES` says otherwise.
fn cases(n: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    Config {
        cases: n,
        // XorShift rather than ChaCha: the properties need varied inputs, not cryptographic
        // ones, and ChaCha dominates the cost of a case in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    }
}

/// The pure functions.
const PURE: u32 = 100_000;
/// Whole calls, up to 24 `step`s each.
const CALLS: u32 = 100_000;

// ---- Strategies ----

// Built from a selector and raw bits rather than `prop_oneof!`: a union re-seeds a random
// generator per arm and case, which made a case of these cheap properties cost ~50 µs in a debug
// build instead of a few. Selector 0 is the simplest value, so shrinking heads there.

/// A uniform `[0, 1)` from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Any `Duration`, weighted towards the interesting ends: zero, nanoseconds, the milliseconds
/// and seconds policies use, and the full range up to `Duration::MAX`.
fn duration() -> BoxedStrategy<Duration> {
    const EDGES: [Duration; 6] = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::MAX,
        Duration::new(u64::MAX, 999_999_998),
        Duration::from_secs(u64::MAX / 2),
        Duration::from_nanos(u64::MAX),
    ];
    (0u8..9, any::<u64>(), any::<u32>())
        .prop_map(|(kind, a, b)| match kind {
            0 => EDGES[(a % EDGES.len() as u64) as usize],
            1..=3 => Duration::from_millis(a % 100_000),
            4 | 5 => Duration::from_secs(a % 10_000_000),
            6 | 7 => Duration::new(a, b % 1_000_000_000),
            _ => Duration::from_nanos(a),
        })
        .boxed()
}

/// Any `f64`, NaN and infinities included, with the values a factor is likely to be near.
fn factor() -> BoxedStrategy<f64> {
    const EDGES: [f64; 16] = [
        1.0,
        2.0,
        0.0,
        -0.0,
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        1.0 + f64::EPSILON,
        1.0 - f64::EPSILON / 2.0,
        -1.0,
        1e308,
    ];
    (0u8..8, any::<u64>())
        .prop_map(|(kind, a)| match kind {
            0 | 1 => EDGES[(a % EDGES.len() as u64) as usize],
            2..=4 => 1.0 + 9.0 * unit(a),
            5 => unit(a),
            // Every bit pattern: subnormals, NaNs with payloads, both signs.
            _ => f64::from_bits(a),
        })
        .boxed()
}

/// A uniform sample as the runtime draws it, plus everything it must survive.
fn sample() -> BoxedStrategy<f64> {
    const EDGES: [f64; 8] = [
        0.0,
        1.0 - f64::EPSILON / 2.0,
        1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        2.0,
    ];
    (0u8..6, any::<u64>())
        .prop_map(|(kind, a)| match kind {
            0..=3 => unit(a),
            4 => EDGES[(a % EDGES.len() as u64) as usize],
            _ => f64::from_bits(a),
        })
        .boxed()
}

/// Any attempt number: small ones, and the top of the range.
fn retry_number() -> BoxedStrategy<u32> {
    (0u8..8, any::<u32>())
        .prop_map(|(kind, a)| match kind {
            0..=3 => a % 41,
            4 => u32::MAX,
            5 => u32::MAX - 1,
            _ => a,
        })
        .boxed()
}

fn backoff() -> BoxedStrategy<Backoff> {
    prop::sample::select(Backoff::ALL.to_vec()).boxed()
}

fn jitter() -> BoxedStrategy<Jitter> {
    prop::sample::select(Jitter::ALL.to_vec()).boxed()
}

/// The inputs of `RetryPolicy::builder()`, valid or not.
#[derive(Clone, Debug)]
struct Settings {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    backoff_factor: f64,
    backoff: Backoff,
    jitter: Jitter,
    max_time: Option<Duration>,
    max_retry_after: Duration,
}

impl Settings {
    fn build(&self) -> Result<RetryPolicy, PolicyError> {
        let b = RetryPolicy::builder()
            .max_attempts(self.max_attempts)
            .initial_delay(self.initial_delay)
            .max_delay(self.max_delay)
            .backoff_factor(self.backoff_factor)
            .backoff(self.backoff)
            .jitter(self.jitter)
            .max_retry_after(self.max_retry_after);
        match self.max_time {
            Some(t) => b.max_time(t),
            None => b.no_max_time(),
        }
        .build()
    }

    /// The rules of `RetryPolicy`'s docs, written independently of `validate`, in the order the
    /// builder reports them.
    fn expected_error(&self) -> Option<PolicyError> {
        if self.max_attempts == 0 {
            return Some(PolicyError::ZeroAttempts);
        }
        if self.max_delay < self.initial_delay {
            return Some(PolicyError::MaxDelayBelowInitial {
                max_delay: self.max_delay,
                initial_delay: self.initial_delay,
            });
        }
        if self.backoff_factor.is_nan()
            || self.backoff_factor.is_infinite()
            || self.backoff_factor < 1.0
        {
            return Some(PolicyError::BackoffFactor(self.backoff_factor));
        }
        if self.max_time == Some(Duration::ZERO) {
            return Some(PolicyError::ZeroMaxTime);
        }
        None
    }
}

fn settings() -> BoxedStrategy<Settings> {
    (
        (0u8..4, any::<u32>()).prop_map(|(k, n)| if k < 3 { n % 11 } else { n }),
        duration(),
        duration(),
        factor(),
        backoff(),
        jitter(),
        (any::<bool>(), duration()).prop_map(|(some, d)| some.then_some(d)),
        duration(),
    )
        .prop_map(
            |(
                max_attempts,
                initial_delay,
                max_delay,
                backoff_factor,
                backoff,
                jitter,
                max_time,
                max_retry_after,
            )| Settings {
                max_attempts,
                initial_delay,
                max_delay,
                backoff_factor,
                backoff,
                jitter,
                max_time,
                max_retry_after,
            },
        )
        .boxed()
}

/// Settings that pass validation: the delays ordered, the factor finite and at least 1.
fn valid_settings() -> BoxedStrategy<Settings> {
    (settings(), 0u8..5, any::<u64>())
        .prop_map(|(mut s, kind, bits)| {
            let f = match kind {
                0 => 1.0,
                // From 1 to f64::MAX: the bit patterns of the finite doubles at least 1.
                1 => f64::from_bits(
                    1.0f64.to_bits() + bits % (f64::MAX.to_bits() - 1.0f64.to_bits() + 1),
                ),
                _ => 1.0 + 9.0 * unit(bits),
            };
            s.max_attempts = s.max_attempts.max(1);
            if s.max_delay < s.initial_delay {
                std::mem::swap(&mut s.max_delay, &mut s.initial_delay);
            }
            s.backoff_factor = f;
            if s.max_time == Some(Duration::ZERO) {
                s.max_time = Some(Duration::from_nanos(1));
            }
            s
        })
        .boxed()
}

// ---- The delay math ----

proptest! {
    #![proptest_config(cases(PURE))]

    /// Every schedule, any inputs: no panic, never above the cap.
    #[test]
    fn base_delay_is_capped(
        b in backoff(), initial in duration(), max in duration(), f in factor(), n in retry_number(),
    ) {
        let d = b.base_delay(initial, max, f, n);
        prop_assert!(d <= max, "{b:?}({initial:?}, {max:?}, {f}, {n}) = {d:?}");
        if initial.is_zero() {
            prop_assert_eq!(d, Duration::ZERO);
        }
        if initial <= max && (n <= 1 || b == Backoff::Constant) {
            // The first retry (and every constant one) waits exactly the initial delay, up to
            // the float round trip of the seconds.
            prop_assert!(close(d, initial), "{b:?} n = {n}: {d:?} vs {initial:?}");
        }
        if initial <= max && b != Backoff::Constant {
            // Never below the initial delay.
            prop_assert!(d >= initial || close(d, initial), "{b:?} n = {n}: {d:?} < {initial:?}");
        }
    }

    /// Exponential, linear and Fibonacci schedules never shrink from one retry to a later one.
    #[test]
    fn base_delay_is_monotone_in_n(
        b in backoff(), initial in duration(), max in duration(), f in factor(),
        n in retry_number(), step in (0u8..3, any::<u32>()).prop_map(|(k, n)| match k { 0 => 1, 1 => 1 + n % 64, _ => n }),
    ) {
        let m = n.saturating_add(step);
        let (dn, dm) = (b.base_delay(initial, max, f, n), b.base_delay(initial, max, f, m));
        prop_assert!(dn <= dm, "{b:?}({initial:?}, {max:?}, {f}): n = {n} gives {dn:?}, m = {m} gives {dm:?}");
    }

    /// Jitter, any mode and any sample: within `[0, max]`, and within the mode's documented range.
    #[test]
    fn jitter_stays_in_its_range(
        j in jitter(), base in duration(), previous in duration(), initial in duration(),
        max in duration(), u in sample(),
    ) {
        let d = j.apply(base, previous, initial, max, u);
        prop_assert!(d <= max, "{j:?}: {d:?} > {max:?}");
        let capped = base.min(max);
        match j {
            Jitter::None => prop_assert_eq!(d, capped),
            Jitter::Full => prop_assert!(d <= capped || close(d, capped)),
            Jitter::Equal => {
                prop_assert!(d <= capped || close(d, capped));
                prop_assert!(d >= capped / 2 || close(d, capped / 2), "{d:?} < {capped:?} / 2");
            }
            Jitter::Decorrelated => {
                // Uniform in [initial, 3 × previous], capped at max.
                let low = initial.min(max);
                prop_assert!(d >= low || close(d, low), "{d:?} < {low:?}");
                let high = previous.saturating_mul(3).max(initial).min(max);
                prop_assert!(d <= high || close(d, high), "{d:?} > {high:?}");
            }
        }
    }

    /// `RetryPolicy::delay`, for any policy the builder accepts: within `[0, max_delay]`.
    #[test]
    fn policy_delay_is_within_max_delay(
        s in valid_settings(), n in retry_number(), previous in duration(), u in sample(),
    ) {
        let p = s.build().unwrap();
        let d = p.delay(n, previous, u);
        prop_assert!(d <= p.max_delay());
        if p.jitter() == Jitter::None {
            prop_assert_eq!(d, p.backoff().base_delay(p.initial_delay(), p.max_delay(), p.backoff_factor(), n));
        }
    }

    /// The builder never panics and rejects exactly the invalid settings, with the error of the
    /// first rule broken; what it accepts reads back as given.
    #[test]
    fn builder_accepts_exactly_the_valid_settings(s in settings()) {
        match (s.build(), s.expected_error()) {
            (Ok(p), None) => {
                prop_assert_eq!(p.max_attempts(), s.max_attempts);
                prop_assert_eq!(p.initial_delay(), s.initial_delay);
                prop_assert_eq!(p.max_delay(), s.max_delay);
                prop_assert_eq!(p.backoff_factor().to_bits(), s.backoff_factor.to_bits());
                prop_assert_eq!(p.backoff(), s.backoff);
                prop_assert_eq!(p.jitter(), s.jitter);
                prop_assert_eq!(p.max_time(), s.max_time);
                prop_assert_eq!(p.max_retry_after(), s.max_retry_after);
                // A policy in hand rebuilds unchanged.
                prop_assert_eq!(p.to_builder().build(), Ok(p));
            }
            (Err(got), Some(want)) => {
                // NaN != NaN: compare the message, which names the value.
                prop_assert_eq!(got.to_string(), want.to_string());
                prop_assert!(!got.to_string().is_empty());
            }
            (got, want) => prop_assert!(false, "{s:?}: built {got:?}, expected error {want:?}"),
        }
    }
}

/// Within a microsecond: the schedules compute in `f64` seconds, whose round trip through a
/// `Duration` of 10^10 s or more is not exact to the nanosecond.
fn close(a: Duration, b: Duration) -> bool {
    let diff = a.abs_diff(b);
    let scale = a.max(b).as_secs_f64();
    diff <= Duration::from_micros(1) || diff.as_secs_f64() <= scale * 1e-12
}

// ---- Whole calls: `CallState::step` with a deadline and arbitrary elapsed time ----

thread_local! {
    static ELAPSED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// A clock the test moves: `elapsed` is whatever the test last set.
#[derive(Clone, Copy, Debug)]
struct TestClock;

impl CallClock for TestClock {
    fn start() -> Self {
        TestClock
    }
    fn elapsed(&self) -> Option<Duration> {
        Some(ELAPSED.with(Cell::get))
    }
}

/// One attempt's result, as the test scripts it.
#[derive(Clone, Debug)]
enum Outcome {
    Ok { retry_ok: bool },
    Err(Classification),
}

/// One in five attempts succeeds (half of those asking for another attempt, as `retry_if_ok`
/// does); failures are retryable or not, rate limited or not, with a server hint 3 times in 10.
fn outcome() -> BoxedStrategy<Outcome> {
    (0u8..10, any::<bool>(), any::<bool>(), 0u8..10, duration())
        .prop_map(|(kind, retryable, limited, hinted, hint)| match kind {
            0 | 1 => Outcome::Ok {
                retry_ok: retryable,
            },
            _ => Outcome::Err(
                Classification::from_bool(retryable)
                    .with_rate_limited(limited)
                    .with_retry_after((hinted < 3).then_some(hint)),
            ),
        })
        .boxed()
}

/// What the observer was told.
#[derive(Default)]
struct Seen {
    retries: Cell<u32>,
    successes: Cell<Vec<u32>>,
    give_ups: Cell<Vec<(GiveUpReason, u32)>>,
    /// Veto the retry after this many (a budget running dry).
    veto_after: Option<u32>,
}

impl Observer<u32> for Seen {
    fn on_success(&self, attempts: u32) {
        let mut v = self.successes.take();
        v.push(attempts);
        self.successes.set(v);
    }
    fn on_retry(&self, _: &u32, _: &RetryEvent) -> Result<(), GiveUpReason> {
        if self.veto_after.is_some_and(|n| self.retries.get() >= n) {
            return Err(GiveUpReason::BudgetEmpty);
        }
        self.retries.set(self.retries.get() + 1);
        Ok(())
    }
    fn on_give_up(&self, _: &u32, reason: GiveUpReason, attempts: u32) {
        let mut v = self.give_ups.take();
        v.push((reason, attempts));
        self.give_ups.set(v);
    }
}

proptest! {
    #![proptest_config(cases(CALLS))]

    /// A whole call: attempts with scripted outcomes, arbitrary time passing before each `step`
    /// (the attempt's own duration, anything up to `Duration::MAX` in total). Whenever the call
    /// sleeps, the sleep ends by `max_time`, stays within `max_delay` unless a server hint asked
    /// for more (and then within `max_retry_after` plus the 1 s spread), and only
    /// `max_attempts - 1` sleeps happen. The call ends exactly once, telling the observer why.
    #[test]
    fn a_call_never_sleeps_past_its_deadline(
        s in valid_settings(),
        max_time in (0u8..4, 1u64..100_000, duration())
            .prop_map(|(k, ms, d)| if k < 3 { Duration::from_millis(ms) } else { d }),
        max_attempts in (0u8..4, any::<u32>()).prop_map(|(k, n)| if k < 3 { 1 + n % 8 } else { n.max(1) }),
        script in prop::collection::vec((outcome(), duration()), 1..24),
        veto_after in (0u8..5, 0u32..4).prop_map(|(k, n)| (k == 0).then_some(n)),
    ) {
        let mut s = s;
        s.max_time = Some(max_time.max(Duration::from_nanos(1)));
        s.max_attempts = max_attempts;
        let policy = s.build().unwrap();
        let deadline = policy.max_time().unwrap();
        let observer = Seen { veto_after, ..Seen::default() };
        ELAPSED.with(|e| e.set(Duration::ZERO));
        let mut call = CallState::<TestClock>::new();
        let mut sleeps = 0u32;
        let mut ended = None;
        for (i, (outcome, took)) in script.iter().enumerate() {
            // The attempt ran for `took` after the previous sleep (or the start).
            let now = ELAPSED.with(Cell::get).saturating_add(*took);
            ELAPSED.with(|e| e.set(now));
            prop_assert_eq!(call.attempt() as usize, i + 1);
            let (result, retry_ok, hint) = match outcome {
                Outcome::Ok { retry_ok } => (Ok(i as u32), *retry_ok, None),
                Outcome::Err(c) => (Err(i as u32), false, c.retry_after_hint()),
            };
            let class = match outcome {
                Outcome::Err(c) => *c,
                Outcome::Ok { .. } => Classification::retry(),
            };
            let mut settled = None;
            let flow = call.step(
                &policy,
                "properties",
                result,
                |_| class,
                |_| retry_ok,
                |o| settled = Some(o),
                &observer,
            );
            // Every attempt is settled exactly once, with its outcome.
            match outcome {
                Outcome::Ok { .. } => prop_assert_eq!(settled, Some(AttemptOutcome::Success)),
                Outcome::Err(c) => prop_assert_eq!(settled, Some(AttemptOutcome::Failure(*c))),
            }
            match flow {
                ControlFlow::Continue(delay) => {
                    sleeps += 1;
                    prop_assert!(now.saturating_add(delay) <= deadline,
                        "slept {delay:?} at {now:?} past max_time {deadline:?}");
                    prop_assert!(sleeps < policy.max_attempts());
                    let ceiling = match hint {
                        Some(h) => {
                            prop_assert!(h <= policy.max_retry_after(), "hint {h:?} honoured");
                            prop_assert!(delay >= h, "undercut the server's hint");
                            policy.max_delay().max(h.saturating_add((h / 10).min(Duration::from_secs(1))))
                        }
                        None => policy.max_delay(),
                    };
                    prop_assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
                    // The sleep happens.
                    ELAPSED.with(|e| e.set(now.saturating_add(delay)));
                }
                ControlFlow::Break(r) => {
                    prop_assert_eq!(r, match outcome {
                        Outcome::Ok { .. } => Ok(i as u32),
                        Outcome::Err(_) => Err(i as u32),
                    });
                    ended = Some((outcome.clone(), i as u32 + 1, retry_ok, hint, now));
                    break;
                }
            }
        }
        let successes = observer.successes.take();
        let give_ups = observer.give_ups.take();
        match ended {
            None => {
                // Still running after the script: nothing reported as the end of the call.
                prop_assert!(successes.is_empty() && give_ups.is_empty());
            }
            Some((Outcome::Ok { .. }, attempts, _, _, _)) => {
                prop_assert_eq!(successes, vec![attempts]);
                prop_assert!(give_ups.is_empty());
            }
            Some((Outcome::Err(c), attempts, _, hint, _)) => {
                prop_assert!(successes.is_empty());
                prop_assert_eq!(give_ups.len(), 1);
                let (reason, n) = give_ups[0];
                prop_assert_eq!(n, attempts);
                let expected = if !c.is_retryable() {
                    GiveUpReason::NotRetryable
                } else if attempts >= policy.max_attempts() {
                    GiveUpReason::Exhausted
                } else if hint.is_some_and(|h| h > policy.max_retry_after()) {
                    GiveUpReason::RetryAfterTooLong
                } else {
                    // The deadline or the veto: which one depends on the random jitter.
                    prop_assert!(matches!(reason, GiveUpReason::Deadline | GiveUpReason::BudgetEmpty), "{reason:?}");
                    reason
                };
                prop_assert_eq!(reason, expected);
                if reason == GiveUpReason::BudgetEmpty {
                    prop_assert_eq!(Some(observer.retries.get()), veto_after);
                }
            }
        }
    }
}
