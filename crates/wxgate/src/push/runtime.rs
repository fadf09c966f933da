//! Per-account push material, prepared once at start so that a push costs no parsing of
//! configuration: the server Token, the EncodingAESKey ring (current + previous key), the
//! compiled rules and the webhook target. A config that cannot be turned into these (which
//! `Settings::validate` already rules out) stops wxgate at start instead of failing pushes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use wxgate_proto::KeyRing;

use super::rules::Rule;
use crate::config::{AccountSettings, Settings};
use crate::http::ApiError;

/// Where an account's webhook lives and how it is signed.
pub struct WebhookTarget {
    pub url: String,
    pub secret: SecretString,
    /// How long WeChat's push waits for the answer (`webhook.timeout_ms`).
    pub timeout: Duration,
}

/// One account's push configuration in ready-to-use form. `Debug` is not derived: it holds the
/// Token and the AES keys.
pub struct AccountPush {
    pub name: String,
    pub appid: String,
    token: Option<SecretString>,
    /// `None` when the account has no `encoding_aes_key` (plaintext mode only).
    pub keyring: Option<KeyRing>,
    pub rules: Vec<Rule>,
    pub webhook: Option<WebhookTarget>,
    /// `accept_plaintext`: plaintext pushes are still accepted although a key is configured.
    pub accept_plaintext: bool,
}

impl AccountPush {
    fn new(a: &AccountSettings) -> Result<Self, String> {
        let keyring = match &a.encoding_aes_key {
            Some(current) => Some(
                KeyRing::from_encoding_aes_keys(
                    current.expose_secret(),
                    a.encoding_aes_key_previous
                        .as_ref()
                        .map(|k| k.expose_secret()),
                )
                .map_err(|e| format!("account {:?}: encoding_aes_key: {e}", a.name))?,
            ),
            None => None,
        };
        let rules = a
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Rule::from_settings(r).map_err(|e| format!("account {:?}: rules[{i}]: {e}", a.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccountPush {
            name: a.name.clone(),
            appid: a.appid.clone(),
            token: a.token.clone(),
            keyring,
            rules,
            webhook: a.webhook.as_ref().map(|w| WebhookTarget {
                url: w.url.clone(),
                secret: w.secret.clone(),
                timeout: Duration::from_millis(w.timeout_ms),
            }),
            accept_plaintext: a.accept_plaintext,
        })
    }

    /// The server Token, or 403 `push_disabled` when none is configured: without it no push
    /// can be authenticated, so the account does not take part in message push at all.
    pub fn token(&self) -> Result<&str, ApiError> {
        self.token
            .as_ref()
            .map(|t| t.expose_secret())
            .ok_or_else(|| {
                ApiError::client(
                    StatusCode::FORBIDDEN,
                    "push_disabled",
                    format!(
                        "message push is disabled for account {:?}: configure its `token` \
                         (the Token of the server configuration in the WeChat console)",
                        self.name
                    ),
                )
            })
    }
}

/// Per-account push material prepared once at start (key rings, compiled rules), plus the
/// HTTP client that calls webhooks.
pub struct PushRuntime {
    accounts: HashMap<String, Arc<AccountPush>>,
    pub(crate) webhook_http: reqwest::Client,
}

impl PushRuntime {
    /// Prepares every account of `settings`. Fails with a sentence naming the account and key
    /// when a key or a rule cannot be used.
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let accounts = settings
            .accounts
            .iter()
            .map(|a| Ok((a.name.clone(), Arc::new(AccountPush::new(a)?))))
            .collect::<Result<HashMap<_, _>, String>>()?;
        let webhook_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(PushRuntime {
            accounts,
            webhook_http,
        })
    }

    /// The account called `name`, or 404 `unknown_account`.
    pub fn account(&self, name: &str) -> Result<Arc<AccountPush>, ApiError> {
        self.accounts
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::UnknownAccount(name.to_owned()))
    }
}
