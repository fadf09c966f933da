//! Configuration: the TOML file of SPEC.md, overridden by `WXGATE__SECTION__KEY` environment
//! variables, validated into typed settings before anything starts.
//!
//! A gateway that starts with a half-valid config fails later at the worst moment (the first
//! push of the day, a token refresh at 3 a.m.), so every rule WeChat imposes on a value is checked
//! here, and a bad value is reported with the exact key (`accounts[0].encoding_aes_key`) and
//! what is wrong with it. Unknown keys are errors too: a typo must not silently fall back to a
//! default. Secrets are held in [`SecretString`] from the moment they are read, so no `Debug`
//! print or log line can show them.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::domain::TokenApi;

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
    pub accounts: Vec<AccountSettings>,
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
    /// Bound of each upstream attempt.
    #[serde(default = "default_timeout_ms", deserialize_with = "de_u64")]
    pub timeout_ms: u64,
}

impl UpstreamSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer keys accepted on `/api/*`. None configured = the business API is disabled.
    #[serde(default, deserialize_with = "de_secret_list")]
    pub keys: Vec<SecretString>,
}

/// One Official Account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub name: String,
    pub appid: String,
    pub secret: SecretString,
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub encoding_aes_key: Option<SecretString>,
    #[serde(default)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: SecretString,
    /// How long WeChat's push waits for the webhook before answering `success`; the webhook's
    /// later answer is then sent with the customer-service API.
    #[serde(default = "default_webhook_timeout", deserialize_with = "de_u64")]
    pub timeout_ms: u64,
}

