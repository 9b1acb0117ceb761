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
//! Two rules open a closed breaker, whichever trips first: N consecutive retryable failures (the
//! counter lives in the state word, so "the Nth failure opens it" and "a success resets the
//! count" are single CAS steps), and, opt-in, a failure ratio over a sliding time window
//! ([`CircuitBreaker::failure_ratio`]), for a provider that fails a share of calls rather than
//! all of them, which never strings N failures together. The window is a ring of 16 time buckets
//! beside the state word (`breaker/window.rs`). It is never reset: each bucket is stamped with the
//! generation it counts for, and a new closed episode has a new generation, so the failures
//! that opened the breaker are ignored once it closes again, with no second write to keep in
//! step with the transition. Opening on the ratio is the same CAS on the state word as opening
//! on the count, so it is exact in the same way: one opener per generation.
//!
//! Cost: without a ratio, admitting is one load of the state word and a per-thread counter bump,
//! and a success is one load and a comparison, as before the window existed (a breaker with a
//! window carries a flag in its closed state word, so the comparison sends only such a breaker to
//! the window). With a ratio, every settled attempt also reads the clock and does one
//! compare-and-swap on a shared bucket, and a retryable failure reads the 16 buckets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::epoch;
use crate::per_thread::PerThread;
use crate::{Admission, AttemptOutcome, CircuitOpen, Gate, Outlook};

mod window;

use window::Window;
pub use window::{FailureRatio, WindowCounts};

const MODE_SHIFT: u32 = 62;
const GEN_SHIFT: u32 = 40;
const GEN_MASK: u64 = (1 << 22) - 1;
const PAYLOAD_MASK: u64 = (1 << GEN_SHIFT) - 1;
const HALF_MASK: u64 = (1 << 20) - 1;
const MAX_PROBES: u32 = (1 << 20) - 1;
const NANOS_PER_MS: u64 = 1_000_000;
/// In a closed word, set when the breaker has a failure-ratio window: such a word never equals
/// the flagless word the inline success path compares against, so only a breaker with a window
/// takes the out-of-line path that records successes in it.
const WINDOWED: u64 = 1 << 39;
/// The consecutive failure count of a closed word (below [`WINDOWED`]).
const COUNT_MASK: u64 = WINDOWED - 1;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// The state word: `mode:2 | generation:22 | payload:40`. The payload is the [`WINDOWED`] flag and
/// the consecutive failure count (closed), the end of the cool-down in ms since the epoch (open), or
/// `successes:20 | admitted:20` of the probes (half-open). The generation changes on every
/// transition, so a permit knows whether the state it was admitted under still holds.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
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
    const fn mode(self) -> u64 {
        self.0 >> MODE_SHIFT
    }
    #[inline]
    const fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }
    #[inline]
    const fn payload(self) -> u64 {
        self.0 & PAYLOAD_MASK
    }
    /// The consecutive failure count of a closed word.
    fn failures(self) -> u64 {
        self.payload() & COUNT_MASK
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
    /// Of `opened`, the transitions from closed made by the failure ratio (see
    /// [`CircuitBreaker::failure_ratio`]) rather than by consecutive failures; a failure that
    /// trips both counts as consecutive.
    pub opened_by_ratio: u64,
}

