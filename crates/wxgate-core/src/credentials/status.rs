//! Per-credential bookkeeping for the status API and the refresh-ahead backoff.
//!
//! The backoff concerns only this process, so it runs on the monotonic clock (a wall clock
//! stepped back cannot stall refresh-ahead); `status` converts it to unix time for display.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Credential;
use crate::domain::{unix_now, CredentialKind};
use crate::upstream::UpstreamError;

/// The last upstream failure of a credential (a plain value of [`crate::domain`], re-exported
/// here where it always was).
pub use crate::domain::ErrorRecord;

#[derive(Debug, Clone, Default)]
pub(super) struct SlotStatus {
    last_refresh_at: Option<i64>,
    last_refresh_reason: Option<String>,
    /// Boxed: most credentials never fail, and this keeps their slot small.
    last_error: Option<Box<ErrorRecord>>,
    refreshes: u64,
    /// Refresh-ahead failures in a row (for the backoff).
    failures: u32,
    next_attempt: Option<Instant>,
}

impl SlotStatus {
    pub(super) fn record_refresh(&mut self, c: &Credential) {
        self.last_refresh_at = Some(c.fetched_at);
        self.last_refresh_reason = Some(c.reason.clone());
        self.refreshes += 1;
    }

    pub(super) fn record_error(&mut self, e: &UpstreamError) {
        self.last_error = Some(Box::new(ErrorRecord {
            at: unix_now(),
            message: e.to_string(),
            hint: e.hint(),
            wechat_errcode: e.wechat_errcode(),
            wechat_rid: e.wechat_rid().map(str::to_owned),
        }));
    }

    /// Exponential backoff for refresh-ahead retries: 2, 4, 8 … 60 s. Returns the delay.
    pub(super) fn backoff(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = Duration::from_secs((1_u64 << self.failures.min(6)).min(60));
        self.next_attempt = Some(now + delay);
        delay
    }

    pub(super) fn clear_backoff(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// How long until the next refresh-ahead attempt is allowed, while in backoff.
    pub(super) fn retry_in(&self, now: Instant) -> Option<Duration> {
        self.next_attempt
            .and_then(|at| at.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// When the next refresh-ahead attempt is allowed, in unix seconds, if it is still ahead.
    fn next_retry_unix(&self, now_unix: i64) -> Option<i64> {
        let left = self.next_attempt?.checked_duration_since(Instant::now())?;
        let secs = i64::try_from(left.as_secs()).unwrap_or(i64::MAX);
        (!left.is_zero()).then(|| now_unix.saturating_add(secs).saturating_add(1))
    }
}

/// One credential in `GET status`.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialStatus {
    pub credential: &'static str,
    /// Whether a valid credential is stored.
    pub present: bool,
    /// Seconds since it was fetched.
    pub age_s: Option<i64>,
    /// Seconds until WeChat's expiry.
    pub expires_in: Option<i64>,
    pub expires_at: Option<i64>,
    /// When the stored credential was fetched and why (any instance).
    pub last_refresh_at: Option<i64>,
    pub last_refresh_reason: Option<String>,
    /// Fetches made by this instance since it started.
    pub refreshes_by_this_instance: u64,
    pub last_error: Option<ErrorRecord>,
    /// When this instance will next try a refresh-ahead after failures.
    pub next_retry_at: Option<i64>,
}

impl CredentialStatus {
    pub(super) fn build(
        kind: CredentialKind,
        stored: Option<&Credential>,
        st: &SlotStatus,
        now: i64,
    ) -> Self {
        Self {
            credential: kind.as_str(),
            present: stored.is_some(),
            age_s: stored.map(|c| now - c.fetched_at),
            expires_in: stored.map(|c| c.expires_in(now)),
            expires_at: stored.map(|c| c.expires_at),
            last_refresh_at: stored.map(|c| c.fetched_at).or(st.last_refresh_at),
            last_refresh_reason: stored
                .map(|c| c.reason.clone())
                .or_else(|| st.last_refresh_reason.clone()),
            refreshes_by_this_instance: st.refreshes,
            last_error: st.last_error.as_deref().cloned(),
            next_retry_at: st.next_retry_unix(now),
        }
    }
}

/// An account's credentials in one word, for the admin console's overview: from this
/// instance's memory only (no store read), so 10 000 accounts are judged in microseconds each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Nothing asked for a credential here yet.
    Idle,
    /// Every cached credential is valid for more than [`EXPIRING_WITHIN_S`].
    Valid,
    /// A cached credential expires within [`EXPIRING_WITHIN_S`] (refresh-ahead is late).
    Expiring,
    /// The newest event of a credential is a failed fetch.
    Failing,
}

/// Below this many seconds left, a credential counts as expiring.
pub const EXPIRING_WITHIN_S: i64 = 300;

impl Health {
    /// Its word in the console and its filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Idle => "idle",
            Health::Valid => "valid",
            Health::Expiring => "expiring",
            Health::Failing => "failing",
        }
    }

    /// The word back (the console's filter).
    pub fn parse(s: &str) -> Option<Health> {
        [
            Health::Idle,
            Health::Valid,
            Health::Expiring,
            Health::Failing,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }
}

