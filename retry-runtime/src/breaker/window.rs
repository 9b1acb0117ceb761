//! The failure-ratio window of a [`CircuitBreaker`](super::CircuitBreaker), opt-in through
//! [`failure_ratio`](super::CircuitBreaker::failure_ratio): the attempt outcomes of the last
//! `window`, kept in [`BUCKETS`] time buckets of `window / 16` each.
//!
//! Each bucket is one `AtomicU64`, `stamp:24 | failures:20 | total:20`, updated by
//! compare-and-swap: a writer whose stamp matches adds to the counts, one whose stamp differs
//! replaces the bucket with fresh counts. Nothing is ever reset. The stamp is the bucket's time
//! slot plus 16 times the breaker's generation (modulo 2^24): the generation changes on every
//! transition, and a closed generation is at least 3 transitions past the previous one (closed,
//! open, half-open, closed), so the stamps of a new closed episode are at least 48 slots past
//! every stamp of the previous one and a reader, who counts only the stamps of the 16 slots up
//! to now, never sees the failures that opened the breaker before it closed again. Adding 16 per
//! generation keeps each slot in its own bucket (`stamp % 16 == slot % 16`), and keeps the stamp
//! continuous when the 22-bit generation wraps (16 * 2^22 is a multiple of 2^24).
//!
//! What is not exact, and why it is acceptable: a bucket left untouched for 2^24 bucket widths
//! (48 days with a 4 s window, 121 days with 10 s) can carry a stamp that, modulo 2^24, looks
//! current again, with a chance of about one in a million; its old counts are then counted once
//! more. A writer that stalls between reading the clock and its compare-and-swap for a whole
//! window (or across a whole open, half-open, closed episode) replaces a newer bucket with its
//! own stale one, which readers then ignore: that slot's outcomes are under-counted, never
//! over-counted. A bucket counts at most 1,048,575 outcomes; further outcomes in its time slice
//! are not counted (the ratio of those counted stands).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Time buckets in a window: a power of two, so that adding 16 per generation keeps the stamp
/// continuous across the generation's wrap.
const BUCKETS: u64 = 16;
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const STAMP_SHIFT: u32 = 2 * COUNT_BITS;
const STAMP_MASK: u64 = (1 << (64 - STAMP_SHIFT)) - 1;

/// The failure-ratio settings of a [`CircuitBreaker`](super::CircuitBreaker), as
/// [`ratio_settings`](super::CircuitBreaker::ratio_settings) reports them: the values in effect,
/// after clamping.
///
/// ```
/// use retry_runtime::CircuitBreaker;
/// use std::time::Duration;
///
/// let b = CircuitBreaker::new("x").failure_ratio(2.0, Duration::from_secs(10), 0);
/// let s = b.ratio_settings().unwrap();
/// assert_eq!((s.ratio, s.window, s.min_calls), (1.0, Duration::from_secs(10), 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct FailureRatio {
    /// The share of retryable failures among counted outcomes that opens the breaker, in
    /// `(0, 1]`.
    pub ratio: f64,
    /// The window the outcomes are counted over: a multiple of 16 ns, at most `u64::MAX` ns
    /// (584 years).
    pub window: Duration,
    /// Outcomes the window must hold before the ratio can open the breaker; at least 1.
    pub min_calls: u32,
}

/// The outcomes a [`CircuitBreaker`](super::CircuitBreaker)'s failure-ratio window holds now, as
/// [`window`](super::CircuitBreaker::window) reports them: those of attempts admitted since the
/// breaker last closed (or was created) and settled within the last `window`. Successes and
/// retryable failures count; non-retryable failures and half-open probes do not.
///
/// ```
/// use retry_runtime::WindowCounts;
///
/// let empty = WindowCounts::default();
/// assert_eq!((empty.successes(), empty.ratio()), (0, 0.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowCounts {
    /// Retryable failures in the window.
    pub failures: u64,
    /// Outcomes in the window: retryable failures plus successes.
    pub total: u64,
}

impl WindowCounts {
    /// Successes in the window.
    pub fn successes(&self) -> u64 {
        self.total.saturating_sub(self.failures)
    }

