//! A process-wide epoch, so that shared state built in a `const` context (a `static` breaker,
//! budget or throttle) can keep instants as integers in atomics.
//!
//! Readings use `tokio::time::Instant`, so they follow tokio's paused clock in tests.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How far before the first reading the epoch lies. Several runtimes in one process (tests) each
/// have their own paused clock, so a later reading can be earlier than the first one; the margin
/// keeps such readings positive instead of clamping them all to zero.
const MARGINS: [Duration; 3] = [
    Duration::from_secs(30 * 24 * 3600),
    Duration::from_secs(3600),
    Duration::ZERO,
];

/// Nanoseconds from the epoch to now, saturating.
pub(crate) fn now_nanos() -> u64 {
    nanos_at(Instant::now())
}

/// Nanoseconds from the epoch to `t`, saturating at 0 and `u64::MAX` (584 years).
pub(crate) fn nanos_at(t: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(|| MARGINS.iter().find_map(|m| t.checked_sub(*m)).unwrap_or(t));
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// `d` in whole nanoseconds, saturating.
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let a = now_nanos();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(now_nanos() - a, 1_500_000_000);
    }

    #[test]
    fn saturates() {
        assert_eq!(duration_nanos(Duration::MAX), u64::MAX);
        assert_eq!(duration_nanos(Duration::from_nanos(7)), 7);
    }
}
