//! The runtime registry: every account the gateway serves — from the config file (read-only)
//! and from the database (managed with the admin API) — and every API key, as one immutable
//! [`Snapshot`] that requests read lock-free and that is swapped whole when something changes.
//!
//! Instances sharing `database.url` follow each other through the registry's change counter
//! (`registry/db.rs`): [`Registry::reload`] reads one number, and only when it moved, the rows
//! stamped since. A request that took an account from the snapshot keeps that `Arc<Account>`
//! to its end, so a replace never mixes old and new settings within one request.
//!
//! Stored secrets are sealed with `admin.master_key` ([`crate::vault`]); a row sealed with
//! `master_key_previous` is re-sealed with the current key when it is read.

mod authorizer_sql;
pub mod db;
pub mod keys;
pub mod platform_secrets;
pub mod record;
mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::SecretString;

pub use self::db::{
    AccountWrite, AuthorizerDb, AuthorizerGrant, AuthorizerProfile, Changes, RegistryDb,
    SealedRefreshToken, SealedTicket, StoredAccount, StoredAuthorizer, StoredKey, WriteOutcome,
};
use self::keys::{KeyEntry, KeyTable};
use self::record::{RecordError, Source, ViewSettings};
use crate::api_keys::ApiKeys;
use crate::config::{Account, AccountSettings, Accounts, Component};
use crate::domain::AuthorizerStatus;
use crate::users::UserDbError;
use crate::vault::Vault;

/// One account as the registry holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub account: Arc<Account>,
    /// What its admin view shows of its settings (no secret; shared by a platform's
    /// authorizers).
    pub settings: Arc<ViewSettings>,
    pub source: Source,
    /// Created and updated (unix seconds) for database accounts.
    pub times: Option<(i64, i64)>,
}

/// Everything served at one moment; requests read it lock-free.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Config accounts in file order, then database accounts by name.
    pub accounts: Accounts,
    pub entries: BTreeMap<String, Entry>,
    pub keys: KeyTable,
    /// The live stored keys by id, for `GET /admin/api/v1/keys`.
    pub stored_keys: BTreeMap<String, KeyEntry>,
    /// The third-party platforms of the config file.
    pub components: Vec<Arc<Component>>,
    /// Every account's `verify_files` by file name (the first account serving a name wins),
    /// so `/MP_verify_…` costs one lookup however many accounts there are.
    pub verify_files: std::collections::HashMap<String, String>,
}

impl Snapshot {
    /// The platform called `name`.
    pub fn component(&self, name: &str) -> Option<&Arc<Component>> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The authorizer `appid` of the platform `component` when it is served (authorized, or
    /// with a refresh token WeChat refused), as an account.
    pub fn authorizer(&self, component: &str, appid: &str) -> Option<&Arc<Account>> {
        self.accounts
            .get(appid)
            .filter(|a| a.component() == Some(component))
    }
}

/// Why the registry cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Database(#[from] UserDbError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the database holds accounts with sealed secrets but admin.master_key is not set")]
    NoMasterKey,
}

/// What has been applied from the database.
#[derive(Default)]
struct Applied {
    seq: i64,
    accounts: BTreeMap<String, Entry>,
    keys: BTreeMap<String, KeyEntry>,
    /// Served authorizers by appid (revoked ones are not served).
    authorizers: BTreeMap<String, Entry>,
}

/// See the module documentation.
pub struct Registry {
    db: Arc<dyn RegistryDb>,
    vault: Option<Arc<Vault>>,
    config: Vec<Entry>,
    components: Vec<Arc<Component>>,
    /// Per platform (in `components`' order), the view settings all its authorizers share.
    component_views: Vec<Arc<ViewSettings>>,
    file_keys: Vec<SecretString>,
    current: ArcSwap<Snapshot>,
    applied: tokio::sync::Mutex<Applied>,
}

