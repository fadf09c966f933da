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

use std::borrow::Cow;
use std::ops::Range;

use url::Url;

use crate::config::DomainPattern;

/// A page URL WeChat will check a signature against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl {
    /// The URL as given, fragment removed, otherwise untouched.
    signed: String,
    /// Whether a `#fragment` was removed.
    had_fragment: bool,
    host: HostText,
    port: Option<u16>,
}

/// Where a page's lower-case host is kept: in the URL itself when it is written there in lower
/// case already (nearly always, so nothing is copied), else on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostText {
    InUrl(Range<usize>),
    Own(String),
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
        let Some((host, port)) = locate_host(&signed[..signed_len]) else {
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
        match &self.host {
            HostText::InUrl(span) => self.signed.get(span.clone()).unwrap_or_default(),
            HostText::Own(host) => host,
        }
    }
}

/// The host (lower case; internationalised names in punycode) and port (the scheme's default
/// when none is written) of an absolute `http://` / `https://` URL, exactly as the WHATWG URL
/// parser (the `url` crate, and the browser) reads them; `None` for anything else.
///
/// Every config request parses its page URL, so the common shape — a plain ASCII host name
/// such as `h5.example.com`, an optional numeric port, nothing unusual in between — is read
/// directly ([`plain_host_span`]); everything else (user info, IP addresses, non-ASCII or
/// punycode names, percent signs, backslashes, control characters, empty labels, …) goes to
/// the `url` crate. A property test checks that both agree wherever the direct path answers.
/// The host is borrowed from `raw` when it is written there in lower case.
pub fn host_and_port(raw: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    let (host, port) = locate_host(raw)?;
    let host = match host {
        HostText::InUrl(span) => Cow::Borrowed(raw.get(span)?),
        HostText::Own(host) => Cow::Owned(host),
    };
    Some((host, port))
}

/// [`host_and_port`], with the host left in `raw` when it is written there in lower case.
fn locate_host(raw: &str) -> Option<(HostText, Option<u16>)> {
    let scheme_ok = ["http://", "https://"].iter().any(|p| {
        raw.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    });
    if !scheme_ok {
        return None;
    }
    if let Some((span, port)) = plain_host_span(raw) {
        let written = raw.get(span.clone())?;
        let host = if written.bytes().any(|b| b.is_ascii_uppercase()) {
            HostText::Own(written.to_ascii_lowercase())
        } else {
            HostText::InUrl(span)
        };
        return Some((host, port));
    }
    let (host, port) = host_and_port_by_url_crate(raw)?;
    Some((HostText::Own(host), port))
}

/// The full parser's reading of `raw`: the host and effective port of an http(s) URL.
fn host_and_port_by_url_crate(raw: &str) -> Option<(String, Option<u16>)> {
    let parsed = Url::parse(raw).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str().filter(|h| !h.is_empty())?.to_owned();
    Some((host, parsed.port_or_known_default()))
}

