//! The short per-account histories the account page lists: the last pushes received and the
//! last credential fetches (refresh history), newest first, at most [`LIST_LEN`] each.
//!
//! Each is one bounded store entry (`act:pushes:{account}`, `act:refreshes:{account}`),
//! read-merged-written at flush time. Two instances flushing the same account at the same
//! moment may lose one's entries (the store has no append); the lists are a view for an
//! operator, not a ledger. Beside the list, the time of the newest push has a key of its own
//! (`act:last_push:{account}`, written with `put_if_newer`, so it never goes back), which the
//! overview reads for a page of accounts in one `get_many`.

use serde::{Deserialize, Serialize};

use crate::domain::CredentialKind;

/// Longest list kept per account.
pub const LIST_LEN: usize = 20;
/// Longest message content kept (characters), when the operator keeps content at all.
pub const CONTENT_MAX: usize = 200;

/// Who answered a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answered {
    /// A reply rule of the account.
    Rule,
    /// The account's webhook, within the answer budget.
    Webhook,
    /// The webhook, too late for the passive reply (sent as a customer-service message).
    LateReply,
    /// Nobody: `success`.
    Nothing,
}

/// One push received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSeen {
    /// Unix milliseconds.
    pub at: i64,
    /// `text`, `image`, `event:subscribe`, …
    pub kind: String,
    pub answered_by: Answered,
    pub encrypted: bool,
    /// The message's text, only with `admin.console_message_content`, at most
    /// [`CONTENT_MAX`] characters.
    pub content: Option<String>,
}

/// One fetch of a credential from WeChat (a first fetch, a refresh ahead or a forced refresh).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSeen {
    /// Unix milliseconds.
    pub at: i64,
    #[serde(with = "kind_name")]
    pub kind: CredentialKind,
    pub ok: bool,
    /// A forced refresh (a caller reported the token invalid, or asked for it).
    pub forced: bool,
    pub errcode: Option<i64>,
    pub message: Option<String>,
}

/// The kind as its stable name (`access_token`, `jsapi_ticket`, `wx_card_ticket`).
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::CredentialKind;

    pub fn serialize<S: Serializer>(kind: &CredentialKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CredentialKind, D::Error> {
        let name = String::deserialize(d)?;
        CredentialKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown credential kind {name:?}")))
    }
}

/// Something kept in a per-account list, ordered by time.
pub(super) trait Timed {
    fn at(&self) -> i64;
}

impl Timed for PushSeen {
    fn at(&self) -> i64 {
        self.at
    }
}

impl Timed for RefreshSeen {
    fn at(&self) -> i64 {
        self.at
    }
}

/// `fresh` (any order) merged into the stored list (newest first): newest first, at most
/// [`LIST_LEN`].
pub(super) fn merged<T: Timed + Serialize + for<'de> Deserialize<'de>>(
    stored: Option<&[u8]>,
    fresh: Vec<T>,
) -> Vec<T> {
    let mut list: Vec<T> = stored
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    list.extend(fresh);
    list.sort_by_key(|e| std::cmp::Reverse(e.at()));
    list.truncate(LIST_LEN);
    list
}

/// Adds `entry` to a pending list, keeping only the newest [`LIST_LEN`].
pub(super) fn queue<T: Timed>(pending: &mut Vec<T>, entry: T) {
    pending.push(entry);
    if pending.len() > LIST_LEN {
        if let Some(oldest) = pending
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.at())
            .map(|(i, _)| i)
        {
            pending.remove(oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(at: i64) -> PushSeen {
        PushSeen {
            at,
            kind: "text".into(),
            answered_by: Answered::Nothing,
            encrypted: false,
            content: None,
        }
    }

    #[test]
    fn merging_keeps_the_newest_first_and_bounded() {
        let stored = serde_json::to_vec(&(0..15).rev().map(push).collect::<Vec<_>>()).unwrap();
        let list = merged(Some(&stored), (15..25).map(push).collect());
        assert_eq!(list.len(), LIST_LEN);
        assert_eq!(list[0].at, 24);
        assert_eq!(list[LIST_LEN - 1].at, 5);
    }

    #[test]
    fn refreshes_name_their_kind() {
        let r = RefreshSeen {
            at: 1,
            kind: CredentialKind::jsapi(),
            ok: true,
            forced: false,
            errcode: None,
            message: None,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "jsapi_ticket");
        assert_eq!(serde_json::from_value::<RefreshSeen>(json).unwrap(), r);
    }
}