/// A passive-reply rule. Exactly one of `event`, `keyword`, `regex` selects the messages.
#[derive(Debug, Clone, Deserialize)]
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
fn default_timeout_ms() -> u64 {
    5000
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
            timeout_ms: default_timeout_ms(),
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

const ENV_PREFIX: &str = "WXGATE__";

impl Settings {
    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml_and_env(&text, std::env::vars())
    }

    /// Parses `text`, applies the `WXGATE__…` variables among `env`, validates.
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        apply_env(&mut table, env)?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                invalid(
                    if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    e.into_inner().to_string(),
                )
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value against what WeChat and wxgate accept.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.listen",
                "expected address:port, e.g. 127.0.0.1:8080",
            )
        })?;
        check_http_url("server.public_url", &self.server.public_url)?;
        if self.server.public_url.ends_with('/') {
            return Err(invalid(
                "server.public_url",
                "must not end with '/' (paths are appended to it)",
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be at least 1024 bytes",
            ));
        }
        self.validate_server_limits()?;
        check_store_url("storage.url", &self.storage.url, true)?;
        check_store_url("database.url", &self.database.url, false)?;
        check_http_url("upstream.api_base", &self.upstream.api_base)?;
        check_http_url("upstream.open_base", &self.upstream.open_base)?;
        if self.upstream.timeout_ms == 0 || self.upstream.timeout_ms > 60_000 {
            return Err(invalid(
                "upstream.timeout_ms",
                "must be between 1 and 60000 milliseconds",
            ));
        }
        if self.push.dedup_ttl_s == 0 {
            return Err(invalid(
                "push.dedup_ttl_s",
                "must be at least 1 second (WeChat retries within 15 seconds)",
            ));
        }
        for (i, key) in self.api.keys.iter().enumerate() {
            let k = key.expose_secret();
            if k.trim().is_empty() || k.chars().any(char::is_whitespace) {
                return Err(invalid(
                    format!("api.keys[{i}]"),
                    "must be a non-empty string without spaces",
                ));
            }
        }

        let name_re = regex_ok(r"^[a-z0-9_-]{1,32}$");
        let appid_re = regex_ok(r"^wx[0-9A-Za-z]{16}$");
        let token_re = regex_ok(r"^[A-Za-z0-9]{3,32}$");
        let aes_re = regex_ok(r"^[A-Za-z0-9]{43}$");
        let verify_re = regex_ok(r"^MP_verify_[A-Za-z0-9]+\.txt$");
        let mut names = HashSet::new();
        let mut verify_names: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let at = |k: &str| format!("accounts[{i}].{k}");
            if !name_re.is_match(&a.name) {
                return Err(invalid(
                    at("name"),
                    format!(
                        "{:?} must be 1-32 characters of a-z, 0-9, '_' or '-'",
                        a.name
                    ),
                ));
            }
            if !names.insert(a.name.as_str()) {
                return Err(invalid(
                    at("name"),
                    format!("duplicate account name {:?}", a.name),
                ));
            }
            if !appid_re.is_match(&a.appid) {
                return Err(invalid(
                    at("appid"),
                    format!(
                        "{:?} is not a WeChat AppID (\"wx\" followed by 16 letters or digits)",
                        a.appid
                    ),
                ));
            }
            let secret = a.secret.expose_secret();
            if secret.is_empty() || secret.chars().any(char::is_whitespace) {
                return Err(invalid(
                    at("secret"),
                    "the AppSecret must be non-empty and contain no spaces",
                ));
            }
            if let Some(t) = &a.token {
                if !token_re.is_match(t.expose_secret()) {
                    return Err(invalid(
                        at("token"),
                        "the server Token must be 3-32 letters or digits",
                    ));
                }
            }
            for (k, v) in [
                ("encoding_aes_key", &a.encoding_aes_key),
                ("encoding_aes_key_previous", &a.encoding_aes_key_previous),
            ] {
                if let Some(key) = v {
                    if !aes_re.is_match(key.expose_secret()) {
                        return Err(invalid(
                            at(k),
                            format!(
                                "must be exactly 43 letters or digits (got {} characters)",
                                key.expose_secret().chars().count()
                            ),
                        ));
                    }
                }
            }
            if a.encoding_aes_key_previous.is_some() && a.encoding_aes_key.is_none() {
                return Err(invalid(
                    at("encoding_aes_key_previous"),
                    "is set but encoding_aes_key is not",
                ));
            }
            for (j, d) in a.js_domains.iter().enumerate() {
                check_domain_pattern(&format!("accounts[{i}].js_domains[{j}]"), d)?;
            }
            for (j, r) in a.oauth_redirects.iter().enumerate() {
                check_http_url(&format!("accounts[{i}].oauth_redirects[{j}]"), r)?;
            }
            if let Some(w) = &a.webhook {
                check_http_url(&at("webhook.url"), &w.url)?;
                if w.secret.expose_secret().is_empty() {
                    return Err(invalid(at("webhook.secret"), "must not be empty"));
                }
                if w.timeout_ms == 0 || w.timeout_ms > 4_500 {
                    return Err(invalid(
                        at("webhook.timeout_ms"),
                        "must be between 1 and 4500 ms (WeChat gives up after 5 s)",
                    ));
                }
            }
            for (j, p) in a.proxy_allow.iter().enumerate() {
                if !p.starts_with('/') {
                    return Err(invalid(
                        format!("accounts[{i}].proxy_allow[{j}]"),
                        format!("{p:?} must be a path prefix starting with '/'"),
                    ));
                }
            }
            for (file, body) in &a.verify_files {
                if !verify_re.is_match(file) {
                    return Err(invalid(
                        format!("accounts[{i}].verify_files.{file}"),
                        "file names must look like MP_verify_AbC123.txt",
                    ));
                }
                if let Some(prev) = verify_names.insert(file.as_str(), body.as_str()) {
                    if prev != body {
                        return Err(invalid(
                            format!("accounts[{i}].verify_files.{file}"),
                            "another account serves this file with a different body",
                        ));
                    }
                }
            }
            for (j, rule) in a.rules.iter().enumerate() {
                let key = format!("accounts[{i}].rules[{j}]");
                let selectors = [&rule.event, &rule.keyword, &rule.regex]
                    .iter()
                    .filter(|s| s.is_some())
                    .count();
                if selectors != 1 {
                    return Err(invalid(
                        key,
                        "a rule needs exactly one of `event`, `keyword` or `regex`",
                    ));
                }
                if rule.event_key.is_some() && rule.event.is_none() {
                    return Err(invalid(
                        format!("{key}.event_key"),
                        "only allowed together with `event`",
                    ));
                }
                if let Some(re) = &rule.regex {
                    Regex::new(re).map_err(|e| invalid(format!("{key}.regex"), e.to_string()))?;
                }
                serde_json::from_value::<wxgate_proto::Reply>(rule.reply.clone())
                    .map_err(|e| invalid(format!("{key}.reply"), e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The account called `name`.
    /// The connection, deadline, shutdown and `/metrics` keys of `[server]`.
    fn validate_server_limits(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_connections == 0 || s.max_connections > 1_000_000 {
            return Err(invalid(
                "server.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if s.header_read_timeout_ms < 100 || s.header_read_timeout_ms > 300_000 {
            return Err(invalid(
                "server.header_read_timeout_ms",
                "must be between 100 and 300000 milliseconds",
            ));
        }
        if s.request_timeout_ms < 1000 || s.request_timeout_ms > 600_000 {
            return Err(invalid(
                "server.request_timeout_ms",
                "must be between 1000 and 600000 milliseconds",
            ));
        }
        if s.shutdown_grace_s > 3600 {
            return Err(invalid(
                "server.shutdown_grace_s",
                "must be at most 3600 seconds",
            ));
        }
        if let Some(token) = &s.metrics_token {
            let t = token.expose_secret();
            if t.len() < 16 || t.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "server.metrics_token",
                    "must be at least 16 characters without spaces",
                ));
            }
        }
        if let Some(addr) = &s.metrics_listen {
            addr.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "server.metrics_listen",
                    "expected address:port, e.g. 127.0.0.1:9090",
                )
            })?;
        }
        if let Some(secret) = &s.state_secret {
            if secret.expose_secret().len() < 32 {
                return Err(invalid(
                    "server.state_secret",
                    "must be at least 32 characters (use a random string)",
                ));
            }
        }
        Ok(())
    }

    pub fn account(&self, name: &str) -> Option<&AccountSettings> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

