// The circuit breaker's state word, re-stated from `retry-runtime/src/breaker.rs` (`Word`,
// `admit_inner`, `record`, `release_probe`) over the atomics of the module that includes it:
// loom's for the models, std's for the differential test against the real `CircuitBreaker`
// (`tests/loom_models.rs`). The clock is the model's own. The opt-in failure-ratio window
// (`breaker/window.rs`) is not modelled: without it, a closed word never carries the `WINDOWED`
// flag and these lines are the real ones; with it, opening on the ratio is the same CAS on this
// word, checked under real threads in tests/resilience.rs.

use super::atomic::{AtomicU64, Ordering};

const MODE_SHIFT: u32 = 62;
const GEN_SHIFT: u32 = 40;
const GEN_MASK: u64 = (1 << 22) - 1;
const PAYLOAD_MASK: u64 = (1 << GEN_SHIFT) - 1;
const HALF_MASK: u64 = (1 << 20) - 1;
const NANOS_PER_MS: u64 = 1_000_000;

pub const CLOSED: u64 = 0;
pub const OPEN: u64 = 1;
pub const HALF_OPEN: u64 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Word(pub u64);

impl Word {
    pub const fn new(mode: u64, generation: u64, payload: u64) -> Word {
        Word(
            (mode << MODE_SHIFT)
                | ((generation & GEN_MASK) << GEN_SHIFT)
                | (payload & PAYLOAD_MASK),
        )
    }
    pub fn mode(self) -> u64 {
        self.0 >> MODE_SHIFT
    }
    pub fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }
    pub fn payload(self) -> u64 {
        self.0 & PAYLOAD_MASK
    }
    pub fn half_open(generation: u64, admitted: u64, successes: u64) -> Word {
        Word::new(
            HALF_OPEN,
            generation,
            (successes << 20) | (admitted & HALF_MASK),
        )
    }
    pub fn admitted(self) -> u64 {
        self.payload() & HALF_MASK
    }
    pub fn successes(self) -> u64 {
        self.payload() >> 20
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Retryable,
    Fatal,
}

pub struct Breaker {
    pub failure_threshold: u32,
    pub cool_down_nanos: u64,
    pub probes: u32,
    /// The clock, nanoseconds since the epoch: a plain (std) atomic that only the set-up moves,
    /// outside loom's exploration.
    pub now: std::sync::atomic::AtomicU64,
    pub state: AtomicU64,
    pub admitted: AtomicU64,
    pub probes_admitted: AtomicU64,
    pub rejected: AtomicU64,
    pub opened: AtomicU64,
    pub closed: AtomicU64,
}

impl Breaker {
    pub fn new(word: Word, failure_threshold: u32, probes: u32, now: u64) -> Breaker {
        Breaker {
            failure_threshold,
            cool_down_nanos: 10 * NANOS_PER_MS,
            probes,
            now: std::sync::atomic::AtomicU64::new(now),
            state: AtomicU64::new(word.0),
            admitted: AtomicU64::new(0),
            probes_admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// The cool-down, in nanoseconds (10 ms unless set).
    pub fn with_cool_down(mut self, nanos: u64) -> Breaker {
        self.cool_down_nanos = nanos;
        self
    }

    pub fn load(&self) -> Word {
        Word(self.state.load(Ordering::Acquire))
    }

    fn swap(&self, current: Word, next: Word) -> Result<(), Word> {
        self.state
            .compare_exchange_weak(current.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(Word)
    }

    fn now(&self) -> u64 {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn advance(&self, nanos: u64) {
        self.now
            .fetch_add(nanos, std::sync::atomic::Ordering::SeqCst);
    }

    fn open_after(&self, w: Word) -> Word {
        let until = self.now().saturating_add(self.cool_down_nanos);
        let until_ms = until.div_ceil(NANOS_PER_MS).min(PAYLOAD_MASK);
        Word::new(OPEN, w.generation() + 1, until_ms)
    }

    /// `admit_inner`: the permit's kind and generation, or a rejection.
    pub fn admit(&self) -> Result<(Kind, u64), ()> {
        let mut w = self.load();
        loop {
            match w.mode() {
                CLOSED => {
                    self.admitted.fetch_add(1, Ordering::Relaxed);
                    return Ok((Kind::Normal, w.generation()));
                }
                OPEN => {
                    if self.now() < w.payload().saturating_mul(NANOS_PER_MS) {
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        return Err(());
                    }
                    let next = Word::half_open(w.generation() + 1, 1, 0);
                    match self.swap(w, next) {
                        Ok(()) => return Ok(self.probe_admitted(next)),
                        Err(actual) => w = actual,
                    }
                }
                _ => {
                    if w.admitted() >= u64::from(self.probes) {
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        return Err(());
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

    /// `probe_admitted`.
    fn probe_admitted(&self, w: Word) -> (Kind, u64) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        self.probes_admitted.fetch_add(1, Ordering::Relaxed);
        (Kind::Probe, w.generation())
    }

    /// `record`: an outcome of an attempt admitted under `generation`.
    pub fn record(&self, kind: Kind, generation: u64, outcome: Outcome) {
        let mut w = self.load();
        loop {
            if w.generation() != generation {
                return;
            }
            let next = match (kind, outcome) {
                (Kind::Normal, Outcome::Success) => {
                    if w.mode() != CLOSED || w.payload() == 0 {
                        return;
                    }
                    Word::new(CLOSED, generation, 0)
                }
                (Kind::Normal, failure) => {
                    if failure == Outcome::Fatal || w.mode() != CLOSED {
                        return;
                    }
                    let failures = (w.payload() + 1).min(PAYLOAD_MASK);
                    if failures >= u64::from(self.failure_threshold) {
                        self.open_after(w)
                    } else {
                        Word::new(CLOSED, generation, failures)
                    }
                }
                (Kind::Probe, Outcome::Success) => {
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
                (Kind::Probe, failure) => {
                    if w.mode() != HALF_OPEN {
                        return;
                    }
                    if failure == Outcome::Retryable {
                        self.open_after(w)
                    } else {
                        Word::half_open(
                            generation,
                            w.admitted().saturating_sub(1),
                            w.successes(),
                        )
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

    /// `release_probe`: a probe dropped without an outcome.
    pub fn release_probe(&self, generation: u64) {
        let mut w = self.load();
        while w.generation() == generation
            && w.mode() == HALF_OPEN
            && w.admitted() > w.successes()
        {
            let next = Word::half_open(generation, w.admitted() - 1, w.successes());
            match self.swap(w, next) {
                Ok(()) => return,
                Err(actual) => w = actual,
            }
        }
    }

    /// One attempt: admitted (as what), then settled with `outcome` or dropped unsettled
    /// (`None`); `None` if it was rejected.
    pub fn attempt(&self, outcome: Option<Outcome>) -> Option<Kind> {
        let (kind, generation) = self.admit().ok()?;
        match outcome {
            Some(o) => self.record(kind, generation, o),
            None if kind == Kind::Probe => self.release_probe(generation),
            None => {}
        }
        Some(kind)
    }
}

/// An open breaker whose cool-down has ended: the next admission is a probe.
pub fn cooled_down(probes: u32) -> Breaker {
    Breaker::new(Word::new(OPEN, 7, 5), 3, probes, 10 * NANOS_PER_MS)
}
