//! The admin service: accounts and API keys managed at runtime (SPEC.md "Accounts managed at
//! runtime", "API keys with scopes"). Each write goes to the database, then this instance
//! applies it at once ([`Gateway::follow_registry`]); the others within 2 s.
//!
//! Accounts of the config file are read-only here. Stored secrets are sealed with
//! `admin.master_key`; without one, nothing with a secret can be stored.

use serde::Deserialize;

use crate::domain::unix_now;
use crate::gateway::Gateway;
use crate::registry::keys::{self, KeyView, Scope};
use crate::registry::record::{self, InvalidAccount};
use crate::registry::{AccountWrite, Entry, RegistryError, StoredKey, WriteOutcome};
use crate::users::UserDbError;

/// How often a write that lost a race with another admin is recomputed and retried.
const WRITE_ATTEMPTS: usize = 5;

/// Why an admin request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no account named {0:?}")]
    UnknownAccount(String),
    #[error("the account {0:?} comes from the config file and is read-only at runtime")]
    ReadOnly(String),
    #[error("invalid account: {0}")]
    InvalidAccount(#[from] InvalidAccount),
    #[error("invalid key request: {field}: {message}")]
    InvalidKey { field: String, message: String },
    #[error("no API key with id {0:?}")]
    UnknownKey(String),
    #[error("admin.master_key is not set: secrets cannot be stored in the database without it")]
    NoMasterKey,
    #[error("other admins kept changing the account; try again")]
    Contended,
    #[error("the database failed: {0}")]
    Database(String),
}

impl From<UserDbError> for AdminError {
    fn from(e: UserDbError) -> Self {
        AdminError::Database(e.to_string())
    }
}

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        AdminError::Database(e.to_string())
    }
}

/// An account as the registry serves it now.
pub fn account(gateway: &Gateway, name: &str) -> Result<Entry, AdminError> {
    gateway
        .registry
        .snapshot()
        .entries
        .get(name)
        .cloned()
        .ok_or_else(|| AdminError::UnknownAccount(name.to_owned()))
}

/// Every account served now, by name.
pub fn accounts(gateway: &Gateway) -> Vec<Entry> {
    gateway
        .registry
        .snapshot()
        .entries
        .values()
        .cloned()
        .collect()
}

/// `PUT accounts/{name}`: creates or replaces a database account; `true` when created.
pub async fn put_account(
    gateway: &Gateway,
    name: &str,
    body: &[u8],
) -> Result<(bool, Entry), AdminError> {
    if is_read_only_account(gateway, name) {
        return Err(AdminError::ReadOnly(name.to_owned()));
    }
    let vault = gateway.registry.vault().ok_or(AdminError::NoMasterKey)?;
    let db = gateway.registry.db();
    for _ in 0..WRITE_ATTEMPTS {
        let row = db.account(name).await?;
        let stored = match &row {
            Some(row) if !row.deleted => {
                Some(record::open(name, &row.settings, &row.secrets, vault)?.settings)
            }
            _ => None,
        };
        let (settings, account) = record::merge_put(name, body, stored.as_ref())?;
        let (public, secrets) = record::seal(&settings, vault);
        let write = AccountWrite {
            name,
            settings: &public,
            secrets: &secrets,
            expected_seq: row.as_ref().map(|r| r.seq),
            now: unix_now(),
        };
        if let WriteOutcome::Written { .. } = db.write_account(write).await? {
            let appid_changed = stored.as_ref().is_some_and(|s| s.appid != account.appid);
            if appid_changed {
                forget_credentials(gateway, name).await;
            }
            gateway.follow_registry().await?;
            return Ok((stored.is_none(), self::account(gateway, name)?));
        }
    }
    Err(AdminError::Contended)
}

impl From<record::RecordError> for AdminError {
    fn from(e: record::RecordError) -> Self {
        AdminError::Database(e.to_string())
    }
}

