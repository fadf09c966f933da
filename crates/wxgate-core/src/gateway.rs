//! The gateway's core state: the validated accounts and every service built around them (the
//! store, the user database, the WeChat client, the credential manager, the webhook client, the
//! web-login keys, the background tasks), built once at start by [`Gateway::build`].
//!
//! This is what every service function takes; it knows nothing of HTTP. The HTTP layer wraps it
//! in `http::AppState` and maps each service's error to an answer once.

use std::sync::Arc;

use crate::activity::{Activity, ActivityOptions};
use crate::api_keys::ApiKeys;
use crate::config::{Account, Settings, Validated};
use crate::credentials::{CredentialManager, ManagerOptions};
use crate::login_keys::StateKeys;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::scrub::{redact_url, scrub};
use crate::store::{self, Store};
use crate::tasks::BackgroundTasks;
use crate::upstream::{ClientOptions, RetryPolicy, WechatClient};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("cannot open storage {url}: {reason}")]
    Store { url: String, reason: String },
    #[error("cannot create the WeChat client: {0}")]
    Client(String),
    #[error("cannot open the user database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("push setup failed: {0}")]
    Push(String),
    #[error("cannot load the accounts and keys of the database: {0}")]
    Registry(String),
}

/// How often the registry's change counter is read: changes made elsewhere are in force within
/// this plus one read (SPEC.md: 2 s).
pub const REGISTRY_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Everything a service may need.
pub struct Gateway {
    pub settings: Settings,
    /// Every account and API key, from the config file and the database
    /// ([`crate::registry`]): read [`Gateway::account`] or [`Registry::snapshot`].
    pub registry: Registry,
    pub creds: Arc<CredentialManager>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub client: WechatClient,
    /// Digests of `admin.keys`.
    pub admin_keys: ApiKeys,
    /// User records (`[database]`).
    pub users: Arc<dyn crate::users::UserDb>,
    /// The authorizers of third-party platforms (`[database]`).
    pub authorizers: Arc<dyn crate::registry::AuthorizerDb>,
    /// The client that calls webhooks.
    pub webhooks: crate::upstream::WebhookClient,
    /// The key of web-login states, computed once ([`crate::login_keys`]).
    pub oauth_keys: StateKeys,
    /// Work that outlives its request (webhook calls, late replies); shutdown waits for it.
    pub tasks: BackgroundTasks,
    /// What wxgate observed per account, for the admin console ([`crate::activity`]); its
    /// `run_background` is spawned at start.
    pub activity: Arc<Activity>,
}

