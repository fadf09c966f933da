//! A `js_domains` entry, parsed once at load: a host name or `*.` + a host name, optionally
//! `:port`. Matching a page's host against it is a comparison, with no splitting or allocation
//! per request (the JS-SDK config route checks it on every page view).

use super::{invalid, ConfigError};

/// One parsed `js_domains` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    /// The host name, or for `*.example.com` the parent `example.com`.
    host: String,
    /// `*.` form: any host strictly under `host`.
    wildcard: bool,
    /// When given, the page's (effective) port must equal it.
    port: Option<u16>,
}

impl DomainPattern {
    /// Parses an entry. A scheme, a path, an empty label or a port outside 1-65535 is refused
    /// (such an entry would never match a page, silently); the error is the sentence for the
    /// config key.
    pub fn parse(value: &str) -> Result<DomainPattern, String> {
        let (host, port) = match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        };
        let port = match port {
            None => Ok(None),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(()),
            },
        };
        let (name, wildcard) = match host.strip_prefix("*.") {
            Some(parent) => (parent, true),
            None => (host, false),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        match port {
            Ok(port) if name_ok => Ok(DomainPattern {
                host: name.to_owned(),
                wildcard,
                port,
            }),
            _ => Err(format!(
                "{value:?} must be a host name like h5.example.com or *.example.com, optionally with :port (no scheme, no path)"
            )),
        }
    }

    /// Parses the entry at config key `key`.
    pub(crate) fn parse_at(key: &str, value: &str) -> Result<DomainPattern, ConfigError> {
        Self::parse(value).map_err(|message| invalid(key, message))
    }

    /// Whether `host` (a trailing dot ignored, ASCII case ignored) with effective `port` is
    /// allowed by this pattern.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        let host = host.trim_end_matches('.');
        let parent = self.host.as_str();
        if self.wildcard {
            host.len() > parent.len() + 1
                && host
                    .get(host.len() - parent.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(parent))
                && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
        } else {
            host.eq_ignore_ascii_case(parent)
        }
    }
}

/// Whether `host:port` is allowed by `patterns`; an empty list allows every host.
pub fn domain_allowed(patterns: &[DomainPattern], host: &str, port: Option<u16>) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_wildcards_and_ports_once() {
        let p = DomainPattern::parse("*.example.com:8443").unwrap();
        assert!(p.matches("a.example.com", Some(8443)));
        assert!(!p.matches("a.example.com", Some(443)));
        assert!(!p.matches("example.com", Some(8443)));
        let exact = DomainPattern::parse("H5.example.com").unwrap();
        assert!(exact.matches("h5.EXAMPLE.com.", Some(443)));
        assert!(!exact.matches("x.h5.example.com", Some(443)));
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "a.com:0",
            "a.com:x",
            "http://a.com",
            "a.com/p",
        ] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
