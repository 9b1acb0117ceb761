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
//! branch does not make. So `tests/loom_models/` re-states the two algorithms line for line (the
//! breaker: `Word`, `admit_inner`, `record`, `release_probe`; the budget: `try_withdraw`,
//! `deposit_success`) over the atomics of the module that includes them, with a clock of their
//! own, and this file checks their invariants under every interleaving loom generates.
//!
//! A copy can drift from its source, so the same models are also compiled over std's atomics and
//! run against the real `CircuitBreaker` and `RetryBudget` operation by operation
//! ([`differential`]: 20,000 random sequences each, every state, counter and verdict compared
//! after every operation). A change to `retry-runtime/src/breaker.rs` or `budget.rs` that is not
//! mirrored in the models fails there. The thread-stress tests (tests/resilience.rs,
//! tests/concurrency.rs) exercise the real types under real threads.
//!
//! Run: `cargo test --test loom_models -- --nocapture` (each test prints how many interleavings
//! it explored). The two-thread models are explored exhaustively; the three-thread ones up to
//! 2 preemptions by default, and `LOOM_MAX_PREEMPTIONS=N` (or a large N for all of them, best
//! with `--release`) widens the search.

use std::sync::atomic::AtomicUsize;

use loom::sync::atomic::Ordering;
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

/// The models over loom's atomics.
mod under_loom {
    use loom::sync::atomic;

    // Each flavour uses a part of the models only.
    #[allow(dead_code)]
    pub mod breaker {
        include!("loom_models/breaker.rs");
    }
    #[allow(dead_code)]
    pub mod budget {
        include!("loom_models/budget.rs");
    }
}

/// The same models over std's atomics, for the differential tests against the real types.
mod under_std {
    use std::sync::atomic;

    // Each flavour uses a part of the models only.
    #[allow(dead_code)]
    pub mod breaker {
        include!("loom_models/breaker.rs");
    }
    #[allow(dead_code)]
    pub mod budget {
        include!("loom_models/budget.rs");
    }
}

use under_loom::breaker::{self, Breaker, Kind, Outcome, Word, CLOSED, HALF_OPEN, OPEN};
use under_loom::budget::{Budget, UNIT};

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

