//! Server facts every instance shares through the store: which wxgate instances are running
//! (a heartbeat) and the egress IP WeChat last named in a whitelist error.
//!
//! Each instance writes `act:instance:{id}` every [`HEARTBEAT_EVERY`] with a TTL of
//! [`INSTANCE_TTL`], so the ones alive are those whose key exists. Since the store cannot list
//! keys, an index (`act:instances`: ids and when each was last confirmed) names them; an
//! instance adds itself when missing and re-confirms itself at most every
//! [`INDEX_CONFIRM_EVERY`], and ids unconfirmed for [`INDEX_KEEP_MS`] drop out (at most
//! [`INDEX_MAX`] are kept). Two instances updating the index at the same moment may lose one
//! id until its next heartbeat puts it back. The per-hour call counts are read for every id
//! in the index ([`super::calls`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A wxgate instance seen recently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSeen {
    pub id: String,
    pub version: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds of its latest heartbeat.
    pub last_seen: i64,
}

/// How often an instance writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// How long a heartbeat counts: instances silent longer are not listed.
pub const INSTANCE_TTL: Duration = Duration::from_secs(600);
/// How often an instance re-confirms its entry in the index.
pub const INDEX_CONFIRM_EVERY: i64 = 3_600_000;
/// How long an unconfirmed id stays in the index (its call counts live 25 h).
pub const INDEX_KEEP_MS: i64 = 26 * 3_600_000;
/// Most ids in the index.
pub const INDEX_MAX: usize = 64;
/// How long a learned egress IP is kept.
pub const EGRESS_TTL: Duration = Duration::from_secs(7 * 86_400);

pub(super) const INDEX_KEY: &str = "act:instances";
pub(super) const EGRESS_KEY: &str = "act:egress_ip";

pub(super) fn instance_key(id: &str) -> String {
    format!("act:instance:{id}")
}

/// One id of the index, with when it was last confirmed (unix ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IndexEntry {
    pub id: String,
    pub confirmed: i64,
}

pub(super) fn read_index(bytes: Option<&[u8]>) -> Vec<IndexEntry> {
    bytes
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}

/// The index with `id` confirmed at `now` when it needs to be (`None`: no write needed).
pub(super) fn confirmed(mut index: Vec<IndexEntry>, id: &str, now: i64) -> Option<Vec<IndexEntry>> {
    let fresh = index
        .iter()
        .any(|e| e.id == id && now - e.confirmed < INDEX_CONFIRM_EVERY);
    if fresh {
        return None;
    }
    index.retain(|e| e.id != id && now - e.confirmed < INDEX_KEEP_MS);
    index.push(IndexEntry {
        id: id.to_owned(),
        confirmed: now,
    });
    index.sort_by_key(|e| std::cmp::Reverse(e.confirmed));
    index.truncate(INDEX_MAX);
    Some(index)
}

/// The egress IP as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Egress {
    pub ip: String,
    /// Unix milliseconds when it was learned.
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_adds_confirms_and_ages_out_ids() {
        let h = 3_600_000;
        let index = confirmed(Vec::new(), "a", 0).unwrap();
        assert!(confirmed(index.clone(), "a", h / 2).is_none());
        let index = confirmed(index, "b", h).unwrap();
        assert_eq!(index.len(), 2);
        let index = confirmed(index, "b", 27 * h).unwrap();
        assert_eq!(
            index.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}
