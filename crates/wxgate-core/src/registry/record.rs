//! An account between its three forms: the admin API's JSON body, the stored row (settings
//! without secrets, plus each secret sealed on its own by [`crate::vault`]), and
//! [`AccountSettings`] — which [`Account::try_from`] then validates and builds exactly as it
//! does for the config file. So there is one parse and one validation for every account,
//! wherever it comes from, and the errors name the same fields.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{Account, AccountSettings, ConfigError, RuleSettings};
use crate::domain::TokenApi;
use crate::vault::{field_context, Vault};

/// The secret fields of an account, as named in its JSON (and the sealed-secrets object).
const SECRET_FIELDS: [&str; 5] = [
    "secret",
    "token",
    "encoding_aes_key",
    "encoding_aes_key_previous",
    "webhook.secret",
];

/// A body the admin API refuses: the field and what is wrong (never a secret's value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidAccount {
    pub field: String,
    pub message: String,
}

impl InvalidAccount {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidAccount {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<ConfigError> for InvalidAccount {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { key, message } => InvalidAccount::new(key, message),
            other => InvalidAccount::new("", other.to_string()),
        }
    }
}

/// A stored row that does not open: the account is named, the value never.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("the stored secret {field:?} of account {account:?} cannot be decrypted with admin.master_key (or admin.master_key_previous): {reason}")]
    Undecryptable {
        account: String,
        field: &'static str,
        reason: crate::vault::OpenError,
    },
    #[error("the stored account {account:?} is damaged: {reason}")]
    Damaged { account: String, reason: String },
}

fn secret_values(s: &AccountSettings) -> [(&'static str, Option<&SecretString>); 5] {
    [
        ("secret", Some(&s.secret)),
        ("token", s.token.as_ref()),
        ("encoding_aes_key", s.encoding_aes_key.as_ref()),
        (
            "encoding_aes_key_previous",
            s.encoding_aes_key_previous.as_ref(),
        ),
        ("webhook.secret", s.webhook.as_ref().map(|w| &w.secret)),
    ]
}

/// The row's two columns for `settings`: the settings without secrets (and without the name,
/// which is the row's key) and the sealed secrets, both JSON.
pub fn seal(settings: &AccountSettings, vault: &Vault) -> (String, String) {
    let mut public = serde_json::to_value(settings).unwrap_or_default();
    if let Some(object) = public.as_object_mut() {
        object.remove("name");
    }
    let secrets: BTreeMap<&str, String> = secret_values(settings)
        .into_iter()
        .filter_map(|(field, value)| {
            let context = field_context("account", &settings.name, field);
            value.map(|v| (field, vault.seal(v.expose_secret(), &context)))
        })
        .collect();
    (
        public.to_string(),
        serde_json::to_string(&secrets).unwrap_or_default(),
    )
}

/// A stored row opened: its settings, and whether a secret was sealed with the previous master
/// key (the caller re-seals the row).
pub struct OpenedRow {
    pub settings: AccountSettings,
    pub sealed_with_previous: bool,
}

/// Opens a stored row into settings (validated by the caller with [`Account::try_from`]).
pub fn open(
    name: &str,
    settings: &str,
    secrets: &str,
    vault: &Vault,
) -> Result<OpenedRow, RecordError> {
    let damaged = |reason: String| RecordError::Damaged {
        account: name.to_owned(),
        reason,
    };
    let mut object: Map<String, Value> =
        serde_json::from_str(settings).map_err(|e| damaged(format!("settings: {e}")))?;
    let sealed: BTreeMap<String, String> =
        serde_json::from_str(secrets).map_err(|e| damaged(format!("secrets: {e}")))?;
    let mut sealed_with_previous = false;
    for field in SECRET_FIELDS {
        let Some(value) = sealed.get(field) else {
            continue;
        };
        let opened = vault
            .open(value, &field_context("account", name, field))
            .map_err(|reason| RecordError::Undecryptable {
                account: name.to_owned(),
                field,
                reason,
            })?;
        sealed_with_previous |= opened.sealed_with_previous;
        let plain = Value::String(opened.value.expose_secret().to_owned());
        match field.split_once('.') {
            Some((parent, child)) => {
                if let Some(Value::Object(inner)) = object.get_mut(parent) {
                    inner.insert(child.to_owned(), plain);
                }
            }
            None => {
                object.insert(field.to_owned(), plain);
            }
        }
    }
    object.insert("name".into(), Value::String(name.to_owned()));
    let settings =
        serde_json::from_value(Value::Object(object)).map_err(|e| damaged(e.to_string()))?;
    Ok(OpenedRow {
        settings,
        sealed_with_previous,
    })
}

/// The settings a `PUT accounts/{name}` body asks for, given the stored ones (`None`: the
/// account is new), with SPEC.md's rules: a secret left out keeps its stored value (`secret`
/// is required on creation); a new `encoding_aes_key` without `encoding_aes_key_previous` makes
/// the old key the previous one. Validated with the config file's own code.
pub fn merge_put(
    name: &str,
    body: &[u8],
    stored: Option<&AccountSettings>,
) -> Result<(AccountSettings, Account), InvalidAccount> {
    let mut object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(InvalidAccount::new("", "the body must be a JSON object")),
        Err(e) => {
            return Err(InvalidAccount::new(
                "",
                format!("the body is not JSON: {e}"),
            ))
        }
    };
    match object.get("name") {
        None => {}
        Some(Value::String(given)) if given == name => {}
        Some(_) => {
            return Err(InvalidAccount::new(
                "name",
                "is given by the path; leave it out of the body or repeat it",
            ))
        }
    }
    object.insert("name".into(), Value::String(name.to_owned()));
    if let Some(stored) = stored {
        keep_stored_secrets(&mut object, stored);
    } else if !object.contains_key("secret") {
        return Err(InvalidAccount::new(
            "secret",
            "is required when an account is created",
        ));
    }
    let settings: AccountSettings = serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = if path == "." { String::new() } else { path };
            InvalidAccount::new(field, message)
        })?;
    let account = Account::try_from(&settings)?;
    Ok((settings, account))
}