    /// `failures / total`, and `0.0` for an empty window.
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.failures as f64 / self.total as f64
        }
    }
}

/// The settings and the buckets. Off (no bucket ever written) unless configured.
pub(super) struct Window {
    ratio: f64,
    min_calls: u32,
    /// The width of a bucket; 0 when the window is off.
    bucket_nanos: u64,
    buckets: [AtomicU64; BUCKETS as usize],
}

impl Window {
    pub(super) const fn off() -> Window {
        Window {
            ratio: 1.0,
            min_calls: 1,
            bucket_nanos: 0,
            buckets: [const { AtomicU64::new(0) }; BUCKETS as usize],
        }
    }

    /// Applies the settings; returns whether the window is on. A NaN or non-positive ratio, or
    /// a zero window, turns it off; a ratio above 1 is 1; `min_calls` 0 is 1; a window shorter
    /// than 16 ns is 16 ns.
    pub(super) const fn configure(&mut self, ratio: f64, window: Duration, min_calls: u32) -> bool {
        let nanos = window.as_nanos();
        let nanos = if nanos > u64::MAX as u128 {
            u64::MAX
        } else {
            nanos as u64
        };
        if ratio.is_nan() || ratio <= 0.0 || nanos == 0 {
            *self = Window::off();
            return false;
        }
        self.ratio = if ratio > 1.0 { 1.0 } else { ratio };
        self.min_calls = if min_calls == 0 { 1 } else { min_calls };
        self.bucket_nanos = if nanos < BUCKETS { 1 } else { nanos / BUCKETS };
        true
    }

    #[inline]
    pub(super) fn is_on(&self) -> bool {
        self.bucket_nanos != 0
    }

    pub(super) fn settings(&self) -> Option<FailureRatio> {
        self.is_on().then(|| FailureRatio {
            ratio: self.ratio,
            window: Duration::from_nanos(self.bucket_nanos * BUCKETS),
            min_calls: self.min_calls,
        })
    }

    /// The stamp of the time slot holding `now_nanos`, for an attempt of `generation`.
    fn stamp(&self, generation: u64, now_nanos: u64) -> u64 {
        let slot = now_nanos / self.bucket_nanos.max(1);
        slot.wrapping_add(generation.wrapping_mul(BUCKETS)) & STAMP_MASK
    }

