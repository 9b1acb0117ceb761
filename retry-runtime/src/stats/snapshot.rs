//! The figures a snapshot reads, and the table they print as.

use std::fmt;
use std::time::Duration;

use super::REASONS;
use crate::GiveUpReason;

/// One fn's figures at the time of a [`snapshot`](super::snapshot).
///
/// Every call is counted once in `calls`, as exactly one of `succeeded_first_attempt`,
/// `succeeded_after_retry`, one of `gave_up`'s reasons, or `unfinished`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FnStatsSnapshot {
    /// The fn's name: the attribute's `name`, or its module path and fn name.
    pub name: &'static str,
    /// Calls that returned, plus those [`unfinished`](Self::unfinished).
    pub calls: u64,
    /// Calls whose first attempt succeeded.
    pub succeeded_first_attempt: u64,
    /// Calls that succeeded after one or more retries.
    pub succeeded_after_retry: u64,
    /// Calls that returned their last error, by reason.
    pub gave_up: GiveUpCounts,
    /// Calls that have not returned: running and past their first retry at the time of the
    /// snapshot, or dropped before they returned because the caller stopped polling (a timeout,
    /// a `select!`, an aborted task) or an attempt panicked. Once no call is running, these are
    /// the cancelled calls. A call still in its first attempt is counted only once it returns
    /// (in another field) or is dropped (here).
    pub unfinished: u64,
    /// Attempts that ran to completion, over all calls.
    pub attempts: u64,
    /// Retries over all calls: each is a sleep followed by another attempt (or by the call being
    /// dropped, or turned away by a circuit breaker). Unfinished calls' retries included.
    pub retries: u64,
    /// The most retries one call took.
    pub max_retries: u64,
    /// Calls that returned, by how many retries they took.
    pub retry_histogram: RetryHistogram,
    /// Backoff sleeps chosen before retries, added up (saturating). A call dropped mid-sleep
    /// counts its whole sleep.
    pub slept: Duration,
}

impl FnStatsSnapshot {
    /// All zero, for a fn that has not recorded a call.
    pub const fn empty(name: &'static str) -> Self {
        FnStatsSnapshot {
            name,
            calls: 0,
            succeeded_first_attempt: 0,
            succeeded_after_retry: 0,
            gave_up: GiveUpCounts::from_array([0; REASONS.len()]),
            unfinished: 0,
            attempts: 0,
            retries: 0,
            max_retries: 0,
            retry_histogram: RetryHistogram {
                counts: [0; RetryHistogram::BUCKETS],
            },
            slept: Duration::ZERO,
        }
    }

    /// Calls that succeeded, with or without retries.
    pub const fn succeeded(&self) -> u64 {
        self.succeeded_first_attempt
            .wrapping_add(self.succeeded_after_retry)
    }

    /// Retries per call (`retries / calls`), 0 without calls.
    pub fn mean_retries(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.retries as f64 / self.calls as f64
        }
    }

    /// Adds another fn's figures (of the same name) to these.
    fn add(&mut self, other: &FnStatsSnapshot) {
        self.calls = self.calls.wrapping_add(other.calls);
        self.succeeded_first_attempt = self
            .succeeded_first_attempt
            .wrapping_add(other.succeeded_first_attempt);
        self.succeeded_after_retry = self
            .succeeded_after_retry
            .wrapping_add(other.succeeded_after_retry);
        for reason in REASONS {
            *self.gave_up.get_mut(reason) = self
                .gave_up
                .get(reason)
                .wrapping_add(other.gave_up.get(reason));
        }
        self.unfinished = self.unfinished.wrapping_add(other.unfinished);
        self.attempts = self.attempts.wrapping_add(other.attempts);
        self.retries = self.retries.wrapping_add(other.retries);
        self.max_retries = self.max_retries.max(other.max_retries);
        for (a, b) in self
            .retry_histogram
            .counts
            .iter_mut()
            .zip(other.retry_histogram.counts)
        {
            *a = a.wrapping_add(b);
        }
        self.slept = self.slept.saturating_add(other.slept);
    }
}

/// Calls that gave up, by [`GiveUpReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GiveUpCounts {
    /// Every allowed attempt failed.
    pub exhausted: u64,
    /// The error was not worth another attempt.
    pub not_retryable: u64,
    /// The next sleep would have ended past `max_time`.
    pub deadline: u64,
    /// The server asked to wait longer than `max_retry_after`.
    pub retry_after_too_long: u64,
    /// A circuit breaker was open.
    pub circuit_open: u64,
    /// The retry budget was empty.
    pub budget_empty: u64,
}

impl GiveUpCounts {
    pub(super) const fn from_array(a: [u64; REASONS.len()]) -> Self {
        GiveUpCounts {
            exhausted: a[0],
            not_retryable: a[1],
            deadline: a[2],
            retry_after_too_long: a[3],
            circuit_open: a[4],
            budget_empty: a[5],
        }
    }

