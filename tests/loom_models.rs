//! Every interleaving (loom 0.7) of the two lock-free algorithms of the runtime: the circuit
//! breaker's packed state word, changed only by compare-and-swap, and the retry budget's balance.
//!
//! # Why models, not the crate's own types
//!
//! Loom can only interleave what goes through its own atomics. `CircuitBreaker` and
//! `RetryBudget` are built in `const` context (one `static` per provider is the documented
//! shape), and loom's `AtomicU64::new` is not `const`; the breaker also reads tokio's clock,
//! which a loom model must not (replays must be deterministic). Running the real types under
//! `cfg(loom)` would take a non-`const` constructor and an injected clock, a restructuring this
//! branch does not make. So this file re-states the two algorithms line for line over loom's
//! atomics (the breaker: `Word`, `admit_inner`, `record`, `release_probe`; the budget:
//! `try_withdraw`, `deposit_success`), with a fixed clock, and checks their invariants under
//! every interleaving loom generates. The copy is the weak point: a change to
//! `retry-runtime/src/breaker.rs` or `budget.rs` must be mirrored here. The thread-stress tests
//! (tests/resilience.rs, tests/concurrency.rs) exercise the real types.
//!
//! Run: `cargo test --test loom_models -- --nocapture` (each test prints how many interleavings
//! it explored). The two-thread models are explored exhaustively; the three-thread ones up to
//! 2 preemptions by default, and `LOOM_MAX_PREEMPTIONS=N` (or a large N for all of them, best
//! with `--release`) widens the search.

use std::sync::atomic::AtomicUsize;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Runs `f` under loom, returning how many interleavings were explored: all of them for the
/// two-thread models; for the three-thread ones, those with at most `bound` preemptions, unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise (loom's authors report that a bound of 2 or 3 finds
/// nearly every bug; unbounded, these models take minutes in a debug build).
fn explore_bounded(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) -> usize {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = bound;
    }
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    runs.load(std::sync::atomic::Ordering::Relaxed)
}

fn explore(f: impl Fn() + Sync + Send + 'static) -> usize {
    explore_bounded(None, f)
}

/// The bound of the three-thread models.
const THREE_THREADS: Option<usize> = Some(2);

// ---- The breaker's state word, as in retry-runtime/src/breaker.rs ----

mod breaker {
    use super::*;

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
                rejected: AtomicU64::new(0),
                opened: AtomicU64::new(0),
                closed: AtomicU64::new(0),
            }
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
                            Ok(()) => {
                                self.admitted.fetch_add(1, Ordering::Relaxed);
                                return Ok((Kind::Probe, next.generation()));
                            }
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
                            Ok(()) => {
                                self.admitted.fetch_add(1, Ordering::Relaxed);
                                return Ok((Kind::Probe, next.generation()));
                            }
                            Err(actual) => w = actual,
                        }
                    }
                }
            }
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
}

use breaker::{Breaker, Kind, Outcome, Word, CLOSED, HALF_OPEN, OPEN};

/// Two callers' retryable failures race to reach the threshold: exactly one opens the breaker.
#[test]
fn breaker_exactly_one_opening() {
    let n = explore(|| {
        let b = Arc::new(Breaker::new(Word::new(CLOSED, 0, 1), 3, 1, 0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    assert_eq!(b.attempt(Some(Outcome::Retryable)), Some(Kind::Normal))
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let w = b.load();
        assert_eq!(w.mode(), OPEN);
        assert_eq!(w.generation(), 1);
        assert_eq!(b.opened.load(Ordering::Relaxed), 1);
    });
    println!("breaker_exactly_one_opening: {n} interleavings");
}

/// After the cool-down, three callers race to probe with `probes(1)` and `probes(2)`: at most
/// that many are admitted as probes, their successes close the breaker exactly once, and every
/// caller is either admitted or rejected.
#[test]
fn breaker_exactly_the_configured_probes() {
    for probes in [1, 2] {
        let n = explore_bounded(THREE_THREADS, move || {
            let b = Arc::new(breaker::cooled_down(probes));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.attempt(Some(Outcome::Success)))
                })
                .collect();
            let kinds: Vec<Option<Kind>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let as_probe = kinds.iter().filter(|k| **k == Some(Kind::Probe)).count() as u32;
            // Exactly `probes` probes in the episode (all succeed, so all are needed to close
            // it); later callers are admitted normally or were turned away meanwhile.
            assert_eq!(as_probe, probes, "{kinds:?}");
            assert_eq!(b.load().mode(), CLOSED);
            assert_eq!(b.closed.load(Ordering::Relaxed), 1);
            assert_eq!(b.load().generation(), 9);
            assert_eq!(
                b.admitted.load(Ordering::Relaxed) + b.rejected.load(Ordering::Relaxed),
                3
            );
        });
        println!("breaker_exactly_the_configured_probes({probes}): {n} interleavings");
    }
}

/// A probe dropped mid-attempt (cancelled) races with other callers: its slot is given back
/// exactly once, so that at the end the breaker is half-open with nothing in flight, or closed
/// by the probe that succeeded.
#[test]
fn breaker_cancelled_probe_gives_its_slot_back() {
    let n = explore(|| {
        let b = Arc::new(breaker::cooled_down(1));
        let cancelled = {
            let b = b.clone();
            thread::spawn(move || b.attempt(None))
        };
        let succeeded = {
            let b = b.clone();
            thread::spawn(move || b.attempt(Some(Outcome::Success)))
        };
        let (c, s) = (cancelled.join().unwrap(), succeeded.join().unwrap());
        let w = b.load();
        if s.is_some() {
            assert_eq!(w.mode(), CLOSED, "a successful probe closes it");
        } else {
            // The success was turned away while the cancelled probe held the slot.
            assert_eq!(c, Some(Kind::Probe));
            assert_eq!(w.mode(), HALF_OPEN);
            assert_eq!((w.admitted(), w.successes()), (0, 0), "the slot leaked");
        }
    });
    println!("breaker_cancelled_probe_gives_its_slot_back: {n} interleavings");
}

