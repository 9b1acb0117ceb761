//! Counters bumped on every call of a hot path (a first-try success, a breaker admission, a
//! budget's deposit), kept per thread so that a bump is a plain load and store on a cache line
//! only the current thread writes: no locked read-modify-write, no line bouncing between cores.
//! A reader adds up every thread's share.
//!
//! Each live thread owns one of [`SLOTS`] slots, claimed on its first bump and given back when it
//! exits; the next thread to claim it keeps adding to the same counters. The bitmap's release (on
//! exit) and acquire (on claim) order the old owner's last store before the new owner's first
//! load, so each slot has exactly one writer at a time and no increment is lost. Threads beyond
//! [`SLOTS`] share an overflow slot updated with `fetch_add`.
//!
//! The slot a thread owns is the same in every [`PerThread`] (statistics, breakers, budgets): one
//! thread-local read finds it everywhere.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

/// How many threads at once get a slot of their own.
pub(crate) const SLOTS: usize = 64;

/// The current thread's slot index `0..SLOTS`; [`UNCLAIMED`] before its first bump, [`OVERFLOW`]
/// when it shares the overflow slot (every slot taken, or the thread is exiting). Both are out of
/// range, so one comparison finds the common case.
const UNCLAIMED: usize = usize::MAX;
const OVERFLOW: usize = usize::MAX - 1;

/// Claimed slots, one bit each.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Read on every bump: `const`-initialised and without a destructor, so reading it is a
    /// single thread-local load.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread exits. Touched only when a slot is claimed.
    static OWNER: Owner = const {
        Owner {
            index: Cell::new(None),
            caches: RefCell::new(Vec::new()),
        }
    };
}

/// A thread-local cache of one counter of the current thread's slot (see `PerThread::bump_cached`):
/// `const`-initialised to `None` and without a destructor, so that reading it is one
/// thread-local load.
pub type CounterCache = Cell<Option<&'static AtomicU64>>;

struct Owner {
    index: Cell<Option<usize>>,
    /// The caches filled with counters of the slot, emptied when the slot is given back.
    caches: RefCell<Vec<&'static LocalKey<CounterCache>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(index) = self.index.take() {
            // Bumps made by later thread-local destructors of this thread use the overflow slot:
            // the slot may belong to another thread from the next line on.
            SLOT.set(OVERFLOW);
            for cache in self.caches.take() {
                // A cache has no destructor: it can still be reached here.
                let _ = cache.try_with(|c| c.set(None));
            }
            CLAIMED.fetch_and(!(1u64 << index), Ordering::Release);
        }
    }
}

/// The current thread's slot index, `>= SLOTS` for the shared overflow slot.
#[inline(always)]
fn current() -> usize {
    let slot = SLOT.get();
    if slot == UNCLAIMED {
        claim()
    } else {
        slot
    }
}