impl Gateway {
    /// Connects the store and the user database and builds the services around `accounts`
    /// (validated from `settings` by the caller). Errors name URLs without their passwords.
    ///
    /// The config file's account settings move into the registry (which serves their admin
    /// view), so `settings.accounts` is empty in the gateway's copy: one copy per account,
    /// not two.
    pub async fn build(mut settings: Settings, validated: Validated) -> Result<Self, StartupError> {
        let store = store::connect(&settings.storage.url, &settings.storage.key_prefix)
            .await
            .map_err(|e| StartupError::Store {
                url: redact_url(&settings.storage.url),
                reason: scrub(e.to_string(), &settings.storage.url),
            })?;
        let database = crate::database::connect(&settings.database.url)
            .await
            .map_err(|e| StartupError::Database {
                url: redact_url(&settings.database.url),
                reason: scrub(e.to_string(), &settings.database.url),
            })?;
        let users = database.users;
        adopt_legacy_users(users.as_ref(), &settings).await;
        let registry = Registry::open(
            database.registry,
            settings.admin.vault()?,
            std::mem::take(&mut settings.accounts),
            &validated.accounts,
            validated.components.clone(),
            settings.api.keys.clone(),
        )
        .await
        .map_err(|e| StartupError::Registry(scrub(e.to_string(), &settings.database.url)))?;
        let authorizers = database.authorizers;
        let webhooks = crate::upstream::WebhookClient::new().map_err(StartupError::Push)?;
        let metrics = Arc::new(Metrics::new());
        let store: Arc<dyn store::Store> = Arc::new(store::CountedStore::new(store, &metrics));
        let activity = Arc::new(Activity::new(
            store.clone(),
            ActivityOptions {
                keep_message_content: settings.admin.console_message_content,
                ..ActivityOptions::new(env!("CARGO_PKG_VERSION"))
            },
        ));
        metrics.attach_activity(Arc::clone(&activity));
        let retry = RetryPolicy::default();
        let attempts = retry.attempts;
        let client = WechatClient::new(
            ClientOptions {
                api_base: settings.upstream.api_base.clone(),
                timeout: settings.upstream.timeout(),
                retry,
                max_in_flight: settings.upstream.in_flight_limit(),
            },
            metrics.clone(),
        )
        .map_err(|e| StartupError::Client(e.to_string()))?;
        let creds = Arc::new(CredentialManager::new(
            &registry.snapshot().accounts,
            &validated.components,
            store.clone(),
            client.clone(),
            metrics.clone(),
            ManagerOptions::for_upstream(settings.upstream.timeout(), attempts),
        ));
        if let Some(vault) = registry.vault() {
            creds.set_platform_secrets(Arc::new(
                crate::registry::platform_secrets::SealedPlatformSecrets::new(
                    Arc::clone(&authorizers),
                    Arc::clone(vault),
                ),
            ));
        }
        let admin_keys = ApiKeys::new(&settings.admin.keys);
        let oauth_keys = StateKeys::new(settings.server.state_secret.clone());
        Ok(Gateway {
            settings,
            registry,
            creds,
            store,
            metrics,
            client,
            admin_keys,
            users,
            authorizers,
            webhooks,
            oauth_keys,
            tasks: BackgroundTasks::new(),
            activity,
        })
    }

    /// The account named `name` as served now, if there is one. A request keeps the `Arc` it
    /// got to its end, so a concurrent replace never mixes old and new settings in it.
    pub fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.registry.snapshot().accounts.get(name).cloned()
    }

    /// Applies the registry's changes (from this instance's admin API or another instance's)
    /// to the snapshot and the credential manager; `true` when anything changed.
    pub async fn follow_registry(&self) -> Result<bool, crate::registry::RegistryError> {
        let changed = self.registry.reload().await?;
        if changed {
            let snapshot = self.registry.snapshot();
            self.creds.sync(&snapshot.accounts, &snapshot.components);
        }
        Ok(changed)
    }

    /// Follows the registry every [`REGISTRY_POLL`] until the process ends: what another
    /// instance changes is in force here within 2 s.
    pub async fn run_registry_watch(self: Arc<Self>) {
        let mut failing = false;
        loop {
            tokio::time::sleep(REGISTRY_POLL).await;
            match self.follow_registry().await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot read the registry's changes; serving what was read last");
                }
                Err(_) => {}
            }
        }
    }
}

/// Gives the user records from before users belonged to accounts (migration 0003) to their
/// account: `database.legacy_users_account`, or the config file's only account. With several
/// accounts and no such key they stay unread, and the log says how to claim them.
async fn adopt_legacy_users(users: &dyn crate::users::UserDb, settings: &Settings) {
    let owner = match (
        &settings.database.legacy_users_account,
        settings.accounts.as_slice(),
    ) {
        (Some(owner), _) => owner.as_str(),
        (None, [only]) => only.name.as_str(),
        (None, _) => {
            if users.list(None, 1).await.is_ok_and(|rows| !rows.is_empty()) {
                tracing::warn!(
                    "user records from before users belonged to accounts are not shown: set \
                     database.legacy_users_account to the account they belong to"
                );
            }
            return;
        }
    };
    match users.adopt_legacy(owner).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(account = %owner, users = n, "user records from before users belonged to accounts now belong to this account")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot assign the older user records to their account")
        }
    }
}
