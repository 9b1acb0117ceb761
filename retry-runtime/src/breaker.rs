//! `CircuitBreaker`: stops calling a provider that keeps failing, then probes it back to health.
//!
//! The whole state (closed / open / half-open, a generation, and the counter or deadline of the
//! current state) is one packed `AtomicU64`, changed only by compare-and-swap, so every
//! transition is exact however many callers race: exactly one caller opens the breaker, exactly
//! `probes` callers are admitted per half-open episode, and an outcome reported for an earlier
//! generation (an attempt admitted before the breaker last changed state) cannot move the current
//! one. The open deadline lives in the same word (milliseconds since a process-wide epoch), so a
//! reader never sees "open" paired with a stale deadline.
//!
//! Why consecutive failures and not a failure ratio over a window: the counter fits in the state
//! word, so "the Nth failure opens it" and "a success resets the count" are single CAS steps with
//! no second structure to keep in step. A ratio needs a ring of per-bucket counters beside the
//! state word, whose reset on closing cannot be atomic with the state change; for a provider that
//! is either up or down (the case breakers exist for), N consecutive failures trips just as
//! surely and sooner.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::epoch;
use crate::per_thread::PerThread;
use crate::{Admission, AttemptOutcome, CircuitOpen, Gate, Outlook};

const MODE_SHIFT: u32 = 62;
const GEN_SHIFT: u32 = 40;
const GEN_MASK: u64 = (1 << 22) - 1;
const PAYLOAD_MASK: u64 = (1 << GEN_SHIFT) - 1;
const HALF_MASK: u64 = (1 << 20) - 1;
const MAX_PROBES: u32 = (1 << 20) - 1;
const NANOS_PER_MS: u64 = 1_000_000;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// The state word: `mode:2 | generation:22 | payload:40`. The payload is the consecutive failure
/// count (closed), the end of the cool-down in ms since the epoch (open), or
/// `successes:20 | admitted:20` of the probes (half-open). The generation changes on every
/// transition, so a permit knows whether the state it was admitted under still holds.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Word(u64);

impl Word {
    #[inline]
    const fn new(mode: u64, generation: u64, payload: u64) -> Word {
        Word(
            (mode << MODE_SHIFT)
                | ((generation & GEN_MASK) << GEN_SHIFT)
                | (payload & PAYLOAD_MASK),
        )
    }
    #[inline]
    fn mode(self) -> u64 {
        self.0 >> MODE_SHIFT
    }
    #[inline]
    fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }
    #[inline]
    fn payload(self) -> u64 {
        self.0 & PAYLOAD_MASK
    }
    fn half_open(generation: u64, admitted: u64, successes: u64) -> Word {
        Word::new(
            HALF_OPEN,
            generation,
            (successes << 20) | (admitted & HALF_MASK),
        )
    }
    fn admitted(self) -> u64 {
        self.payload() & HALF_MASK
    }
    fn successes(self) -> u64 {
        self.payload() >> 20
    }
}

/// The state of a [`CircuitBreaker`], as [`CircuitBreaker::state`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; this many retryable failures in a row have been seen.
    Closed {
        /// Retryable failures since the last success.
        consecutive_failures: u64,
    },
    /// Calls are rejected without touching the provider until the cool-down ends.
    Open {
        /// Time left in the cool-down; zero when the next call will be admitted as a probe.
        retry_in: Duration,
    },
    /// Probe calls are in flight; their outcome closes or re-opens the breaker.
    HalfOpen {
        /// Probes admitted in this episode and not yet released.
        probes_admitted: u32,
        /// Probes that succeeded so far.
        probes_succeeded: u32,
    },
}

/// Counters of a [`CircuitBreaker`] since it was created. Each is exact; read together while
/// calls are running they may be a few steps apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Attempts admitted, probes included.
    pub admitted: u64,
    /// Of those, attempts admitted as half-open probes.
    pub probes: u64,
    /// Attempts rejected with [`CircuitOpen`].
    pub rejected: u64,
    /// Transitions to open (from closed or from a failed probe).
    pub opened: u64,
    /// Transitions from half-open back to closed.
    pub closed: u64,
}