/// A slow attempt admitted while the breaker was closed fails after the breaker has opened
/// and cooled down, racing with the probe: its stale outcome must not re-open the breaker, and
/// the probe's success closes it.
#[test]
fn breaker_stale_outcomes_are_ignored() {
    let n = explore(|| {
        let b = Arc::new(Breaker::new(Word::new(CLOSED, 0, 0), 1, 1, 0));
        // Admitted under generation 0, still running.
        let (kind, generation) = b.admit().unwrap();
        // Another caller's failure opens the breaker (threshold 1), and the cool-down passes.
        assert_eq!(b.attempt(Some(Outcome::Retryable)), Some(Kind::Normal));
        assert_eq!(b.load().mode(), OPEN);
        b.advance(20 * 1_000_000);
        let slow = {
            let b = b.clone();
            thread::spawn(move || b.record(kind, generation, Outcome::Retryable))
        };
        let probe = {
            let b = b.clone();
            thread::spawn(move || b.attempt(Some(Outcome::Success)))
        };
        slow.join().unwrap();
        assert_eq!(probe.join().unwrap(), Some(Kind::Probe));
        assert_eq!(b.load().mode(), CLOSED);
        assert_eq!(
            b.opened.load(Ordering::Relaxed),
            1,
            "the stale failure re-opened it"
        );
        assert_eq!(b.closed.load(Ordering::Relaxed), 1);
    });
    println!("breaker_stale_outcomes_are_ignored: {n} interleavings");
}

/// A failed probe and a successful one race in a two-probe episode: the breaker always ends
/// open, whatever the order (a success after the failure is stale, or is turned away).
#[test]
fn breaker_a_failed_probe_reopens() {
    let n = explore(|| {
        let b = Arc::new(breaker::cooled_down(2));
        let ok = {
            let b = b.clone();
            thread::spawn(move || b.attempt(Some(Outcome::Success)))
        };
        let bad = {
            let b = b.clone();
            thread::spawn(move || b.attempt(Some(Outcome::Retryable)))
        };
        ok.join().unwrap();
        assert_eq!(
            bad.join().unwrap(),
            Some(Kind::Probe),
            "the failing probe was admitted"
        );
        assert_eq!(b.load().mode(), OPEN);
        assert_eq!(b.opened.load(Ordering::Relaxed), 1);
        assert_eq!(b.closed.load(Ordering::Relaxed), 0);
    });
    println!("breaker_a_failed_probe_reopens: {n} interleavings");
}

// ---- The budget's balance, as in retry-runtime/src/budget.rs ----

const UNIT: u64 = 1_000_000;

struct Budget {
    max_micros: u64,
    deposit_micros: u64,
    initial_micros: u64,
    balance: AtomicU64,
    retries_allowed: AtomicU64,
    retries_denied: AtomicU64,
    earned: AtomicU64,
}

impl Budget {
    fn new(tokens: u64, deposit_micros: u64) -> Budget {
        Budget {
            max_micros: tokens * UNIT,
            deposit_micros,
            initial_micros: tokens * UNIT,
            balance: AtomicU64::new(tokens * UNIT),
            retries_allowed: AtomicU64::new(0),
            retries_denied: AtomicU64::new(0),
            earned: AtomicU64::new(0),
        }
    }

    fn try_withdraw(&self) -> bool {
        let spent = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(UNIT))
            .is_ok();
        let counter = if spent {
            &self.retries_allowed
        } else {
            &self.retries_denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
        spent
    }

    fn deposit_success(&self) {
        if self.deposit_micros == 0 {
            return;
        }
        let mut credited = 0;
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                let next = b.saturating_add(self.deposit_micros).min(self.max_micros);
                credited = next.saturating_sub(b);
                (credited > 0).then_some(next)
            });
        if credited > 0 {
            self.earned.fetch_add(credited, Ordering::Relaxed);
        }
    }
}

/// Withdrawals and deposits from three threads: whole tokens only, never above capacity, and
/// `balance == initial + earned - retries_allowed` once they are done.
#[test]
fn budget_balance_is_exact() {
    let n = explore_bounded(THREE_THREADS, || {
        // One token and a 0.6 deposit: withdrawals compete for the token and for what deposits
        // bring back, and a deposit into a full bucket credits only part of itself.
        let b = Arc::new(Budget::new(1, 600_000));
        let threads: Vec<_> = [&[true, true][..], &[false, true][..], &[false, false][..]]
            .into_iter()
            .map(|ops| {
                let b = b.clone();
                thread::spawn(move || {
                    for &withdraw in ops {
                        if withdraw {
                            b.try_withdraw();
                        } else {
                            b.deposit_success();
                        }
                        let balance = b.balance.load(Ordering::Acquire);
                        assert!(balance <= b.max_micros);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let allowed = b.retries_allowed.load(Ordering::Relaxed);
        let denied = b.retries_denied.load(Ordering::Relaxed);
        assert_eq!(allowed + denied, 3);
        let balance = b.balance.load(Ordering::Acquire);
        let earned = b.earned.load(Ordering::Relaxed);
        assert_eq!(balance, b.initial_micros + earned - allowed * UNIT);
        // Three deposits of 0.6 can bring back at most 1.8 tokens: at most 2 withdrawals
        // succeed (the initial token and one earned back).
        assert!((1..=2).contains(&allowed), "{allowed}");
    });
    println!("budget_balance_is_exact: {n} interleavings");
}