fn regex_ok(pattern: &str) -> Regex {
    // The patterns are literals of this file; a failure is a programming error caught by tests.
    Regex::new(pattern).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
}

fn check_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(())
        }
        _ => Err(invalid(
            key,
            format!(
                "{:?} is not an absolute http:// or https:// URL",
                crate::scrub::redact_url(value)
            ),
        )),
    }
}

fn check_store_url(key: &str, value: &str, redis_allowed: bool) -> Result<(), ConfigError> {
    let ok = value.starts_with("sqlite:")
        || (redis_allowed && (value == "memory://" || value.starts_with("redis://")))
        || (!redis_allowed
            && (value.starts_with("postgres://") || value.starts_with("postgresql://")));
    if ok {
        Ok(())
    } else if redis_allowed {
        Err(invalid(
            key,
            format!(
                "{:?}: expected sqlite://PATH, memory:// or redis://HOST:PORT/DB",
                crate::scrub::redact_url(value)
            ),
        ))
    } else {
        Err(invalid(
            key,
            format!(
                "{:?}: expected sqlite://PATH or postgres://USER@HOST/DB",
                crate::scrub::redact_url(value)
            ),
        ))
    }
}

/// A `js_domains` entry: a host name or `*.` + a host name, optionally `:port`. A scheme or a
/// path is refused (such an entry would never match a page, silently).
fn check_domain_pattern(key: &str, value: &str) -> Result<(), ConfigError> {
    let (host, port) = match value.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid = port_ok
        && !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value:?} must be a host name like h5.example.com or *.example.com, optionally with :port (no scheme, no path)"),
        ))
    }
}

/// Applies `WXGATE__SECTION__KEY=value` variables onto the parsed file. Account values are
/// addressed by name: `WXGATE__ACCOUNTS__MAIN__SECRET` sets `secret` of the account named
/// `main` (a `-` in a name is written `_`).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let parts: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if parts.iter().any(String::is_empty) {
            return Err(invalid(name, "malformed variable name"));
        }
        let value = env_value(&value);
        if parts[0] == "accounts" {
            let [_, account, key @ ..] = parts.as_slice() else {
                return Err(invalid(name, "expected WXGATE__ACCOUNTS__<NAME>__<KEY>"));
            };
            if key.is_empty() {
                return Err(invalid(name, "expected WXGATE__ACCOUNTS__<NAME>__<KEY>"));
            }
            let accounts = table
                .get_mut("accounts")
                .and_then(toml::Value::as_array_mut)
                .ok_or_else(|| invalid(&name, "no [[accounts]] in the config file"))?;
            let entry = accounts
                .iter_mut()
                .filter_map(toml::Value::as_table_mut)
                .find(|t| {
                    t.get("name")
                        .and_then(toml::Value::as_str)
                        .is_some_and(|n| n.replace('-', "_") == *account)
                })
                .ok_or_else(|| {
                    invalid(
                        &name,
                        format!("no account named {account:?} in the config file"),
                    )
                })?;
            set_path(entry, key, value);
        } else {
            set_path(table, &parts, value);
        }
    }
    Ok(())
}