    /// The count for one reason.
    ///
    /// ```
    /// # use retry_runtime::{stats::GiveUpCounts, GiveUpReason};
    /// assert_eq!(GiveUpCounts::default().get(GiveUpReason::Deadline), 0);
    /// ```
    pub fn get(&self, reason: GiveUpReason) -> u64 {
        match reason {
            GiveUpReason::Exhausted => self.exhausted,
            GiveUpReason::NotRetryable => self.not_retryable,
            GiveUpReason::Deadline => self.deadline,
            GiveUpReason::RetryAfterTooLong => self.retry_after_too_long,
            GiveUpReason::CircuitOpen => self.circuit_open,
            GiveUpReason::BudgetEmpty => self.budget_empty,
        }
    }

    fn get_mut(&mut self, reason: GiveUpReason) -> &mut u64 {
        match reason {
            GiveUpReason::Exhausted => &mut self.exhausted,
            GiveUpReason::NotRetryable => &mut self.not_retryable,
            GiveUpReason::Deadline => &mut self.deadline,
            GiveUpReason::RetryAfterTooLong => &mut self.retry_after_too_long,
            GiveUpReason::CircuitOpen => &mut self.circuit_open,
            GiveUpReason::BudgetEmpty => &mut self.budget_empty,
        }
    }

    /// Every reason with its count, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (GiveUpReason, u64)> + '_ {
        REASONS.into_iter().map(|r| (r, self.get(r)))
    }

    /// Calls that gave up, for any reason.
    pub fn total(&self) -> u64 {
        self.iter().fold(0, |sum, (_, n)| sum.wrapping_add(n))
    }
}

/// Calls by the number of retries they took, in buckets `0, 1, 2, 3, 4, 5-7, 8-15, 16+`.
///
/// ```
/// use retry_runtime::stats::RetryHistogram;
/// assert_eq!(RetryHistogram::bucket(6), 5);
/// assert_eq!(RetryHistogram::label(5), "5-7");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryHistogram {
    /// Calls per bucket, in the order of [`label`](Self::label).
    pub counts: [u64; RetryHistogram::BUCKETS],
}

impl RetryHistogram {
    /// How many buckets there are.
    pub const BUCKETS: usize = 8;

    const LABELS: [&'static str; Self::BUCKETS] = ["0", "1", "2", "3", "4", "5-7", "8-15", "16+"];

    /// The bucket that a call with `retries` retries falls in.
    pub const fn bucket(retries: u64) -> usize {
        match retries {
            0..=4 => retries as usize,
            5..=7 => 5,
            8..=15 => 6,
            _ => 7,
        }
    }

    /// The retry counts bucket `index` holds, such as `"5-7"`; `""` past the last bucket.
    pub fn label(index: usize) -> &'static str {
        Self::LABELS.get(index).copied().unwrap_or("")
    }

    /// Each bucket's label and count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Self::LABELS.into_iter().zip(self.counts)
    }
}

/// Every fn's figures at one time, sorted by name: what [`snapshot`](super::snapshot) returns.
///
/// It prints as a table (`Display`); with the `serde` feature it serializes as
/// `{"functions": [..]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub(super) functions: Vec<FnStatsSnapshot>,
}

impl Snapshot {
    /// Sorts by name and adds up the figures of fns that share one.
    pub(super) fn merge(all: impl IntoIterator<Item = FnStatsSnapshot>) -> Snapshot {
        let mut functions: Vec<FnStatsSnapshot> = all.into_iter().collect();
        functions.sort_by(|a, b| a.name.cmp(b.name));
        functions.dedup_by(|later, kept| {
            let same = later.name == kept.name;
            if same {
                kept.add(later);
            }
            same
        });
        Snapshot { functions }
    }

    /// One fn's figures, by name.
    pub fn get(&self, name: &str) -> Option<&FnStatsSnapshot> {
        self.functions
            .binary_search_by(|f| f.name.cmp(name))
            .ok()
            .map(|i| &self.functions[i])
    }

    /// Every fn's figures, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, FnStatsSnapshot> {
        self.functions.iter()
    }

    /// How many fns are listed.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    /// Whether no fn has recorded a call.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// The figures, sorted by name.
    pub fn into_vec(self) -> Vec<FnStatsSnapshot> {
        self.functions
    }
}

impl IntoIterator for Snapshot {
    type Item = FnStatsSnapshot;
    type IntoIter = std::vec::IntoIter<FnStatsSnapshot>;
    fn into_iter(self) -> Self::IntoIter {
        self.functions.into_iter()
    }
}

impl<'a> IntoIterator for &'a Snapshot {
    type Item = &'a FnStatsSnapshot;
    type IntoIter = std::slice::Iter<'a, FnStatsSnapshot>;
    fn into_iter(self) -> Self::IntoIter {
        self.functions.iter()
    }
}

impl From<Snapshot> for Vec<FnStatsSnapshot> {
    fn from(s: Snapshot) -> Self {
        s.functions
    }
}

/// Seconds with one decimal under a minute, else minutes or hours: a table column, not a log.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs_f64();
        let text = if secs < 60.0 {
            format!("{secs:.1}s")
        } else if secs < 3600.0 {
            format!("{:.1}m", secs / 60.0)
        } else {
            format!("{:.1}h", secs / 3600.0)
        };
        f.pad(&text)
    }
}

