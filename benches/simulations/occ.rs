//! (b) The AWS Architecture Blog's "Exponential Backoff and Jitter" simulation: N clients each
//! update one row once with optimistic concurrency (read the version, write it back if it has not
//! changed), over a network with delay |N(10 ms, 2 ms)|, backing off after each conflict with
//! base 5 ms (first delay 10 ms) and cap 2 s. A discrete-event simulation in continuous time, as
//! the blog's; each conflict is handed to our `CallState::step`, which picks the delay.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;
use std::time::Duration;

use retry_runtime::__private::{self, CallState};
use retry_runtime::{Classification, Jitter, RetryPolicy};

use crate::rng::Rng;

pub const MODES: [Jitter; 4] = [
    Jitter::None,
    Jitter::Full,
    Jitter::Equal,
    Jitter::Decorrelated,
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The read request reaches the server.
    Read,
    /// The write request reaches the server.
    Write,
    /// The write's answer reaches the client.
    Answer(bool),
}

fn policy(jitter: Jitter) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(u32::MAX)
        .initial_delay(Duration::from_millis(10))
        .backoff_factor(2.0)
        .max_delay(Duration::from_secs(2))
        .jitter(jitter)
        .build()
        .expect("valid policy")
}

/// One trial: (write calls, completion time in ms).
fn trial(clients: usize, jitter: Jitter, rng: &mut Rng) -> (u64, f64) {
    let policy = policy(jitter);
    let net = |rng: &mut Rng| (rng.abs_normal(10.0, 2.0) * 1e6) as u64; // ns
    let mut queue = BinaryHeap::new();
    let mut seen = vec![0u64; clients];
    let mut calls = vec![CallState::<()>::new(); clients];
    for c in 0..clients {
        queue.push(Reverse((net(rng), c, Event::Read)));
    }
    let (mut version, mut writes, mut last) = (0u64, 0u64, 0u64);
    while let Some(Reverse((t, c, event))) = queue.pop() {
        last = t;
        match event {
            Event::Read => {
                seen[c] = version;
                // The answer travels back, then the write travels to the server.
                queue.push(Reverse((t + net(rng) + net(rng), c, Event::Write)));
            }
            Event::Write => {
                writes += 1;
                let ok = seen[c] == version;
                if ok {
                    version += 1;
                }
                queue.push(Reverse((t + net(rng), c, Event::Answer(ok))));
            }
            Event::Answer(true) => {}
            Event::Answer(false) => {
                let flow = calls[c].step(
                    &policy,
                    "occ",
                    Err::<(), ()>(()),
                    |_| Classification::retry(),
                    __private::never,
                    __private::no_gate,
                    &(),
                );
                let ControlFlow::Continue(delay) = flow else {
                    unreachable!("u32::MAX attempts")
                };
                let delay = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
                queue.push(Reverse((t + net(rng) + delay, c, Event::Read)));
            }
        }
    }
    (writes, last as f64 / 1e6)
}

/// Mean (calls, completion ms) over `trials` trials.
pub fn point(clients: usize, jitter: Jitter, trials: usize, seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let (mut calls, mut time) = (0.0, 0.0);
    for _ in 0..trials {
        let (c, t) = trial(clients, jitter, &mut rng);
        calls += c as f64;
        time += t;
    }
    (calls / trials as f64, time / trials as f64)
}
