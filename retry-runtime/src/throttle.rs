//! `AdaptiveThrottle`: a client-side rate limiter shared by every call to a provider, which
//! learns the provider's sustainable rate from rate-limited responses and paces attempts to it.
//!
//! The shape is the AWS SDKs' adaptive retry mode: a token bucket whose fill rate follows CUBIC
//! (multiplicative decrease on a throttling response, then a cubic climb back towards and past
//! the rate at which throttling happened), enabled only once the first throttling response is
//! seen, so that a caller that is never rate-limited is never paced. Three changes make it work
//! for a burst of many concurrent callers, where the SDK's version collapses:
//!
//! - **The first estimate is the goodput.** The SDK starts from a smoothed measure of the
//!   sending rate, which is still zero when a burst is answered by its first 429, so its rate
//!   collapses to the minimum. Here the first rate is the number of attempts the provider
//!   accepted in the last second: the provider has just shown that it sustains that much, and
//!   the cubic curve starts on its plateau there. Successes of attempts sent before pacing began
//!   refine the estimate until the first decrease.
//! - **One decrease per round.** Each permit carries the rate epoch it was admitted under; a
//!   rate-limited outcome of an attempt admitted before the last decrease says nothing about the
//!   current rate and is ignored (TCP reduces its window once per loss episode, not per lost
//!   segment). Without this, 1,900 simultaneous 429s divide the rate by 0.7^1900.
//! - **Reservations, not polling.** `admit` books the next free slot on a virtual schedule (the
//!   generic cell rate algorithm) and returns `Wait(until that slot)`, so callers that arrive
//!   together are spread at the current rate in arrival order. A permit dropped before its slot
//!   (the call was cancelled while waiting) gives its slot back.
//! - **A guess is only a start.** Started at a guessed `initial_rate`, the throttle has no
//!   evidence of the provider's limit, so until the first rate limit it follows twice the
//!   goodput (TCP's slow start) rather than a cubic curve whose plateau would sit at the guess.
//! - **Bookings follow the rate.** A slot booked at one rate is wrong once the rate moves: too
//!   early after a cut (the provider is refusing), too late after a climb (a start at a low
//!   guess would keep a queue of callers at that guess). So the schedule has an epoch, renewed
//!   by every cut and by every climb of a quarter since the last renewal, which forgets the
//!   bookings beyond the present; a caller never sleeps more than
//!   [`AdaptiveThrottle::RECHECK`] on a booking, and
//!   when it wakes ([`Gate::confirm`]) a booking from an older schedule is made anew at the
//!   current rate. Callers re-book in the order they wake, which is the order they booked.
//!
//! The state is a handful of numbers behind a `std::sync::Mutex`, held for a few float operations
//! and never across an await.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::epoch;
use crate::{Admission, AttemptOutcome, Gate, Outlook};

const NANOS: f64 = 1e9;
/// The highest rate the throttle computes with, in attempts per second: above it the throttle
/// paces nothing anyway, and the cubic term cannot overflow into infinities.
const MAX_RATE: f64 = 1e9;
/// Width of one goodput bucket; `GOODPUT_BUCKETS` of them make the one-second window.
const BUCKET_NANOS: u64 = 100_000_000;
const GOODPUT_BUCKETS: usize = 10;
const RECHECK: Duration = AdaptiveThrottle::RECHECK;
/// A climb of the rate by this factor since the schedule's last renewal renews it.
const RESCHEDULE_CLIMB: f64 = 1.25;

/// Counters of an [`AdaptiveThrottle`] since it was created, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleStats {
    /// Attempts admitted (every `admit` admits).
    pub admitted: u64,
    /// Of those, attempts told to wait for their slot.
    pub paced: u64,
    /// Permits dropped before their slot whose slot was given back.
    pub refunded: u64,
    /// Rate-limited outcomes seen.
    pub rate_limited: u64,
    /// Times the rate was cut (the first rate-limited outcome enables pacing instead).
    pub decreases: u64,
}

