//! Page URLs and the `js_domains` allowlist.
//!
//! A [`PageUrl`] can only be built from an absolute `http://` / `https://` URL; it keeps the
//! string exactly as given, minus any `#fragment` (that is what WeChat hashes), and separately
//! the host and port the browser will report, used for the allowlist and for CORS. Hosts are
//! read by the `url` crate (the WHATWG URL standard, as browsers read them: user info, IP
//! address forms, punycode, backslashes), never by hand. The URL is parsed only to *look* at
//! it: nothing is ever signed or answered from the parser's output.
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

use crate::config::DomainPattern;

/// A page URL WeChat will check a signature against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl {
    /// The URL as given, fragment removed, otherwise untouched.
    signed: String,
    /// Whether a `#fragment` was removed.
    had_fragment: bool,
    /// Lower case; punycode for internationalised names.
    host: String,
    port: Option<u16>,
}

/// Why a string is not a page URL wxgate can sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an absolute http:// or https:// URL")]
pub struct InvalidPageUrl(pub String);

impl PageUrl {
    /// Takes the URL as given (a `String` is kept, not copied): signed as it is, minus its
    /// fragment.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidPageUrl> {
        let mut signed = raw.into();
        let given_len = signed.len();
        let signed_len = wxgate_proto::jssdk::strip_fragment(&signed).len();
        let Some((host, port)) = host_and_port(&signed[..signed_len]) else {
            return Err(InvalidPageUrl(signed));
        };
        signed.truncate(signed_len);
        Ok(PageUrl {
            signed,
            had_fragment: signed_len != given_len,
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

/// The host (lower case; internationalised names in punycode) and port (the scheme's default
/// when none is written) of an absolute URL written with `http://` or `https://` (any case), as
/// the WHATWG URL parser (the `url` crate, and the browser) reads them; `None` for anything
/// else, `http:h5.example.com` included (which the parser would complete).
pub fn host_and_port(raw: &str) -> Option<(String, Option<u16>)> {
    let absolute = ["http://", "https://"].iter().any(|p| {
        raw.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    });
    if !absolute {
        return None;
    }
    let parsed = Url::parse(raw).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str().filter(|h| !h.is_empty())?.to_owned();
    Some((host, parsed.port_or_known_default()))
}

pub use crate::config::domain_pattern::domain_allowed;

impl PageUrl {
    /// Whether this page's host is on `patterns`.
    pub fn allowed_by(&self, patterns: &[DomainPattern]) -> bool {
        domain_allowed(patterns, self.host(), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], url: &str) -> bool {
        let patterns: Vec<DomainPattern> = patterns
            .iter()
            .map(|s| DomainPattern::parse(s).unwrap())
            .collect();
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

    /// Page-like URLs built from pieces that stress the edges: user info, IPv4 forms, punycode,
    /// empty labels, backslashes, ports out of range, control characters, upper case.
    fn page_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let scheme = prop_oneof![
            Just("http://"),
            Just("https://"),
            Just("HTTPS://"),
            Just("Http://")
        ];
        let label = prop_oneof![
            "[a-z0-9-]{1,8}",
            "[A-Z]{1,4}",
            Just("xn--fiqs8s".to_owned()),
            Just("0x7f".to_owned()),
            Just("127".to_owned()),
            Just("".to_owned()),
            Just("例子".to_owned()),
            Just("a%41".to_owned()),
            Just("a\tb".to_owned()),
        ];
        let host = prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."));
        let port = prop_oneof![
            Just(String::new()),
            Just(":".to_owned()),
            Just(":443".to_owned()),
            Just(":80".to_owned()),
            Just(":65535".to_owned()),
            Just(":65536".to_owned()),
            Just(":0008443".to_owned()),
            Just(":x".to_owned()),
        ];
        let userinfo = prop_oneof![Just(""), Just("user@"), Just("u:p@")];
        let tail = prop_oneof![
            Just(""),
            Just("/"),
            Just("/p?q=1#f"),
            Just("?a=b"),
            Just("\\@evil.com/"),
            Just("#x"),
            Just("/a b"),
        ];
        (scheme, userinfo, host, port, tail).prop_map(|(s, u, h, p, t)| format!("{s}{u}{h}{p}{t}"))
    }

    /// The `url` crate's own reading of `raw`'s host, for a URL written with `http://` or
    /// `https://`.
    fn url_crate_host(raw: &str) -> Option<String> {
        let lower = raw.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return None;
        }
        let parsed = Url::parse(raw).ok()?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return None;
        }
        parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// A page (its fragment removed) has the host the `url` crate reads in the whole URL,
        /// and is refused exactly when that reading has none.
        #[test]
        fn a_page_has_the_host_the_url_crate_reads(raw in page_like()) {
            let page = PageUrl::parse(raw.clone()).ok().map(|p| p.host().to_owned());
            proptest::prop_assert_eq!(page, url_crate_host(&raw), "{}", raw);
        }
    }

    #[test]
    fn hosts_and_ports_are_read_as_browsers_read_them() {
        for (raw, expected) in [
            (
                "https://h5.example.com/page?a=1#x",
                Some(("h5.example.com", 443)),
            ),
            ("HTTP://H5.Example.COM:8080", Some(("h5.example.com", 8080))),
            (
                "http://a-b.c9.example.com?x",
                Some(("a-b.c9.example.com", 80)),
            ),
            // A backslash ends the authority of an http(s) URL, as in browsers.
            (
                "https://h5.example.com\\@evil.com/",
                Some(("h5.example.com", 443)),
            ),
            (
                "https://user@h5.example.com/",
                Some(("h5.example.com", 443)),
            ),
            ("http://127.0.0.1/", Some(("127.0.0.1", 80))),
            ("http://0x7f.1/", Some(("127.0.0.1", 80))),
            (
                "https://xn--fiqs8s.example/",
                Some(("xn--fiqs8s.example", 443)),
            ),
            ("https://例子.example/", Some(("xn--fsqu00a.example", 443))),
            ("https://h5..example.com/", Some(("h5..example.com", 443))),
            ("https://h5.example.com:/", Some(("h5.example.com", 443))),
            ("https://h5.exa\tmple.com/", Some(("h5.example.com", 443))),
            ("https://h5.example.com:99999/", None),
            ("https:///h5.example.com/", Some(("h5.example.com", 443))),
            ("ftp://h5.example.com/", None),
            ("http:h5.example.com", None),
        ] {
            let expected = expected.map(|(host, port)| (host.to_owned(), Some(port)));
            assert_eq!(host_and_port(raw), expected, "{raw}");
        }
    }
}