    /// Counts one outcome of an attempt admitted under the closed `generation`.
    pub(super) fn record(&self, generation: u64, now_nanos: u64, failure: bool) {
        let stamp = self.stamp(generation, now_nanos);
        let bucket = &self.buckets[(stamp % BUCKETS) as usize];
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (failures, total) = if current >> STAMP_SHIFT == stamp {
                ((current >> COUNT_BITS) & COUNT_MASK, current & COUNT_MASK)
            } else {
                (0, 0) // an earlier slot, or an earlier generation: start afresh
            };
            if total == COUNT_MASK {
                return; // saturated for this time slice
            }
            let next = (stamp << STAMP_SHIFT)
                | ((failures + u64::from(failure)) << COUNT_BITS)
                | (total + 1);
            // SeqCst with the loads of `counts`: of two failures recorded at once in different
            // buckets, at least one sees the other, so a crossing of the ratio is never missed.
            match bucket.compare_exchange_weak(current, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The outcomes of `generation` in the 16 slots up to `now_nanos`.
    pub(super) fn counts(&self, generation: u64, now_nanos: u64) -> WindowCounts {
        let stamp = self.stamp(generation, now_nanos);
        let mut counts = WindowCounts::default();
        for bucket in &self.buckets {
            let b = bucket.load(Ordering::SeqCst);
            if stamp.wrapping_sub(b >> STAMP_SHIFT) & STAMP_MASK < BUCKETS {
                counts.failures += (b >> COUNT_BITS) & COUNT_MASK;
                counts.total += b & COUNT_MASK;
            }
        }
        counts
    }

    /// Whether `counts` reach the ratio with enough outcomes.
    pub(super) fn trips(&self, counts: WindowCounts) -> bool {
        counts.total > 0
            && counts.total >= u64::from(self.min_calls)
            && counts.failures as f64 / counts.total as f64 >= self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn window(ratio: f64, secs: u64, min_calls: u32) -> Window {
        let mut w = Window::off();
        assert!(w.configure(ratio, Duration::from_secs(secs), min_calls));
        w
    }

    #[test]
    fn counts_the_last_sixteen_slots_of_the_generation() {
        let w = window(0.5, 16, 1); // 1 s buckets
        let t0 = 1_000 * SEC;
        w.record(3, t0, true);
        w.record(3, t0 + SEC / 2, false);
        w.record(3, t0 + 5 * SEC, false);
        let c = w.counts(3, t0 + 5 * SEC);
        assert_eq!((c.failures, c.total), (1, 3));
        // Slot t0 is the 16th slot back at t0 + 15 s, and gone at t0 + 16 s.
        assert_eq!(w.counts(3, t0 + 15 * SEC).total, 3);
        assert_eq!(w.counts(3, t0 + 16 * SEC).total, 1);
        assert_eq!(w.counts(3, t0 + 21 * SEC).total, 0);
        // Another generation sees none of it, before or after.
        assert_eq!(w.counts(6, t0 + 5 * SEC).total, 0);
        assert_eq!(w.counts(0, t0 + 5 * SEC).total, 0);
    }

    #[test]
    fn a_new_slot_replaces_the_bucket_of_sixteen_slots_before() {
        let w = window(0.5, 16, 1);
        w.record(0, 0, true);
        w.record(0, 16 * SEC, false);
        let c = w.counts(0, 16 * SEC);
        assert_eq!((c.failures, c.total), (0, 1));
    }

    #[test]
    fn the_stamp_survives_the_generation_wrap() {
        let w = window(0.5, 16, 1);
        let last = (1 << 22) - 1;
        w.record(last, 7 * SEC, true);
        // The wrapped generation 0 after `last` (the closed episode after next) sees nothing.
        assert_eq!(w.counts(last + 3, 7 * SEC).total, 0);
        assert_eq!(w.counts(2, 7 * SEC).total, 0);
        assert_eq!(w.counts(last, 7 * SEC).total, 1);
    }

    #[test]
    fn saturates_per_bucket() {
        let w = window(0.5, 16, 1);
        w.buckets[0].store(COUNT_MASK - 1, Ordering::Relaxed); // stamp 0, total just below
        w.record(0, 0, true);
        w.record(0, 0, true);
        let c = w.counts(0, 0);
        assert_eq!((c.failures, c.total), (1, COUNT_MASK));
    }

    #[test]
    fn trips_at_the_ratio_with_enough_calls() {
        let w = window(0.3, 10, 10);
        let c = |failures, total| WindowCounts { failures, total };
        assert!(w.trips(c(3, 10)));
        assert!(!w.trips(c(2, 10)));
        assert!(!w.trips(c(9, 9)));
        assert!(window(1.0, 10, 1).trips(c(1, 1)));
        assert!(!window(1.0, 10, 1).trips(c(99, 100)));
    }

    #[test]
    fn hostile_settings_clamp_or_turn_it_off() {
        let mut w = Window::off();
        for (ratio, window) in [
            (f64::NAN, Duration::from_secs(1)),
            (0.0, Duration::from_secs(1)),
            (-1.0, Duration::from_secs(1)),
            (f64::NEG_INFINITY, Duration::from_secs(1)),
            (0.5, Duration::ZERO),
        ] {
            assert!(!w.configure(ratio, window, 5), "{ratio} {window:?}");
            assert!(w.settings().is_none());
        }
        assert!(w.configure(f64::INFINITY, Duration::MAX, 0));
        let s = w.settings().unwrap();
        assert_eq!((s.ratio, s.min_calls), (1.0, 1));
        assert_eq!(s.window, Duration::from_nanos(u64::MAX / 16 * 16));
        w.record(1, u64::MAX, true);
        assert_eq!(w.counts(1, u64::MAX).total, 1);
        assert!(w.configure(0.5, Duration::from_nanos(3), 1));
        assert_eq!(w.settings().unwrap().window, Duration::from_nanos(16));
        w.record(1, u64::MAX, false);
        assert_eq!(w.counts(1, u64::MAX).total, 1);
    }
}