/// A client-side rate limiter shared by every call to one provider. It starts open: until a
/// rate-limited outcome ([`Classification::is_rate_limited`](crate::Classification::is_rate_limited),
/// e.g. an HTTP 429) is seen, attempts go through unpaced. From then on it paces the attempts
/// of every caller sharing it at a rate learned CUBIC-style: cut by `beta` on each round of
/// rate-limited outcomes, climbing back along a cubic curve on successes.
///
/// It is a [`Gate`] (through `&AdaptiveThrottle`): `admit` answers `Wait(d, permit)` when the
/// attempt's slot is `d` away. `#[retry_on_failure(throttle = OPENAI_RATE)]` consults it before
/// every attempt, the first one included.
///
/// ```
/// use retry_runtime::{Admission, AdaptiveThrottle, AttemptOutcome, Classification, Gate};
///
/// static RATE: AdaptiveThrottle = AdaptiveThrottle::new();
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let gate = &RATE;
/// // Open: no pacing before any rate limit.
/// let Admission::Proceed(first) = gate.admit() else { unreachable!() };
/// gate.settle(first, AttemptOutcome::Success);
/// let Admission::Proceed(second) = gate.admit() else { unreachable!() };
/// let limited = Classification::retry().with_rate_limited(true);
/// gate.settle(second, AttemptOutcome::Failure(limited));
/// // Pacing is on, at the rate the provider was seen to sustain (1 success in the last second).
/// assert_eq!(RATE.rate(), Some(1.0));
/// # }
/// ```
pub struct AdaptiveThrottle {
    beta: f64,
    scale: f64,
    min_rate: f64,
    max_rate: f64,
    burst: Duration,
    initial_rate: Option<f64>,
    state: Mutex<State>,
    admitted: AtomicU64,
    paced: AtomicU64,
    refunded: AtomicU64,
    rate_limited: AtomicU64,
    decreases: AtomicU64,
}

/// The mutable part. Times are nanoseconds since the process epoch.
#[derive(Debug)]
struct State {
    enabled: bool,
    /// Current fill rate, attempts per second.
    rate: f64,
    /// CUBIC's `W_max`: the rate at the last decrease (or the first estimate).
    w_max: f64,
    /// CUBIC's `K`: seconds from the last decrease until the curve is back at `w_max`.
    k: f64,
    last_decrease: u64,
    /// Incremented by every decrease (and by enabling); permits remember it.
    epoch: u64,
    /// Until the first decrease, successes of attempts admitted before pacing refine `w_max`.
    first_estimate: bool,
    /// Started at a guess (`initial_rate`) and not cut yet: nothing says where the provider's
    /// limit is, so the rate follows twice the goodput (doubling each second while the provider
    /// keeps accepting, as TCP's slow start does per round trip) instead of a cubic curve with
    /// its plateau at the guess.
    probing: bool,
    /// The generic cell rate algorithm's theoretical arrival time of the next attempt.
    tat: u64,
    /// Renewed with every cut and every climb by [`RESCHEDULE_CLIMB`]: bookings of an older
    /// schedule are made anew when their callers wake.
    schedule: u64,
    /// The rate at the schedule's last renewal.
    schedule_rate: f64,
    goodput: [u32; GOODPUT_BUCKETS],
    goodput_tick: u64,
}

impl AdaptiveThrottle {
    /// The longest a caller sleeps on a booking before [`Gate::confirm`] checks it against the
    /// current schedule.
    pub const RECHECK: Duration = Duration::from_secs(1);

    /// An open throttle with the AWS SDK's constants: `beta` 0.7, cubic scale 0.4, a minimum
    /// rate of 0.5 attempts per second, and up to one second's worth of attempts in a burst.
    pub const fn new() -> AdaptiveThrottle {
        AdaptiveThrottle {
            beta: 0.7,
            scale: 0.4,
            min_rate: 0.5,
            max_rate: MAX_RATE,
            burst: Duration::from_secs(1),
            initial_rate: None,
            state: Mutex::new(State {
                enabled: false,
                rate: 0.0,
                w_max: 0.0,
                k: 0.0,
                last_decrease: 0,
                epoch: 0,
                first_estimate: false,
                probing: false,
                tat: 0,
                schedule: 0,
                schedule_rate: 0.0,
                goodput: [0; GOODPUT_BUCKETS],
                goodput_tick: 0,
            }),
            admitted: AtomicU64::new(0),
            paced: AtomicU64::new(0),
            refunded: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            decreases: AtomicU64::new(0),
        }
    }

    /// The factor applied to the rate on a round of rate-limited outcomes; clamped to
    /// `[0.1, 0.99]` (NaN is taken as the default 0.7).
    #[must_use]
    pub const fn beta(mut self, beta: f64) -> Self {
        self.beta = clamp(beta, 0.1, 0.99, 0.7);
        self
    }

    /// CUBIC's scale constant, in attempts per second per second cubed: how fast the rate climbs
    /// back after a cut. Clamped to `[1e-6, 1e6]` (NaN is taken as the default 0.4).
    #[must_use]
    pub const fn scale(mut self, scale: f64) -> Self {
        self.scale = clamp(scale, 1e-6, 1e6, 0.4);
        self
    }

    /// The lowest rate the throttle paces at, attempts per second; clamped to `[1e-3, 1e9]`
    /// (NaN is taken as the default 0.5).
    #[must_use]
    pub const fn min_rate(mut self, rate: f64) -> Self {
        self.min_rate = clamp(rate, 1e-3, MAX_RATE, 0.5);
        self
    }

