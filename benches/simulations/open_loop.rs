//! (c) The retry budget in an open loop: calls arrive every 10 ms regardless of how earlier ones
//! fare, each attempt takes 20 ms and fails independently with probability p, 3 attempts per call
//! with the default delays. Load is attempts per call (1.0 = the offered load). A discrete-event
//! simulation; every attempt's result goes through `CallState::step` with the budget as observer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;

use retry_runtime::__private::{self, CallState};
use retry_runtime::{Classification, Observer, RetryBudget, RetryPolicy};

use crate::rng::Rng;

pub const CALLS: usize = 50_000;
const SPACING: u64 = 10_000_000; // ns between arrivals
const LATENCY: u64 = 20_000_000; // ns per attempt

pub struct Outcome {
    pub load: f64,
    pub success: f64,
}

pub fn run<O: Observer<()>>(p: f64, observer: &O, seed: u64) -> Outcome {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .build()
        .expect("valid");
    let mut rng = Rng::new(seed);
    let mut calls = vec![CallState::<()>::new(); CALLS];
    // (time the attempt's answer arrives, call)
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = (0..CALLS)
        .map(|c| Reverse((c as u64 * SPACING + LATENCY, c)))
        .collect();
    let (mut attempts, mut successes) = (CALLS as u64, 0u64);
    while let Some(Reverse((t, c))) = queue.pop() {
        let result = if rng.uniform() < p { Err(()) } else { Ok(()) };
        let flow = calls[c].step(
            &policy,
            "open-loop",
            result,
            |_| Classification::retry(),
            __private::never,
            __private::no_gate,
            observer,
        );
        match flow {
            ControlFlow::Break(Ok(())) => successes += 1,
            ControlFlow::Break(Err(())) => {}
            ControlFlow::Continue(delay) => {
                attempts += 1;
                let delay = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
                queue.push(Reverse((t + delay + LATENCY, c)));
            }
        }
    }
    Outcome {
        load: attempts as f64 / CALLS as f64,
        success: successes as f64 / CALLS as f64,
    }
}

/// (unbudgeted, budgeted with `RetryBudget::new()`) at failure probability `p`.
pub fn compare(p: f64, seed: u64) -> (Outcome, Outcome) {
    let unbudgeted = run(p, &(), seed);
    let budget = RetryBudget::new();
    let budgeted = run(p, &budget, seed);
    (unbudgeted, budgeted)
}