/// Lists written `[a, b]` in a variable are parsed as TOML; everything else stays a string
/// (the typed fields accept strings where a number is expected).
fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {trimmed}")) {
            if let Some(v) = t.get("v") {
                return v.clone();
            }
        }
    }
    if trimmed == "true" || trimmed == "false" {
        return toml::Value::Boolean(trimmed == "true");
    }
    toml::Value::String(raw.to_owned())
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !child.is_table() {
                *child = toml::Value::Table(toml::Table::new());
            }
            if let Some(t) = child.as_table_mut() {
                set_path(t, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[accounts]]
name = "main"
appid = "wx1234567890abcdef"
secret = "s3cr3t-app-secret"
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_toml_and_env(
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn err_key(r: Result<Settings, ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_every_section_but_the_account_credentials() {
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8080");
        assert_eq!(s.server.max_body_bytes, 1_048_576);
        assert_eq!(s.storage.url, "sqlite://wxgate.db");
        assert_eq!(s.storage.key_prefix, "wxgate:");
        assert_eq!(s.push.replay_window_s, 600);
        assert_eq!(s.upstream.api_base, "https://api.weixin.qq.com");
        assert_eq!(s.upstream.timeout_ms, 5000);
        assert!(s.api.keys.is_empty());
        assert_eq!(s.accounts[0].token_api, TokenApi::Stable);
    }

    #[test]
    fn environment_overrides_sections_and_account_secrets() {
        let s = load(
            MINIMAL,
            &[
                ("WXGATE__SERVER__LISTEN", "0.0.0.0:9000"),
                ("WXGATE__SERVER__MAX_BODY_BYTES", "4096"),
                ("WXGATE__API__KEYS", "k1,k2"),
                ("WXGATE__ACCOUNTS__MAIN__SECRET", "from-env"),
                ("WXGATE__ACCOUNTS__MAIN__TOKEN", "abc123"),
                ("OTHER", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(s.server.listen, "0.0.0.0:9000");
        assert_eq!(s.server.max_body_bytes, 4096);
        assert_eq!(s.api.keys.len(), 2);
        assert_eq!(s.accounts[0].secret.expose_secret(), "from-env");
        assert_eq!(
            s.accounts[0].token.as_ref().unwrap().expose_secret(),
            "abc123"
        );
    }

    #[test]
    fn env_for_an_unknown_account_is_an_error_naming_the_variable() {
        let key = err_key(load(MINIMAL, &[("WXGATE__ACCOUNTS__NOPE__SECRET", "x")]));
        assert_eq!(key, "WXGATE__ACCOUNTS__NOPE__SECRET");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let r = load(&format!("[server]\nlisten_addr = \"x\"\n{MINIMAL}"), &[]);
        let Err(ConfigError::Invalid { key, message }) = r else {
            panic!("expected an error");
        };
        assert_eq!(key, "server.listen_addr");
        assert!(message.contains("listen_addr"), "{message}");
    }

    #[test]
    fn js_domains_take_hosts_with_an_optional_port_and_refuse_schemes_and_paths() {
        let with = |d: &str| load(&format!("{MINIMAL}js_domains = [{d:?}]\n"), &[]);
        for ok in [
            "h5.example.com",
            "*.example.com",
            "h5.example.com:8443",
            "*.example.com:443",
            "localhost",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://h5.example.com:443",
            "http://h5.example.com",
            "h5.example.com/path",
            "h5.example.com:",
            "h5.example.com:0",
            "h5.example.com:99999",
            ":443",
            "*.",
            "h5 example.com",
        ] {
            assert_eq!(
                err_key(with(bad)),
                "accounts[0].js_domains[0]",
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad_appid = MINIMAL.replace("wx1234567890abcdef", "1234");
        assert_eq!(err_key(load(&bad_appid, &[])), "accounts[0].appid");
        let bad_aes = format!("{MINIMAL}encoding_aes_key = \"short\"\n");
        assert_eq!(err_key(load(&bad_aes, &[])), "accounts[0].encoding_aes_key");
        let bad_token = format!("{MINIMAL}token = \"a!\"\n");
        assert_eq!(err_key(load(&bad_token, &[])), "accounts[0].token");
        let dup = format!("{MINIMAL}{MINIMAL}");
        assert_eq!(err_key(load(&dup, &[])), "accounts[1].name");
        let bad_listen = format!("[server]\nlisten = \"nowhere\"\n{MINIMAL}");
        assert_eq!(err_key(load(&bad_listen, &[])), "server.listen");
        let bad_store = format!("[storage]\nurl = \"mysql://x\"\n{MINIMAL}");
        assert_eq!(err_key(load(&bad_store, &[])), "storage.url");
        let bad_verify = format!("{MINIMAL}verify_files = {{ \"../etc/passwd\" = \"x\" }}\n");
        assert_eq!(
            err_key(load(&bad_verify, &[])),
            "accounts[0].verify_files.../etc/passwd"
        );
        let bad_rule = format!("{MINIMAL}[[accounts.rules]]\nkeyword = \"x\"\nreply = {{ type = \"news\", articles = [] }}\n");
        assert_eq!(err_key(load(&bad_rule, &[])), "accounts[0].rules[0].reply");
        let two_selectors = format!("{MINIMAL}[[accounts.rules]]\nkeyword = \"x\"\nevent = \"subscribe\"\nreply = {{ type = \"text\", content = \"a\" }}\n");
        assert_eq!(err_key(load(&two_selectors, &[])), "accounts[0].rules[0]");
        let bad_regex = format!("{MINIMAL}[[accounts.rules]]\nregex = \"(\"\nreply = {{ type = \"text\", content = \"a\" }}\n");
        assert_eq!(err_key(load(&bad_regex, &[])), "accounts[0].rules[0].regex");
        let bad_api = MINIMAL.replace("appid", "app_id");
        assert!(err_key(load(&bad_api, &[])).starts_with("accounts[0]"));
    }

    #[test]
    fn a_missing_secret_is_reported() {
        let text = "[[accounts]]\nname = \"main\"\nappid = \"wx1234567890abcdef\"\n";
        let Err(ConfigError::Invalid { key, message }) = load(text, &[]) else {
            panic!("expected an error");
        };
        assert!(key.starts_with("accounts[0]"), "{key}");
        assert!(message.contains("secret"), "{message}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = load(
            &format!("[api]\nkeys = [\"api-key-123456\"]\n{MINIMAL}token = \"tok123\"\n"),
            &[],
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cr3t-app-secret"));
        assert!(!dbg.contains("api-key-123456"));
        assert!(!dbg.contains("tok123"));
    }

    #[test]
    fn a_full_spec_example_is_accepted() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://wx.example.com"
max_body_bytes = 1048576
[storage]
url = "redis://127.0.0.1:6379/0"
key_prefix = "wxgate:"
[database]
url = "postgres://user@host/db"
[push]
replay_window_s = 600
dedup_ttl_s = 300
[upstream]
api_base = "https://api.weixin.qq.com"
open_base = "https://open.weixin.qq.com"
timeout_ms = 5000
[api]
keys = ["a-long-random-key"]
[[accounts]]
name = "main"
appid = "wx1234567890abcdef"
secret = "abc"
token = "TokenABC"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
encoding_aes_key_previous = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
token_api = "classic"
js_domains = ["h5.example.com", "*.example.org"]
oauth_redirects = ["https://h5.example.com/"]
webhook = { url = "http://127.0.0.1:9000/wechat", secret = "whsec", timeout_ms = 3000 }
proxy_allow = ["/cgi-bin/menu/", "/cgi-bin/message/"]
verify_files = { "MP_verify_AbC123.txt" = "AbC123" }
[[accounts.rules]]
event = "subscribe"
reply = { type = "text", content = "欢迎关注" }
[[accounts.rules]]
keyword = "help"
reply = { type = "text", content = "..." }
"#;
        let s = load(text, &[]).unwrap();
        assert_eq!(s.accounts[0].token_api, TokenApi::Classic);
        assert_eq!(s.accounts[0].rules.len(), 2);
        assert_eq!(s.accounts[0].js_domains[1], "*.example.org");
    }
}
