//! Where a login may send the browser back to, and how the result is added to that URL.
//!
//! `oauth_redirects` holds allowed prefixes. A plain string prefix test is an open redirect
//! waiting to happen (`https://h5.example.com` is a prefix of `https://h5.example.com.evil.com/`
//! and of `https://h5.example.com@evil.com/`), so both URLs are parsed the way browsers parse
//! them (WHATWG, the `url` crate) and the redirect must have the prefix's scheme, host and port,
//! no user-info, and a normalised path that starts with the prefix's path (dot segments,
//! including `%2e%2e`, are resolved first). Strings a browser would read differently from a
//! careful parser — backslashes, whitespace, control characters — are refused outright. An
//! account without `oauth_redirects` allows no redirect at all.

use percent_encoding::{utf8_percent_encode, CONTROLS};
use url::Url;

use crate::query;

/// Whether `redirect` is allowed by one of `prefixes` (see the module documentation).
pub fn allowed(prefixes: &[String], redirect: &str) -> bool {
    let Some(target) = parse_strict(redirect) else {
        return false;
    };
    prefixes.iter().any(|prefix| {
        let Ok(p) = Url::parse(prefix) else {
            return false;
        };
        p.scheme() == target.scheme()
            && p.host_str().is_some()
            && p.host_str() == target.host_str()
            && p.port_or_known_default() == target.port_or_known_default()
            && target.path().starts_with(p.path())
            // A prefix that reaches into the query can only be compared as written.
            && (p.query().is_none() || redirect.starts_with(prefix.as_str()))
    })
}

/// An absolute http(s) URL without user-info and without characters browsers would reinterpret.
fn parse_strict(raw: &str) -> Option<Url> {
    if raw
        .chars()
        .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none();
    ok.then_some(url)
}

/// `redirect` with `name=value` appended to its query string, before any `#fragment`; the rest
/// of the URL is kept as written, except earlier `wxgate_code` / `wxgate_error` parameters —
/// also written percent-encoded (`wxgate%5Fcode`, `wxgate_cod%65`), since a page's query
/// parser decodes names — which are removed so a page can never read a planted one. Non-ASCII
/// characters are
/// percent-encoded so the result is a valid `Location` header.
pub fn with_param(redirect: &str, name: &str, value: &str) -> String {
    let (before, fragment) = match redirect.find('#') {
        Some(i) => redirect.split_at(i),
        None => (redirect, ""),
    };
    let (path, query) = match before.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before, None),
    };
    let pair = format!("{name}={}", wxgate_proto::oauth::encode_query_value(value));
    let query = match query {
        None => pair,
        Some(q) => {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|p| {
                    !query::is_named(p, "wxgate_code")
                        && !query::is_named(p, "wxgate_error")
                        && !query::is_named(p, name)
                })
                .collect();
            let kept = kept.join("&");
            if kept.is_empty() || kept.ends_with('&') {
                format!("{kept}{pair}")
            } else {
                format!("{kept}&{pair}")
            }
        }
    };
    let joined = format!("{path}?{query}{fragment}");
    utf8_percent_encode(&joined, CONTROLS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(prefix: &str, redirect: &str) -> bool {
        allowed(&[prefix.to_owned()], redirect)
    }

    #[test]
    fn accepts_urls_under_the_prefix() {
        assert!(ok("https://h5.example.com/", "https://h5.example.com/"));
        assert!(ok(
            "https://h5.example.com/",
            "https://h5.example.com/a/b?c=1#d"
        ));
        assert!(ok(
            "https://h5.example.com/",
            "https://H5.Example.COM:443/a"
        ));
        assert!(ok(
            "https://h5.example.com",
            "https://h5.example.com/anything"
        ));
        assert!(ok(
            "https://h5.example.com/app/",
            "https://h5.example.com/app/x"
        ));
        assert!(ok(
            "http://127.0.0.1:8080/demo",
            "http://127.0.0.1:8080/demo?autologin=1"
        ));
    }

    #[test]
    fn refuses_prefix_tricks() {
        for bad in [
            "https://h5.example.com.evil.com/",
            "https://h5.example.com@evil.com/",
            "https://user:pw@h5.example.com/",
            "//evil.com/",
            "/relative",
            "https:evil.com",
            "https://evil.com/https://h5.example.com/",
            "https://h5.example.com:8443/",
            "http://h5.example.com/",
            "https://h5.example.com\\@evil.com/",
            "https://h5.example.com/\t@evil.com",
            "javascript:alert(1)//https://h5.example.com/",
            "https://h5.example.com%2eevil.com/",
        ] {
            assert!(!ok("https://h5.example.com", bad), "{bad}");
        }
        assert!(!ok(
            "https://h5.example.com/app/",
            "https://h5.example.com/app/../admin"
        ));
        assert!(!ok(
            "https://h5.example.com/app/",
            "https://h5.example.com/app/%2e%2e/admin"
        ));
        assert!(!ok(
            "https://h5.example.com/app/",
            "https://h5.example.com/"
        ));
        assert!(!allowed(&[], "https://h5.example.com/"));
    }

    #[test]
    fn adds_the_parameter_before_the_fragment() {
        assert_eq!(with_param("https://a/p", "k", "v"), "https://a/p?k=v");
        assert_eq!(
            with_param("https://a/p?x=1", "k", "v"),
            "https://a/p?x=1&k=v"
        );
        assert_eq!(
            with_param("https://a/p?x=1#/r?y=2", "k", "v"),
            "https://a/p?x=1&k=v#/r?y=2"
        );
        assert_eq!(with_param("https://a/p?", "k", "v"), "https://a/p?k=v");
        assert_eq!(with_param("https://a/p#f", "k", "v"), "https://a/p?k=v#f");
        assert_eq!(
            with_param("https://a/p?wxgate_code=planted&x=%20", "wxgate_code", "v"),
            "https://a/p?x=%20&wxgate_code=v"
        );
        for planted in [
            "wxgate%5Fcode=planted",
            "wxgate%5fcode=planted",
            "wxgate_cod%65=planted",
            "%77xgate_code=planted",
            "wxgate%5Ferror=access_denied",
        ] {
            assert_eq!(
                with_param(&format!("https://a/p?{planted}&x=1"), "wxgate_code", "v"),
                "https://a/p?x=1&wxgate_code=v",
                "{planted}"
            );
        }
        assert_eq!(
            with_param("https://a/p?wxgate%5Fcodex=1", "wxgate_code", "v"),
            "https://a/p?wxgate%5Fcodex=1&wxgate_code=v"
        );
        assert_eq!(
            with_param("https://a/页", "k", "v"),
            "https://a/%E9%A1%B5?k=v"
        );
    }
}