/// A circuit breaker shared by every call to one provider: after `failure_threshold` retryable
/// failures in a row it opens, and calls fail at once with [`CircuitOpen`] instead of touching
/// the provider; after `cool_down` it lets `probes` calls through, which close it if they
/// succeed and re-open it if one fails.
///
/// Constructible in a `const` context, so one `static` per provider is the usual shape. It is a
/// [`Gate`] (through `&CircuitBreaker`): `#[retry_on_failure(circuit_breaker = OPENAI)]` consults
/// it before every attempt.
///
/// What counts:
/// - a retryable failure (a timeout, a 5xx, a 429) counts towards opening, and a failed probe
///   re-opens the breaker;
/// - a success resets the count, and a successful probe counts towards closing;
/// - a non-retryable failure (a bad key, a bad request) is the caller's fault, not the
///   provider's: it neither counts towards opening nor resets the count, and a probe that ends
///   with one gives its probe slot back, as does a probe whose call is cancelled mid-attempt;
/// - an outcome of an attempt admitted before the breaker last changed state is ignored.
///
/// ```
/// use retry_runtime::{Admission, AttemptOutcome, CircuitBreaker, Classification, Gate};
/// use std::time::Duration;
///
/// static OPENAI: CircuitBreaker = CircuitBreaker::new("openai")
///     .failure_threshold(2)
///     .cool_down(Duration::from_secs(30));
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// for _ in 0..2 {
///     let Admission::Proceed(permit) = (&OPENAI).admit() else { unreachable!() };
///     (&OPENAI).settle(permit, AttemptOutcome::Failure(Classification::retry()));
/// }
/// let Admission::Reject(open) = (&OPENAI).admit() else { panic!("should be open") };
/// assert_eq!(open.name, "openai");
/// assert_eq!(open.retry_in, Duration::from_secs(30));
/// # }
/// ```
pub struct CircuitBreaker {
    name: &'static str,
    failure_threshold: u32,
    cool_down: Duration,
    probes: u32,
    state: AtomicU64,
    /// Bumped by every admitted attempt: per thread, so that admitting through a closed breaker
    /// writes no shared cache line.
    admitted: PerThread<1>,
    probes_admitted: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
}

impl CircuitBreaker {
    /// A closed breaker named `name` (reported in [`CircuitOpen`]) with the defaults: opens after
    /// 5 retryable failures in a row, cools down for 30 s, then admits 1 probe.
    pub const fn new(name: &'static str) -> CircuitBreaker {
        CircuitBreaker {
            name,
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            probes: 1,
            state: AtomicU64::new(Word::new(CLOSED, 0, 0).0),
            admitted: PerThread::new(),
            probes_admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// Retryable failures in a row that open the breaker; `0` is taken as `1`.
    #[must_use]
    pub const fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = if n == 0 { 1 } else { n };
        self
    }

    /// How long the breaker stays open before admitting probes; resolution 1 ms, rounded up.
    #[must_use]
    pub const fn cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }

    /// Probe calls admitted per half-open episode; all must succeed to close the breaker.
    /// Clamped to `1..=1_048_575`.
    #[must_use]
    pub const fn probes(mut self, n: u32) -> Self {
        self.probes = if n == 0 {
            1
        } else if n > MAX_PROBES {
            MAX_PROBES
        } else {
            n
        };
        self
    }

    /// The name given to [`new`](Self::new).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The configured threshold of consecutive retryable failures.
    pub const fn threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The configured cool-down.
    pub const fn cool_down_period(&self) -> Duration {
        self.cool_down
    }

    /// The configured number of probes per half-open episode.
    pub const fn probe_count(&self) -> u32 {
        self.probes
    }