impl fmt::Display for Snapshot {
    /// A table with one row per fn, then, for each fn that gave up or retried, the reasons and
    /// the retry histogram:
    ///
    /// ```text
    /// function         calls  ok 1st  ok retried  gave up  unfinished  attempts  retries/call  max retries  slept
    /// openai.complete    100      90           8        2           0       116          0.16            2   9.7s
    ///   openai.complete gave up: exhausted 2
    ///   openai.complete retries per call: 0: 90, 1: 6, 2: 4
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADERS: [&str; 10] = [
            "function",
            "calls",
            "ok 1st",
            "ok retried",
            "gave up",
            "unfinished",
            "attempts",
            "retries/call",
            "max retries",
            "slept",
        ];
        let rows: Vec<[String; 10]> = self
            .functions
            .iter()
            .map(|s| {
                [
                    s.name.to_string(),
                    s.calls.to_string(),
                    s.succeeded_first_attempt.to_string(),
                    s.succeeded_after_retry.to_string(),
                    s.gave_up.total().to_string(),
                    s.unfinished.to_string(),
                    s.attempts.to_string(),
                    format!("{:.2}", s.mean_retries()),
                    s.max_retries.to_string(),
                    Human(s.slept).to_string(),
                ]
            })
            .collect();
        let mut widths = HEADERS.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 10]| -> fmt::Result {
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i == 0 {
                    write!(f, "{cell:<width$}")?;
                } else {
                    write!(f, "  {cell:>width$}")?;
                }
            }
            writeln!(f)
        };
        line(f, HEADERS)?;
        for row in &rows {
            line(f, row.each_ref().map(String::as_str))?;
        }
        for s in &self.functions {
            if s.gave_up.total() > 0 {
                write!(f, "  {} gave up:", s.name)?;
                let mut sep = " ";
                for (reason, n) in s.gave_up.iter().filter(|(_, n)| *n > 0) {
                    write!(f, "{sep}{} {n}", reason.as_str())?;
                    sep = ", ";
                }
                writeln!(f)?;
            }
            if s.retries > 0 {
                write!(f, "  {} retries per call:", s.name)?;
                let mut sep = " ";
                for (label, n) in s.retry_histogram.iter().filter(|(_, n)| *n > 0) {
                    write!(f, "{sep}{label}: {n}")?;
                    sep = ", ";
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(name: &'static str, first: u64, exhausted: u64, max: u64) -> FnStatsSnapshot {
        let mut s = FnStatsSnapshot::empty(name);
        s.calls = first + exhausted;
        s.succeeded_first_attempt = first;
        s.gave_up.exhausted = exhausted;
        s.attempts = first + 3 * exhausted;
        s.retries = 2 * exhausted;
        s.max_retries = max;
        s.retry_histogram.counts[0] = first;
        s.retry_histogram.counts[2] = exhausted;
        s.slept = Duration::from_millis(1500 * exhausted);
        s
    }

    #[test]
    fn histogram_buckets_cover_every_count_once() {
        let expected = [0, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7];
        for (retries, bucket) in expected.into_iter().enumerate() {
            assert_eq!(RetryHistogram::bucket(retries as u64), bucket, "{retries}");
        }
        assert_eq!(RetryHistogram::bucket(u64::MAX), 7);
        assert_eq!(RetryHistogram::label(7), "16+");
        assert_eq!(RetryHistogram::label(99), "");
    }

    #[test]
    fn merge_sorts_by_name_and_adds_up_shared_names() {
        let s = Snapshot::merge([
            figures("b", 1, 0, 0),
            figures("a", 5, 1, 2),
            figures("b", 2, 2, 3),
        ]);
        let names: Vec<_> = s.iter().map(|f| f.name).collect();
        assert_eq!(names, ["a", "b"]);
        let b = s.get("b").unwrap();
        assert_eq!(
            (b.calls, b.succeeded_first_attempt, b.gave_up.exhausted),
            (5, 3, 2)
        );
        assert_eq!((b.max_retries, b.retry_histogram.counts[0]), (3, 3));
        assert_eq!(b.slept, Duration::from_secs(3));
        assert!(s.get("c").is_none());
    }

    #[test]
    fn the_table_lists_every_fn_with_aligned_columns() {
        let s = Snapshot::merge([figures("openai.complete", 90, 2, 2), figures("x", 1, 0, 0)]);
        let table = s.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("function         calls  ok 1st"));
        assert!(lines[1].starts_with("openai.complete     92      90"));
        assert!(lines[1].ends_with("3.0s"), "{}", lines[1]);
        assert_eq!(lines[0].len(), lines[1].len());
        assert_eq!(lines[1].len(), lines[2].len());
        assert_eq!(lines[3], "  openai.complete gave up: exhausted 2");
        assert_eq!(lines[4], "  openai.complete retries per call: 0: 90, 2: 2");
        assert_eq!(lines.len(), 5);
    }
}
