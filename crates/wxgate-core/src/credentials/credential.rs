//! The credential as stored and handed out: its value, its WeChat lifetime (capped), when it
//! was fetched and its version, and when it is due for a refresh ahead.

use serde::{Deserialize, Serialize};

use super::{MAX_LIFETIME_S, REFRESH_AHEAD_S};
use crate::domain::{redact, CredentialKind};

/// A credential as stored and handed out.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential {
    pub value: String,
    /// WeChat's own expiry: fetch start + the `expires_in` WeChat gave, capped at
    /// [`MAX_LIFETIME_S`] (unix seconds; counted from the start, so never later than WeChat's).
    pub expires_at: i64,
    /// When the fetch that produced it started (unix seconds).
    pub fetched_at: i64,
    /// When the fetch that produced it completed (unix milliseconds): the version that orders
    /// concurrent writers, so the credential WeChat issued last wins. Stored under its former
    /// name, which older versions read as a version too.
    #[serde(rename = "fetched_at_ms")]
    pub version_ms: i64,
    /// Lifetime WeChat gave, seconds (capped at [`MAX_LIFETIME_S`]).
    pub lifetime_s: i64,
    /// Why it was fetched: `initial`, `ahead`, `forced`, `token_invalid`.
    pub reason: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("value", &redact(&self.value))
            .field("expires_at", &self.expires_at)
            .field("fetched_at", &self.fetched_at)
            .field("reason", &self.reason)
            .finish()
    }
}

/// The lifetime believed from WeChat's `expires_in`: at least 1 s, at most [`MAX_LIFETIME_S`].
pub fn capped_lifetime(expires_in: u64) -> i64 {
    i64::try_from(expires_in)
        .unwrap_or(i64::MAX)
        .clamp(1, MAX_LIFETIME_S)
}

impl Credential {
    /// A credential WeChat issued with `expires_in`, for a fetch that started at `started_ms`
    /// and completed at `completed_ms` (unix milliseconds). Never overflows.
    pub fn issued(
        value: String,
        expires_in: u64,
        started_ms: i64,
        completed_ms: i64,
        reason: &str,
    ) -> Self {
        let lifetime = capped_lifetime(expires_in);
        let fetched_at = started_ms.div_euclid(1000);
        Credential {
            value,
            expires_at: fetched_at.saturating_add(lifetime),
            fetched_at,
            version_ms: completed_ms.max(started_ms),
            lifetime_s: lifetime,
            reason: reason.to_owned(),
        }
    }

    /// Usable right now.
    pub fn is_valid_at(&self, now: i64) -> bool {
        now < self.expires_at
    }

    /// Seconds left at `now` (negative when expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.expires_at.saturating_sub(now)
    }

    /// Remaining seconds at which a refresh-ahead should start.
    pub fn refresh_threshold(&self) -> i64 {
        if self.lifetime_s >= 2 * REFRESH_AHEAD_S {
            REFRESH_AHEAD_S
        } else {
            (self.lifetime_s / 2).max(1)
        }
    }

    /// Due for a refresh-ahead at `now`.
    pub fn is_due_at(&self, now: i64) -> bool {
        self.expires_in(now) <= self.refresh_threshold()
    }
}

/// A stored credential's bytes as a credential when readable and valid at `now` (an unreadable
/// one is logged and ignored, as if absent).
pub(super) fn valid_stored(
    account: &str,
    kind: CredentialKind,
    raw: Option<&[u8]>,
    now: i64,
) -> Option<Credential> {
    let Ok(cred) = serde_json::from_slice::<Credential>(raw?) else {
        tracing::warn!(account, credential = %kind, "ignoring an unreadable stored credential");
        return None;
    };
    cred.is_valid_at(now).then_some(cred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_expires_in_is_capped_and_never_overflows() {
        let started_ms = 1_700_000_000_000;
        for huge in [u64::MAX, 1 << 62, i64::MAX as u64, (i64::MAX as u64) + 1] {
            let c = Credential::issued("t".into(), huge, started_ms, started_ms + 5, "initial");
            assert_eq!(c.lifetime_s, MAX_LIFETIME_S);
            assert_eq!(c.expires_at, 1_700_000_000 + MAX_LIFETIME_S);
            assert_eq!(c.refresh_threshold(), REFRESH_AHEAD_S);
        }
        // Even from an absurd start time.
        let c = Credential::issued("t".into(), u64::MAX, i64::MAX, i64::MAX, "initial");
        assert_eq!(c.expires_at, i64::MAX / 1000 + MAX_LIFETIME_S);
        assert_eq!(c.expires_in(i64::MIN), i64::MAX, "saturates");
        // Ordinary and degenerate lifetimes are kept as given, at least 1 s.
        let c = Credential::issued("t".into(), 7200, started_ms, started_ms + 5, "initial");
        assert_eq!((c.lifetime_s, c.expires_at), (7200, 1_700_000_000 + 7200));
        assert_eq!(capped_lifetime(0), 1);
    }

    #[test]
    fn a_credential_is_versioned_by_when_its_fetch_completed() {
        let slow = Credential::issued("old".into(), 7200, 1_000, 9_000, "token_invalid");
        let quick = Credential::issued("new".into(), 7200, 2_000, 2_500, "initial");
        assert_eq!(slow.version_ms, 9_000);
        assert_eq!(slow.fetched_at, 1);
        assert!(slow.version_ms > quick.version_ms, "issued last wins");
        // Stored under the field name older versions read.
        let json = serde_json::to_value(&slow).unwrap_or_default();
        assert_eq!(json["fetched_at_ms"], 9_000);
    }
}