    /// The current state. An open breaker whose cool-down has ended reports `Open` with a zero
    /// `retry_in` until the next call is admitted as a probe.
    pub fn state(&self) -> CircuitState {
        let w = self.load();
        match w.mode() {
            OPEN => CircuitState::Open {
                retry_in: retry_in(w.payload(), epoch::now_nanos()),
            },
            HALF_OPEN => CircuitState::HalfOpen {
                probes_admitted: w.admitted() as u32,
                probes_succeeded: w.successes() as u32,
            },
            _ => CircuitState::Closed {
                consecutive_failures: w.payload(),
            },
        }
    }

    /// Whether calls are currently admitted without restriction.
    pub fn is_closed(&self) -> bool {
        self.load().mode() == CLOSED
    }

    /// The counters since creation.
    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            admitted: self.admitted.sum(0),
            probes: self.probes_admitted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
        }
    }

    #[inline]
    fn load(&self) -> Word {
        Word(self.state.load(Ordering::Acquire))
    }

    /// Replaces `current` by `next`; on a lost race returns the word that won.
    fn swap(&self, current: Word, next: Word) -> Result<(), Word> {
        self.state
            .compare_exchange_weak(current.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(Word)
    }

    /// The open word for the generation after `w`, its cool-down starting now.
    fn open_after(&self, w: Word) -> Word {
        let now = epoch::now_nanos();
        let until = now.saturating_add(epoch::duration_nanos(self.cool_down));
        // 2^40 ms is 34 years: a longer cool-down saturates there.
        let until_ms = until.div_ceil(NANOS_PER_MS).min(PAYLOAD_MASK);
        Word::new(OPEN, w.generation() + 1, until_ms)
    }

    /// Admits an attempt: through a closed breaker, one load of the state word and a per-thread
    /// counter bump, inline; anything else out of line.
    #[inline]
    fn admit_inner(&self) -> Result<(Kind, u64), CircuitOpen> {
        let w = self.load();
        if w.mode() == CLOSED {
            self.admitted.bump(0);
            return Ok((Kind::Normal, w.generation()));
        }
        self.admit_slow(w)
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(&self, mut w: Word) -> Result<(Kind, u64), CircuitOpen> {
        loop {
            match w.mode() {
                CLOSED => {
                    self.admitted.bump(0);
                    return Ok((Kind::Normal, w.generation()));
                }
                OPEN => {
                    let now = epoch::now_nanos();
                    if now < w.payload().saturating_mul(NANOS_PER_MS) {
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        return Err(CircuitOpen {
                            name: self.name,
                            retry_in: retry_in(w.payload(), now),
                        });
                    }
                    // The cool-down is over: this caller becomes the first probe.
                    let next = Word::half_open(w.generation() + 1, 1, 0);
                    match self.swap(w, next) {
                        Ok(()) => return Ok(self.probe_admitted(next)),
                        Err(actual) => w = actual,
                    }
                }
                _ => {
                    if w.admitted() >= u64::from(self.probes) {
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        // The probes in flight decide; no deadline is known.
                        return Err(CircuitOpen {
                            name: self.name,
                            retry_in: Duration::ZERO,
                        });
                    }
                    let next = Word::half_open(w.generation(), w.admitted() + 1, w.successes());
                    match self.swap(w, next) {
                        Ok(()) => return Ok(self.probe_admitted(next)),
                        Err(actual) => w = actual,
                    }
                }
            }
        }
    }

    fn probe_admitted(&self, w: Word) -> (Kind, u64) {
        self.admitted.bump(0);
        self.probes_admitted.fetch_add(1, Ordering::Relaxed);
        (Kind::Probe, w.generation())
    }

    /// Applies an outcome of an attempt admitted under `generation`. The common case, a success
    /// of an attempt admitted while closed with no failure counted since, changes nothing and is
    /// one load and one comparison, inline.
    #[inline]
    fn record(&self, kind: Kind, generation: u64, outcome: AttemptOutcome) {
        if kind == Kind::Normal
            && outcome == AttemptOutcome::Success
            && self.load() == Word::new(CLOSED, generation, 0)
        {
            return;
        }
        self.record_slow(kind, generation, outcome);
    }

    #[cold]
    #[inline(never)]
    fn record_slow(&self, kind: Kind, generation: u64, outcome: AttemptOutcome) {
        let mut w = self.load();
        loop {
            if w.generation() != generation {
                return; // the state this attempt was admitted under is gone
            }
            let next = match (kind, outcome) {
                (Kind::Normal, AttemptOutcome::Success) => {
                    if w.mode() != CLOSED || w.payload() == 0 {
                        return; // nothing to reset: no write on the common path
                    }
                    Word::new(CLOSED, generation, 0)
                }
                (Kind::Normal, AttemptOutcome::Failure(c)) => {
                    if !c.is_retryable() || w.mode() != CLOSED {
                        return;
                    }
                    let failures = (w.payload() + 1).min(PAYLOAD_MASK);
                    if failures >= u64::from(self.failure_threshold) {
                        self.open_after(w)
                    } else {
                        Word::new(CLOSED, generation, failures)
                    }
                }
                (Kind::Probe, AttemptOutcome::Success) => {
                    if w.mode() != HALF_OPEN {
                        return;
                    }
                    let successes = w.successes() + 1;
                    if successes >= u64::from(self.probes) {
                        Word::new(CLOSED, generation + 1, 0)
                    } else {
                        Word::half_open(generation, w.admitted(), successes)
                    }
                }
                (Kind::Probe, AttemptOutcome::Failure(c)) => {
                    if w.mode() != HALF_OPEN {
                        return;
                    }
                    if c.is_retryable() {
                        self.open_after(w)
                    } else {
                        Word::half_open(generation, w.admitted().saturating_sub(1), w.successes())
                    }
                }
            };
            match self.swap(w, next) {
                Ok(()) => {
                    match (w.mode(), next.mode()) {
                        (_, OPEN) => self.opened.fetch_add(1, Ordering::Relaxed),
                        (HALF_OPEN, CLOSED) => self.closed.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                    return;
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// Gives back the slot of a probe that ended without an outcome (cancelled).
    #[cold]
    #[inline(never)]
    fn release_probe(&self, generation: u64) {
        let mut w = self.load();
        while w.generation() == generation && w.mode() == HALF_OPEN && w.admitted() > w.successes()
        {
            let next = Word::half_open(generation, w.admitted() - 1, w.successes());
            match self.swap(w, next) {
                Ok(()) => return,
                Err(actual) => w = actual,
            }
        }
    }
}

/// Time from `now_nanos` to the end of a cool-down stored in ms.
fn retry_in(until_ms: u64, now_nanos: u64) -> Duration {
    Duration::from_nanos(
        until_ms
            .saturating_mul(NANOS_PER_MS)
            .saturating_sub(now_nanos),
    )
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("failure_threshold", &self.failure_threshold)
            .field("cool_down", &self.cool_down)
            .field("probes", &self.probes)
            .field("state", &self.state())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Probe,
}

/// What an attempt admitted by a [`CircuitBreaker`] holds. Settling it reports the outcome;
/// dropping it unsettled (the call was cancelled mid-attempt) reports nothing, and a probe's slot
/// is given back so that another caller can probe.
#[must_use = "settle the permit with the attempt's outcome"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    /// The generation the attempt was admitted under, and [`PROBE`] for a probe: two words in
    /// all, so that a permit moves in registers.
    tag: u64,
}

/// A permit's probe flag, above the generation's bits.
const PROBE: u64 = 1 << 63;

impl BreakerPermit<'_> {
    /// Whether this attempt is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind() == Kind::Probe
    }

    #[inline]
    fn kind(&self) -> Kind {
        if self.tag & PROBE == 0 {
            Kind::Normal
        } else {
            Kind::Probe
        }
    }

    #[inline]
    fn generation(&self) -> u64 {
        self.tag & !PROBE
    }
}

impl fmt::Debug for BreakerPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.breaker.name)
            .field("probe", &self.is_probe())
            .finish()
    }
}