    /// The highest rate the throttle paces at, attempts per second: a quota known not to be
    /// exceeded, above which the throttle neither probes nor climbs. With
    /// [`initial_rate`](Self::initial_rate) at the same value, pacing stays at that rate until a
    /// rate limit cuts it. Clamped to `[1e-3, 1e9]` (NaN is taken as no ceiling); a ceiling
    /// below [`min_rate`](Self::min_rate) is taken as the minimum.
    #[must_use]
    pub const fn max_rate(mut self, rate: f64) -> Self {
        self.max_rate = clamp(rate, 1e-3, MAX_RATE, MAX_RATE);
        self
    }

    /// How much sending may bunch up after a quiet period, as a duration of the current rate
    /// (1 s at 100/s lets 100 attempts through at once).
    #[must_use]
    pub const fn burst(mut self, burst: Duration) -> Self {
        self.burst = burst;
        self
    }

    /// Starts paced at `rate` attempts per second instead of open, with a full bucket of
    /// [`burst`](Self::burst), for a provider whose quota is known or can be guessed: useful
    /// when many callers start at once, before any response can have taught the throttle
    /// anything. The guess is only a start: until the first rate-limited outcome the rate
    /// follows twice what the provider accepted in the last second (doubling each second while
    /// callers keep it busy and the provider keeps accepting), and from the first rate limit on
    /// it is cut and climbs back as always. A guess 4x too low costs about a second in the
    /// retry-storm simulation, one 10x too high about half a call per caller (`cargo bench
    /// --bench simulations`). Clamped like [`min_rate`](Self::min_rate).
    #[must_use]
    pub const fn initial_rate(mut self, rate: f64) -> Self {
        let rate = clamp(rate, 1e-3, MAX_RATE, 1.0);
        self.initial_rate = Some(rate);
        self
    }

    /// The current pacing rate in attempts per second, or `None` while the throttle is open.
    pub fn rate(&self) -> Option<f64> {
        let s = self.lock();
        if s.enabled {
            Some(s.rate)
        } else {
            self.initial_rate
        }
    }

    /// Admits one attempt: how long to wait for its slot (`None` when it may go now) and the
    /// permit to [`settle`](Gate::settle) with its outcome. The same as [`Gate::admit`], which
    /// for a throttle never rejects; for code that holds an `AdaptiveThrottle` and no other gate.
    ///
    /// After sleeping the wait, ask [`Gate::confirm`] (on `&AdaptiveThrottle`) whether the
    /// attempt may go: a wait is at most [`RECHECK`](Self::RECHECK), and the booking may have
    /// been made anew meanwhile.
    pub fn acquire(&self) -> (Option<Duration>, ThrottlePermit<'_>) {
        let mut permit = ThrottlePermit {
            throttle: self,
            booking: Booking::default(),
            settled: false,
        };
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        let wait = self.book(&mut s, &mut permit.booking);
        drop(s);
        if wait.is_some() {
            self.paced.fetch_add(1, Ordering::Relaxed);
        }
        (wait, permit)
    }