impl Registry {
    /// Loads everything from the database. Fails when a stored secret does not open (the
    /// error names the account and field, never the value).
    pub async fn open(
        db: Arc<dyn RegistryDb>,
        vault: Option<Vault>,
        config: Vec<AccountSettings>,
        config_accounts: &Accounts,
        components: Vec<Arc<Component>>,
        file_keys: Vec<SecretString>,
    ) -> Result<Registry, RegistryError> {
        let mut config: Vec<Entry> = config
            .into_iter()
            .filter_map(|s| {
                let account = config_accounts.get(&s.name)?;
                Some(Entry {
                    account: Arc::clone(account),
                    settings: Arc::new(ViewSettings::from(&s)),
                    source: Source::Config,
                    times: None,
                })
            })
            .collect();
        // The collect reuses the settings' (larger) buffer: give the rest back.
        config.shrink_to_fit();
        let component_views = components
            .iter()
            .map(|c| Arc::new(ViewSettings::from(&*c.authorizer_settings())))
            .collect();
        let registry = Registry {
            db,
            vault: vault.map(Arc::new),
            config,
            components,
            component_views,
            file_keys,
            current: ArcSwap::from_pointee(Snapshot::default()),
            applied: tokio::sync::Mutex::new(Applied::default()),
        };
        registry.publish(&Applied::default());
        registry.apply_changes(true).await?;
        Ok(registry)
    }

    /// What is served now.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The database behind the registry.
    pub fn db(&self) -> &Arc<dyn RegistryDb> {
        &self.db
    }

    /// The vault, or `None` when `admin.master_key` is not set.
    pub fn vault(&self) -> Option<&Arc<Vault>> {
        self.vault.as_ref()
    }

    /// Applies what changed in the database since the last call; `true` when anything did.
    /// One cheap read when nothing changed.
    ///
    /// A stored account that cannot be opened here (sealed with a master key this instance does
    /// not have) is logged and left out; at start it is an error instead ([`Registry::open`]).
    pub async fn reload(&self) -> Result<bool, RegistryError> {
        self.apply_changes(false).await
    }

