//! Onboarding a new Official Account from the console: the operator gives a name, the AppID
//! and the AppSecret; wxgate generates the message Token and the EncodingAESKey (which WeChat's
//! console asks the developer to invent), stores the account through the admin service
//! (sealed), and hands the generated values back once, to be pasted into WeChat's console.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::ConsoleError;
use crate::admin;
use crate::gateway::Gateway;
use crate::registry::Entry;

/// What the operator pastes into WeChat's console, shown once.
pub struct Generated {
    pub token: SecretString,
    pub encoding_aes_key: SecretString,
}

/// A message Token: 32 letters and digits (WeChat allows 3–32).
fn new_token() -> String {
    crate::domain::random_alnum(32)
}

/// An EncodingAESKey: 43 random letters and digits, as WeChat's console generates it (its
/// base64 decoding is the 32-byte AES key; the check of the config accepts only these).
fn new_encoding_aes_key() -> String {
    crate::domain::random_alnum(43)
}

/// What the onboarding form asks.
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub appid: &'a str,
    pub secret: &'a str,
    /// Where the account's H5 pages live (`host[:port]`): its JS-safe and web-authorization
    /// domain.
    pub h5_domain: &'a str,
    /// `https` or `http` (the pages' scheme, for the web-login redirect allow-list).
    pub scheme: &'a str,
}

/// Creates the account (never replacing one) with a generated Token and EncodingAESKey.
pub async fn create(
    gateway: &Gateway,
    new: &NewAccount<'_>,
) -> Result<(Entry, Generated), ConsoleError> {
    let name = new.name.trim();
    if gateway.registry.snapshot().entries.contains_key(name) {
        return Err(ConsoleError::Exists(name.to_owned()));
    }
    let domain = new.h5_domain.trim().trim_end_matches('/');
    if domain.is_empty() || domain.contains(['/', ' ', '?', '#']) {
        return Err(ConsoleError::InvalidField {
            field: "h5_domain",
            message: "give the host of your H5 pages, e.g. www.example.com (no scheme, no path)"
                .into(),
        });
    }
    let generated = Generated {
        token: new_token().into(),
        encoding_aes_key: new_encoding_aes_key().into(),
    };
    let body = json!({
        "appid": new.appid.trim(),
        "secret": new.secret.trim(),
        "token": generated.token.expose_secret(),
        "encoding_aes_key": generated.encoding_aes_key.expose_secret(),
        "js_domains": [domain],
        "oauth_redirects": [format!("{}://{domain}/", new.scheme)],
    });
    let (_, entry) = admin::put_account(gateway, name, body.to_string().as_bytes()).await?;
    Ok((entry, generated))
}

/// New Token and EncodingAESKey for a database account (the old key stays as the previous one,
/// so pushes encrypted with it still open during the switch in WeChat's console).
pub async fn regenerate(gateway: &Gateway, name: &str) -> Result<(Entry, Generated), ConsoleError> {
    let current = admin::account(gateway, name)?;
    let generated = Generated {
        token: new_token().into(),
        encoding_aes_key: new_encoding_aes_key().into(),
    };
    let mut body = super::settings::editable(&current);
    body["token"] = json!(generated.token.expose_secret());
    body["encoding_aes_key"] = json!(generated.encoding_aes_key.expose_secret());
    let (_, entry) = admin::put_account(gateway, name, body.to_string().as_bytes()).await?;
    Ok((entry, generated))
}
