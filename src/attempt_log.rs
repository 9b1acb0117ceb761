//! When each attempt of a call started: the timing tests' witness on tokio's clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Attempt start times, relative to the log's creation.
#[derive(Debug)]
pub struct AttemptLog {
    start: Instant,
    at: Mutex<Vec<Duration>>,
}

impl Default for AttemptLog {
    fn default() -> Self {
        Self::new()
    }
}

impl AttemptLog {
    /// A log whose times count from now.
    pub fn new() -> Self {
        AttemptLog {
            start: Instant::now(),
            at: Mutex::new(Vec::new()),
        }
    }

    /// Records an attempt starting now and returns its number (1-based).
    pub fn record(&self) -> usize {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.push(self.start.elapsed());
        at.len()
    }

    /// Records an attempt that fails until the `succeed_on`-th: `Ok(n)` or `Err(n)` with its
    /// number.
    pub fn attempt(&self, succeed_on: usize) -> Result<usize, usize> {
        let n = self.record();
        if n >= succeed_on {
            Ok(n)
        } else {
            Err(n)
        }
    }

    /// Attempts recorded so far.
    pub fn count(&self) -> usize {
        self.times().len()
    }

    /// Each attempt's start, relative to the log's creation.
    pub fn times(&self) -> Vec<Duration> {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sleeps between consecutive attempts.
    pub fn gaps(&self) -> Vec<Duration> {
        self.times().windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// When the log was created.
    pub fn start(&self) -> Instant {
        self.start
    }
}