/// Fills the secrets the body leaves out from `stored` (see [`merge_put`]).
fn keep_stored_secrets(object: &mut Map<String, Value>, stored: &AccountSettings) {
    let text = |s: &SecretString| Value::String(s.expose_secret().to_owned());
    if !object.contains_key("secret") {
        object.insert("secret".into(), text(&stored.secret));
    }
    if let (false, Some(token)) = (object.contains_key("token"), &stored.token) {
        object.insert("token".into(), text(token));
    }
    // The key: kept when left out. Its previous one, when left out: the old key if the key
    // changed (a rotation), else the stored previous one.
    let rotated = match (object.get("encoding_aes_key"), &stored.encoding_aes_key) {
        (None, Some(old)) => {
            object.insert("encoding_aes_key".into(), text(old));
            false
        }
        (Some(Value::String(new)), Some(old)) => new != old.expose_secret(),
        _ => false,
    };
    if !object.contains_key("encoding_aes_key_previous") {
        let previous = if rotated {
            stored.encoding_aes_key.as_ref()
        } else {
            stored.encoding_aes_key_previous.as_ref()
        };
        if let Some(previous) = previous {
            object.insert("encoding_aes_key_previous".into(), text(previous));
        }
    }
    if let (Some(Value::Object(webhook)), Some(stored_hook)) =
        (object.get_mut("webhook"), &stored.webhook)
    {
        if !webhook.contains_key("secret") {
            webhook.insert("secret".into(), text(&stored_hook.secret));
        }
    }
}

/// Where an account comes from: answered as `config`, `database` or `component:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Config,
    Database,
    /// An authorizer of the third-party platform of this name.
    Component(String),
}

impl Source {
    /// Only database accounts are managed with the admin API.
    pub fn is_read_only(&self) -> bool {
        !matches!(self, Source::Database)
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Source::Config => serializer.serialize_str("config"),
            Source::Database => serializer.serialize_str("database"),
            Source::Component(name) => serializer.collect_str(&format_args!("component:{name}")),
        }
    }
}

/// The webhook as answered: no secret.
#[derive(Debug, Serialize)]
pub struct WebhookView<'a> {
    pub url: &'a str,
    pub timeout_ms: u64,
}

