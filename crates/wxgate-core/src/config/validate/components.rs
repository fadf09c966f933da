//! The `[[components]]` (third-party platforms): each is checked key by key like an account —
//! the settings its authorizers inherit are built by the account builder itself, so they mean
//! exactly what they mean on an account — and errors are put under `components[i]`.

use std::collections::HashSet;
use std::sync::Arc;

use super::accounts::{appid, build, keyring, name, secret, token};
use super::http_url;
use crate::config::{
    invalid, AccountSettings, Component, ComponentSettings, ConfigError, Settings,
};

/// Every component of `s`; `admin.master_key` is required as soon as there is one (authorizer
/// refresh tokens are kept in the database, sealed with it).
pub(super) fn validate(s: &Settings) -> Result<Vec<Arc<Component>>, ConfigError> {
    if !s.components.is_empty() && s.admin.master_key.is_none() {
        return Err(invalid(
            "admin.master_key",
            "is required when [[components]] are configured: the authorizers' refresh tokens are \
             kept in the database, encrypted with it (32 random bytes, standard base64, e.g. \
             `openssl rand -base64 32`)",
        ));
    }
    let mut names = HashSet::new();
    let mut appids = HashSet::new();
    let mut out = Vec::with_capacity(s.components.len());
    for (i, c) in s.components.iter().enumerate() {
        let at = format!("components[{i}]");
        let component = one(c).map_err(|e| e.under(&at))?;
        if !names.insert(c.name.as_str()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("duplicate component name {:?}", c.name),
            ));
        }
        if !appids.insert(c.appid.as_str()) {
            return Err(invalid(
                format!("{at}.appid"),
                "another component has the same appid",
            ));
        }
        out.push(Arc::new(component));
    }
    Ok(out)
}

/// One component from its settings alone; error keys relative to the component.
pub(crate) fn one(c: &ComponentSettings) -> Result<Component, ConfigError> {
    name(&c.name)?;
    appid(&c.appid)?;
    secret(&c.secret)?;
    token(&c.token)?;
    let keyring = keyring(
        Some(&c.encoding_aes_key),
        c.encoding_aes_key_previous.as_ref(),
    )?
    .ok_or_else(|| invalid("encoding_aes_key", "is required"))?;
    for (j, r) in c.auth_redirects.iter().enumerate() {
        http_url(&format!("auth_redirects[{j}]"), r)?;
    }
    let inherited = inherited_settings(c);
    let template = build(&inherited)?;
    Ok(Component::new(c, keyring, template, inherited))
}

/// The component's settings as an account's: what its authorizers inherit, with its own Token
/// and key (a platform's messages are encrypted with them).
fn inherited_settings(c: &ComponentSettings) -> AccountSettings {
    AccountSettings {
        name: c.name.clone(),
        appid: c.appid.clone(),
        secret: c.secret.clone(),
        token: Some(c.token.clone()),
        encoding_aes_key: Some(c.encoding_aes_key.clone()),
        encoding_aes_key_previous: c.encoding_aes_key_previous.clone(),
        token_api: Default::default(),
        js_domains: c.js_domains.clone(),
        oauth_redirects: c.oauth_redirects.clone(),
        webhook: c.webhook.clone(),
        proxy_allow: c.proxy_allow.clone(),
        verify_files: Default::default(),
        rules: c.rules.clone(),
        accept_plaintext: false,
        kind: Default::default(),
        data_format: Default::default(),
    }
}