/// `DELETE accounts/{name}`: the account stops being served; its credentials are dropped, its
/// users stay.
pub async fn delete_account(gateway: &Gateway, name: &str) -> Result<(), AdminError> {
    if is_read_only_account(gateway, name) {
        return Err(AdminError::ReadOnly(name.to_owned()));
    }
    if !gateway
        .registry
        .db()
        .delete_account(name, unix_now())
        .await?
    {
        return Err(AdminError::UnknownAccount(name.to_owned()));
    }
    forget_credentials(gateway, name).await;
    gateway.activity.forget(name).await;
    gateway.follow_registry().await?;
    Ok(())
}

fn is_read_only_account(gateway: &Gateway, name: &str) -> bool {
    gateway
        .registry
        .snapshot()
        .entries
        .get(name)
        .is_some_and(|e| e.source.is_read_only())
}

async fn forget_credentials(gateway: &Gateway, name: &str) {
    if let Err(e) = gateway.creds.forget_stored(name).await {
        tracing::warn!(account = %name, error = %e, "cannot drop the account's stored credentials");
    }
}

/// `POST keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    accounts: Vec<String>,
    scopes: Vec<String>,
}

/// `POST keys`: a new scoped key; the key itself is in this answer only.
pub async fn create_key(gateway: &Gateway, body: &[u8]) -> Result<(KeyView, String), AdminError> {
    let invalid = |field: &str, message: String| AdminError::InvalidKey {
        field: field.to_owned(),
        message,
    };
    let request: NewKey = serde_path_to_error::deserialize(
        &mut serde_json::Deserializer::from_slice(body),
    )
    .map_err(|e| {
        let path = e.path().to_string();
        invalid(
            if path == "." { "" } else { &path },
            e.into_inner().to_string(),
        )
    })?;
    let name = request.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("name", "must be 1-64 characters".into()));
    }
    if request.accounts.is_empty() || request.accounts.len() > 1000 {
        return Err(invalid(
            "accounts",
            "must name 1-1000 accounts, or [\"*\"] for every account".into(),
        ));
    }
    if request.scopes.is_empty() {
        return Err(invalid("scopes", "must name at least one scope".into()));
    }
    let mut scopes = Vec::new();
    for (i, s) in request.scopes.iter().enumerate() {
        let scope = Scope::parse(s).ok_or_else(|| {
            invalid(
                &format!("scopes[{i}]"),
                format!("{s:?} is not a scope (credentials, proxy, users, status)"),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let key = keys::new_key();
    let stored = StoredKey {
        id: keys::new_key_id(),
        name: name.to_owned(),
        digest: keys::digest_hex(&key),
        accounts: serde_json::to_string(&request.accounts).unwrap_or_default(),
        scopes: serde_json::to_string(&scopes).unwrap_or_default(),
        deleted: false,
        seq: 0,
        created_at: unix_now(),
    };
    gateway.registry.db().insert_key(&stored).await?;
    gateway.follow_registry().await?;
    let view = KeyView {
        id: stored.id,
        name: stored.name,
        accounts: request.accounts,
        scopes,
        created_at: stored.created_at,
    };
    Ok((view, key))
}

/// `GET keys`: the live stored keys (never the keys themselves).
pub fn list_keys(gateway: &Gateway) -> Vec<KeyView> {
    let snapshot = gateway.registry.snapshot();
    let mut views: Vec<KeyView> = snapshot
        .stored_keys
        .values()
        .map(|k| k.view.clone())
        .collect();
    views.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    views
}

/// `DELETE keys/{id}`: the key stops working here now and on every instance within 2 s.
pub async fn delete_key(gateway: &Gateway, id: &str) -> Result<(), AdminError> {
    if !gateway.registry.db().delete_key(id).await? {
        return Err(AdminError::UnknownKey(id.to_owned()));
    }
    gateway.follow_registry().await?;
    Ok(())
}