    /// The counters since creation.
    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            admitted: self.admitted.load(Ordering::Relaxed),
            paced: self.paced.load(Ordering::Relaxed),
            refunded: self.refunded.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            decreases: self.decreases.load(Ordering::Relaxed),
        }
    }

    /// Never panics: a poisoned lock (impossible, nothing inside can panic) is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let (false, Some(rate)) = (s.enabled, self.initial_rate) {
            if s.epoch == 0 {
                let now = epoch::now_nanos();
                self.enable(&mut s, rate, now);
                s.probing = true;
                // A declared quota comes with its burst: the bucket starts full.
                s.tat = now;
            }
        }
        s
    }

    /// Turns pacing on at `rate`, with the cubic curve on its plateau there and an empty bucket.
    fn enable(&self, s: &mut State, rate: f64, now: u64) {
        s.enabled = true;
        s.epoch += 1;
        s.first_estimate = true;
        self.plateau(s, rate, now);
        // An empty bucket: the next attempt goes now, the one after it an interval later.
        let interval = secs_to_nanos(1.0 / s.rate).max(1);
        s.tat = now.saturating_add(self.tolerance(interval));
        s.schedule += 1;
        s.schedule_rate = s.rate;
    }

    /// Sets `w_max = rate` and places the curve's start so that it is at `w_max` now.
    fn plateau(&self, s: &mut State, rate: f64, now: u64) {
        let rate = self.bound(rate);
        s.w_max = rate;
        s.rate = rate;
        s.k = self.zero_point(rate);
        s.last_decrease = now.saturating_sub(secs_to_nanos(s.k));
    }

    /// `rate` within `[min_rate, max_rate]` (the minimum wins if they cross).
    fn bound(&self, rate: f64) -> f64 {
        rate.clamp(self.min_rate, self.max_rate.max(self.min_rate))
    }

    /// CUBIC's `K = cbrt(W_max (1 - beta) / C)`.
    fn zero_point(&self, w_max: f64) -> f64 {
        (w_max * (1.0 - self.beta) / self.scale).cbrt()
    }

    /// The cubic curve at `now`: `W_max + C (t - K)^3`.
    fn cubic(&self, s: &State, now: u64) -> f64 {
        let t = now.saturating_sub(s.last_decrease) as f64 / NANOS;
        let rate = s.w_max + self.scale * (t - s.k).powi(3);
        if rate.is_nan() {
            return self.min_rate;
        }
        self.bound(rate)
    }

    /// How long an attempt admitted now would wait for its slot, without booking one.
    pub fn wait_now(&self) -> Duration {
        let s = self.lock();
        if !s.enabled {
            return Duration::ZERO;
        }
        let now = epoch::now_nanos();
        let interval = secs_to_nanos(1.0 / s.rate).max(1);
        let slot = s
            .tat
            .max(now)
            .saturating_sub(self.tolerance(interval))
            .max(now);
        Duration::from_nanos(slot - now)
    }

    /// How far ahead of its theoretical time an attempt may go: a full bucket lets
    /// `burst x rate` attempts through at once (the generic cell rate algorithm's tolerance
    /// `tau - T`; `tau` alone would let one more through).
    fn tolerance(&self, interval: u64) -> u64 {
        epoch::duration_nanos(self.burst).saturating_sub(interval)
    }

    /// Books the next slot into `booking`; the wait until it, at most [`RECHECK`], if any.
    fn book(&self, s: &mut State, booking: &mut Booking) -> Option<Duration> {
        if !s.enabled {
            *booking = Booking {
                epoch: s.epoch,
                ..Booking::default()
            };
            return None;
        }
        let now = epoch::now_nanos();
        let interval = secs_to_nanos(1.0 / s.rate).max(1);
        s.tat = s.tat.max(now);
        let slot = s.tat.saturating_sub(self.tolerance(interval)).max(now);
        s.tat = s.tat.saturating_add(interval);
        *booking = Booking {
            epoch: s.epoch,
            schedule: s.schedule,
            slot,
            interval,
        };
        wait_until(slot, now)
    }

    /// [`Gate::confirm`]: `None` when the attempt may go now, else the next wait.
    fn reconfirm(&self, booking: &mut Booking) -> Option<Duration> {
        let mut s = self.lock();
        if s.enabled && booking.interval > 0 && booking.schedule != s.schedule {
            // Booked on a schedule that has been renewed since: book anew at the current rate.
            return self.book(&mut s, booking);
        }
        drop(s);
        wait_until(booking.slot, epoch::now_nanos())
    }

    /// Renews the schedule at the current rate: bookings beyond the present are forgotten (their
    /// callers book anew when they wake, the first of them one interval from now at the new
    /// rate); whatever burst the bucket holds is kept.
    fn reschedule(&self, s: &mut State, now: u64) {
        s.schedule += 1;
        s.schedule_rate = s.rate;
        let tau = epoch::duration_nanos(self.burst);
        s.tat = s.tat.min(now.saturating_add(tau));
    }

    fn record(&self, permit_epoch: u64, outcome: AttemptOutcome) {
        let now = epoch::now_nanos();
        let mut s = self.lock();
        match outcome {
            AttemptOutcome::Failure(c) if c.is_rate_limited() => {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                if !s.enabled {
                    let goodput = s.goodput(now);
                    self.enable(&mut s, goodput, now);
                } else if permit_epoch == s.epoch {
                    let w_max = s.rate;
                    s.w_max = w_max;
                    s.rate = self.bound(w_max * self.beta);
                    s.k = self.zero_point(w_max);
                    s.last_decrease = now;
                    s.epoch += 1;
                    s.first_estimate = false;
                    s.probing = false;
                    self.reschedule(&mut s, now);
                    self.decreases.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                // Goodput is what the provider accepted: a 503 or a timeout is no evidence of
                // capacity (nor, not being a rate limit, a reason to slow down).
                if outcome == AttemptOutcome::Success {
                    s.count_goodput(now);
                }
                if !s.enabled {
                    return;
                }
                if s.first_estimate && permit_epoch < s.epoch {
                    // Sent before pacing began: the provider accepted it, so it counts towards
                    // what the provider sustains.
                    let goodput = s.goodput(now);
                    if goodput > s.w_max {
                        self.plateau(&mut s, goodput, now);
                    }
                } else if s.probing {
                    let doubled = 2.0 * s.goodput(now);
                    if doubled > s.rate {
                        self.plateau(&mut s, doubled, now);
                    }
                } else {
                    s.rate = self.cubic(&s, now);
                }
                if s.rate >= s.schedule_rate * RESCHEDULE_CLIMB {
                    self.reschedule(&mut s, now);
                }
            }
        }
    }

    /// Gives back the slot of a permit dropped before its time.
    fn refund(&self, schedule_at_booking: u64, interval: u64) {
        let mut s = self.lock();
        if s.enabled && s.schedule == schedule_at_booking {
            let now = epoch::now_nanos();
            s.tat = s.tat.saturating_sub(interval).max(now);
            self.refunded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl State {
    /// Moves the goodput window to `now`, zeroing buckets that fell out of it.
    fn advance(&mut self, now: u64) {
        let tick = now / BUCKET_NANOS;
        if tick > self.goodput_tick {
            let stale = (tick - self.goodput_tick).min(GOODPUT_BUCKETS as u64);
            for i in 1..=stale {
                self.goodput[((self.goodput_tick + i) % GOODPUT_BUCKETS as u64) as usize] = 0;
            }
            self.goodput_tick = tick;
        }
    }

    fn count_goodput(&mut self, now: u64) {
        self.advance(now);
        let i = (self.goodput_tick % GOODPUT_BUCKETS as u64) as usize;
        self.goodput[i] = self.goodput[i].saturating_add(1);
    }

    /// Accepted attempts in the last second.
    fn goodput(&mut self, now: u64) -> f64 {
        self.advance(now);
        self.goodput.iter().map(|&n| f64::from(n)).sum()
    }
}

const fn clamp(v: f64, low: f64, high: f64, nan: f64) -> f64 {
    if v.is_nan() {
        nan
    } else if v < low {
        low
    } else if v > high {
        high
    } else {
        v
    }
}

/// The wait from `now` until `slot`, at most [`RECHECK`]; `None` if the slot has come.
fn wait_until(slot: u64, now: u64) -> Option<Duration> {
    (slot > now).then(|| Duration::from_nanos(slot - now).min(RECHECK))
}

fn secs_to_nanos(secs: f64) -> u64 {
    let n = secs * NANOS;
    if n.is_nan() || n <= 0.0 {
        0
    } else if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    }
}

impl Default for AdaptiveThrottle {
    fn default() -> Self {
        AdaptiveThrottle::new()
    }
}

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("rate", &self.rate())
            .field("beta", &self.beta)
            .field("scale", &self.scale)
            .field("min_rate", &self.min_rate)
            .field("max_rate", &self.max_rate)
            .field("burst", &self.burst)
            .finish()
    }
}

