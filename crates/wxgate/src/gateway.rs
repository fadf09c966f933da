//! The gateway's core state: the validated accounts and every service built around them (the
//! store, the user database, the WeChat client, the credential manager, the push runtime, the
//! web-login keys, the background tasks), built once at start by [`Gateway::build`].
//!
//! This is what every service function takes; it knows nothing of HTTP. The HTTP layer wraps it
//! in `http::AppState` and maps each service's error to an answer once.

use std::sync::Arc;

use crate::api_keys::ApiKeys;
use crate::config::{Account, Accounts, Settings};
use crate::credentials::{CredentialManager, ManagerOptions};
use crate::metrics::Metrics;
use crate::oauth::state_token::StateKeys;
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
}

/// Everything a service may need.
pub struct Gateway {
    pub settings: Settings,
    /// The validated accounts, built once from `settings` at start.
    pub accounts: Accounts,
    pub creds: Arc<CredentialManager>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub client: WechatClient,
    pub api_keys: ApiKeys,
    /// User records (`[database]`).
    pub users: Arc<dyn crate::users::UserDb>,
    /// The webhook client.
    pub push: crate::push::PushRuntime,
    /// The key of web-login states, computed once ([`crate::oauth::state_token`]).
    pub oauth_keys: StateKeys,
    /// Work that outlives its request (webhook calls, late replies); shutdown waits for it.
    pub tasks: BackgroundTasks,
}

impl Gateway {
    /// Connects the store and the user database and builds the services around `accounts`
    /// (validated from `settings` by the caller). Errors name URLs without their passwords.
    pub async fn build(settings: Settings, accounts: Accounts) -> Result<Self, StartupError> {
        let store = store::connect(&settings.storage.url, &settings.storage.key_prefix)
            .await
            .map_err(|e| StartupError::Store {
                url: redact_url(&settings.storage.url),
                reason: scrub(e.to_string(), &settings.storage.url),
            })?;
        let users = crate::users::connect(&settings.database.url)
            .await
            .map_err(|e| StartupError::Database {
                url: redact_url(&settings.database.url),
                reason: scrub(e.to_string(), &settings.database.url),
            })?;
        let push = crate::push::PushRuntime::new().map_err(StartupError::Push)?;
        let metrics = Arc::new(Metrics::new());
        let retry = RetryPolicy::default();
        let attempts = retry.attempts;
        let client = WechatClient::new(
            ClientOptions {
                api_base: settings.upstream.api_base.clone(),
                timeout: settings.upstream.timeout(),
                retry,
            },
            metrics.clone(),
        )
        .map_err(|e| StartupError::Client(e.to_string()))?;
        let creds = Arc::new(CredentialManager::new(
            &accounts,
            store.clone(),
            client.clone(),
            metrics.clone(),
            ManagerOptions::for_upstream(settings.upstream.timeout(), attempts),
        ));
        let api_keys = ApiKeys::new(&settings.api.keys);
        let oauth_keys = StateKeys::new(settings.server.state_secret.clone());
        Ok(Gateway {
            settings,
            accounts,
            creds,
            store,
            metrics,
            client,
            api_keys,
            users,
            push,
            oauth_keys,
            tasks: BackgroundTasks::new(),
        })
    }

    /// The account named `name`, if it is configured.
    pub fn account(&self, name: &str) -> Option<&Arc<Account>> {
        self.accounts.get(name)
    }
}
