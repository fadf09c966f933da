//! The `[server]` keys.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};

use super::{http_url, within};
use crate::config::{invalid, ConfigError, ServerSettings};

pub(super) fn validate(s: &ServerSettings) -> Result<(), ConfigError> {
    socket_addr(
        "server.listen",
        &s.listen,
        "expected address:port, e.g. 127.0.0.1:8080",
    )?;
    public_url(&s.public_url)?;
    if s.max_body_bytes < 1024 {
        return Err(invalid(
            "server.max_body_bytes",
            "must be at least 1024 bytes",
        ));
    }
    within(
        "server.max_connections",
        s.max_connections,
        1,
        1_000_000,
        "must be between 1 and 1000000",
    )?;
    within(
        "server.header_read_timeout_ms",
        s.header_read_timeout_ms,
        100,
        300_000,
        "must be between 100 and 300000 milliseconds",
    )?;
    within(
        "server.request_timeout_ms",
        s.request_timeout_ms,
        1000,
        600_000,
        "must be between 1000 and 600000 milliseconds",
    )?;
    within(
        "server.shutdown_grace_s",
        s.shutdown_grace_s,
        0,
        3600,
        "must be at most 3600 seconds",
    )?;
    metrics_token(s.metrics_token.as_ref())?;
    if let Some(addr) = &s.metrics_listen {
        socket_addr(
            "server.metrics_listen",
            addr,
            "expected address:port, e.g. 127.0.0.1:9090",
        )?;
    }
    state_secret(s.state_secret.as_ref())
}

fn socket_addr(key: &str, value: &str, message: &str) -> Result<(), ConfigError> {
    value
        .parse::<SocketAddr>()
        .map(drop)
        .map_err(|_| invalid(key, message))
}

fn public_url(value: &str) -> Result<(), ConfigError> {
    http_url("server.public_url", value)?;
    if value.ends_with('/') {
        return Err(invalid(
            "server.public_url",
            "must not end with '/' (paths are appended to it)",
        ));
    }
    Ok(())
}

fn metrics_token(token: Option<&SecretString>) -> Result<(), ConfigError> {
    let Some(token) = token else { return Ok(()) };
    let t = token.expose_secret();
    if t.len() < 16 || t.chars().any(char::is_whitespace) {
        return Err(invalid(
            "server.metrics_token",
            "must be at least 16 characters without spaces",
        ));
    }
    Ok(())
}

fn state_secret(secret: Option<&SecretString>) -> Result<(), ConfigError> {
    match secret {
        Some(s) if s.expose_secret().len() < 32 => Err(invalid(
            "server.state_secret",
            "must be at least 32 characters (use a random string)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_has_no_trailing_slash() {
        assert!(public_url("https://wx.example.com").is_ok());
        assert!(public_url("https://wx.example.com/").is_err());
    }

    #[test]
    fn metrics_token_and_state_secret_have_a_minimum_length() {
        assert!(metrics_token(None).is_ok());
        assert!(metrics_token(Some(&"0123456789abcdef".into())).is_ok());
        assert!(metrics_token(Some(&"short".into())).is_err());
        assert!(metrics_token(Some(&"0123456789 abcdef".into())).is_err());
        assert!(state_secret(Some(&"x".repeat(32).into())).is_ok());
        assert!(state_secret(Some(&"x".repeat(31).into())).is_err());
    }

    #[test]
    fn limits_are_checked_per_key() {
        let mut s = ServerSettings::default();
        assert!(validate(&s).is_ok());
        s.request_timeout_ms = 999;
        let Err(ConfigError::Invalid { key, .. }) = validate(&s) else {
            panic!("expected an error");
        };
        assert_eq!(key, "server.request_timeout_ms");
    }
}