impl Drop for BreakerPermit<'_> {
    /// Runs only for a permit dropped unsettled: [`Gate::settle`] forgets the permit it settles.
    #[inline]
    fn drop(&mut self) {
        if self.kind() == Kind::Probe {
            self.breaker.release_probe(self.generation());
        }
    }
}

impl<'a> Gate for &'a CircuitBreaker {
    type Permit = BreakerPermit<'a>;

    #[inline]
    fn admit(&self) -> Admission<BreakerPermit<'a>> {
        match self.admit_inner() {
            Ok((kind, generation)) => Admission::Proceed(BreakerPermit {
                breaker: self,
                tag: match kind {
                    Kind::Normal => generation,
                    Kind::Probe => generation | PROBE,
                },
            }),
            Err(open) => Admission::Reject(open),
        }
    }

    #[inline]
    fn settle(&self, permit: BreakerPermit<'a>, outcome: AttemptOutcome) {
        let (breaker, kind, generation) = (permit.breaker, permit.kind(), permit.generation());
        // Settled: nothing for the drop to give back.
        std::mem::forget(permit);
        breaker.record(kind, generation, outcome);
    }

    fn outlook(&self) -> Outlook {
        match self.state() {
            CircuitState::Open { retry_in } => Outlook {
                shut_for: Some(retry_in),
                wait_for: Duration::ZERO,
            },
            _ => Outlook::CLEAR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Classification;

    const RETRYABLE: AttemptOutcome = AttemptOutcome::Failure(Classification::retry());
    const FATAL: AttemptOutcome = AttemptOutcome::Failure(Classification::give_up());

    /// The deadline is kept in whole milliseconds, rounded up.
    fn about(d: Duration, want: Duration) -> bool {
        d >= want && d <= want + Duration::from_millis(1)
    }

    fn retry_in(b: &CircuitBreaker) -> Duration {
        match b.state() {
            CircuitState::Open { retry_in } => retry_in,
            other => panic!("not open: {other:?}"),
        }
    }

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("test")
            .failure_threshold(3)
            .cool_down(Duration::from_secs(10))
    }

    fn admit(b: &CircuitBreaker) -> Result<BreakerPermit<'_>, CircuitOpen> {
        match b.admit() {
            Admission::Proceed(p) => Ok(p),
            Admission::Wait(..) => unreachable!("a breaker never paces"),
            Admission::Reject(open) => Err(open),
        }
    }

    fn attempt(b: &CircuitBreaker, outcome: AttemptOutcome) -> Result<(), CircuitOpen> {
        let p = admit(b)?;
        b.settle(p, outcome);
        Ok(())
    }

    fn open(b: &CircuitBreaker) {
        while b.is_closed() {
            attempt(b, RETRYABLE).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_retryable_failures_only() {
        let b = breaker();
        attempt(&b, RETRYABLE).unwrap();
        attempt(&b, RETRYABLE).unwrap();
        attempt(&b, AttemptOutcome::Success).unwrap(); // resets
        attempt(&b, RETRYABLE).unwrap();
        attempt(&b, FATAL).unwrap(); // neither counts nor resets
        attempt(&b, RETRYABLE).unwrap();
        assert_eq!(
            b.state(),
            CircuitState::Closed {
                consecutive_failures: 2
            }
        );
        attempt(&b, RETRYABLE).unwrap();
        assert!(about(retry_in(&b), Duration::from_secs(10)));
        let err = attempt(&b, AttemptOutcome::Success).unwrap_err();
        assert_eq!(err.name, "test");
        assert!(about(err.retry_in, Duration::from_secs(10)));
        assert_eq!(b.stats().opened, 1);
        assert_eq!(b.stats().rejected, 1);
        assert_eq!(b.stats().admitted, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn cool_down_then_one_probe_whose_success_closes() {
        let b = breaker();
        open(&b);
        tokio::time::advance(Duration::from_millis(9_998)).await;
        assert!(about(
            admit(&b).unwrap_err().retry_in,
            Duration::from_millis(2)
        ));
        tokio::time::advance(Duration::from_millis(3)).await;
        let probe = admit(&b).unwrap();
        assert!(probe.is_probe());
        // Only one probe at a time with the default `probes(1)`.
        assert_eq!(admit(&b).unwrap_err().retry_in, Duration::ZERO);
        (&b).settle(probe, AttemptOutcome::Success);
        assert!(b.is_closed());
        assert!(!admit(&b).unwrap().is_probe());
        assert_eq!(b.stats().closed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_a_full_cool_down() {
        let b = breaker();
        open(&b);
        tokio::time::advance(Duration::from_millis(10_001)).await;
        let probe = admit(&b).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        (&b).settle(probe, RETRYABLE);
        assert!(about(retry_in(&b), Duration::from_secs(10)));
        assert_eq!(b.stats().opened, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn several_probes_must_all_succeed() {
        let b = breaker().probes(2);
        open(&b);
        tokio::time::advance(Duration::from_millis(10_001)).await;
        let (p1, p2) = (admit(&b).unwrap(), admit(&b).unwrap());
        assert!(admit(&b).is_err());
        (&b).settle(p1, AttemptOutcome::Success);
        assert_eq!(
            b.state(),
            CircuitState::HalfOpen {
                probes_admitted: 2,
                probes_succeeded: 1
            }
        );
        (&b).settle(p2, AttemptOutcome::Success);
        assert!(b.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_or_fatal_probe_gives_its_slot_back() {
        let b = breaker();
        open(&b);
        tokio::time::advance(Duration::from_millis(10_001)).await;
        drop(admit(&b).unwrap()); // cancelled mid-attempt
        let probe = admit(&b).unwrap();
        assert!(probe.is_probe());
        (&b).settle(probe, FATAL); // a bad key says nothing about the provider
        assert_eq!(
            b.state(),
            CircuitState::HalfOpen {
                probes_admitted: 0,
                probes_succeeded: 0
            }
        );
        (&b).settle(admit(&b).unwrap(), AttemptOutcome::Success);
        assert!(b.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn stale_outcomes_are_ignored() {
        let b = breaker();
        let early = admit(&b).unwrap(); // admitted while closed, generation 0
        open(&b);
        tokio::time::advance(Duration::from_millis(10_001)).await;
        let probe = admit(&b).unwrap();
        // The slow closed-state attempt finally fails: it must not re-open the half-open breaker.
        (&b).settle(early, RETRYABLE);
        assert!(matches!(b.state(), CircuitState::HalfOpen { .. }));
        (&b).settle(probe, AttemptOutcome::Success);
        assert!(b.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_settings_are_clamped() {
        let b = CircuitBreaker::new("z")
            .failure_threshold(0)
            .probes(0)
            .cool_down(Duration::ZERO);
        attempt(&b, RETRYABLE).unwrap();
        assert!(!b.is_closed());
        // A zero cool-down admits a probe within the 1 ms resolution.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(admit(&b).unwrap().is_probe());
        assert_eq!(
            CircuitBreaker::new("p").probes(u32::MAX).probe_count(),
            MAX_PROBES
        );
    }

    #[tokio::test(start_paused = true)]
    async fn huge_cool_down_saturates() {
        let b = breaker().cool_down(Duration::MAX).failure_threshold(1);
        attempt(&b, RETRYABLE).unwrap();
        assert!(admit(&b).unwrap_err().retry_in > Duration::from_secs(1 << 30));
    }
}