#[cold]
#[inline(never)]
fn claim() -> usize {
    let mut claimed = CLAIMED.load(Ordering::Relaxed);
    let index = loop {
        if claimed == u64::MAX {
            SLOT.set(OVERFLOW);
            return OVERFLOW;
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
    if OWNER.try_with(|o| o.index.set(Some(index))).is_err() {
        // The thread is exiting and can no longer register the destructor that gives the slot
        // back: give it back now.
        CLAIMED.fetch_and(!(1u64 << index), Ordering::Release);
        SLOT.set(OVERFLOW);
        return OVERFLOW;
    }
    SLOT.set(index);
    index
}

/// `N` counters per thread slot, on a cache line of their own.
#[repr(align(64))]
struct Slot<const N: usize>([AtomicU64; N]);

impl<const N: usize> Slot<N> {
    const fn new() -> Self {
        Slot([const { AtomicU64::new(0) }; N])
    }
}

/// `N` counters, each split over the thread slots: [`bump`](Self::bump) is cheap, [`sum`](Self::sum)
/// reads every slot. 4 KiB whatever `N` (at most 8), so meant for long-lived shared objects.
pub(crate) struct PerThread<const N: usize> {
    slots: [Slot<N>; SLOTS],
    overflow: Slot<N>,
}

impl<const N: usize> PerThread<N> {
    /// All counters zero.
    pub(crate) const fn new() -> Self {
        assert!(N <= 8, "one cache line per slot");
        PerThread {
            slots: [const { Slot::new() }; SLOTS],
            overflow: Slot::new(),
        }
    }

    /// Adds one to `counter` (a constant below `N`) of the current thread's slot. Returns the
    /// count before, of this slot only. The store releases, so that a reader who acquires a count
    /// also sees what the counted call recorded before.
    #[inline(always)]
    pub(crate) fn bump(&self, counter: usize) -> u64 {
        // One thread-local load and one comparison: an unclaimed or overflow index is out of range.
        match self.slots.get(SLOT.get()) {
            Some(slot) => Self::bump_own(slot, counter),
            None => self.bump_unclaimed(counter),
        }
    }

    #[inline(always)]
    fn bump_own(slot: &Slot<N>, counter: usize) -> u64 {
        let counter = &slot.0[counter];
        // The only writer of this slot is this thread (module docs): no RMW needed.
        let before = counter.load(Ordering::Relaxed);
        counter.store(before.wrapping_add(1), Ordering::Release);
        before
    }

    /// The thread's first bump (which claims a slot), or every bump of a thread without one.
    #[cold]
    #[inline(never)]
    fn bump_unclaimed(&self, counter: usize) -> u64 {
        match self.slots.get(current()) {
            Some(slot) => Self::bump_own(slot, counter),
            None => self.overflow.0[counter].fetch_add(1, Ordering::Release),
        }
    }

    /// Adds one to `counter` of the current thread's slot through `cache`, a thread-local that
    /// remembers where that counter is: after a thread's first bump, one thread-local load, a
    /// null test and an increment, with no slot lookup. `first` runs on the bump that fills the
    /// cache (the thread's first through this cache, or one after the thread gave its slot back),
    /// before the count is visible. The cache must be used with this `PerThread` and `counter`
    /// only.
    #[inline(always)]
    pub(crate) fn bump_cached(
        &'static self,
        counter: usize,
        cache: &'static LocalKey<CounterCache>,
        first: impl FnOnce(),
    ) {
        // A cache is `const`-initialised without a destructor: `with` cannot fail.
        match cache.with(Cell::get) {
            Some(own) => {
                own.store(
                    own.load(Ordering::Relaxed).wrapping_add(1),
                    Ordering::Release,
                );
            }
            None => self.fill_and_bump(counter, cache, first),
        }
    }

    #[cold]
    #[inline(never)]
    fn fill_and_bump(
        &'static self,
        counter: usize,
        cache: &'static LocalKey<CounterCache>,
        first: impl FnOnce(),
    ) {
        first();
        let Some(slot) = self.slots.get(current()) else {
            // No slot of its own (too many threads, or this one is exiting): nothing to cache.
            self.overflow.0[counter].fetch_add(1, Ordering::Release);
            return;
        };
        Self::bump_own(slot, counter);
        let own = &slot.0[counter];
        // Remember the cache so that the slot's owner empties it when it gives the slot back;
        // an owner already gone (the thread is exiting) means no caching.
        let registered = OWNER.try_with(|o| {
            if o.index.get().is_some() {
                o.caches.borrow_mut().push(cache);
                true
            } else {
                false
            }
        });
        if registered == Ok(true) {
            cache.with(|c| c.set(Some(own)));
        }
    }

    /// `counter` summed over every slot and the overflow slot.
    pub(crate) fn sum(&self, counter: usize) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0[counter].load(Ordering::Acquire))
            .fold(
                self.overflow.0[counter].load(Ordering::Acquire),
                u64::wrapping_add,
            )
    }
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
        assert!(a < SLOTS);
        assert_eq!(a, b, "the same thread keeps its slot");
        // Twice as many threads as slots, one after the other: each finds a free slot only if
        // the ones before gave theirs back.
        for _ in 0..2 * SLOTS {
            assert!(std::thread::spawn(current).join().unwrap() < SLOTS);
        }
    }

    #[test]
    fn counts_are_exact_across_many_threads_and_slot_reuse() {
        let _serial = serial();
        static COUNTERS: PerThread<2> = PerThread::new();
        // More threads than slots over time (slots are reused), some of them at once.
        for _ in 0..4 {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..1000 {
                            COUNTERS.bump(1);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(COUNTERS.sum(1), 4 * 40 * 1000);
    }

    #[test]
    fn cached_bumps_are_exact_across_threads_and_slot_reuse() {
        let _serial = serial();
        static COUNTERS: PerThread<2> = PerThread::new();
        static FIRSTS: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            static CACHE: CounterCache = const { Cell::new(None) };
        }
        for _ in 0..4 {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..1000 {
                            COUNTERS.bump_cached(1, &CACHE, || {
                                FIRSTS.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                        // The cache points into this thread's own slot.
                        let own = CACHE.with(Cell::get).expect("filled");
                        assert!(std::ptr::eq(own, &COUNTERS.slots[current()].0[1]));
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(COUNTERS.sum(1), 4 * 40 * 1000);
        assert_eq!(COUNTERS.sum(0), 0, "only the counter asked for");
        // `first` runs once per thread: the bump that fills its cache.
        assert_eq!(FIRSTS.load(Ordering::Relaxed), 4 * 40);
    }

    #[test]
    fn a_cached_bump_after_the_slot_is_given_back_goes_to_the_overflow() {
        let _serial = serial();
        static COUNTERS: PerThread<1> = PerThread::new();
        thread_local! {
            static CACHE: CounterCache = const { Cell::new(None) };
        }
        /// Bumps from its destructor, which runs after the slot's owner gave the slot back:
        /// thread-local destructors run in the reverse order of their registration, and this
        /// one registers before the thread claims a slot.
        struct Late;
        static LATE_CACHED: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(true);
        impl Drop for Late {
            fn drop(&mut self) {
                COUNTERS.bump_cached(0, &CACHE, || {});
                // Asserted after the join: a panic in a thread-local destructor aborts.
                LATE_CACHED.store(CACHE.with(Cell::get).is_some(), Ordering::Relaxed);
            }
        }
        thread_local! {
            static LATE: Late = const { Late };
        }
        std::thread::spawn(|| {
            LATE.with(|_| {});
            COUNTERS.bump_cached(0, &CACHE, || {});
            assert!(CACHE.with(Cell::get).is_some());
        })
        .join()
        .unwrap();
        // The slot went back to the pool and the late bump to the overflow, not into a slot
        // that another thread may own by now.
        assert_eq!(COUNTERS.sum(0), 2);
        assert_eq!(COUNTERS.overflow.0[0].load(Ordering::Relaxed), 1);
        assert!(
            !LATE_CACHED.load(Ordering::Relaxed),
            "no caching once the slot is gone"
        );
    }

    #[test]
    fn threads_beyond_the_slots_share_the_overflow_counter() {
        let _serial = serial();
        static COUNTERS: PerThread<2> = PerThread::new();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(SLOTS + 8));
        let handles: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    // Every thread claims before any exits, so at least 8 find no free slot.
                    COUNTERS.bump(1);
                    barrier.wait();
                    for _ in 0..99 {
                        COUNTERS.bump(1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(COUNTERS.sum(1), (SLOTS as u64 + 8) * 100);
        assert!(COUNTERS.overflow.0[1].load(Ordering::Relaxed) >= 8 * 100);
    }
}