    async fn apply_changes(&self, strict: bool) -> Result<bool, RegistryError> {
        let mut applied = self.applied.lock().await;
        let changes = self.db.changes_since(applied.seq).await?;
        if changes.seq == applied.seq {
            return Ok(false);
        }
        let mut next = Applied {
            seq: changes.seq,
            accounts: applied.accounts.clone(),
            keys: applied.keys.clone(),
            authorizers: applied.authorizers.clone(),
        };
        for row in &changes.accounts {
            next.accounts.remove(&row.name);
            if row.deleted {
                continue;
            }
            match self.open_row(row).await {
                Ok(Some(entry)) => {
                    next.accounts.insert(row.name.clone(), entry);
                }
                Ok(None) => {}
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::error!(account = %row.name, error = %e, "a changed account cannot be opened here and is not served");
                }
            }
        }
        for row in &changes.keys {
            next.keys.remove(&row.id);
            if let Some(entry) = KeyEntry::from_row(row) {
                next.keys.insert(row.id.clone(), entry);
            }
        }
        for row in &changes.authorizers {
            self.apply_authorizer(&mut next.authorizers, row);
            let shadowed = self.config.iter().any(|c| c.account.name == row.appid)
                || next.accounts.contains_key(&row.appid);
            if shadowed && next.authorizers.contains_key(&row.appid) {
                tracing::warn!(appid = %row.appid, component = %row.component,
                    "an account of the config file or the database has the name of this authorizer's appid; that account is served under the name, not the authorizer");
            }
        }
        self.publish(&next);
        *applied = next;
        Ok(true)
    }

    /// One changed authorizer row: served (as an account named by its appid, with its
    /// platform's settings) unless revoked or its platform is not configured here.
    fn apply_authorizer(&self, served: &mut BTreeMap<String, Entry>, row: &StoredAuthorizer) {
        let source = Source::Component(row.component.clone());
        if let Some(held) = served.get(&row.appid) {
            if held.source != source {
                tracing::warn!(appid = %row.appid, component = %row.component,
                    "an account authorized two platforms of this gateway; the first one serves it");
                return;
            }
            served.remove(&row.appid);
        }
        let Some((component, view)) = self
            .components
            .iter()
            .zip(&self.component_views)
            .find(|(c, _)| c.name == row.component)
        else {
            return;
        };
        let status = match AuthorizerStatus::parse(&row.status) {
            Some(AuthorizerStatus::Revoked) => return,
            Some(status) => status,
            None => {
                tracing::error!(appid = %row.appid, status = %row.status, "an authorizer has an unknown status and is not served");
                return;
            }
        };
        served.insert(
            row.appid.clone(),
            Entry {
                account: Arc::new(component.authorizer(&row.appid, status)),
                settings: Arc::clone(view),
                source,
                times: Some((row.authorized_at, row.updated_at)),
            },
        );
    }

    /// One stored account, opened and validated; `None` (logged) when it cannot be served.
    async fn open_row(&self, row: &StoredAccount) -> Result<Option<Entry>, RegistryError> {
        if self.config.iter().any(|c| c.account.name == row.name) {
            tracing::warn!(account = %row.name,
                "an account of the config file has the name of a database account; the config file's is served");
            return Ok(None);
        }
        let vault = self.vault.as_ref().ok_or(RegistryError::NoMasterKey)?;
        let opened = record::open(&row.name, &row.settings, &row.secrets, vault)?;
        let account = match Account::try_from(&opened.settings) {
            Ok(account) => account,
            Err(e) => {
                tracing::error!(account = %row.name, error = %e,
                    "a database account is not valid any more and is not served; PUT it again");
                return Ok(None);
            }
        };
        if opened.sealed_with_previous {
            self.reseal(row, &opened.settings, vault).await;
        }
        Ok(Some(Entry {
            account: Arc::new(account),
            settings: Arc::new(ViewSettings::from(&opened.settings)),
            source: Source::Database,
            times: Some((row.created_at, row.updated_at)),
        }))
    }

    /// Re-seals a row opened with `master_key_previous`; another instance may do it at the
    /// same moment, so a conflict is fine.
    async fn reseal(&self, row: &StoredAccount, settings: &AccountSettings, vault: &Vault) {
        let (public, secrets) = record::seal(settings, vault);
        let write = AccountWrite {
            name: &row.name,
            settings: &public,
            secrets: &secrets,
            expected_seq: Some(row.seq),
            now: row.updated_at,
        };
        match self.db.write_account(write).await {
            Ok(WriteOutcome::Written { .. }) => {
                tracing::info!(account = %row.name, "re-sealed the account's secrets with admin.master_key");
            }
            Ok(WriteOutcome::Conflict) => {}
            Err(e) => {
                tracing::warn!(account = %row.name, error = %e, "cannot re-seal the account's secrets yet");
            }
        }
    }

    fn publish(&self, applied: &Applied) {
        let mut entries: BTreeMap<String, Entry> = self
            .config
            .iter()
            .map(|e| (e.account.name.clone(), e.clone()))
            .collect();
        let mut in_order: Vec<Arc<Account>> =
            self.config.iter().map(|e| Arc::clone(&e.account)).collect();
        for (name, entry) in applied.accounts.iter().chain(&applied.authorizers) {
            if !entries.contains_key(name) {
                in_order.push(Arc::clone(&entry.account));
                entries.insert(name.clone(), entry.clone());
            }
        }
        let keys = KeyTable::new(
            ApiKeys::new(&self.file_keys),
            applied.keys.values().cloned(),
        );
        let mut verify_files = std::collections::HashMap::new();
        for account in &in_order {
            for (file, body) in &account.verify_files {
                verify_files
                    .entry(file.clone())
                    .or_insert_with(|| body.clone());
            }
        }
        self.current.store(Arc::new(Snapshot {
            accounts: Accounts::from_shared(in_order),
            entries,
            keys,
            stored_keys: applied.keys.clone(),
            components: self.components.clone(),
            verify_files,
        }));
    }
}
