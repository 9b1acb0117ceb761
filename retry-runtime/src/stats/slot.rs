//! Which counter slot the current thread writes: each live thread owns one of [`SLOTS`] slots, so
//! the counter of the common outcome (success on the first attempt) is bumped with a plain load
//! and store, never a locked read-modify-write, and never on a cache line another thread writes.
//!
//! The same holds for the two counters bumped when a call first suspends and when such a call
//! returns, from which the calls still running or cancelled are derived.
//!
//! A slot is claimed on a thread's first recorded call and given back when the thread exits; the
//! next thread to claim it keeps adding to the same counters. The bitmap's release (on exit) and
//! acquire (on claim) order the old owner's last store before the new owner's first load, so each
//! slot has exactly one writer at a time and no increment is lost. Threads beyond [`SLOTS`] share
//! an overflow counter updated with `fetch_add`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many threads at once get a slot of their own.
pub(crate) const SLOTS: usize = 64;

/// The current thread's slot: 0 when it has none yet, `i + 1` for slot `i`, [`OVERFLOW`] when it
/// shares the overflow counter (every slot taken, or the thread is exiting).
const UNCLAIMED: usize = 0;
const OVERFLOW: usize = usize::MAX;

/// Claimed slots, one bit each.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Read on every recorded call: `const`-initialised and without a destructor, so reading it
    /// is a single thread-local load.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread exits. Touched only when a slot is claimed.
    static OWNER: Owner = const { Owner(Cell::new(None)) };
}

struct Owner(Cell<Option<usize>>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(index) = self.0.take() {
            // Calls recorded by later thread-local destructors of this thread use the overflow
            // counter: the slot may belong to another thread from the next line on.
            SLOT.set(OVERFLOW);
            CLAIMED.fetch_and(!(1u64 << index), Ordering::Release);
        }
    }
}

/// The current thread's slot index, or `None` for the shared overflow counter.
#[inline(always)]
pub(crate) fn current() -> Option<usize> {
    let slot = SLOT.get();
    if slot.wrapping_sub(1) < SLOTS {
        Some(slot - 1)
    } else if slot == UNCLAIMED {
        claim()
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn claim() -> Option<usize> {
    let mut claimed = CLAIMED.load(Ordering::Relaxed);
    let index = loop {
        if claimed == u64::MAX {
            SLOT.set(OVERFLOW);
            return None;
        }
        let index = (!claimed).trailing_zeros() as usize;
        match CLAIMED.compare_exchange_weak(
            claimed,
            claimed | (1u64 << index),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => break index,
            Err(now) => claimed = now,
        }
    };
    if OWNER.try_with(|o| o.0.set(Some(index))).is_err() {
        // The thread is exiting and can no longer register the destructor that gives the slot
        // back: give it back now.
        CLAIMED.fetch_and(!(1u64 << index), Ordering::Release);
        SLOT.set(OVERFLOW);
        return None;
    }
    SLOT.set(index + 1);
    Some(index)
}

/// The counters each thread slot holds, on a cache line of their own: those bumped when a call
/// succeeds at once, or when a call first suspends and when such a call returns.
#[repr(align(64))]
pub(crate) struct Slot {
    pub(crate) first_try: AtomicU64,
    pub(crate) suspended: AtomicU64,
    pub(crate) suspended_returned: AtomicU64,
}

impl Slot {
    pub(crate) const fn new() -> Slot {
        Slot {
            first_try: AtomicU64::new(0),
            suspended: AtomicU64::new(0),
            suspended_returned: AtomicU64::new(0),
        }
    }
}

/// Adds one to `counter` of the current thread's slot in `slots`, or of `overflow`. Returns the
/// count before. The store releases, so that a reader who acquires a count also sees what the
/// counted call recorded before (a call that returned had been counted as suspended).
#[inline(always)]
pub(crate) fn bump(
    slots: &[Slot; SLOTS],
    overflow: &Slot,
    counter: impl Fn(&Slot) -> &AtomicU64,
) -> u64 {
    match current() {
        Some(index) => {
            let counter = counter(&slots[index]);
            // The only writer of this slot is this thread (module docs): no RMW needed.
            let before = counter.load(Ordering::Relaxed);
            counter.store(before.wrapping_add(1), Ordering::Release);
            before
        }
        None => counter(overflow).fetch_add(1, Ordering::Release),
    }
}

/// `counter` summed over every slot and the overflow slot.
pub(crate) fn sum(
    slots: &[Slot; SLOTS],
    overflow: &Slot,
    counter: impl Fn(&Slot) -> &AtomicU64,
) -> u64 {
    slots
        .iter()
        .map(|s| counter(s).load(Ordering::Acquire))
        .fold(counter(overflow).load(Ordering::Acquire), u64::wrapping_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests here claim many slots at once; run them one at a time so that each sees the
    /// slots the others' threads gave back.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn a_thread_keeps_its_slot_and_gives_it_back_on_exit() {
        let _serial = serial();
        let (a, b) = std::thread::spawn(|| (current(), current()))
            .join()
            .unwrap();
        assert!(a.is_some());
        assert_eq!(a, b, "the same thread keeps its slot");
        // Twice as many threads as slots, one after the other: each finds a free slot only if
        // the ones before gave theirs back.
        for _ in 0..2 * SLOTS {
            assert!(std::thread::spawn(current).join().unwrap().is_some());
        }
    }

    #[test]
    fn counts_are_exact_across_many_threads_and_slot_reuse() {
        let _serial = serial();
        static SLOTS_UNDER_TEST: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
        static OVERFLOW_UNDER_TEST: Slot = Slot::new();
        // More threads than slots over time (slots are reused), some of them at once.
        for _ in 0..4 {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..1000 {
                            bump(&SLOTS_UNDER_TEST, &OVERFLOW_UNDER_TEST, |s| &s.first_try);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(
            sum(&SLOTS_UNDER_TEST, &OVERFLOW_UNDER_TEST, |s| &s.first_try),
            4 * 40 * 1000
        );
    }

    #[test]
    fn threads_beyond_the_slots_share_the_overflow_counter() {
        let _serial = serial();
        static SLOTS_UNDER_TEST: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
        static OVERFLOW_UNDER_TEST: Slot = Slot::new();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(SLOTS + 8));
        let handles: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    // Every thread claims before any exits, so at least 8 find no free slot.
                    bump(&SLOTS_UNDER_TEST, &OVERFLOW_UNDER_TEST, |s| &s.first_try);
                    barrier.wait();
                    for _ in 0..99 {
                        bump(&SLOTS_UNDER_TEST, &OVERFLOW_UNDER_TEST, |s| &s.first_try);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            sum(&SLOTS_UNDER_TEST, &OVERFLOW_UNDER_TEST, |s| &s.first_try),
            (SLOTS as u64 + 8) * 100
        );
        assert!(OVERFLOW_UNDER_TEST.first_try.load(Ordering::Relaxed) >= 8 * 100);
    }
}
