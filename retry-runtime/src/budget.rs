//! `RetryBudget`: a token bucket shared by every call to a provider that caps retries at a
//! fraction of successful calls, so that an outage does not multiply the load on the provider.
//!
//! The model is gRPC's retry throttling and the AWS SDKs' retry quota: a retry spends one token,
//! a successful call earns back a fraction of one, and with the bucket empty a failure is returned
//! instead of retried. In steady state retries are therefore at most `deposit` per success: with
//! the default 0.15, a provider failing every attempt sees no retries once the initial tokens are
//! spent, one failing half of them sees about 1.08x the offered load (3x without a budget), and
//! one failing 10% of them loses no retry at all (0.11 retries per call are needed, 0.15 earned).
//!
//! The balance is one `AtomicU64` of micro-tokens changed by compare-and-swap: a withdrawal
//! succeeds only if the whole token is there, so the balance never goes negative and
//! `balance == initial + earned - retries_allowed` holds exactly at every quiescent moment.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::per_thread::PerThread;
use crate::{GiveUpReason, Observer, RetryEvent};

/// Micro-tokens per token: deposits such as 0.15 are kept exactly.
const UNIT: u64 = 1_000_000;
/// The most a success may earn, in tokens: beyond it the budget would not bound anything.
const MAX_DEPOSIT: f64 = 1000.0;
/// The most tokens a bucket may hold, so that micro-token sums cannot overflow.
const MAX_TOKENS: u32 = 1 << 30;

/// Counters of a [`RetryBudget`] since it was created, exact. Token amounts are in micro-tokens
/// (1 token = 1,000,000), so that `balance == initial + earned - retries_allowed * 1_000_000`
/// holds exactly whenever no call is in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// Retries that found a token and spent it.
    pub retries_allowed: u64,
    /// Retries vetoed because the bucket was empty.
    pub retries_denied: u64,
    /// Successful calls, each of which offered a deposit.
    pub successes: u64,
    /// Micro-tokens actually credited by successes (a deposit into a full bucket credits less).
    pub earned: u64,
    /// Micro-tokens in the bucket when it was created.
    pub initial: u64,
    /// Micro-tokens in the bucket now.
    pub balance: u64,
}

/// A retry budget shared by every call to one provider: each retry spends a token, each
/// successful call earns `deposit` tokens back, and with fewer than one token left a failed
/// attempt is returned instead of retried ([`GiveUpReason::BudgetEmpty`]). First attempts are
/// never refused: the budget limits the extra load retries add, not the offered load.
///
/// Constructible in a `const` context; it is an [`Observer`] (`on_retry` withdraws, `on_success`
/// deposits), so `#[retry_on_failure(budget = OPENAI_BUDGET)]` shares it across calls.
///
/// A token spent on a retry whose call is cancelled during the backoff sleep is not refunded:
/// the budget cannot tell a cancelled sleep from a slow one without per-call state, and erring
/// on the side of fewer retries is what a budget is for. The loss is one token per call
/// cancelled in that window.
///
/// ```
/// use retry_runtime::RetryBudget;
///
/// static BUDGET: RetryBudget = RetryBudget::new().max_tokens(2).deposit(0.5);
///
/// // What `on_retry` and `on_success` do:
/// assert!(BUDGET.try_withdraw());
/// assert!(BUDGET.try_withdraw());
/// assert!(!BUDGET.try_withdraw()); // two tokens, two retries
/// BUDGET.deposit_success();
/// BUDGET.deposit_success(); // two successes earn one retry
/// assert!(BUDGET.try_withdraw());
/// assert_eq!(BUDGET.stats().retries_denied, 1);
/// ```
pub struct RetryBudget {
    max_micros: u64,
    deposit_micros: u64,
    initial_micros: u64,
    balance: AtomicU64,
    retries_allowed: AtomicU64,
    retries_denied: AtomicU64,
    /// Bumped by every successful call: per thread, so that a success into a full bucket writes
    /// no shared cache line.
    successes: PerThread<1>,
    earned: AtomicU64,
}

impl RetryBudget {
    /// A full budget with the defaults: 100 tokens, 0.15 token earned per successful call.
    pub const fn new() -> RetryBudget {
        RetryBudget {
            max_micros: 100 * UNIT,
            deposit_micros: UNIT * 15 / 100,
            initial_micros: 100 * UNIT,
            balance: AtomicU64::new(100 * UNIT),
            retries_allowed: AtomicU64::new(0),
            retries_denied: AtomicU64::new(0),
            successes: PerThread::new(),
            earned: AtomicU64::new(0),
        }
    }

    /// The bucket's size in tokens (retries), and its starting balance: the burst of retries
    /// allowed before any success has been seen. Clamped to `0..=2^30`.
    #[must_use]
    pub const fn max_tokens(mut self, tokens: u32) -> Self {
        let tokens = if tokens > MAX_TOKENS {
            MAX_TOKENS
        } else {
            tokens
        };
        self.max_micros = tokens as u64 * UNIT;
        self.initial_micros = self.max_micros;
        self.balance = AtomicU64::new(self.max_micros);
        self
    }

