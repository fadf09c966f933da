//! The `[[accounts]]`: each account is validated and built into an [`Account`] by [`build`]
//! (one function per key); [`validate`] adds what spans accounts (unique names, one body per
//! MP_verify file) and puts the errors under `accounts[i]`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wxgate_proto::{AesKey, KeyRing};

use super::http_url;
use crate::config::rule::Rule;
use crate::config::{
    invalid, Account, AccountSettings, Accounts, ConfigError, DomainPattern, WebhookSettings,
    WebhookTarget,
};

/// Validates every account and the rules between them.
pub(super) fn validate(list: &[AccountSettings]) -> Result<Accounts, ConfigError> {
    let mut names = HashSet::new();
    let mut verify_bodies: BTreeMap<&str, &str> = BTreeMap::new();
    let mut accounts = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let at = format!("accounts[{i}]");
        name(&a.name).map_err(|e| e.under(&at))?;
        if !names.insert(a.name.as_str()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("duplicate account name {:?}", a.name),
            ));
        }
        let account = build(a).map_err(|e| e.under(&at))?;
        for (file, body) in &a.verify_files {
            if let Some(prev) = verify_bodies.insert(file.as_str(), body.as_str()) {
                if prev != body {
                    return Err(invalid(
                        format!("{at}.verify_files.{file}"),
                        "another account serves this file with a different body",
                    ));
                }
            }
        }
        accounts.push(account);
    }
    Ok(Accounts::new(accounts))
}

/// One account from its settings alone; error keys relative to the account.
pub(crate) fn build(a: &AccountSettings) -> Result<Account, ConfigError> {
    name(&a.name)?;
    appid(&a.appid)?;
    secret(&a.secret)?;
    if let Some(t) = &a.token {
        token(t)?;
    }
    let keyring = keyring(
        a.encoding_aes_key.as_ref(),
        a.encoding_aes_key_previous.as_ref(),
    )?;
    let js_domains = a
        .js_domains
        .iter()
        .enumerate()
        .map(|(j, d)| DomainPattern::parse_at(&format!("js_domains[{j}]"), d))
        .collect::<Result<Vec<_>, _>>()?;
    for (j, r) in a.oauth_redirects.iter().enumerate() {
        http_url(&format!("oauth_redirects[{j}]"), r)?;
    }
    let webhook = a.webhook.as_ref().map(webhook).transpose()?;
    proxy_allow(&a.proxy_allow)?;
    for file in a.verify_files.keys() {
        verify_file(file)?;
    }
    let rules = a
        .rules
        .iter()
        .enumerate()
        .map(|(j, r)| Rule::from_settings(r).map_err(|e| e.under(&format!("rules[{j}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Account {
        name: a.name.clone(),
        appid: a.appid.clone(),
        secret: a.secret.clone(),
        token: a.token.clone(),
        keyring: keyring.map(Box::new),
        token_api: a.token_api,
        js_domains,
        oauth_redirects: a.oauth_redirects.clone(),
        webhook: webhook.map(Box::new),
        proxy_allow: a.proxy_allow.clone(),
        verify_files: a.verify_files.clone(),
        rules: rules.into(),
        accept_plaintext: a.accept_plaintext,
        token_source: crate::config::TokenSource::AppSecret,
        kind: a.kind,
        data_format: a.data_format,
    })
}

pub(super) fn name(value: &str) -> Result<(), ConfigError> {
    let ok = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!("{value:?} must be 1-32 characters of a-z, 0-9, '_' or '-'"),
        ))
    }
}

pub(super) fn appid(value: &str) -> Result<(), ConfigError> {
    let ok = value
        .strip_prefix("wx")
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "appid",
            format!("{value:?} is not a WeChat AppID (\"wx\" followed by 16 letters or digits)"),
        ))
    }
}

pub(super) fn secret(value: &SecretString) -> Result<(), ConfigError> {
    let s = value.expose_secret();
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(invalid(
            "secret",
            "the AppSecret must be non-empty and contain no spaces",
        ));
    }
    Ok(())
}

pub(super) fn token(value: &SecretString) -> Result<(), ConfigError> {
    let t = value.expose_secret();
    if (3..=32).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid(
            "token",
            "the server Token must be 3-32 letters or digits",
        ))
    }
}