/// The std-atomics copies of the models against the real types, operation by operation: the
/// guard against the models drifting from the source. Random sequences of admissions, outcomes,
/// cancelled permits and clock moves (breaker), and of withdrawals and deposits (budget), with
/// every observable (state, counters, admission verdicts) compared after each operation.
mod differential {
    use std::time::Duration;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRunner};
    use retry_runtime::{
        Admission, AttemptOutcome, BreakerPermit, CircuitBreaker, CircuitState, Classification,
        Gate, RetryBudget,
    };

    use super::under_std::breaker::{self as model, Kind, Outcome, Word};
    use super::under_std::budget::{Budget, UNIT};

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

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Admit,
        Settle(usize, Outcome),
        Cancel(usize),
        AdvanceMs(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = (0u8..10, any::<usize>(), 0u8..3, 0u64..25).prop_map(|(k, i, o, ms)| {
            let outcome = [Outcome::Success, Outcome::Retryable, Outcome::Fatal][o as usize];
            match k {
                0..=3 => Op::Admit,
                4..=6 => Op::Settle(i, outcome),
                7 => Op::Cancel(i),
                _ => Op::AdvanceMs(ms),
            }
        });
        prop::collection::vec(op, 1..80)
    }

    fn outcome(o: Outcome) -> AttemptOutcome {
        match o {
            Outcome::Success => AttemptOutcome::Success,
            Outcome::Retryable => AttemptOutcome::Failure(Classification::retry()),
            Outcome::Fatal => AttemptOutcome::Failure(Classification::give_up()),
        }
    }

    /// The model's state as the real breaker reports it.
    fn state(m: &model::Breaker) -> CircuitState {
        let w = m.load();
        match w.mode() {
            model::OPEN => CircuitState::Open {
                retry_in: Duration::from_nanos(
                    (w.payload() * 1_000_000)
                        .saturating_sub(m.now.load(std::sync::atomic::Ordering::SeqCst)),
                ),
            },
            model::HALF_OPEN => CircuitState::HalfOpen {
                probes_admitted: w.admitted() as u32,
                probes_succeeded: w.successes() as u32,
            },
            _ => CircuitState::Closed {
                consecutive_failures: w.payload(),
            },
        }
    }

    /// The real breaker keeps its clock as nanoseconds since a process-wide epoch read on first
    /// use (whole milliseconds before the paused clock's first reading), so with whole-millisecond
    /// moves both clocks agree to the millisecond boundary; `retry_in` is compared to within the
    /// 1 ms resolution all the same.
    #[test]
    fn the_breaker_model_matches_the_real_breaker() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _enter = rt.enter();
        let mut runner = TestRunner::new(cases(20_000));
        let settings = (1u32..5, 1u32..4, 0u64..30, ops());
        runner
            .run(&settings, |(threshold, probes, cool_ms, ops)| {
                let real = CircuitBreaker::new("differential")
                    .failure_threshold(threshold)
                    .probes(probes)
                    .cool_down(Duration::from_millis(cool_ms));
                let m = model::Breaker::new(Word::new(model::CLOSED, 0, 0), threshold, probes, 0)
                    .with_cool_down(cool_ms * 1_000_000);
                // Start both clocks at the same whole millisecond past the epoch.
                let CircuitState::Closed { .. } = real.state() else {
                    unreachable!()
                };
                rt.block_on(tokio::time::advance(Duration::from_millis(1)));
                let real_start = {
                    // An open breaker's `retry_in` reveals the real clock: open a scratch one.
                    let scratch = CircuitBreaker::new("clock")
                        .failure_threshold(1)
                        .cool_down(Duration::ZERO);
                    let Admission::Proceed(p) = (&scratch).admit() else {
                        unreachable!()
                    };
                    (&scratch).settle(p, outcome(Outcome::Retryable));
                    match scratch.state() {
                        CircuitState::Open { retry_in } => retry_in,
                        other => panic!("{other:?}"),
                    }
                };
                // Zero cool-down: `retry_in` is the distance to the next whole millisecond.
                prop_assert_eq!(
                    real_start,
                    Duration::ZERO,
                    "the real clock is not on a millisecond"
                );
                m.advance(1_000_000);
                let mut real_permits: Vec<BreakerPermit<'_>> = Vec::new();
                let mut model_permits: Vec<(Kind, u64)> = Vec::new();
                for op in ops {
                    match op {
                        Op::Admit => match ((&real).admit(), m.admit()) {
                            (Admission::Proceed(p), Ok((kind, generation))) => {
                                prop_assert_eq!(p.is_probe(), kind == Kind::Probe, "{:?}", op);
                                real_permits.push(p);
                                model_permits.push((kind, generation));
                            }
                            (Admission::Reject(_), Err(())) => {}
                            (r, m) => prop_assert!(false, "real {:?}, model {:?}", r, m),
                        },
                        Op::Settle(i, o) if !real_permits.is_empty() => {
                            let i = i % real_permits.len();
                            (&real).settle(real_permits.remove(i), outcome(o));
                            let (kind, generation) = model_permits.remove(i);
                            m.record(kind, generation, o);
                        }
                        Op::Cancel(i) if !real_permits.is_empty() => {
                            let i = i % real_permits.len();
                            drop(real_permits.remove(i));
                            let (kind, generation) = model_permits.remove(i);
                            if kind == Kind::Probe {
                                m.release_probe(generation);
                            }
                        }
                        Op::AdvanceMs(ms) => {
                            rt.block_on(tokio::time::advance(Duration::from_millis(ms)));
                            m.advance(ms * 1_000_000);
                        }
                        Op::Settle(..) | Op::Cancel(_) => {}
                    }
                    prop_assert_eq!(real.state(), state(&m), "after {:?}", op);
                    let s = real.stats();
                    let load = |a: &std::sync::atomic::AtomicU64| {
                        a.load(std::sync::atomic::Ordering::SeqCst)
                    };
                    prop_assert_eq!(
                        (s.admitted, s.probes, s.rejected, s.opened, s.closed),
                        (
                            load(&m.admitted),
                            load(&m.probes_admitted),
                            load(&m.rejected),
                            load(&m.opened),
                            load(&m.closed)
                        ),
                        "after {:?}",
                        op
                    );
                }
                Ok(())
            })
            .unwrap();
    }

    proptest! {
        #![proptest_config(cases(20_000))]

        #[test]
        fn the_budget_model_matches_the_real_budget(
            tokens in 0u32..5,
            deposit in 0.0f64..2.0,
            ops in prop::collection::vec(any::<bool>(), 1..60),
        ) {
            let real = RetryBudget::new().max_tokens(tokens).deposit(deposit);
            let micros = (real.deposit_per_success() * UNIT as f64).round() as u64;
            let m = Budget::new(u64::from(tokens), micros);
            let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::SeqCst);
            for withdraw in ops {
                if withdraw {
                    prop_assert_eq!(real.try_withdraw(), m.try_withdraw());
                } else {
                    real.deposit_success();
                    m.deposit_success();
                }
                let s = real.stats();
                prop_assert_eq!(
                    (s.retries_allowed, s.retries_denied, s.successes, s.earned, s.initial, s.balance),
                    (load(&m.retries_allowed), load(&m.retries_denied), load(&m.successes), load(&m.earned), m.initial_micros, load(&m.balance))
                );
            }
        }
    }
}