/// [`Health`] with the failure behind it.
#[derive(Debug, Clone)]
pub struct HealthLine {
    pub health: Health,
    /// The newest failure of any of the account's credentials (also when they recovered since).
    pub last_error: Option<ErrorRecord>,
    /// Seconds until the soonest cached credential expires.
    pub expires_in: Option<i64>,
}

impl HealthLine {
    /// Judges one slot's part: its cached credential's seconds left and its status.
    pub(super) fn slot_part(expires_in: Option<i64>, st: &SlotStatus) -> SlotPart {
        SlotPart {
            expires_in,
            failing: st.last_error.as_deref().is_some_and(|e| {
                st.last_refresh_at.is_none_or(|at| e.at >= at) || st.next_attempt.is_some()
            }),
            last_error: st.last_error.as_deref().cloned(),
        }
    }

    pub(super) fn judge(slots: impl Iterator<Item = SlotPart>) -> HealthLine {
        let mut line = HealthLine {
            health: Health::Idle,
            last_error: None,
            expires_in: None,
        };
        let mut failing = false;
        let mut cached = false;
        for part in slots {
            failing |= part.failing;
            if let Some(e) = part.last_error {
                if line.last_error.as_ref().is_none_or(|l| l.at < e.at) {
                    line.last_error = Some(e);
                }
            }
            if let Some(left) = part.expires_in.filter(|left| *left > 0) {
                cached = true;
                line.expires_in = Some(line.expires_in.map_or(left, |l| l.min(left)));
            }
        }
        line.health = if failing {
            Health::Failing
        } else if line.expires_in.is_some_and(|l| l <= EXPIRING_WITHIN_S) {
            Health::Expiring
        } else if cached {
            Health::Valid
        } else {
            Health::Idle
        };
        line
    }
}

/// One slot's share of a [`HealthLine`].
pub(super) struct SlotPart {
    expires_in: Option<i64>,
    failing: bool,
    last_error: Option<ErrorRecord>,
}

#[cfg(test)]
mod health_tests {
    use super::*;

    fn error(at: i64) -> ErrorRecord {
        ErrorRecord {
            at,
            message: "refused".into(),
            hint: "do something".into(),
            wechat_errcode: Some(40125),
            wechat_rid: None,
        }
    }

    fn part(expires_in: Option<i64>, failing: bool, last_error: Option<ErrorRecord>) -> SlotPart {
        SlotPart {
            expires_in,
            failing,
            last_error,
        }
    }

    #[test]
    fn health_is_judged_from_the_slots() {
        let judge = |parts: Vec<SlotPart>| HealthLine::judge(parts.into_iter());
        assert_eq!(judge(vec![]).health, Health::Idle);
        assert_eq!(judge(vec![part(None, false, None)]).health, Health::Idle);
        let valid = judge(vec![
            part(Some(7000), false, None),
            part(Some(900), false, None),
        ]);
        assert_eq!(valid.health, Health::Valid);
        assert_eq!(valid.expires_in, Some(900), "the soonest expiry");
        let expiring = judge(vec![
            part(Some(7000), false, None),
            part(Some(120), false, None),
        ]);
        assert_eq!(expiring.health, Health::Expiring);
        // Failing wins, and the newest failure is the one shown.
        let failing = judge(vec![
            part(Some(7000), false, Some(error(10))),
            part(None, true, Some(error(20))),
        ]);
        assert_eq!(failing.health, Health::Failing);
        assert_eq!(failing.last_error.map(|e| e.at), Some(20));
        // Recovered: valid again, the old failure still shown.
        let recovered = judge(vec![part(Some(7000), false, Some(error(10)))]);
        assert_eq!(recovered.health, Health::Valid);
        assert!(recovered.last_error.is_some());
    }

    #[test]
    fn a_slot_fails_while_its_newest_event_is_an_error() {
        let mut st = SlotStatus {
            last_error: Some(Box::new(error(100))),
            ..SlotStatus::default()
        };
        assert!(HealthLine::slot_part(None, &st).failing, "never fetched");
        st.last_refresh_at = Some(50);
        assert!(
            HealthLine::slot_part(Some(10), &st).failing,
            "error after the fetch"
        );
        st.last_refresh_at = Some(150);
        assert!(
            !HealthLine::slot_part(Some(10), &st).failing,
            "fetched after the error"
        );
        st.next_attempt = Some(Instant::now() + Duration::from_secs(5));
        assert!(
            HealthLine::slot_part(Some(10), &st).failing,
            "still backing off"
        );
    }

    #[test]
    fn health_words_round_trip() {
        for h in [
            Health::Idle,
            Health::Valid,
            Health::Expiring,
            Health::Failing,
        ] {
            assert_eq!(Health::parse(h.as_str()), Some(h));
        }
        assert_eq!(Health::parse("fine"), None);
    }
}
