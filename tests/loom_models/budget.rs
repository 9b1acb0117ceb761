// The retry budget's balance, re-stated from `retry-runtime/src/budget.rs` (`try_withdraw`,
// `deposit_success`) over the atomics of the module that includes it (see `breaker.rs`).

use super::atomic::{AtomicU64, Ordering};

pub const UNIT: u64 = 1_000_000;

pub struct Budget {
    pub max_micros: u64,
    pub deposit_micros: u64,
    pub initial_micros: u64,
    pub balance: AtomicU64,
    pub retries_allowed: AtomicU64,
    pub retries_denied: AtomicU64,
    pub successes: AtomicU64,
    pub earned: AtomicU64,
}

impl Budget {
    pub fn new(tokens: u64, deposit_micros: u64) -> Budget {
        Budget {
            max_micros: tokens * UNIT,
            deposit_micros,
            initial_micros: tokens * UNIT,
            balance: AtomicU64::new(tokens * UNIT),
            retries_allowed: AtomicU64::new(0),
            retries_denied: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            earned: AtomicU64::new(0),
        }
    }

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

    pub fn deposit_success(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
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