/// What the registry keeps of an account's settings for its admin view: no secret (only
/// whether each is set), no name or AppID (the account has them), lists sized to fit — a third
/// of the settings' size, which at 100 000 accounts is a good part of their memory.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    pub token_api: TokenApi,
    pub js_domains: Box<[String]>,
    pub oauth_redirects: Box<[String]>,
    pub proxy_allow: Box<[String]>,
    pub verify_files: BTreeMap<String, String>,
    pub rules: Box<[RuleSettings]>,
    /// URL and timeout.
    pub webhook: Option<Box<(String, u64)>>,
    pub accept_plaintext: bool,
    pub has_token: bool,
    pub has_encoding_aes_key: bool,
    pub has_encoding_aes_key_previous: bool,
}

impl From<&AccountSettings> for ViewSettings {
    fn from(s: &AccountSettings) -> Self {
        ViewSettings {
            token_api: s.token_api,
            js_domains: s.js_domains.clone().into_boxed_slice(),
            oauth_redirects: s.oauth_redirects.clone().into_boxed_slice(),
            proxy_allow: s.proxy_allow.clone().into_boxed_slice(),
            verify_files: s.verify_files.clone(),
            rules: s.rules.clone().into_boxed_slice(),
            webhook: s
                .webhook
                .as_ref()
                .map(|w| Box::new((w.url.clone(), w.timeout_ms))),
            accept_plaintext: s.accept_plaintext,
            has_token: s.token.is_some(),
            has_encoding_aes_key: s.encoding_aes_key.is_some(),
            has_encoding_aes_key_previous: s.encoding_aes_key_previous.is_some(),
        }
    }
}