/// What an attempt admitted by an [`AdaptiveThrottle`] holds: its slot on the schedule and the
/// rate epoch it was admitted under. Dropped unsettled before its slot (the call was cancelled
/// while waiting), it gives the slot back; dropped mid-attempt, it reports nothing.
#[must_use = "settle the permit with the attempt's outcome"]
pub struct ThrottlePermit<'a> {
    throttle: &'a AdaptiveThrottle,
    booking: Booking,
    settled: bool,
}

/// Where a permit's attempt sits on the schedule.
#[derive(Clone, Copy, Debug, Default)]
struct Booking {
    /// The rate epoch it was admitted under (see [`State::epoch`]).
    epoch: u64,
    /// The schedule it was booked on (see [`State::schedule`]).
    schedule: u64,
    slot: u64,
    /// Zero while the throttle is open: nothing was booked.
    interval: u64,
}

impl fmt::Debug for ThrottlePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlePermit")
            .field("epoch", &self.booking.epoch)
            .finish()
    }
}

impl Drop for ThrottlePermit<'_> {
    fn drop(&mut self) {
        let b = self.booking;
        if !self.settled && b.interval > 0 && epoch::now_nanos() < b.slot {
            self.throttle.refund(b.schedule, b.interval);
        }
    }
}

impl<'a> Gate for &'a AdaptiveThrottle {
    type Permit = ThrottlePermit<'a>;