/// The direct path of [`host_and_port`] for `raw` starting with `http://` or `https://` (any
/// case): where in `raw` the host is written (in any case), and the port. Answers only when
/// the authority is `name[:digits]` with `name` made of dot-separated, non-empty labels of
/// ASCII letters, digits and hyphens, none starting with `xn--` (those the IDNA rules check),
/// the last one not a number (the URL standard would read the name as an IPv4 address), and
/// the whole URL free of control characters and spaces (which the standard strips or rejects).
/// `None` means "ask the full parser", never "invalid".
fn plain_host_span(raw: &str) -> Option<(Range<usize>, Option<u16>)> {
    let bytes = raw.as_bytes();
    // No early exit: the check over the whole URL is vectorised.
    if bytes
        .iter()
        .fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f))
    {
        return None;
    }
    let https = bytes.get(4).is_some_and(|b| b.eq_ignore_ascii_case(&b's'));
    let authority_start = if https { 8 } else { 7 };
    let rest = bytes.get(authority_start..)?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#' | b'\\'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (name, port) = match authority.iter().position(|&b| b == b':') {
        None => (authority, None),
        Some(colon) => {
            let digits = &authority[colon + 1..];
            if digits.is_empty() || digits.len() > 5 {
                return None;
            }
            let mut port: u32 = 0;
            for &d in digits {
                if !d.is_ascii_digit() {
                    return None;
                }
                port = port * 10 + u32::from(d - b'0');
            }
            (&authority[..colon], Some(u16::try_from(port).ok()?))
        }
    };
    // One pass over the name: every label non-empty, of letters, digits and hyphens, and not
    // starting with `xn--`.
    let mut last = 0..0;
    let mut label_start = 0;
    for i in 0..=name.len() {
        match name.get(i) {
            Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => continue,
            Some(b'.') | None => {
                let label = &name[label_start..i];
                if label.is_empty()
                    || label
                        .get(..4)
                        .is_some_and(|head| head.eq_ignore_ascii_case(b"xn--"))
                {
                    return None;
                }
                last = label_start..i;
                label_start = i + 1;
            }
            Some(_) => return None,
        }
    }
    let last = &name[last];
    let numeric = last.iter().all(u8::is_ascii_digit)
        || last
            .get(..2)
            .is_some_and(|head| head.eq_ignore_ascii_case(b"0x"))
            && last[2..].iter().all(u8::is_ascii_hexdigit);
    if numeric {
        return None;
    }
    let default_port = if https { 443 } else { 80 };
    // The name is the start of the authority.
    let span = authority_start..authority_start + name.len();
    Some((span, Some(port.unwrap_or(default_port))))
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

    /// The direct path's answer, host lower-cased, when it answers.
    fn plain_host_and_port(raw: &str) -> Option<(String, Option<u16>)> {
        let (span, port) = plain_host_span(raw)?;
        Some((raw[span].to_ascii_lowercase(), port))
    }

    /// [`host_and_port`] with the host as an owned string.
    fn owned_host_and_port(raw: &str) -> Option<(String, Option<u16>)> {
        host_and_port(raw).map(|(host, port)| (host.into_owned(), port))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn the_direct_path_agrees_with_the_url_crate(raw in page_like()) {
            if let Some(direct) = plain_host_and_port(&raw) {
                proptest::prop_assert_eq!(Some(direct), host_and_port_by_url_crate(&raw), "{}", raw);
            }
            proptest::prop_assert_eq!(owned_host_and_port(&raw), host_and_port_by_url_crate(&raw), "{}", raw);
            if let Ok(page) = PageUrl::parse(raw.clone()) {
                let expected = host_and_port_by_url_crate(&raw).map(|(host, _)| host);
                proptest::prop_assert_eq!(Some(page.host().to_owned()), expected, "{}", raw);
            }
        }
    }

    #[test]
    fn the_direct_path_takes_plain_hosts_and_leaves_the_rest() {
        for (raw, host, port) in [
            ("https://h5.example.com/page?a=1#x", "h5.example.com", 443),
            ("HTTP://H5.Example.COM:8080", "h5.example.com", 8080),
            ("http://a-b.c9.example.com?x", "a-b.c9.example.com", 80),
            // A backslash ends the authority of an http(s) URL, as in browsers.
            ("https://h5.example.com\\@evil.com/", "h5.example.com", 443),
        ] {
            let expected = Some((host.to_owned(), Some(port)));
            assert_eq!(plain_host_and_port(raw), expected, "{raw}");
            assert_eq!(host_and_port_by_url_crate(raw), expected, "{raw}");
        }
        for raw in [
            "https://user@h5.example.com/",
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "https://xn--fiqs8s.example/",
            "https://例子.example/",
            "https://h5..example.com/",
            "https://h5.example.com:/",
            "https://h5.exa\tmple.com/",
            "https://h5.example.com:99999/",
            "https:///h5.example.com/",
        ] {
            assert_eq!(plain_host_and_port(raw), None, "{raw}");
            assert_eq!(
                owned_host_and_port(raw),
                host_and_port_by_url_crate(raw),
                "{raw}"
            );
        }
    }
}
