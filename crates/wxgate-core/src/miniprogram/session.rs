//! The users' session keys, kept in the shared store so that every instance can check a login
//! state (`checksession`) or decrypt open data after any instance logged the user in.
//!
//! A session_key never leaves wxgate and is never logged. In the store it is sealed
//! (AES-256-GCM, [`crate::vault`]) under a key derived from the account's AppSecret — which
//! every instance holds and the store never sees — and bound to the account and openid, so a
//! value read from the store alone, or moved to another user, opens for nobody. It lives
//! [`SESSION_TTL`]; a newer login replaces it. An AppSecret changed since the login leaves a
//! value that no longer opens, which reads as "no session": the user logs in again.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::Account;
use crate::store::{Store, StoreError};
use crate::vault::{field_context, MasterKey, Vault};

/// How long a session_key is kept after a login. WeChat does not publish the lifetime of a
/// session_key (it changes on the next `wx.login`); a few days covers a mini program kept open
/// and rarely re-launched, and bounds what the store holds.
pub const SESSION_TTL: Duration = Duration::from_secs(3 * 24 * 3600);

const PURPOSE: &[u8] = b"wxgate miniprogram session_key v1";

fn store_key(account: &str, openid: &str) -> String {
    format!("miniprogram:session:{account}:{openid}")
}

fn vault(account: &Account) -> Vault {
    Vault::new(
        MasterKey::derive(PURPOSE, account.secret.expose_secret().as_bytes()),
        None,
    )
}

fn context(account: &Account, openid: &str) -> Vec<u8> {
    field_context("miniprogram-session", &account.name, openid)
}

/// Keeps `session_key` for `openid`, sealed, for [`SESSION_TTL`].
pub async fn keep(
    store: &dyn Store,
    account: &Account,
    openid: &str,
    session_key: &SecretString,
) -> Result<(), StoreError> {
    let sealed = vault(account).seal(session_key.expose_secret(), &context(account, openid));
    store
        .put(
            &store_key(&account.name, openid),
            sealed.as_bytes(),
            Some(SESSION_TTL),
        )
        .await
}

/// The session_key kept for `openid`, or `None` (never kept, expired, or sealed under another
/// AppSecret).
pub async fn read(
    store: &dyn Store,
    account: &Account,
    openid: &str,
) -> Result<Option<SecretString>, StoreError> {
    let Some(bytes) = store.get(&store_key(&account.name, openid)).await? else {
        return Ok(None);
    };
    let Ok(sealed) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    match vault(account).open(sealed, &context(account, openid)) {
        Ok(opened) => Ok(Some(opened.value)),
        Err(e) => {
            tracing::warn!(account = %account.name, error = %e, "miniprogram: a kept session does not open (AppSecret changed?); treated as none");
            Ok(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::AccountSettings;
    use crate::store::MemoryStore;

    fn account(secret: &str) -> Account {
        let settings: AccountSettings = toml::from_str(&format!(
            "name = \"shop\"\nappid = \"wx00000000000000b7\"\nsecret = \"{secret}\"\n\
             kind = \"miniprogram\""
        ))
        .unwrap();
        Account::try_from(&settings).unwrap()
    }

    #[tokio::test]
    async fn a_kept_session_opens_only_for_its_user_and_its_app_secret() {
        let store = MemoryStore::new();
        let shop = account("secret-one");
        let session_key = SecretString::from("tiihtNczf5v6AKRyjwEUhQ==".to_owned());
        keep(&store, &shop, "o-a", &session_key).await.unwrap();
        let stored = store.get(&store_key("shop", "o-a")).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("tiihtNczf5v6AKRyjwEUhQ"));
        let read_back = read(&store, &shop, "o-a").await.unwrap().unwrap();
        assert_eq!(read_back.expose_secret(), "tiihtNczf5v6AKRyjwEUhQ==");
        // Moved to another user: opens for nobody.
        store
            .put(&store_key("shop", "o-b"), &stored, None)
            .await
            .unwrap();
        assert!(read(&store, &shop, "o-b").await.unwrap().is_none());
        // After an AppSecret change: no session.
        let rotated = account("secret-two");
        assert!(read(&store, &rotated, "o-a").await.unwrap().is_none());
        assert!(read(&store, &shop, "o-never").await.unwrap().is_none());
    }
}