    fn admit(&self) -> Admission<ThrottlePermit<'a>> {
        match self.acquire() {
            (Some(d), permit) => Admission::Wait(d, permit),
            (None, permit) => Admission::Proceed(permit),
        }
    }

    fn outlook(&self) -> Outlook {
        Outlook {
            shut_for: None,
            wait_for: self.wait_now(),
        }
    }

    fn confirm(&self, mut permit: ThrottlePermit<'a>) -> Admission<ThrottlePermit<'a>> {
        match permit.throttle.reconfirm(&mut permit.booking) {
            Some(d) => Admission::Wait(d, permit),
            None => Admission::Proceed(permit),
        }
    }

    fn settle(&self, mut permit: ThrottlePermit<'a>, outcome: AttemptOutcome) {
        permit.settled = true;
        permit.throttle.record(permit.booking.epoch, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Classification;

    const LIMITED: AttemptOutcome =
        AttemptOutcome::Failure(Classification::retry().with_rate_limited(true));

    /// Admits and returns the wait and the permit.
    fn admit(t: &AdaptiveThrottle) -> (Duration, ThrottlePermit<'_>) {
        match t.admit() {
            Admission::Proceed(p) => (Duration::ZERO, p),
            Admission::Wait(d, p) => (d, p),
            Admission::Reject(_) => unreachable!("a throttle never rejects"),
        }
    }

    /// `n` accepted attempts, then one rate-limited one: pacing starts at `n` per second.
    fn enabled_at(n: usize) -> AdaptiveThrottle {
        let t = AdaptiveThrottle::new();
        let permits: Vec<_> = (0..=n).map(|_| admit(&t)).collect();
        for (i, (wait, p)) in permits.into_iter().enumerate() {
            assert_eq!(wait, Duration::ZERO, "open: no pacing");
            let outcome = if i < n {
                AttemptOutcome::Success
            } else {
                LIMITED
            };
            (&t).settle(p, outcome);
        }
        t
    }

    #[tokio::test(start_paused = true)]
    async fn open_until_the_first_rate_limit_then_paced_at_the_goodput() {
        let t = AdaptiveThrottle::new();
        for _ in 0..1000 {
            let (wait, p) = admit(&t);
            assert_eq!(wait, Duration::ZERO);
            (&t).settle(p, AttemptOutcome::Failure(Classification::retry()));
        }
        assert_eq!(t.rate(), None, "plain failures never enable pacing");
        let t = enabled_at(50);
        assert_eq!(t.rate(), Some(50.0));
        // An empty bucket: 20 ms apart from now on.
        let admitted: Vec<_> = (0..4).map(|_| admit(&t)).collect();
        let waits: Vec<_> = admitted.iter().map(|(w, _)| *w).collect();
        assert_eq!(waits, [0, 20, 40, 60].map(Duration::from_millis));
        assert_eq!(t.stats().paced, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_sent_before_pacing_refine_the_first_estimate() {
        let t = AdaptiveThrottle::new();
        let early: Vec<_> = (0..30).map(|_| admit(&t).1).collect();
        (&t).settle(admit(&t).1, LIMITED); // the 429 arrives before the successes
        assert_eq!(t.rate(), Some(0.5), "nothing accepted yet: the minimum");
        for p in early {
            (&t).settle(p, AttemptOutcome::Success);
        }
        assert_eq!(t.rate(), Some(30.0));
    }

    #[tokio::test(start_paused = true)]
    async fn one_decrease_per_round_of_rate_limits() {
        let t = enabled_at(100);
        let round: Vec<_> = (0..50).map(|_| admit(&t).1).collect();
        for p in round {
            (&t).settle(p, LIMITED);
        }
        assert_eq!(t.rate(), Some(70.0), "50 rate limits, one cut by beta");
        assert_eq!(t.stats().decreases, 1);
        assert_eq!(t.stats().rate_limited, 51);
    }

    /// Confirms `permit` after its wait, as the expansion does: the next wait, or none.
    fn confirm<'t>(
        t: &'t AdaptiveThrottle,
        p: ThrottlePermit<'t>,
    ) -> (Duration, ThrottlePermit<'t>) {
        match t.confirm(p) {
            Admission::Proceed(p) => (Duration::ZERO, p),
            Admission::Wait(d, p) => (d, p),
            Admission::Reject(_) => unreachable!("a throttle never rejects"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_never_longer_than_the_recheck_interval() {
        // 1 attempt per second, no burst: the tenth caller's slot is 9 s away.
        let t = AdaptiveThrottle::new()
            .initial_rate(1.0)
            .burst(Duration::ZERO);
        let queued: Vec<_> = (0..10).map(|_| admit(&t)).collect();
        let waits: Vec<_> = queued.iter().map(|(w, _)| *w).collect();
        assert_eq!(waits[..2], [Duration::ZERO, Duration::from_secs(1)]);
        assert!(waits[2..].iter().all(|w| *w == AdaptiveThrottle::RECHECK));
        // Nothing changed meanwhile: after each recheck the slot is where it was.
        let (mut wait, mut permit) = queued.into_iter().last().unwrap();
        let (mut slept, mut sleeps) = (Duration::ZERO, 0);
        while !wait.is_zero() {
            assert!(wait <= AdaptiveThrottle::RECHECK);
            tokio::time::advance(wait).await;
            (slept, sleeps) = (slept + wait, sleeps + 1);
            (wait, permit) = confirm(&t, permit);
        }
        assert_eq!((slept, sleeps), (Duration::from_secs(9), 9));
        drop(permit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_moves_the_queued_callers_back() {
        // 100 per second, no burst: callers booked 10 ms apart.
        let t = AdaptiveThrottle::new()
            .initial_rate(100.0)
            .burst(Duration::ZERO);
        let mut queued: Vec<_> = (0..20).map(|_| admit(&t).1).collect();
        let first = queued.remove(0);
        // The first attempt is refused: the rate is cut to 70 per second, and the schedule
        // renewed.
        (&t).settle(first, LIMITED);
        assert_eq!(t.rate(), Some(70.0));
        // Each queued caller wakes at its old slot and books anew, in order: from the second
        // on they are spaced at the new rate (1/70 s) instead of 10 ms.
        let mut starts = Vec::new();
        let start = tokio::time::Instant::now();
        for (i, p) in queued.into_iter().enumerate() {
            let old_slot = Duration::from_millis(10 * (i as u64 + 1));
            let now = start.elapsed();
            if old_slot > now {
                tokio::time::advance(old_slot - now).await;
            }
            let (mut wait, mut p) = confirm(&t, p);
            while !wait.is_zero() {
                tokio::time::advance(wait).await;
                (wait, p) = confirm(&t, p);
            }
            starts.push(start.elapsed());
            std::mem::forget(p); // keep the slot: the attempt "runs"
        }
        let gaps: Vec<_> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        let interval = Duration::from_secs_f64(1.0 / 70.0);
        assert!(
            gaps.iter()
                .all(|g| g.abs_diff(interval) < Duration::from_micros(10)),
            "{gaps:?}"
        );
        assert!(*starts.last().unwrap() > Duration::from_millis(19 * 10 + 50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_climb_pulls_the_queued_callers_forward() {
        // Started at a low guess, 1 per second: twenty callers are booked 20 s deep.
        let t = AdaptiveThrottle::new()
            .initial_rate(1.0)
            .burst(Duration::ZERO);
        // The provider keeps accepting: the rate climbs along the cubic curve (0.4 t^3), and
        // every climb by a quarter renews the schedule.
        let mut waiting: Vec<_> = (0..20).map(|_| admit(&t)).collect();
        let start = tokio::time::Instant::now();
        let mut done = Vec::new();
        while !waiting.is_empty() {
            let next = waiting.iter().map(|(w, _)| *w).min().unwrap();
            tokio::time::advance(next).await;
            let mut still = Vec::new();
            for (w, p) in waiting {
                if w > next {
                    still.push((w - next, p));
                    continue;
                }
                match confirm(&t, p) {
                    (d, p) if d.is_zero() => {
                        done.push(start.elapsed());
                        (&t).settle(p, AttemptOutcome::Success);
                    }
                    (d, p) => still.push((d, p)),
                }
            }
            waiting = still;
        }
        // At a fixed 1 per second the last would start at 19 s.
        let last = *done.last().unwrap();
        assert!(last < Duration::from_secs(8), "{last:?}");
        assert!(t.rate().unwrap() > 3.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_guessed_rate_doubles_while_the_provider_keeps_accepting() {
        let t = AdaptiveThrottle::new()
            .initial_rate(10.0)
            .burst(Duration::ZERO);
        // Callers always waiting, every attempt accepted at its slot.
        let mut rate_at = Vec::new();
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let (mut wait, mut p) = admit(&t);
            while !wait.is_zero() {
                tokio::time::advance(wait).await;
                (wait, p) = confirm(&t, p);
            }
            (&t).settle(p, AttemptOutcome::Success);
            rate_at.push((start.elapsed(), t.rate().unwrap()));
        }
        let rate_after = |secs: u64| {
            rate_at
                .iter()
                .find(|(at, _)| *at >= Duration::from_secs(secs))
                .map(|(_, r)| *r)
                .unwrap()
        };
        // Twice what the provider accepted in the last second: about 20, 40, 80.
        assert!(rate_after(1) >= 19.0, "{}", rate_after(1));
        assert!(rate_after(2) >= 38.0, "{}", rate_after(2));
        let probed = t.rate().unwrap();
        assert!(probed >= 70.0, "{probed}");
        // The first rate limit ends the probing: a cut by beta, then the cubic curve.
        (&t).settle(admit(&t).1, LIMITED);
        let cut = t.rate().unwrap();
        assert!((cut - probed * 0.7).abs() < 1e-9, "{cut} after {probed}");
        tokio::time::advance(Duration::from_millis(100)).await;
        (&t).settle(admit(&t).1, AttemptOutcome::Success);
        assert!(t.rate().unwrap() < probed, "no more doubling after a cut");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_stops_the_probing_and_the_climb() {
        let t = AdaptiveThrottle::new()
            .initial_rate(10.0)
            .max_rate(10.0)
            .burst(Duration::ZERO);
        // 10 per second, every attempt accepted: no doubling past the ceiling.
        let mut waits = Vec::new();
        for _ in 0..40 {
            let (mut wait, mut p) = admit(&t);
            waits.push(wait);
            while !wait.is_zero() {
                tokio::time::advance(wait).await;
                (wait, p) = confirm(&t, p);
            }
            (&t).settle(p, AttemptOutcome::Success);
        }
        assert_eq!(t.rate(), Some(10.0));
        assert!(
            waits[1..].iter().all(|w| *w == Duration::from_millis(100)),
            "{waits:?}"
        );
        // Cut, the cubic curve climbs back to the ceiling and stays there.
        (&t).settle(admit(&t).1, LIMITED);
        assert_eq!(t.rate(), Some(7.0));
        tokio::time::advance(Duration::from_secs(60)).await;
        (&t).settle(admit(&t).1, AttemptOutcome::Success);
        assert_eq!(t.rate(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn climbs_back_along_the_cubic_curve() {
        let t = enabled_at(100);
        (&t).settle(admit(&t).1, LIMITED);
        assert_eq!(t.rate(), Some(70.0));
        // K = cbrt(100 * 0.3 / 0.4) = 4.217 s: back at 100 then, and beyond after.
        let k = (75.0_f64).cbrt();
        tokio::time::advance(Duration::from_secs_f64(k / 2.0)).await;
        (&t).settle(admit(&t).1, AttemptOutcome::Success);
        let half = t.rate().unwrap();
        assert!(
            (half - (100.0 - 0.4 * (k / 2.0).powi(3))).abs() < 1e-6,
            "{half}"
        );
        tokio::time::advance(Duration::from_secs_f64(k / 2.0 + 2.0)).await;
        (&t).settle(admit(&t).1, AttemptOutcome::Success);
        let beyond = t.rate().unwrap();
        assert!((beyond - 103.2).abs() < 1e-3, "{beyond}");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_waiter_gives_its_slot_back() {
        let t = enabled_at(10); // 100 ms apart
        let (w0, p0) = admit(&t);
        let (w1, p1) = admit(&t);
        assert_eq!((w0, w1), (Duration::ZERO, Duration::from_millis(100)));
        drop(p1); // cancelled while waiting: the slot at +100 ms is free again
        let (w2, _p2) = admit(&t);
        assert_eq!(w2, Duration::from_millis(100));
        drop(p0); // dropped mid-attempt (its slot has passed): nothing to give back
        assert_eq!(t.stats().refunded, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_after_a_quiet_period() {
        let t = enabled_at(10).burst(Duration::from_millis(300));
        tokio::time::advance(Duration::from_secs(5)).await;
        let admitted: Vec<_> = (0..5).map(|_| admit(&t)).collect();
        let waits: Vec<_> = admitted.iter().map(|(w, _)| w.as_millis()).collect();
        // 10 per second with 300 ms of burst: 3 at once.
        assert_eq!(waits, [0, 0, 0, 100, 200]);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_rate_paces_from_the_first_attempt() {
        let t = AdaptiveThrottle::new()
            .initial_rate(4.0)
            .burst(Duration::from_millis(500));
        let admitted: Vec<_> = (0..5).map(|_| admit(&t)).collect();
        let waits: Vec<_> = admitted.iter().map(|(w, _)| w.as_millis()).collect();
        // A full bucket of 0.5 s at 4/s lets 2 through at once, then one every 250 ms.
        assert_eq!(waits, [0, 0, 250, 500, 750]);
    }

    #[test]
    fn settings_are_clamped() {
        let t = AdaptiveThrottle::new()
            .beta(f64::NAN)
            .scale(-1.0)
            .min_rate(f64::INFINITY)
            .initial_rate(0.0);
        assert_eq!((t.beta, t.scale, t.min_rate), (0.7, 1e-6, MAX_RATE));
        assert_eq!(t.initial_rate, Some(1e-3));
        assert_eq!(
            AdaptiveThrottle::new().max_rate(f64::NAN).max_rate,
            MAX_RATE
        );
        assert_eq!(AdaptiveThrottle::new().max_rate(0.0).max_rate, 1e-3);
        // A ceiling below the floor: the floor wins, without a panic.
        let crossed = AdaptiveThrottle::new().min_rate(5.0).max_rate(1.0);
        assert_eq!(crossed.bound(100.0), 5.0);
        assert_eq!(crossed.bound(0.0), 5.0);
        assert_eq!(secs_to_nanos(f64::INFINITY), u64::MAX);
        assert_eq!(secs_to_nanos(f64::NAN), 0);
    }
}