    /// Tokens earned by each successful call: the steady-state ceiling on retries per success.
    /// 0.1 is the SRE book's 10% and gRPC's example. NaN and negative values are taken as 0 (no
    /// retry once the initial tokens are spent), values above 1000 as 1000; resolution 10^-6.
    #[must_use]
    pub const fn deposit(mut self, tokens: f64) -> Self {
        let tokens = if tokens.is_nan() || tokens < 0.0 {
            0.0
        } else if tokens > MAX_DEPOSIT {
            MAX_DEPOSIT
        } else {
            tokens
        };
        self.deposit_micros = (tokens * UNIT as f64) as u64;
        self
    }

    /// The tokens in the bucket now (a retry needs a whole one).
    pub fn tokens(&self) -> f64 {
        self.balance.load(Ordering::Acquire) as f64 / UNIT as f64
    }

    /// The configured size of the bucket, in tokens.
    pub const fn capacity(&self) -> f64 {
        self.max_micros as f64 / UNIT as f64
    }

    /// The configured deposit per successful call, in tokens.
    pub const fn deposit_per_success(&self) -> f64 {
        self.deposit_micros as f64 / UNIT as f64
    }

    /// The counters since creation.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            retries_allowed: self.retries_allowed.load(Ordering::Relaxed),
            retries_denied: self.retries_denied.load(Ordering::Relaxed),
            successes: self.successes.sum(0),
            earned: self.earned.load(Ordering::Relaxed),
            initial: self.initial_micros,
            balance: self.balance.load(Ordering::Acquire),
        }
    }

    /// Spends one token for a retry; `false` (and nothing spent) if less than one is left.
    pub fn try_withdraw(&self) -> bool {
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

    /// Credits one successful call's deposit, up to the bucket's size. With the bucket full (the
    /// usual state of a healthy provider's budget), one load and no write to the shared balance.
    #[inline]
    pub fn deposit_success(&self) {
        self.successes.bump(0);
        if self.deposit_micros == 0 || self.balance.load(Ordering::Relaxed) >= self.max_micros {
            return;
        }
        self.credit();
    }

    #[cold]
    #[inline(never)]
    fn credit(&self) {
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

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new()
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("tokens", &self.tokens())
            .field("capacity", &self.capacity())
            .field("deposit", &self.deposit_per_success())
            .finish()
    }
}

impl<E> Observer<E> for RetryBudget {
    #[inline]
    fn on_success(&self, _attempts: u32) {
        self.deposit_success();
    }

    #[inline]
    fn on_retry(&self, _err: &E, _event: &RetryEvent) -> Result<(), GiveUpReason> {
        if self.try_withdraw() {
            Ok(())
        } else {
            Err(GiveUpReason::BudgetEmpty)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_whole_tokens_and_never_goes_negative() {
        let b = RetryBudget::new().max_tokens(3).deposit(0.4);
        assert!((0..3).all(|_| b.try_withdraw()));
        assert!(!b.try_withdraw());
        b.deposit_success();
        b.deposit_success();
        assert!(!b.try_withdraw(), "0.8 tokens is not a retry");
        b.deposit_success();
        assert!(b.try_withdraw());
        let s = b.stats();
        assert_eq!(
            (s.retries_allowed, s.retries_denied, s.successes),
            (4, 2, 3)
        );
        assert_eq!(s.balance, 200_000);
        assert_eq!(s.initial + s.earned - s.retries_allowed * UNIT, s.balance);
    }

    #[test]
    fn deposits_stop_at_capacity() {
        let b = RetryBudget::new().max_tokens(1).deposit(0.7);
        b.deposit_success();
        assert_eq!(b.tokens(), 1.0);
        assert_eq!(b.stats().earned, 0);
        assert!(b.try_withdraw());
        b.deposit_success();
        b.deposit_success();
        assert_eq!(b.tokens(), 1.0);
        assert_eq!(b.stats().earned, UNIT);
    }

    #[test]
    fn bad_settings_are_clamped() {
        assert_eq!(
            RetryBudget::new().deposit(f64::NAN).deposit_per_success(),
            0.0
        );
        assert_eq!(RetryBudget::new().deposit(-1.0).deposit_per_success(), 0.0);
        assert_eq!(
            RetryBudget::new()
                .deposit(f64::INFINITY)
                .deposit_per_success(),
            MAX_DEPOSIT
        );
        let huge = RetryBudget::new().max_tokens(u32::MAX).deposit(MAX_DEPOSIT);
        assert_eq!(huge.capacity(), f64::from(MAX_TOKENS));
        huge.deposit_success(); // already full: no overflow
        let empty = RetryBudget::new().max_tokens(0);
        assert!(!empty.try_withdraw());
    }

    #[test]
    fn observer_vetoes_with_budget_empty() {
        let b = RetryBudget::new().max_tokens(1).deposit(0.0);
        let event = RetryEvent {
            name: "t",
            attempt: 1,
            delay: std::time::Duration::ZERO,
            elapsed: None,
        };
        assert_eq!(Observer::<u8>::on_retry(&b, &0, &event), Ok(()));
        assert_eq!(
            Observer::<u8>::on_retry(&b, &0, &event),
            Err(GiveUpReason::BudgetEmpty)
        );
    }
}
