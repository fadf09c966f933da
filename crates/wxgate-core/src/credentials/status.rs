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
