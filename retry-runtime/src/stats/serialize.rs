//! JSON (or any serde format) for snapshots, behind the `serde` feature. Durations are seconds as
//! floats, give-up reasons and histogram buckets are maps keyed by their stable names, and the
//! derived `mean_retries` is included for dashboards that cannot divide.
//!
//! ```json
//! {"functions": [{"name": "openai.complete", "calls": 3, "succeeded_first_attempt": 1,
//!   "succeeded_after_retry": 1, "gave_up": {"exhausted": 1, "not_retryable": 0, ...},
//!   "unfinished": 0, "attempts": 6, "retries": 3, "mean_retries": 1.0, "max_retries": 2,
//!   "retry_histogram": {"0": 1, "1": 1, "2": 1, "3": 0, ...}, "slept_secs": 2.4}]}
//! ```

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

use super::{FnStatsSnapshot, GiveUpCounts, RetryHistogram, Snapshot};

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Snapshot", 1)?;
        s.serialize_field("functions", &self.functions)?;
        s.end()
    }
}

impl Serialize for FnStatsSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FnStatsSnapshot", 12)?;
        s.serialize_field("name", self.name)?;
        s.serialize_field("calls", &self.calls)?;
        s.serialize_field("succeeded_first_attempt", &self.succeeded_first_attempt)?;
        s.serialize_field("succeeded_after_retry", &self.succeeded_after_retry)?;
        s.serialize_field("gave_up", &self.gave_up)?;
        s.serialize_field("unfinished", &self.unfinished)?;
        s.serialize_field("attempts", &self.attempts)?;
        s.serialize_field("retries", &self.retries)?;
        s.serialize_field("mean_retries", &self.mean_retries())?;
        s.serialize_field("max_retries", &self.max_retries)?;
        s.serialize_field("retry_histogram", &self.retry_histogram)?;
        s.serialize_field("slept_secs", &self.slept.as_secs_f64())?;
        s.end()
    }
}

impl Serialize for GiveUpCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(super::REASONS.len()))?;
        for (reason, n) in self.iter() {
            m.serialize_entry(reason.as_str(), &n)?;
        }
        m.end()
    }
}

impl Serialize for RetryHistogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(Self::BUCKETS))?;
        for (label, n) in self.iter() {
            m.serialize_entry(label, &n)?;
        }
        m.end()
    }
}
