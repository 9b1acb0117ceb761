//! What the benches share: a counting allocator, polling a future once, interleaved timing, and
//! the command line the callgrind script drives (`--list`, `--instructions VARIANT CALLS`).

#![allow(dead_code)] // each bench uses a different part

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Counts every allocation made by the process.
pub struct Counting;

pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Creates the future, polls it once with a no-op waker, returns its output. Panics if it is not
/// ready at once: what is measured is the retry machinery, not a runtime's scheduler.
#[inline(always)]
pub fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the benches never wait"),
    }
}

pub struct Variant {
    pub name: &'static str,
    pub call: fn(u64) -> u64,
    pub future_size: usize,
}

/// `variant!("name", f)`: a call of the async fn `f(u64) -> Result<u64, _>`, polled once.
#[allow(unused_macros)]
macro_rules! variant {
    ($name:expr, $f:ident) => {
        common::Variant {
            name: $name,
            call: |x| common::run($f(x)).unwrap(),
            future_size: std::mem::size_of_val(&$f(0)),
        }
    };
}
#[allow(unused_imports)]
pub(crate) use variant;

/// How far down the stack, in bytes, the calls of a measurement run: each variant is timed at
/// every one of these depths in turn, and its figure is the mean. The future each call pins on
/// its stack frame then sits at each 16-byte offset of a cache line once. At a single depth the
/// offset would be whatever the process's stack address gives, which ASLR picks per run: the same
/// binary measured a variant at 1.07x in one run and 1.22x in the next (its future's fields
/// straddling a cache line or not).
pub const STACK_SHIFTS: [usize; 4] = [0, 16, 32, 48];

/// [`time_calls`], from a frame `PAD` bytes deeper.
#[inline(never)]
fn time_calls_shifted<const PAD: usize>(call: fn(u64) -> u64, n: u64) -> f64 {
    let pad = [0u8; PAD];
    black_box(&pad);
    let ns = time_calls(call, n);
    black_box(&pad);
    ns
}

/// ns per call, the mean over the [`STACK_SHIFTS`], `n` calls in all.
pub fn time_calls_everywhere(call: fn(u64) -> u64, n: u64) -> f64 {
    let n = n / STACK_SHIFTS.len() as u64;
    let total = time_calls_shifted::<0>(call, n)
        + time_calls_shifted::<16>(call, n)
        + time_calls_shifted::<32>(call, n)
        + time_calls_shifted::<48>(call, n);
    total / STACK_SHIFTS.len() as f64
}

#[inline(never)]
pub fn time_calls(call: fn(u64) -> u64, n: u64) -> f64 {
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(call(black_box(i)));
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / n as f64
}

pub fn allocations_per_call(call: fn(u64) -> u64, n: u64) -> f64 {
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..n {
        black_box(call(black_box(i)));
    }
    (ALLOCATIONS.load(Relaxed) - before) as f64 / n as f64
}

/// The loop `scripts/callgrind_happy_path.py` counts instructions in: not inlined, so that
/// callgrind can collect inside it alone (`--toggle-collect`).
#[inline(never)]
pub fn instructions_loop(call: fn(u64) -> u64, n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(call(black_box(i)));
    }
    acc
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// For scripts/callgrind_happy_path.py: `--list` prints the variants, `--instructions I N` makes
/// N calls of variant I inside `instructions_loop` and nothing else. Returns whether it handled
/// the command line (the bench then exits).
pub fn callgrind_mode(variants: &[Variant]) -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        for (i, v) in variants.iter().enumerate() {
            println!("{i}\t{}\t{}", v.name, v.future_size);
        }
        return true;
    }
    if let Some(at) = args.iter().position(|a| a == "--instructions") {
        let arg = |k: usize| -> usize {
            args.get(at + k)
                .and_then(|a| a.parse().ok())
                .expect("usage: --instructions VARIANT CALLS")
        };
        let (variant, calls) = (arg(1), arg(2));
        black_box(instructions_loop(variants[variant].call, calls as u64));
        return true;
    }
    false
}

/// `(rounds, calls per round)`: `-- --quick` for a short run.
pub fn rounds() -> (usize, u64) {
    if std::env::args().any(|a| a == "--quick") {
        (21, 200_000)
    } else {
        (101, 1_000_000)
    }
}

/// ns per call of each variant in each round, the variants run round-robin so that the machine's
/// drift affects every variant alike.
pub fn interleaved(variants: &[Variant], rounds: usize, per_round: u64) -> Vec<Vec<f64>> {
    for v in variants {
        time_calls(v.call, per_round / 10); // warm up
    }
    let mut ns = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            ns[i].push(time_calls_everywhere(v.call, per_round));
        }
    }
    ns
}

/// The median over rounds of `f(a[round], b[round])`.
pub fn median_of(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> f64 {
    let per_round: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
    median(&per_round)
}
