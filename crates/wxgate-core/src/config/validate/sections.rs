//! The `[storage]`, `[database]`, `[upstream]`, `[push]`, `[api]` and `[admin]` keys.

use secrecy::{ExposeSecret, SecretString};

use super::{http_url, within};
use crate::config::{invalid, ConfigError, Settings};

pub(super) fn validate(s: &Settings) -> Result<(), ConfigError> {
    store_url("storage.url", &s.storage.url, true)?;
    store_url("database.url", &s.database.url, false)?;
    http_url("upstream.api_base", &s.upstream.api_base)?;
    http_url("upstream.open_base", &s.upstream.open_base)?;
    http_url("upstream.mp_base", &s.upstream.mp_base)?;
    within(
        "upstream.timeout_ms",
        s.upstream.timeout_ms,
        1,
        60_000,
        "must be between 1 and 60000 milliseconds",
    )?;
    within(
        "upstream.max_in_flight",
        s.upstream.max_in_flight,
        1,
        crate::config::MAX_IN_FLIGHT_LIMIT,
        "must be between 1 and 10000 calls",
    )?;
    if s.push.dedup_ttl_s == 0 {
        return Err(invalid(
            "push.dedup_ttl_s",
            "must be at least 1 second (WeChat retries within 15 seconds)",
        ));
    }
    keys("api.keys", &s.api.keys)?;
    keys("admin.keys", &s.admin.keys)?;
    s.admin.vault().map(drop)
}

/// `sqlite:` and PostgreSQL always; `memory://`, `redis://` and `redis+sentinel://` for the
/// store (`redis_allowed`; the sentinel form is read in full when the store opens),
/// `mongodb://` for the database (the other case).
fn store_url(key: &str, value: &str, redis_allowed: bool) -> Result<(), ConfigError> {
    let ok = value.starts_with("sqlite:")
        || value.starts_with("postgres://")
        || value.starts_with("postgresql://")
        || (redis_allowed
            && (value == "memory://"
                || value.starts_with("redis://")
                || value.starts_with("redis+sentinel://")))
        || (!redis_allowed && value.starts_with("mongodb://"));
    if ok {
        return Ok(());
    }
    let expected = if redis_allowed {
        "expected sqlite://PATH, memory://, redis://HOST:PORT/DB, \
         redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[/DB] or postgres://USER@HOST/DB"
    } else {
        "expected sqlite://PATH, postgres://USER@HOST/DB or mongodb://HOST:PORT/DB"
    };
    Err(invalid(
        key,
        format!("{:?}: {expected}", crate::scrub::redact_url(value)),
    ))
}

fn keys(section: &str, keys: &[SecretString]) -> Result<(), ConfigError> {
    for (i, key) in keys.iter().enumerate() {
        let k = key.expose_secret();
        if k.trim().is_empty() || k.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{section}[{i}]"),
                "must be a non-empty string without spaces",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_depend_on_the_section() {
        assert!(store_url("storage.url", "memory://", true).is_ok());
        assert!(store_url("storage.url", "redis://h:6379/0", true).is_ok());
        assert!(store_url("database.url", "redis://h:6379/0", false).is_err());
        assert!(store_url("storage.url", "redis+sentinel://h1,h2:26380/m/1", true).is_ok());
        assert!(store_url("database.url", "redis+sentinel://h1/m", false).is_err());
        assert!(store_url("database.url", "postgresql://u@h/db", false).is_ok());
        assert!(store_url("storage.url", "postgres://u@h/db", true).is_ok());
        assert!(store_url("storage.url", "postgresql://u@h/db", true).is_ok());
        assert!(store_url("storage.url", "mongodb://h/db", true).is_err());
        assert!(store_url("database.url", "mongodb://h:27017/db", false).is_ok());
        assert!(store_url("database.url", "sqlite://x.db", false).is_ok());
    }

    #[test]
    fn api_keys_name_their_index() {
        let given: Vec<SecretString> = vec!["good".into(), "has space".into()];
        let Err(ConfigError::Invalid { key, .. }) = keys("api.keys", &given) else {
            panic!("expected an error");
        };
        assert_eq!(key, "api.keys[1]");
    }

    #[test]
    fn the_master_key_is_checked_and_never_shown() {
        use crate::config::AdminSettings;
        let bad = AdminSettings {
            master_key: Some(SecretString::from("c2hvcnQ=")),
            ..AdminSettings::default()
        };
        let Err(ConfigError::Invalid { key, message }) = bad.vault() else {
            panic!("a short key must be refused");
        };
        assert_eq!(key, "admin.master_key");
        assert!(!message.contains("c2hvcnQ="));
        let orphan = AdminSettings {
            master_key_previous: Some(crate::vault::MasterKey::random().to_base64()),
            ..AdminSettings::default()
        };
        assert!(orphan.vault().is_err());
        let good = AdminSettings {
            master_key: Some(crate::vault::MasterKey::random().to_base64()),
            ..AdminSettings::default()
        };
        assert!(good.vault().unwrap().is_some());
    }
}
