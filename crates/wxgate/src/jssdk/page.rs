//! Page URLs and the `js_domains` allowlist.
//!
//! A [`PageUrl`] can only be built from an absolute `http://` / `https://` URL; it keeps the
//! string exactly as given, minus any `#fragment` (that is what WeChat hashes), and separately
//! the host and port the browser will report, used for the allowlist and for CORS. The URL is
//! parsed only to *look* at it: nothing is ever signed or answered from the parser's output.
//!
//! Allowlist semantics (documented in the README):
//! - an empty `js_domains` allows every host;
//! - `h5.example.com` allows exactly that host, `*.example.com` every subdomain at any depth
//!   (`a.example.com`, `a.b.example.com`) but not `example.com` itself;
//! - hosts compare case-insensitively (the parser lower-cases them; internationalised names
//!   compare in their punycode form);
//! - a pattern without a port allows that host on any port; `h5.example.com:8443` allows only
//!   that port (the scheme's default port counts as the port written explicitly, so
//!   `h5.example.com:443` allows `https://h5.example.com/`).

use url::Url;

/// A page URL WeChat will check a signature against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl {
    /// The URL as given, fragment removed, otherwise untouched.
    signed: String,
    /// Whether a `#fragment` was removed.
    had_fragment: bool,
    host: String,
    port: Option<u16>,
}

/// Why a string is not a page URL wxgate can sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an absolute http:// or https:// URL")]
pub struct InvalidPageUrl(pub String);

impl PageUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidPageUrl> {
        let invalid = || InvalidPageUrl(raw.to_owned());
        let signed = wxgate_proto::jssdk::strip_fragment(raw);
        let (host, port) = host_and_port(signed).ok_or_else(invalid)?;
        Ok(PageUrl {
            signed: signed.to_owned(),
            had_fragment: signed.len() != raw.len(),
            host,
            port,
        })
    }

    /// The string that is signed: the given URL without its fragment.
    pub fn signed(&self) -> &str {
        &self.signed
    }

    pub fn had_fragment(&self) -> bool {
        self.had_fragment
    }

    /// Lower-case host (punycode for internationalised names).
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Host and effective port of an absolute http(s) URL; `None` for anything else.
pub fn host_and_port(raw: &str) -> Option<(String, Option<u16>)> {
    let scheme_ok = ["http://", "https://"].iter().any(|p| {
        raw.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    });
    if !scheme_ok {
        return None;
    }
    let parsed = Url::parse(raw).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str().filter(|h| !h.is_empty())?.to_owned();
    Some((host, parsed.port_or_known_default()))
}

/// Whether `host:port` is allowed by `patterns` (see the module documentation).
pub fn domain_allowed(patterns: &[String], host: &str, port: Option<u16>) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| pattern_matches(p, host, port))
}

fn pattern_matches(pattern: &str, host: &str, port: Option<u16>) -> bool {
    let (pattern_host, pattern_port) = match pattern.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => (pattern, None),
        },
        None => (pattern, None),
    };
    if pattern_port.is_some() && pattern_port != port {
        return false;
    }
    let host = host.trim_end_matches('.');
    match pattern_host.strip_prefix("*.") {
        Some(parent) => {
            host.len() > parent.len() + 1
                && host
                    .get(host.len() - parent.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(parent))
                && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
        }
        None => host.eq_ignore_ascii_case(pattern_host),
    }
}

impl PageUrl {
    /// Whether this page's host is on `patterns`.
    pub fn allowed_by(&self, patterns: &[String]) -> bool {
        domain_allowed(patterns, &self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], url: &str) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|s| (*s).to_owned()).collect();
        PageUrl::parse(url)
            .map(|u| u.allowed_by(&patterns))
            .unwrap_or(false)
    }

    #[test]
    fn keeps_the_url_byte_for_byte_without_its_fragment() {
        let u = PageUrl::parse("https://H5.example.com/a%2fb?x=%E4%B8%AD&y=中#/route?z").unwrap();
        assert_eq!(u.signed(), "https://H5.example.com/a%2fb?x=%E4%B8%AD&y=中");
        assert!(u.had_fragment());
        assert_eq!(u.host(), "h5.example.com");
    }

    #[test]
    fn refuses_what_is_not_absolute_http() {
        for bad in [
            "",
            "/page",
            "//h5.example.com/page",
            "ftp://h5.example.com/",
            "javascript:alert(1)",
            "http:h5.example.com",
            "https://",
            "h5.example.com/page",
        ] {
            assert!(PageUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(PageUrl::parse("HTTPS://h5.example.com").is_ok());
    }

    #[test]
    fn matches_exact_hosts_wildcards_and_ports() {
        assert!(allowed(&[], "https://anything.test/"));
        assert!(allowed(&["h5.example.com"], "https://h5.example.com/p"));
        assert!(allowed(
            &["h5.example.com"],
            "https://H5.EXAMPLE.COM:8443/p"
        ));
        assert!(!allowed(
            &["h5.example.com"],
            "https://h5.example.com.evil.com/"
        ));
        assert!(!allowed(
            &["h5.example.com"],
            "https://evil.com/?h5.example.com"
        ));
        assert!(!allowed(
            &["h5.example.com"],
            "https://h5.example.com@evil.com/"
        ));
        assert!(!allowed(&["h5.example.com"], "https://a.h5.example.com/"));
        assert!(allowed(&["*.example.com"], "https://a.example.com/"));
        assert!(allowed(&["*.example.com"], "https://a.b.example.com/"));
        assert!(!allowed(&["*.example.com"], "https://example.com/"));
        assert!(!allowed(&["*.example.com"], "https://badexample.com/"));
        assert!(allowed(
            &["h5.example.com:8443"],
            "https://h5.example.com:8443/"
        ));
        assert!(!allowed(
            &["h5.example.com:8443"],
            "https://h5.example.com/"
        ));
        assert!(allowed(&["h5.example.com:443"], "https://h5.example.com/"));
    }
}
