//! Validation: every value checked against what WeChat and wxgate accept, one function per key
//! or group, in one pass that also builds the [`Accounts`]. An error names the exact key
//! (`accounts[0].encoding_aes_key`). `server` holds the `[server]` keys, `sections` the
//! other global sections, `accounts` the `[[accounts]]`.

pub(crate) mod accounts;
mod components;
mod sections;
mod server;

use super::{invalid, ConfigError, Settings, Validated};

impl Settings {
    /// Checks every value and builds the validated accounts and platforms. Runs at load;
    /// startup runs it again on the settings it serves (tests may adjust settings after
    /// loading them).
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        server::validate(&self.server)?;
        sections::validate(self)?;
        let accounts = accounts::validate(&self.accounts)?;
        let components = components::validate(self)?;
        Ok(Validated {
            accounts,
            components,
        })
    }
}

/// An absolute `http://` or `https://` URL with a host.
pub(crate) fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
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

/// A positive whole number within `min..=max`.
fn within(key: &str, value: u64, min: u64, max: u64, message: &str) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_need_a_scheme_and_a_host() {
        assert!(http_url("k", "https://wx.example.com").is_ok());
        assert!(http_url("k", "http://127.0.0.1:9000/x").is_ok());
        for bad in ["wx.example.com", "ftp://x", "https://", "mailto:a@b"] {
            assert!(http_url("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn within_names_the_key() {
        assert!(within("k", 5, 1, 10, "m").is_ok());
        let Err(ConfigError::Invalid { key, message }) = within("a.b", 0, 1, 10, "m") else {
            panic!("expected an error");
        };
        assert_eq!((key.as_str(), message.as_str()), ("a.b", "m"));
    }
}