/// An account as the admin API answers it (SPEC.md's Account): no secret value, only whether
/// each is set.
#[derive(Debug, Serialize)]
pub struct AccountView<'a> {
    pub name: &'a str,
    pub appid: &'a str,
    pub kind: &'static str,
    pub source: Source,
    pub token_api: TokenApi,
    pub js_domains: &'a [String],
    pub oauth_redirects: &'a [String],
    pub proxy_allow: &'a [String],
    pub verify_files: &'a BTreeMap<String, String>,
    pub rules: &'a [RuleSettings],
    pub webhook: Option<WebhookView<'a>>,
    pub accept_plaintext: bool,
    pub has_secret: bool,
    pub has_token: bool,
    pub has_encoding_aes_key: bool,
    pub has_encoding_aes_key_previous: bool,
    /// Unix seconds; `null` for accounts of the config file.
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl<'a> AccountView<'a> {
    /// The view of `account`, described by `s` (its settings; for an authorizer, its
    /// platform's, which all its authorizers share: name, appid and secret come from `account`).
    pub fn new(
        account: &'a Account,
        s: &'a ViewSettings,
        source: Source,
        times: Option<(i64, i64)>,
    ) -> Self {
        AccountView {
            name: &account.name,
            appid: &account.appid,
            kind: account.kind.as_str(),
            source,
            token_api: s.token_api,
            js_domains: &s.js_domains,
            oauth_redirects: &s.oauth_redirects,
            proxy_allow: &s.proxy_allow,
            verify_files: &s.verify_files,
            rules: &s.rules,
            webhook: s.webhook.as_deref().map(|(url, timeout_ms)| WebhookView {
                url,
                timeout_ms: *timeout_ms,
            }),
            accept_plaintext: s.accept_plaintext,
            has_secret: !account.secret.expose_secret().is_empty(),
            has_token: s.has_token,
            has_encoding_aes_key: s.has_encoding_aes_key,
            has_encoding_aes_key_previous: s.has_encoding_aes_key_previous,
            created_at: times.map(|t| t.0),
            updated_at: times.map(|t| t.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::MasterKey;

    const KEY_A: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const KEY_B: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg";

    fn created(body: &str) -> AccountSettings {
        merge_put("shop", body.as_bytes(), None).unwrap().0
    }

    #[test]
    fn a_sealed_row_opens_to_the_same_settings_and_holds_no_secret() {
        let vault = Vault::new(MasterKey::random(), None);
        let s = created(&format!(
            r#"{{"appid":"wx1234567890abcdef","secret":"app-secret-1","token":"tok123",
               "encoding_aes_key":"{KEY_A}","webhook":{{"url":"http://127.0.0.1:9/x","secret":"hook-secret"}},
               "js_domains":["h5.example.com"]}}"#
        ));
        let (public, secrets) = seal(&s, &vault);
        for secret in ["app-secret-1", "tok123", KEY_A, "hook-secret"] {
            assert!(!public.contains(secret) && !secrets.contains(secret));
        }
        let opened = open("shop", &public, &secrets, &vault).unwrap();
        assert!(!opened.sealed_with_previous);
        let o = opened.settings;
        assert_eq!(o.secret.expose_secret(), "app-secret-1");
        assert_eq!(o.token.unwrap().expose_secret(), "tok123");
        assert_eq!(o.encoding_aes_key.unwrap().expose_secret(), KEY_A);
        assert_eq!(o.webhook.unwrap().secret.expose_secret(), "hook-secret");
        assert_eq!(o.js_domains, ["h5.example.com"]);
        // The sealed secrets do not open under another account's name.
        assert!(matches!(
            open("other", &public, &secrets, &vault),
            Err(RecordError::Undecryptable {
                field: "secret",
                ..
            })
        ));
    }

    #[test]
    fn omitted_secrets_are_kept_and_a_new_aes_key_keeps_the_old_one_as_previous() {
        let stored = created(&format!(
            r#"{{"appid":"wx1234567890abcdef","secret":"s1","token":"tok123","encoding_aes_key":"{KEY_A}",
               "webhook":{{"url":"http://127.0.0.1:9/x","secret":"hook"}}}}"#
        ));
        let body = format!(
            r#"{{"appid":"wx1234567890abcdef","encoding_aes_key":"{KEY_B}","webhook":{{"url":"http://127.0.0.1:9/y"}}}}"#
        );
        let (s, account) = merge_put("shop", body.as_bytes(), Some(&stored)).unwrap();
        assert_eq!(s.secret.expose_secret(), "s1");
        assert_eq!(s.token.as_ref().unwrap().expose_secret(), "tok123");
        assert_eq!(s.encoding_aes_key.as_ref().unwrap().expose_secret(), KEY_B);
        assert_eq!(
            s.encoding_aes_key_previous
                .as_ref()
                .unwrap()
                .expose_secret(),
            KEY_A
        );
        assert_eq!(s.webhook.as_ref().unwrap().secret.expose_secret(), "hook");
        assert!(account.keyring.is_some());
        // Leaving the key out keeps key and previous.
        let (again, _) = merge_put("shop", br#"{"appid":"wx1234567890abcdef"}"#, Some(&s)).unwrap();
        assert_eq!(again.encoding_aes_key.unwrap().expose_secret(), KEY_B);
        assert_eq!(
            again.encoding_aes_key_previous.unwrap().expose_secret(),
            KEY_A
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let err = |body: &str| merge_put("shop", body.as_bytes(), None).unwrap_err();
        assert_eq!(err(r#"{"appid":"wx1234567890abcdef"}"#).field, "secret");
        assert_eq!(err(r#"{"appid":"nope","secret":"s"}"#).field, "appid");
        assert_eq!(
            err(r#"{"appid":"wx1234567890abcdef","secret":"s","token":"x"}"#).field,
            "token"
        );
        assert_eq!(
            err(r#"{"appid":"wx1234567890abcdef","secret":"s","js_domains":[1]}"#).field,
            "js_domains"
        );
        assert_eq!(
            err(r#"{"appid":"wx1234567890abcdef","secret":"s","colour":"red"}"#).field,
            "colour"
        );
        assert_eq!(err(r#"[1]"#).field, "");
        assert_eq!(
            err(r#"{"name":"other","appid":"wx1234567890abcdef","secret":"s"}"#).field,
            "name"
        );
        // A secret never appears in a message.
        let e = err(r#"{"appid":"wx1234567890abcdef","secret":"s","token":"bad token!"}"#);
        assert!(!e.message.contains("bad token!"));
    }
}