/// The EncodingAESKey ring; parsing each key is its check.
pub(super) fn keyring(
    current: Option<&SecretString>,
    previous: Option<&SecretString>,
) -> Result<Option<KeyRing>, ConfigError> {
    let aes = |key: &str, value: &SecretString| {
        AesKey::from_encoding_aes_key(value.expose_secret()).map_err(|_| {
            invalid(
                key,
                format!(
                    "must be exactly 43 letters or digits (got {} characters)",
                    value.expose_secret().chars().count()
                ),
            )
        })
    };
    let current = current.map(|k| aes("encoding_aes_key", k)).transpose()?;
    let previous = previous
        .map(|k| aes("encoding_aes_key_previous", k))
        .transpose()?;
    match (current, previous) {
        (Some(current), previous) => Ok(Some(KeyRing::new(current, previous))),
        (None, Some(_)) => Err(invalid(
            "encoding_aes_key_previous",
            "is set but encoding_aes_key is not",
        )),
        (None, None) => Ok(None),
    }
}

pub(super) fn webhook(w: &WebhookSettings) -> Result<WebhookTarget, ConfigError> {
    http_url("webhook.url", &w.url)?;
    if w.secret.expose_secret().is_empty() {
        return Err(invalid("webhook.secret", "must not be empty"));
    }
    if w.timeout_ms == 0 || w.timeout_ms > 4_500 {
        return Err(invalid(
            "webhook.timeout_ms",
            "must be between 1 and 4500 ms (WeChat gives up after 5 s)",
        ));
    }
    Ok(WebhookTarget {
        url: w.url.clone(),
        secret: w.secret.clone(),
        timeout: Duration::from_millis(w.timeout_ms),
    })
}

fn proxy_allow(prefixes: &[String]) -> Result<(), ConfigError> {
    for (j, p) in prefixes.iter().enumerate() {
        if !p.starts_with('/') {
            return Err(invalid(
                format!("proxy_allow[{j}]"),
                format!("{p:?} must be a path prefix starting with '/'"),
            ));
        }
    }
    Ok(())
}

fn verify_file(file: &str) -> Result<(), ConfigError> {
    let ok = file
        .strip_prefix("MP_verify_")
        .and_then(|rest| rest.strip_suffix(".txt"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("verify_files.{file}"),
            "file names must look like MP_verify_AbC123.txt",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(r: Result<impl Sized, ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(other) => panic!("expected Invalid, got {other:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn names_appids_and_tokens_keep_their_character_sets() {
        assert!(name("a-b_c9").is_ok());
        for bad in ["", "Main", "a.b", &"a".repeat(33)] {
            assert_eq!(key_of(name(bad)), "name", "{bad}");
        }
        assert!(appid("wx1234567890abcdef").is_ok());
        for bad in [
            "wx1234567890abcde",
            "wx1234567890abcdef0",
            "xx1234567890abcdef",
            "wx12345678-0abcdef",
        ] {
            assert_eq!(key_of(appid(bad)), "appid", "{bad}");
        }
        assert!(token(&"abc".into()).is_ok());
        assert_eq!(key_of(token(&"ab".into())), "token");
        assert_eq!(key_of(token(&"a".repeat(33).into())), "token");
        assert_eq!(key_of(secret(&"a b".into())), "secret");
    }

    #[test]
    fn the_key_ring_is_parsed_and_names_the_bad_key() {
        let good: SecretString = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into();
        let short: SecretString = "short".into();
        assert!(keyring(None, None).unwrap().is_none());
        assert!(keyring(Some(&good), Some(&good)).unwrap().is_some());
        assert_eq!(key_of(keyring(Some(&short), None)), "encoding_aes_key");
        assert_eq!(
            key_of(keyring(Some(&good), Some(&short))),
            "encoding_aes_key_previous"
        );
        assert_eq!(
            key_of(keyring(None, Some(&good))),
            "encoding_aes_key_previous"
        );
    }

    #[test]
    fn webhooks_proxy_prefixes_and_verify_files_are_checked() {
        let w = |url: &str, secret: &str, timeout_ms| WebhookSettings {
            url: url.into(),
            secret: secret.into(),
            timeout_ms,
        };
        assert!(webhook(&w("http://127.0.0.1:9000/x", "s", 3000)).is_ok());
        assert_eq!(key_of(webhook(&w("nope", "s", 3000))), "webhook.url");
        assert_eq!(key_of(webhook(&w("http://h/", "", 3000))), "webhook.secret");
        assert_eq!(
            key_of(webhook(&w("http://h/", "s", 4501))),
            "webhook.timeout_ms"
        );
        assert_eq!(
            key_of(proxy_allow(&["/a".into(), "b".into()])),
            "proxy_allow[1]"
        );
        assert!(verify_file("MP_verify_AbC123.txt").is_ok());
        for bad in [
            "MP_verify_.txt",
            "MP_verify_a-b.txt",
            "x.txt",
            "MP_verify_a.txt.bak",
        ] {
            assert!(verify_file(bad).is_err(), "{bad}");
        }
    }
}
