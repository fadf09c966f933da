//! Configuration: the TOML file of SPEC.md, overridden by `WXGATE__SECTION__KEY` environment
//! variables, validated into typed settings before anything starts.
//!
//! A gateway that starts with a half-valid config fails later at the worst moment (the first
//! push of the day, a token refresh at 3 a.m.), so every rule WeChat imposes on a value is checked
//! here, and a bad value is reported with the exact key (`accounts[0].encoding_aes_key`) and
//! what is wrong with it. Unknown keys are errors too: a typo must not silently fall back to a
//! default. Secrets are held in [`SecretString`] from the moment they are read, so no `Debug`
//! print or log line can show them.
//!
//! The serde structs of this file are the file and environment contract ([`Settings`],
//! [`AccountSettings`], …); `load` reads them, [`validate`] checks them in one pass, one
//! function per key or group, and turns every account into the ready-to-use [`Account`] (AppID,
//! secrets, the EncodingAESKey [`KeyRing`](wxgate_proto::KeyRing), compiled [`rule`]s, parsed
//! [`DomainPattern`]s). Nothing downstream parses configuration again.

mod account;
mod component;
pub mod domain_pattern;
mod load;
pub mod rule;
pub mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{AccountKind, DataFormat, TokenApi};

pub use self::account::{Account, Accounts, NotSupported, TokenSource, WebhookTarget};
pub use self::component::{Component, Validated};
pub use self::domain_pattern::DomainPattern;

/// Why a configuration was rejected. `key` is the dotted path of the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl ConfigError {
    /// The same error with its key put under `prefix` (`appid` under `accounts[0]` is
    /// `accounts[0].appid`; an empty key becomes `prefix` itself).
    pub fn under(self, prefix: &str) -> ConfigError {
        match self {
            ConfigError::Invalid { key, message } if key.is_empty() => invalid(prefix, message),
            ConfigError::Invalid { key, message } => invalid(format!("{prefix}.{key}"), message),
            other => other,
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub push: PushSettings,
    #[serde(default)]
    pub upstream: UpstreamSettings,
    #[serde(default)]
    pub api: ApiSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub accounts: Vec<AccountSettings>,
    /// Third-party platforms (开放平台 第三方平台) whose authorized accounts wxgate serves.
    #[serde(default)]
    pub components: Vec<ComponentSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `address:port` to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How WeChat and browsers reach this server; used to build OAuth `redirect_uri`s.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Body limit for push and proxy requests.
    #[serde(default = "default_max_body", deserialize_with = "de_u64")]
    pub max_body_bytes: u64,
    /// Most client connections served at once; further connections wait in the kernel's
    /// accept queue until one closes.
    #[serde(default = "default_max_connections", deserialize_with = "de_u64")]
    pub max_connections: u64,
    /// How long a client may take to send a request's headers.
    #[serde(
        default = "default_header_read_timeout_ms",
        deserialize_with = "de_u64"
    )]
    pub header_read_timeout_ms: u64,
    /// Deadline of a whole request (body read, work and answer) on every route but the
    /// streaming API proxy, which has its own silence bound.
    #[serde(default = "default_request_timeout_ms", deserialize_with = "de_u64")]
    pub request_timeout_ms: u64,
    /// On SIGTERM: how long in-flight requests, webhook calls and late replies may still run.
    #[serde(default = "default_shutdown_grace_s", deserialize_with = "de_u64")]
    pub shutdown_grace_s: u64,
    /// When set, `/metrics` answers only `Authorization: Bearer <metrics_token>`.
    #[serde(default)]
    pub metrics_token: Option<SecretString>,
    /// When set, `/metrics` is served on this separate `address:port` only (and no longer on
    /// `listen`).
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Key material for the web-login state tokens (any string of 32+ characters). When unset,
    /// wxgate generates one and keeps it in the shared store, so every instance agrees.
    #[serde(default)]
    pub state_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    #[serde(default = "default_sqlite_url")]
    pub url: String,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(default = "default_sqlite_url")]
    pub url: String,
    /// The account that takes the user records written before users belonged to accounts,
    /// when the config file has several (with one, that one takes them).
    #[serde(default)]
    pub legacy_users_account: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Pushes whose `timestamp` is further than this from now are refused; 0 disables the check.
    #[serde(default = "default_replay_window", deserialize_with = "de_u64")]
    pub replay_window_s: u64,
    /// How long a push's answer is kept for WeChat's retries.
    #[serde(default = "default_dedup_ttl", deserialize_with = "de_u64")]
    pub dedup_ttl_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    #[serde(default = "default_api_base")]
    pub api_base: String,
    #[serde(default = "default_open_base")]
    pub open_base: String,
    /// Where the third-party platform's authorization pages are (`componentloginpage`).
    #[serde(default = "default_mp_base")]
    pub mp_base: String,
    /// Bound of each upstream attempt (the wait for a free call included).
    #[serde(default = "default_timeout_ms", deserialize_with = "de_u64")]
    pub timeout_ms: u64,
    /// Most WeChat calls in flight at once on this instance (every account together); further
    /// calls queue in arrival order ([`crate::upstream::UpstreamLimit`]).
    #[serde(default = "default_max_in_flight", deserialize_with = "de_u64")]
    pub max_in_flight: u64,
}

