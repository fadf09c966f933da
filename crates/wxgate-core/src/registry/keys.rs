//! Scoped API keys: what a Bearer key on `/api/v1` may reach. A key of `api.keys` in the
//! config file opens everything; a key made with the admin API holds a list of accounts (or
//! `*`) and of scopes, and is stored only as its SHA-256 digest.
//!
//! Lookup hashes the presented key and finds the digest in a map: the map's timing depends on
//! the digest, which an attacker cannot steer toward a stored one, so it reveals nothing of a
//! key; the config file's keys are still compared in constant time ([`ApiKeys`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::db::StoredKey;
use crate::api_keys::ApiKeys;

/// What a key may do on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// access_token, its refresh, tickets.
    Credentials,
    /// The API proxy (`wechat/{path}`).
    Proxy,
    /// Users and logins.
    Users,
    /// `status`.
    Status,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::Credentials,
        Scope::Proxy,
        Scope::Users,
        Scope::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Credentials => "credentials",
            Scope::Proxy => "proxy",
            Scope::Users => "users",
            Scope::Status => "status",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The accounts a key reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSet {
    All,
    Only(BTreeSet<String>),
}

/// What one key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub accounts: AccountSet,
    pub scopes: BTreeSet<Scope>,
}

impl Grant {
    pub fn allows_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn allows_account(&self, account: &str) -> bool {
        match &self.accounts {
            AccountSet::All => true,
            AccountSet::Only(names) => names.contains(account),
        }
    }
}

/// What a presented key may do.
#[derive(Debug, Clone)]
pub enum Access {
    /// A key of `api.keys`: every account, every scope.
    Full,
    /// A key made with the admin API.
    Scoped(Arc<Grant>),
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub accounts: Vec<String>,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
}

/// A live stored key, parsed.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub view: KeyView,
    pub digest: [u8; 32],
    pub grant: Arc<Grant>,
}

impl KeyEntry {
    /// Parses a stored row; `None` for a tombstone or a damaged row (logged).
    pub fn from_row(row: &StoredKey) -> Option<KeyEntry> {
        if row.deleted {
            return None;
        }
        let parsed = (|| {
            let accounts: Vec<String> = serde_json::from_str(&row.accounts).ok()?;
            let scopes: Vec<Scope> = serde_json::from_str(&row.scopes).ok()?;
            let digest: [u8; 32] = hex::decode(&row.digest).ok()?.try_into().ok()?;
            Some((accounts, scopes, digest))
        })();
        let Some((accounts, scopes, digest)) = parsed else {
            tracing::error!(key = %row.id, "a stored API key is damaged; it opens nothing");
            return None;
        };
        let grant = Grant {
            accounts: if accounts.iter().any(|a| a == "*") {
                AccountSet::All
            } else {
                AccountSet::Only(accounts.iter().cloned().collect())
            },
            scopes: scopes.iter().copied().collect(),
        };
        Some(KeyEntry {
            view: KeyView {
                id: row.id.clone(),
                name: row.name.clone(),
                accounts,
                scopes,
                created_at: row.created_at,
            },
            digest,
            grant: Arc::new(grant),
        })
    }
}

/// Every key that opens `/api/v1`: the config file's and the live stored ones.
#[derive(Debug, Default)]
pub struct KeyTable {
    file: Option<ApiKeys>,
    by_digest: HashMap<[u8; 32], Arc<Grant>>,
}

impl KeyTable {
    pub fn new(file: ApiKeys, stored: impl IntoIterator<Item = KeyEntry>) -> KeyTable {
        KeyTable {
            file: Some(file),
            by_digest: stored
                .into_iter()
                .map(|k| (k.digest, Arc::clone(&k.grant)))
                .collect(),
        }
    }

    /// No key at all: the business API is off.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty() && self.file.as_ref().is_none_or(ApiKeys::is_empty)
    }

    /// What `presented` may do, if it is a key: everything (a key of the config file), or what
    /// its [`Grant`] holds. The key is hashed once for both lookups.
    pub fn access(&self, presented: &str) -> Option<Access> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if self
            .file
            .as_ref()
            .is_some_and(|f| f.accepts_digest(&digest))
        {
            return Some(Access::Full);
        }
        self.by_digest.get(&digest).cloned().map(Access::Scoped)
    }
}

/// A new key: `wxk_` and 40 random letters and digits (~238 bits).
pub fn new_key() -> String {
    format!("wxk_{}", crate::domain::random_alnum(40))
}

/// A new key id: `key_` and 16 random hex digits.
pub fn new_key_id() -> String {
    format!("key_{}", hex::encode(rand::thread_rng().gen::<[u8; 8]>()))
}

/// The stored digest of `key`, hex.
pub fn digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn row(key: &str, accounts: &str, scopes: &str, deleted: bool) -> StoredKey {
        StoredKey {
            id: new_key_id(),
            name: "billing".into(),
            digest: digest_hex(key),
            accounts: accounts.into(),
            scopes: scopes.into(),
            deleted,
            seq: 1,
            created_at: 1,
        }
    }

    #[test]
    fn stored_keys_grant_their_accounts_and_scopes_only() {
        let key = new_key();
        let entry = KeyEntry::from_row(&row(&key, r#"["main"]"#, r#"["credentials"]"#, false));
        let table = KeyTable::new(ApiKeys::new(&[SecretString::from("file-key")]), entry);
        let Some(Access::Scoped(grant)) = table.access(&key) else {
            panic!("a stored key is scoped");
        };
        assert!(grant.allows_account("main") && !grant.allows_account("other"));
        assert!(grant.allows_scope(Scope::Credentials) && !grant.allows_scope(Scope::Proxy));
        assert!(matches!(table.access("file-key"), Some(Access::Full)));
        assert!(table.access("wxk_nope").is_none());
        assert!(table.access(&key[..key.len() - 1]).is_none());
    }

    #[test]
    fn tombstones_and_damaged_rows_open_nothing() {
        assert!(KeyEntry::from_row(&row("k", r#"["*"]"#, r#"["proxy"]"#, true)).is_none());
        assert!(KeyEntry::from_row(&row("k", "not json", r#"["proxy"]"#, false)).is_none());
        assert!(KeyEntry::from_row(&row("k", r#"["*"]"#, r#"["teleport"]"#, false)).is_none());
        let star = KeyEntry::from_row(&row("k", r#"["*"]"#, r#"["proxy"]"#, false)).unwrap();
        assert_eq!(star.grant.accounts, AccountSet::All);
    }

    #[test]
    fn keys_are_long_and_distinct() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 44);
        assert!(new_key_id().starts_with("key_"));
    }
}
