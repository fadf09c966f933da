//! The last few tickets of each account and kind, recorded by the credential manager when it
//! fetches a new one, so that `GET /jssdk/{account}/diagnose` can tell a page that its signature
//! was made with a ticket that has since been replaced.
//!
//! Why here and not on the signing path: the manager is the one place that sees every ticket
//! come into existence, exactly once (the fetch runs under the store lease, so across processes
//! and hosts the read-modify-write of the history is serialised too), and the signing path stays
//! free of any bookkeeping. The history lives in the shared store
//! (`cred_history:{account}:{kind}`, [`HISTORY_TTL`]) beside the credential itself, with the
//! same protection; it is read only by `diagnose` and never answered to anyone. Recording is best
//! effort: a store error is logged and only makes `diagnose` less specific.

use std::time::Duration;

use super::Credential;
use crate::domain::CredentialKind;
use crate::store::{Store, StoreError};

/// How many tickets per account and kind are kept (the current one included).
pub const HISTORY_LEN: usize = 4;
/// How long a history outlives its last update (a ticket lives 2 hours).
pub const HISTORY_TTL: Duration = Duration::from_secs(3 * 86_400);

fn key(account: &str, kind: CredentialKind) -> String {
    format!("cred_history:{account}:{}", kind.as_str())
}

/// The history (the credentials as they were stored), newest first; empty when there is none
/// or it cannot be read.
pub async fn read(store: &dyn Store, account: &str, kind: CredentialKind) -> Vec<Credential> {
    match store.get(&key(account, kind)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(account, credential = %kind, error = %e, "ignoring an unreadable credential history");
            Vec::new()
        }),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(account, credential = %kind, error = %e, "cannot read the credential history");
            Vec::new()
        }
    }
}

/// Puts `fresh` at the front of the history (once), keeping the newest [`HISTORY_LEN`].
pub async fn record(store: &dyn Store, account: &str, kind: CredentialKind, fresh: &Credential) {
    let mut history = read(store, account, kind).await;
    if history.first().is_some_and(|p| p.value == fresh.value) {
        return;
    }
    history.retain(|p| p.value != fresh.value);
    history.insert(0, fresh.clone());
    history.truncate(HISTORY_LEN);
    let written = match serde_json::to_vec(&history) {
        Ok(bytes) => {
            store
                .put(&key(account, kind), &bytes, Some(HISTORY_TTL))
                .await
        }
        Err(e) => Err(StoreError::Backend(e.to_string())),
    };
    if let Err(e) = written {
        tracing::warn!(account, credential = %kind, error = %e, "cannot record the credential history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn cred(value: &str, fetched_at: i64) -> Credential {
        Credential {
            value: value.to_owned(),
            expires_at: fetched_at + 7200,
            fetched_at,
            version_ms: fetched_at * 1000,
            lifetime_s: 7200,
            reason: "initial".into(),
        }
    }

    fn values(history: &[Credential]) -> Vec<&str> {
        history.iter().map(|p| p.value.as_str()).collect()
    }

    #[tokio::test]
    async fn keeps_the_newest_tickets_once_each_newest_first() {
        let store = MemoryStore::new();
        let kind = CredentialKind::jsapi();
        assert!(read(&store, "main", kind).await.is_empty());
        for (i, v) in ["t1", "t2", "t2", "t3", "t1", "t4", "t5"]
            .iter()
            .enumerate()
        {
            record(&store, "main", kind, &cred(v, 1000 + i as i64)).await;
        }
        let history = read(&store, "main", kind).await;
        assert_eq!(values(&history), ["t5", "t4", "t1", "t3"]);
        assert_eq!(history[0].fetched_at, 1006);
        assert_eq!(history[0].expires_at, 1006 + 7200);
        // Per account and kind.
        assert!(read(&store, "other", kind).await.is_empty());
        assert!(read(&store, "main", CredentialKind::wx_card())
            .await
            .is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_history_is_replaced_and_values_are_redacted_in_debug() {
        let store = MemoryStore::new();
        let kind = CredentialKind::jsapi();
        store
            .put(&key("main", kind), b"not json", None)
            .await
            .unwrap();
        assert!(read(&store, "main", kind).await.is_empty());
        let secret = "kgt8ON7yVITDhtdwci0qeVDlmi3TBK3Ts";
        record(&store, "main", kind, &cred(secret, 1)).await;
        let history = read(&store, "main", kind).await;
        assert_eq!(values(&history), [secret]);
        assert!(!format!("{history:?}").contains(secret));
    }
}