/// The largest `upstream.max_in_flight` accepted.
pub const MAX_IN_FLIGHT_LIMIT: u64 = 10_000;

impl UpstreamSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `max_in_flight` as a count of calls, kept within `1..=10000` (what validation accepts)
    /// should settings skip validation.
    pub fn in_flight_limit(&self) -> usize {
        usize::try_from(self.max_in_flight.clamp(1, MAX_IN_FLIGHT_LIMIT)).unwrap_or(1)
    }
}

impl ServerSettings {
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `header_read_timeout_ms` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// `shutdown_grace_s` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_s)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer keys accepted on `/api/*`. None configured = the business API is disabled.
    #[serde(default, deserialize_with = "de_secret_list")]
    pub keys: Vec<SecretString>,
}

/// `[admin]`: the admin API's keys and the master key of the secrets kept in the database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer keys accepted on `/admin/*`. None configured = the admin API is disabled.
    #[serde(default, deserialize_with = "de_secret_list")]
    pub keys: Vec<SecretString>,
    /// 32 random bytes, standard base64: seals every secret kept in the database
    /// ([`crate::vault`]). Required as soon as one is stored there.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    /// The key before a rotation: still opens, and what it opens is re-sealed with `master_key`.
    #[serde(default)]
    pub master_key_previous: Option<SecretString>,
    /// The admin console's list of recent pushes keeps each message's text (at most 200
    /// characters). Off by default: only the type, time and who answered.
    #[serde(default)]
    pub console_message_content: bool,
}

impl AdminSettings {
    /// The vault of `master_key` (and `master_key_previous`), or `None` when no master key is
    /// configured. Errors name the key, never its value.
    pub fn vault(&self) -> Result<Option<crate::vault::Vault>, ConfigError> {
        let parse = |key: &str, value: &SecretString| {
            crate::vault::MasterKey::from_base64(value.expose_secret())
                .map_err(|why| invalid(key, why))
        };
        let previous = match &self.master_key_previous {
            Some(v) => Some(parse("admin.master_key_previous", v)?),
            None => None,
        };
        match &self.master_key {
            Some(v) => Ok(Some(crate::vault::Vault::new(
                parse("admin.master_key", v)?,
                previous,
            ))),
            None if previous.is_some() => Err(invalid(
                "admin.master_key_previous",
                "is set without admin.master_key (the previous key only opens; set the new one)",
            )),
            None => Ok(None),
        }
    }
}

/// One Official Account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub name: String,
    pub appid: String,
    #[serde(skip_serializing)]
    pub secret: SecretString,
    #[serde(default, skip_serializing)]
    pub token: Option<SecretString>,
    #[serde(default, skip_serializing)]
    pub encoding_aes_key: Option<SecretString>,
    #[serde(default, skip_serializing)]
    pub encoding_aes_key_previous: Option<SecretString>,
    #[serde(default)]
    pub token_api: TokenApi,
    #[serde(default, deserialize_with = "de_string_list")]
    pub js_domains: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    pub oauth_redirects: Vec<String>,
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    #[serde(default, deserialize_with = "de_string_list")]
    pub proxy_allow: Vec<String>,
    #[serde(default)]
    pub verify_files: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    /// With an `encoding_aes_key`: still accept plaintext pushes (only for the minutes of a
    /// switch-over to safe mode in WeChat's console). Without a key it changes nothing.
    #[serde(default)]
    pub accept_plaintext: bool,
    /// `"official"` (default) or `"miniprogram"`.
    #[serde(default, skip_serializing_if = "AccountKind::is_official")]
    pub kind: AccountKind,
    /// `"xml"` (default) or `"json"`: the format of the account's pushes (and passive replies).
    #[serde(default, skip_serializing_if = "DataFormat::is_xml")]
    pub data_format: DataFormat,
}

