//! An account's settings as the console edits them: the `PUT accounts/{name}` body that keeps
//! the account exactly as it is ([`editable`]), onto which a form's fields are laid
//! ([`apply_form`]). Secrets are never in it: left out, the admin service keeps the stored
//! ones; a non-empty "replace" field sets a new one.

use serde_json::{json, Map, Value};

use super::ConsoleError;
use crate::registry::record::AccountView;
use crate::registry::Entry;

/// Keys of the admin view that are not settings (the view's own facts).
const VIEW_ONLY: [&str; 8] = [
    "name",
    "source",
    "has_secret",
    "has_token",
    "has_encoding_aes_key",
    "has_encoding_aes_key_previous",
    "created_at",
    "updated_at",
];

/// The account's current settings as a `PUT` body, without secrets.
pub fn editable(entry: &Entry) -> Value {
    let view = AccountView::new(
        &entry.account,
        &entry.settings,
        entry.source.clone(),
        entry.times,
    );
    let mut object = match serde_json::to_value(&view) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    for key in VIEW_ONLY {
        object.remove(key);
    }
    // The default kind is left out, so the body stays valid for every account.
    if object.get("kind").and_then(Value::as_str) == Some("official") {
        object.remove("kind");
    }
    if object.get("webhook").is_some_and(Value::is_null) {
        object.remove("webhook");
    }
    Value::Object(object)
}

/// The console's settings form.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    pub appid: String,
    /// Replace fields: empty keeps the stored secret.
    pub secret: String,
    pub token: String,
    pub encoding_aes_key: String,
    /// One per line.
    pub js_domains: String,
    pub oauth_redirects: String,
    pub proxy_allow: String,
    pub webhook_url: String,
    pub webhook_timeout_ms: String,
    pub webhook_secret: String,
    /// "on" when ticked.
    pub accept_plaintext: Option<String>,
    /// The rules as JSON (an array of rule tables).
    pub rules: String,
}

fn lines(text: &str) -> Value {
    Value::Array(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Value::String(l.to_owned()))
            .collect(),
    )
}

/// `body` with the form's fields laid on it.
pub fn apply_form(mut body: Value, form: &SettingsForm) -> Result<Value, ConsoleError> {
    let invalid = |field: &'static str, message: &str| ConsoleError::InvalidField {
        field,
        message: message.to_owned(),
    };
    if !form.appid.trim().is_empty() {
        body["appid"] = json!(form.appid.trim());
    }
    for (key, value) in [
        ("secret", &form.secret),
        ("token", &form.token),
        ("encoding_aes_key", &form.encoding_aes_key),
    ] {
        if !value.trim().is_empty() {
            body[key] = json!(value.trim());
        }
    }
    body["js_domains"] = lines(&form.js_domains);
    body["oauth_redirects"] = lines(&form.oauth_redirects);
    body["proxy_allow"] = lines(&form.proxy_allow);
    body["accept_plaintext"] = json!(form.accept_plaintext.is_some());
    let rules = form.rules.trim();
    body["rules"] = if rules.is_empty() {
        json!([])
    } else {
        serde_json::from_str::<Value>(rules)
            .ok()
            .filter(Value::is_array)
            .ok_or_else(|| invalid("rules", "must be a JSON array of rules, e.g. []"))?
    };
    let url = form.webhook_url.trim();
    if url.is_empty() {
        if let Some(o) = body.as_object_mut() {
            o.remove("webhook");
        }
    } else {
        let mut webhook = json!({ "url": url });
        let timeout = form.webhook_timeout_ms.trim();
        if !timeout.is_empty() {
            let ms: u64 = timeout
                .parse()
                .map_err(|_| invalid("webhook_timeout_ms", "must be a number of milliseconds"))?;
            webhook["timeout_ms"] = json!(ms);
        }
        if !form.webhook_secret.trim().is_empty() {
            webhook["secret"] = json!(form.webhook_secret.trim());
        }
        body["webhook"] = webhook;
    }
    Ok(body)
}
