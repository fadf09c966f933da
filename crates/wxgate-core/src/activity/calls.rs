//! Upstream calls per account, endpoint and hour, for the account page's 24-hour chart.
//!
//! The store has no increment, so each instance keeps its own counts in its own key,
//! `act:calls:{account}:{hour_start_ms}:{instance}` (only that instance's flusher writes it,
//! so its read-add-write never races), with a TTL of [`CALLS_TTL`]; reading sums the keys of
//! every instance seen in the last day ([`super::instances`]) in one `get_many`. A key holds at
//! most [`ENDPOINTS_MAX`] endpoints, the rest counted under [`OTHER`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// Hours kept and shown.
pub const HOURS: i64 = 24;
/// How long an hour's counts are kept.
pub const CALLS_TTL: Duration = Duration::from_secs(25 * 3600);
/// Most distinct endpoints counted per account and hour.
pub const ENDPOINTS_MAX: usize = 32;
/// Where the calls beyond [`ENDPOINTS_MAX`] endpoints are counted.
pub const OTHER: &str = "other";

/// The calls of one hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCalls {
    /// Unix milliseconds of the hour's start.
    pub hour_start: i64,
    /// Sorted by endpoint.
    pub endpoints: Vec<EndpointCalls>,
}

/// The calls of one endpoint in one hour (errors are included in `calls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCalls {
    pub endpoint: String,
    pub calls: u64,
    pub errors: u64,
}

/// Counts per endpoint, bounded to [`ENDPOINTS_MAX`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts(BTreeMap<String, (u64, u64)>);

impl Counts {
    pub(super) fn add(&mut self, endpoint: &str, calls: u64, errors: u64) {
        let entry = match self.0.get_mut(endpoint) {
            Some(entry) => entry,
            None => {
                let name = if self.0.len() >= ENDPOINTS_MAX - 1 && endpoint != OTHER {
                    OTHER
                } else {
                    endpoint
                };
                self.0.entry(name.to_owned()).or_default()
            }
        };
        entry.0 = entry.0.saturating_add(calls);
        entry.1 = entry.1.saturating_add(errors);
    }

    pub(super) fn add_all(&mut self, other: &Counts) {
        for (endpoint, (calls, errors)) in &other.0 {
            self.add(endpoint, *calls, *errors);
        }
    }

    pub(super) fn from_stored(bytes: Option<&[u8]>) -> Counts {
        let list: Vec<EndpointCalls> = bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let mut counts = Counts::default();
        for e in list {
            counts.add(&e.endpoint, e.calls, e.errors);
        }
        counts
    }

    pub(super) fn to_list(&self) -> Vec<EndpointCalls> {
        self.0
            .iter()
            .map(|(endpoint, (calls, errors))| EndpointCalls {
                endpoint: endpoint.clone(),
                calls: *calls,
                errors: *errors,
            })
            .collect()
    }
}

/// The start of the hour `at_ms` falls in.
pub fn hour_start(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(HOUR_MS)
}

pub(super) fn key(account: &str, hour_start: i64, instance: &str) -> String {
    format!("act:calls:{account}:{hour_start}:{instance}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_beyond_the_cap_are_counted_as_other() {
        let mut c = Counts::default();
        for i in 0..40 {
            c.add(&format!("e{i:02}"), 1, i % 2);
        }
        let list = c.to_list();
        assert_eq!(list.len(), ENDPOINTS_MAX);
        let other = list.iter().find(|e| e.endpoint == OTHER).unwrap();
        assert_eq!(other.calls, 40 - (ENDPOINTS_MAX as u64 - 1));
        assert_eq!(list.iter().map(|e| e.calls).sum::<u64>(), 40);
        // Existing endpoints keep counting under their own name.
        c.add("e00", 5, 0);
        assert_eq!(c.to_list()[0].calls, 6);
    }

    #[test]
    fn hours_start_on_the_hour() {
        assert_eq!(hour_start(HOUR_MS * 5 + 1234), HOUR_MS * 5);
    }
}