/// One third-party platform (`[[components]]`): its own credentials, where merchants may be sent
/// after authorizing, and the settings every authorized account inherits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    pub name: String,
    /// The component_appid.
    pub appid: String,
    /// The component_appsecret.
    pub secret: SecretString,
    /// The message verification Token of the platform.
    pub token: SecretString,
    /// The platform's EncodingAESKey: its messages are always encrypted.
    pub encoding_aes_key: SecretString,
    #[serde(default)]
    pub encoding_aes_key_previous: Option<SecretString>,
    /// Allowed prefixes of the page a merchant is sent to after authorizing.
    #[serde(default, deserialize_with = "de_string_list")]
    pub auth_redirects: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    pub js_domains: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    pub oauth_redirects: Vec<String>,
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    #[serde(default, deserialize_with = "de_string_list")]
    pub proxy_allow: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    #[serde(skip_serializing)]
    pub secret: SecretString,
    /// How long WeChat's push waits for the webhook before answering `success`; the webhook's
    /// later answer is then sent with the customer-service API.
    #[serde(default = "default_webhook_timeout", deserialize_with = "de_u64")]
    pub timeout_ms: u64,
}

/// A passive-reply rule. Exactly one of `event`, `keyword`, `regex` selects the messages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    #[serde(default)]
    pub event: Option<String>,
    /// With `event`: only events with this EventKey (e.g. a menu CLICK key).
    #[serde(default)]
    pub event_key: Option<String>,
    #[serde(default)]
    pub keyword: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// The reply in the JSON shape of the webhook answer (`{type = "text", content = "..."}`),
    /// checked against [`wxgate_proto::Reply`] at load time.
    pub reply: serde_json::Value,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    1_048_576
}
fn default_max_connections() -> u64 {
    10_000
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_shutdown_grace_s() -> u64 {
    30
}
fn default_sqlite_url() -> String {
    "sqlite://wxgate.db".into()
}
fn default_key_prefix() -> String {
    "wxgate:".into()
}
fn default_replay_window() -> u64 {
    600
}
fn default_dedup_ttl() -> u64 {
    300
}
fn default_api_base() -> String {
    "https://api.weixin.qq.com".into()
}
fn default_open_base() -> String {
    "https://open.weixin.qq.com".into()
}
fn default_mp_base() -> String {
    "https://mp.weixin.qq.com".into()
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_max_in_flight() -> u64 {
    64
}
fn default_webhook_timeout() -> u64 {
    3000
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: default_public_url(),
            max_body_bytes: default_max_body(),
            max_connections: default_max_connections(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            shutdown_grace_s: default_shutdown_grace_s(),
            metrics_token: None,
            metrics_listen: None,
            state_secret: None,
        }
    }
}
impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: default_sqlite_url(),
            key_prefix: default_key_prefix(),
        }
    }
}
impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_sqlite_url(),
            legacy_users_account: None,
        }
    }
}
impl Default for PushSettings {
    fn default() -> Self {
        Self {
            replay_window_s: default_replay_window(),
            dedup_ttl_s: default_dedup_ttl(),
        }
    }
}
impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            api_base: default_api_base(),
            open_base: default_open_base(),
            mp_base: default_mp_base(),
            timeout_ms: default_timeout_ms(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

// Environment variables always carry strings, so numeric and list keys accept a string form too
// (`WXGATE__SERVER__MAX_BODY_BYTES=2048`, `WXGATE__API__KEYS=k1,k2`).

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected a whole number, got {s:?}"))),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrStr {
    List(Vec<String>),
    Str(String),
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrStr::deserialize(d)? {
        ListOrStr::List(v) => v,
        ListOrStr::Str(s) => split_list(&s),
    })
}

fn de_secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(de_string_list(d)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

#[cfg(test)]
mod tests;