/// A circuit breaker shared by every call to one provider: after `failure_threshold` retryable
/// failures in a row (or, opt-in, a [`failure_ratio`](Self::failure_ratio) over a time window) it
/// opens, and calls fail at once with [`CircuitOpen`] instead of touching the provider; after
/// `cool_down` it lets `probes` calls through, which close it if they succeed and re-open it if
/// one fails.
///
/// Constructible in a `const` context, so one `static` per provider is the usual shape. It is a
/// [`Gate`] (through `&CircuitBreaker`): `#[retry_on_failure(circuit_breaker = OPENAI)]` consults
/// it before every attempt.
///
/// What counts:
/// - a retryable failure (a timeout, a 5xx, a 429) counts towards opening, and a failed probe
///   re-opens the breaker;
/// - a success resets the count (and counts in the ratio's window), and a successful probe
///   counts towards closing;
/// - a non-retryable failure (a bad key, a bad request) is the caller's fault, not the
///   provider's: it neither counts towards opening nor resets the count, is not counted in the
///   window, and a probe that ends with one gives its probe slot back, as does a probe whose
///   call is cancelled mid-attempt;
/// - an outcome of an attempt admitted before the breaker last changed state is ignored, and
///   the window starts empty each time the breaker closes.
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
    /// The failure-ratio window; off unless [`failure_ratio`](Self::failure_ratio) was given.
    window: Window,
    /// Bumped by every admitted attempt: per thread, so that admitting through a closed breaker
    /// writes no shared cache line.
    admitted: PerThread<1>,
    probes_admitted: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
    opened_by_ratio: AtomicU64,
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
            window: Window::off(),
            admitted: PerThread::new(),
            probes_admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            opened_by_ratio: AtomicU64::new(0),
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

    /// Also opens the closed breaker when, over the last `window`, at least `min_calls` attempt
    /// outcomes were counted and retryable failures make up at least `ratio` of them
    /// (`failures / (failures + successes) >= ratio`). The consecutive
    /// [`failure_threshold`](Self::failure_threshold) keeps working alongside: whichever trips
    /// first opens the breaker (set it high to rely on the ratio alone). Off by default.
    ///
    /// What counts: successes and retryable failures of attempts admitted while closed and
    /// settled within the window; non-retryable failures and half-open probes do not count,
    /// and the window starts empty each time the breaker closes, so the failures that opened it
    /// do not count against it afterwards. The ratio is checked when a retryable failure is
    /// counted. The window slides in 16 steps of `window / 16`: at any instant it holds the
    /// current step and the 15 before it. [`window`](Self::window) shows its counts.
    ///
    /// Settings out of range never panic: a NaN, zero or negative `ratio`, or a zero `window`,
    /// turns the ratio off (as if never given); a `ratio` above 1 is 1 (open only when every
    /// counted outcome failed); `min_calls` 0 is 1; a `window` under 16 ns is 16 ns, and one
    /// beyond `u64::MAX` ns (584 years) is that. [`ratio_settings`](Self::ratio_settings)
    /// reports the values in effect.
    ///
    /// Cost: with a ratio, each settled attempt also reads the clock and does one
    /// compare-and-swap on a shared bucket: about 50 ns more per successful call than the same
    /// breaker without a ratio in `cargo bench --bench happy_path` (on a VM where a clock read
    /// alone is about 30 ns), and more when many cores settle at once, since they share the
    /// bucket's cache line; a retryable failure also reads the 16 buckets. Without a ratio, a
    /// success costs what it always did: one load and a comparison.
    ///
    /// ```
    /// use retry_runtime::{Admission, AttemptOutcome, CircuitBreaker, Classification, Gate};
    /// use std::time::Duration;
    ///
    /// // Half the calls failing over 10 s, with at least 20 calls seen, opens it.
    /// static PROVIDER: CircuitBreaker = CircuitBreaker::new("provider")
    ///     .failure_threshold(1_000)
    ///     .failure_ratio(0.5, Duration::from_secs(10), 20);
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let settle = |outcome| {
    ///     let Admission::Proceed(permit) = (&PROVIDER).admit() else { panic!("open") };
    ///     (&PROVIDER).settle(permit, outcome);
    /// };
    /// for i in 0..19 {
    ///     // Alternating: never more than one failure in a row.
    ///     settle(if i % 2 == 0 {
    ///         AttemptOutcome::Failure(Classification::retry())
    ///     } else {
    ///         AttemptOutcome::Success
    ///     });
    /// }
    /// let counts = PROVIDER.window().unwrap();
    /// assert_eq!((counts.failures, counts.total), (10, 19));
    /// assert!(PROVIDER.is_closed()); // 19 calls: below `min_calls`
    /// settle(AttemptOutcome::Success);
    /// settle(AttemptOutcome::Failure(Classification::retry())); // 11 of 21
    /// assert!(!PROVIDER.is_closed());
    /// assert_eq!(PROVIDER.stats().opened_by_ratio, 1);
    /// # }
    /// ```
    #[must_use]
    pub const fn failure_ratio(mut self, ratio: f64, window: Duration, min_calls: u32) -> Self {
        let on = self.window.configure(ratio, window, min_calls);
        // The flag lives in closed words: set or clear it if the breaker is closed (as a breaker
        // being built is); one in another state takes it on its next closed word.
        let w = Word(self.state.into_inner());
        let payload = if on {
            w.payload() | WINDOWED
        } else {
            w.payload() & !WINDOWED
        };
        self.state = AtomicU64::new(if w.mode() == CLOSED {
            Word::new(CLOSED, w.generation(), payload).0
        } else {
            w.0
        });
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

    /// The failure-ratio settings in effect (after clamping), or `None` when the ratio is off.
    pub fn ratio_settings(&self) -> Option<FailureRatio> {
        self.window.settings()
    }

    /// What the failure-ratio window holds now, or `None` when the ratio is off: the successes
    /// and retryable failures of attempts admitted since the breaker last closed (or was
    /// created) and settled within the window. Empty while the breaker is open or half-open.
    ///
    /// ```
    /// use retry_runtime::{Admission, AttemptOutcome, CircuitBreaker, Gate};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let b = CircuitBreaker::new("x").failure_ratio(0.5, Duration::from_secs(10), 10);
    /// let Admission::Proceed(permit) = (&b).admit() else { unreachable!() };
    /// (&b).settle(permit, AttemptOutcome::Success);
    /// let counts = b.window().unwrap();
    /// assert_eq!((counts.failures, counts.total, counts.ratio()), (0, 1, 0.0));
    /// assert!(CircuitBreaker::new("y").window().is_none());
    /// # }
    /// ```
    pub fn window(&self) -> Option<WindowCounts> {
        if !self.window.is_on() {
            return None;
        }
        let w = self.load();
        Some(if w.mode() == CLOSED {
            self.window.counts(w.generation(), epoch::now_nanos())
        } else {
            WindowCounts::default()
        })
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
                consecutive_failures: w.failures(),
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
            opened_by_ratio: self.opened_by_ratio.load(Ordering::Relaxed),
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
    /// one load and one comparison, inline. (A breaker with a window never matches here: its
    /// closed words carry [`WINDOWED`], and its successes are counted out of line.)
    #[inline]
    fn record(&self, kind: Kind, generation: u64, outcome: AttemptOutcome) {
        if kind == Kind::Normal
            && outcome == AttemptOutcome::Success
            && self.load() == Word::new(CLOSED, generation, 0)
        {
            return;
        }
        self.record_other(kind, generation, outcome);
    }

    /// Every outcome but the inline common case. A success through a closed breaker with a
    /// window, and no failure counted since, changes only the window: it skips the state
    /// word's loop.
    #[cold]
    #[inline(never)]
    fn record_other(&self, kind: Kind, generation: u64, outcome: AttemptOutcome) {
        if kind == Kind::Normal
            && outcome == AttemptOutcome::Success
            && self.load() == Word::new(CLOSED, generation, WINDOWED)
        {
            return self.count_success(generation);
        }
        self.record_slow(kind, generation, outcome);
    }

    #[inline(never)]
    fn count_success(&self, generation: u64) {
        self.window.record(generation, epoch::now_nanos(), false);
    }

    #[inline(never)]
    fn record_slow(&self, kind: Kind, generation: u64, outcome: AttemptOutcome) {
        let mut w = self.load();
        if w.generation() != generation {
            return; // the state this attempt was admitted under is gone
        }
        // Counted once, before the state word's CAS loop; the verdict holds through its retries.
        let ratio_trips = kind == Kind::Normal
            && w.mode() == CLOSED
            && w.payload() & WINDOWED != 0
            && self.count_in_window(generation, outcome);
        loop {
            if w.generation() != generation {
                return; // the state this attempt was admitted under is gone
            }
            let mut by_ratio = false;
            let next = match (kind, outcome) {
                (Kind::Normal, AttemptOutcome::Success) => {
                    if w.mode() != CLOSED || w.failures() == 0 {
                        return; // nothing to reset: no write on the common path
                    }
                    Word::new(CLOSED, generation, w.payload() & WINDOWED)
                }
                (Kind::Normal, AttemptOutcome::Failure(c)) => {
                    if !c.is_retryable() || w.mode() != CLOSED {
                        return;
                    }
                    let failures = (w.failures() + 1).min(COUNT_MASK);
                    if failures >= u64::from(self.failure_threshold) {
                        self.open_after(w)
                    } else if ratio_trips {
                        by_ratio = true;
                        self.open_after(w)
                    } else {
                        Word::new(CLOSED, generation, (w.payload() & WINDOWED) | failures)
                    }
                }
                (Kind::Probe, AttemptOutcome::Success) => {
                    if w.mode() != HALF_OPEN {
                        return;
                    }
                    let successes = w.successes() + 1;
                    if successes >= u64::from(self.probes) {
                        Word::new(CLOSED, generation + 1, self.closed_flags())
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
                    if by_ratio {
                        self.opened_by_ratio.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// Counts an outcome of an attempt admitted under the closed `generation` in the window;
    /// returns whether a retryable failure brought the window to the ratio.
    fn count_in_window(&self, generation: u64, outcome: AttemptOutcome) -> bool {
        let failure = match outcome {
            AttemptOutcome::Success => false,
            AttemptOutcome::Failure(c) if c.is_retryable() => true,
            AttemptOutcome::Failure(_) => return false,
        };
        let now = epoch::now_nanos();
        self.window.record(generation, now, failure);
        failure && self.window.trips(self.window.counts(generation, now))
    }

    /// The flags of this breaker's closed words.
    fn closed_flags(&self) -> u64 {
        if self.window.is_on() {
            WINDOWED
        } else {
            0
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
            .field("failure_ratio", &self.ratio_settings())
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

#[cfg(test)]
mod ratio_tests {
    use super::*;
    use crate::Classification;

    const RETRYABLE: AttemptOutcome = AttemptOutcome::Failure(Classification::retry());
    const FATAL: AttemptOutcome = AttemptOutcome::Failure(Classification::give_up());
    const OK: AttemptOutcome = AttemptOutcome::Success;

    /// Half of 10 outcomes over 16 s (1 s buckets); the consecutive rule out of the way.
    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("ratio")
            .failure_threshold(1_000)
            .cool_down(Duration::from_secs(5))
            .failure_ratio(0.5, Duration::from_secs(16), 10)
    }

    /// The 5 s cool-down, kept in whole milliseconds, rounded up.
    const COOL_DOWN_OVER: Duration = Duration::from_millis(5_001);

    /// Moves the paused clock to the start of a 1 s bucket.
    async fn align() {
        let into = epoch::now_nanos() % 1_000_000_000;
        tokio::time::advance(Duration::from_nanos((1_000_000_000 - into) % 1_000_000_000)).await;
        assert_eq!(epoch::now_nanos() % 1_000_000_000, 0);
    }

    fn admit(b: &CircuitBreaker) -> BreakerPermit<'_> {
        match b.admit() {
            Admission::Proceed(p) => p,
            other => panic!("not admitted: {other:?} ({:?})", b.state()),
        }
    }

    fn attempt(b: &CircuitBreaker, outcome: AttemptOutcome) {
        b.settle(admit(b), outcome);
    }

    fn counts(b: &CircuitBreaker) -> (u64, u64) {
        let c = b.window().expect("a window");
        (c.failures, c.total)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_when_the_ratio_is_reached_with_enough_calls() {
        let b = breaker();
        // Alternating, so never two failures in a row: 5 failures and 4 successes.
        for i in 0..9 {
            attempt(&b, if i % 2 == 0 { RETRYABLE } else { OK });
        }
        assert_eq!(counts(&b), (5, 9));
        assert!(b.is_closed(), "9 calls is below min_calls");
        attempt(&b, OK); // 5 of 10: at the ratio, but a success never opens
        assert!(b.is_closed());
        attempt(&b, RETRYABLE); // 6 of 11
        assert!(matches!(b.state(), CircuitState::Open { .. }));
        let s = b.stats();
        assert_eq!((s.opened, s.opened_by_ratio), (1, 1));
        // Open: the window is empty, and rejected calls are not counted.
        assert_eq!(counts(&b), (0, 0));
        assert!(matches!((&b).admit(), Admission::Reject(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ratio_below_the_setting_stays_closed() {
        let b = breaker();
        // 4 failures in 10, then 1 in 2 forever: 49 of 100 at most.
        for i in 0..100 {
            attempt(&b, if i % 2 == 0 && i >= 2 { RETRYABLE } else { OK });
            assert!(b.is_closed(), "after {i}: {:?}", b.window());
        }
        assert_eq!(counts(&b), (49, 100));
    }

    #[tokio::test(start_paused = true)]
    async fn below_min_calls_even_every_failure_stays_closed() {
        let b = breaker();
        for _ in 0..9 {
            attempt(&b, RETRYABLE);
        }
        assert_eq!(counts(&b), (9, 9));
        assert_eq!(
            b.state(),
            CircuitState::Closed {
                consecutive_failures: 9
            }
        );
        attempt(&b, RETRYABLE);
        assert!(!b.is_closed());
        assert_eq!(b.stats().opened_by_ratio, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_age_out_of_the_window() {
        let b = breaker();
        align().await;
        for _ in 0..9 {
            attempt(&b, RETRYABLE);
        }
        // 1 s buckets: the first 9 are in the window for 15 more whole seconds, then gone.
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(counts(&b), (9, 9));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(counts(&b), (0, 0));
        attempt(&b, RETRYABLE); // would have been the 10th of 10
        assert!(b.is_closed());
        assert_eq!(counts(&b), (1, 1));
        // Partly aged out: 8 successes 8 s later, then the failure drops out 16 s after it came.
        tokio::time::advance(Duration::from_secs(8)).await;
        for _ in 0..8 {
            attempt(&b, OK);
        }
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(counts(&b), (0, 8));
        for _ in 0..7 {
            attempt(&b, RETRYABLE);
        }
        assert_eq!(counts(&b), (7, 15));
        assert!(b.is_closed());
        attempt(&b, RETRYABLE);
        assert!(!b.is_closed(), "8 of 16 reaches one half");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_before_a_close_do_not_count_after_it() {
        let b = breaker();
        let early = admit(&b); // admitted while closed, settled after the close
        for _ in 0..10 {
            attempt(&b, RETRYABLE);
        }
        assert!(!b.is_closed());
        tokio::time::advance(COOL_DOWN_OVER).await;
        let probe = admit(&b);
        assert!(probe.is_probe());
        (&b).settle(probe, OK);
        assert!(b.is_closed());
        // Same window, same buckets: none of the 10 failures is counted, nor the probe.
        assert_eq!(counts(&b), (0, 0));
        (&b).settle(early, RETRYABLE); // stale: ignored
        assert_eq!(counts(&b), (0, 0));
        for _ in 0..9 {
            attempt(&b, RETRYABLE);
        }
        assert!(b.is_closed(), "9 calls since the close");
        attempt(&b, RETRYABLE);
        assert!(!b.is_closed());
        let s = b.stats();
        assert_eq!((s.opened, s.opened_by_ratio, s.closed), (2, 2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_does_not_count_in_the_next_window() {
        let b = breaker();
        for _ in 0..10 {
            attempt(&b, RETRYABLE);
        }
        for _ in 0..2 {
            tokio::time::advance(COOL_DOWN_OVER).await;
            let probe = admit(&b);
            (&b).settle(probe, RETRYABLE); // re-opens
        }
        tokio::time::advance(COOL_DOWN_OVER).await;
        (&b).settle(admit(&b), OK);
        assert_eq!(counts(&b), (0, 0));
        let s = b.stats();
        assert_eq!((s.opened, s.opened_by_ratio, s.closed), (3, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_failures_do_not_count() {
        let b = breaker();
        for _ in 0..50 {
            attempt(&b, FATAL);
        }
        assert_eq!(counts(&b), (0, 0));
        for _ in 0..9 {
            attempt(&b, OK);
            attempt(&b, FATAL);
        }
        assert_eq!(counts(&b), (0, 9));
        for _ in 0..8 {
            attempt(&b, RETRYABLE);
        }
        assert!(b.is_closed(), "8 of 17");
        attempt(&b, RETRYABLE);
        assert!(!b.is_closed(), "9 of 18");
    }

    #[tokio::test(start_paused = true)]
    async fn the_consecutive_threshold_still_works_alongside() {
        let b = breaker().failure_threshold(3);
        attempt(&b, RETRYABLE);
        attempt(&b, RETRYABLE);
        attempt(&b, OK); // resets the count, not the window
        assert_eq!(
            b.state(),
            CircuitState::Closed {
                consecutive_failures: 0
            }
        );
        attempt(&b, RETRYABLE);
        attempt(&b, RETRYABLE);
        assert_eq!(counts(&b), (4, 5));
        attempt(&b, RETRYABLE); // 3 in a row, 5 of 6: below min_calls for the ratio
        assert!(!b.is_closed());
        let s = b.stats();
        assert_eq!((s.opened, s.opened_by_ratio), (1, 0));
        // After a close, the count and the window both start again.
        tokio::time::advance(COOL_DOWN_OVER).await;
        (&b).settle(admit(&b), OK);
        assert_eq!(
            b.state(),
            CircuitState::Closed {
                consecutive_failures: 0
            }
        );
        assert_eq!(counts(&b), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_ratio_nothing_is_counted_and_the_word_has_no_flag() {
        let b = CircuitBreaker::new("plain").failure_threshold(1_000);
        assert!(b.window().is_none() && b.ratio_settings().is_none());
        for _ in 0..100 {
            attempt(&b, RETRYABLE);
            attempt(&b, OK);
        }
        assert!(b.is_closed());
        assert_eq!(
            b.load(),
            Word::new(CLOSED, 0, 0),
            "the inline success path's word"
        );
        // Turned off after being on: the flag goes too.
        let off = breaker().failure_ratio(f64::NAN, Duration::from_secs(1), 1);
        assert_eq!(off.load(), Word::new(CLOSED, 0, 0));
        assert!(breaker().load() != Word::new(CLOSED, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn hostile_settings_never_panic() {
        let secs = Duration::from_secs(1);
        for (ratio, window) in [
            (f64::NAN, secs),
            (0.0, secs),
            (-0.5, secs),
            (f64::NEG_INFINITY, secs),
            (0.5, Duration::ZERO),
        ] {
            let b = CircuitBreaker::new("off")
                .failure_threshold(1_000)
                .failure_ratio(ratio, window, 0);
            assert_eq!(b.ratio_settings(), None, "{ratio} {window:?}");
            for _ in 0..20 {
                attempt(&b, RETRYABLE);
            }
            assert!(b.is_closed(), "the ratio is off: {ratio} {window:?}");
            assert!(b.window().is_none());
        }
        // Above 1 is 1, min_calls 0 is 1: a single failure opens it.
        for ratio in [1.5, f64::INFINITY] {
            let b = CircuitBreaker::new("all")
                .failure_threshold(1_000)
                .failure_ratio(ratio, secs, 0);
            let s = b.ratio_settings().unwrap();
            assert_eq!((s.ratio, s.window, s.min_calls), (1.0, secs, 1));
            attempt(&b, OK);
            attempt(&b, RETRYABLE);
            assert!(b.is_closed(), "1 of 2 is not every call");
            attempt(&b, OK);
            tokio::time::advance(secs).await;
            attempt(&b, RETRYABLE);
            assert!(!b.is_closed(), "1 of 1 is");
        }
        // Huge and tiny windows.
        let huge = CircuitBreaker::new("huge")
            .failure_threshold(1_000)
            .failure_ratio(0.5, Duration::MAX, u32::MAX);
        assert_eq!(
            huge.ratio_settings().unwrap().window,
            Duration::from_nanos(u64::MAX / 16 * 16)
        );
        for _ in 0..100 {
            attempt(&huge, RETRYABLE);
        }
        tokio::time::advance(Duration::from_secs(1 << 20)).await;
        assert_eq!(counts(&huge), (100, 100));
        assert!(huge.is_closed(), "u32::MAX calls needed");
        let tiny = CircuitBreaker::new("tiny")
            .failure_threshold(1_000)
            .failure_ratio(0.5, Duration::from_nanos(1), 2);
        assert_eq!(
            tiny.ratio_settings().unwrap().window,
            Duration::from_nanos(16)
        );
        attempt(&tiny, RETRYABLE);
        attempt(&tiny, RETRYABLE);
        assert!(!tiny.is_closed());
    }

    #[test]
    fn builds_in_a_const_context() {
        static B: CircuitBreaker =
            CircuitBreaker::new("x").failure_ratio(0.5, Duration::from_secs(10), 20);
        let s = B.ratio_settings().unwrap();
        assert_eq!(
            (s.ratio, s.window, s.min_calls),
            (0.5, Duration::from_secs(10), 20)
        );
        assert!(format!("{B:?}").contains("ratio: 0.5"));
    }
}
