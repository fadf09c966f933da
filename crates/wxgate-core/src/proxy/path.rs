//! Which WeChat paths the proxy forwards, and the upstream query it sends.
//!
//! The caller's path is validated segment by segment *after* percent-decoding, so the path an
//! allowlist sees is the path WeChat will act on: empty segments (`//`), `.` and `..`,
//! encoded slashes or backslashes, `;` (a path parameter to some servers) and control characters
//! are refused outright instead of being
//! normalized, because a gateway that "fixes" a path can be talked into checking one path and
//! forwarding another. Endpoints that would hand out or rotate credentials behind wxgate's
//! back (`cgi-bin/token`, `cgi-bin/stable_token`, `cgi-bin/ticket/getticket`), spend the
//! monthly quota resets (`cgi-bin/clear_quota*`, `cgi-bin/openapi/quota/clear`) or expect a
//! user's web token instead of the account's (`sns/*`) are never proxied, whatever the
//! account's `proxy_allow` says. The query is rebuilt byte for byte except for `access_token`:
//! every caller-supplied one is dropped and the central token appended.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::query;

/// What the appended token is encoded with: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Paths (segment prefixes, compared case-insensitively) the proxy never forwards.
pub const DENIED: [&str; 6] = [
    "/sns",
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    "/cgi-bin/ticket/getticket",
    "/cgi-bin/clear_quota",
    "/cgi-bin/openapi/quota/clear",
];

/// A proxied path that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatPath {
    /// As the caller sent it (still percent-encoded), without the leading `/`: what is
    /// forwarded.
    pub raw: String,
    /// `/` + the decoded path: what the allowlist and the deny list are matched against.
    pub decoded: String,
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Malformed: empty, `//`, `.`/`..`, encoded separators, control characters.
    #[error("{0}")]
    Invalid(&'static str),
    /// Well formed but on the deny list or outside the account's `proxy_allow`.
    #[error("{0}")]
    NotAllowed(&'static str),
}

impl WechatPath {
    /// Validates the raw (still percent-encoded) tail after `…/wechat/`.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Invalid("the WeChat API path is empty"));
        }
        let mut decoded = String::with_capacity(raw.len() + 1);
        for segment in raw.split('/') {
            let text = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| PathError::Invalid("the path is not valid UTF-8 once decoded"))?;
            if text.is_empty() {
                return Err(PathError::Invalid(
                    "the path has an empty segment (`//` or a trailing `/`)",
                ));
            }
            if text == "." || text == ".." {
                return Err(PathError::Invalid("the path may not contain `.` or `..`"));
            }
            // `;` starts a path parameter for some servers (`menu/..;/user/info` reaches
            // `user/info` on a servlet container, `sns;x/userinfo` is `sns/userinfo` there):
            // a path the deny list and `proxy_allow` read one way and a server another.
            // WeChat's paths never contain one, so it is refused, raw or encoded.
            if text
                .chars()
                .any(|c| matches!(c, '/' | '\\' | '?' | '#' | ';') || c.is_control())
            {
                return Err(PathError::Invalid(
                    "the path may not contain `;`, encoded `/`, `\\`, `?`, `#` or control \
                     characters",
                ));
            }
            decoded.push('/');
            decoded.push_str(&text);
        }
        Ok(Self {
            raw: raw.to_owned(),
            decoded,
        })
    }

    /// Applies the fixed deny list, then the account's `proxy_allow` prefixes (empty = all).
    pub fn check_allowed(&self, allow: &[String]) -> Result<(), PathError> {
        let lower = self.decoded.to_ascii_lowercase();
        let denied = DENIED.iter().any(|d| {
            lower == *d
                || lower
                    .strip_prefix(d)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if denied {
            return Err(PathError::NotAllowed(
                "wxgate never proxies the token, ticket and quota-reset endpoints or sns/* \
                 (use wxgate's own access_token, tickets and OAuth endpoints instead)",
            ));
        }
        if allow.is_empty() || allow.iter().any(|p| self.decoded.starts_with(p.as_str())) {
            Ok(())
        } else {
            Err(PathError::NotAllowed(
                "this path is not in the account's proxy_allow list",
            ))
        }
    }
}

/// The caller's raw query with every `access_token` parameter removed and `token` appended.
/// Other parameters keep their exact bytes (no re-encoding).
pub fn upstream_query(caller: Option<&str>, token: &str) -> String {
    let mut out = String::new();
    for pair in caller.unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        if query::is_named(pair, "access_token") {
            continue;
        }
        out.push_str(pair);
        out.push('&');
    }
    out.push_str("access_token=");
    out.extend(utf8_percent_encode(token, QUERY_VALUE));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn invalid(raw: &str) -> bool {
        matches!(WechatPath::parse(raw), Err(PathError::Invalid(_)))
    }

    #[test]
    fn ordinary_paths_are_accepted_and_decoded() {
        let p = WechatPath::parse("cgi-bin/menu/create").unwrap();
        assert_eq!(p.decoded, "/cgi-bin/menu/create");
        let p = WechatPath::parse("cgi-bin/%6Denu/get").unwrap();
        assert_eq!(p.raw, "cgi-bin/%6Denu/get");
        assert_eq!(p.decoded, "/cgi-bin/menu/get");
    }

    #[test]
    fn traversal_and_separator_tricks_are_refused() {
        for raw in [
            "",
            "cgi-bin//menu",
            "cgi-bin/menu/",
            "cgi-bin/../sns/userinfo",
            "cgi-bin/./token",
            "cgi-bin/%2e%2e/sns/userinfo",
            "cgi-bin%2Fmenu%2Fcreate",
            "cgi-bin%2fmenu",
            "cgi-bin/%5Ctoken",
            "cgi-bin/menu%3Fx",
            "cgi-bin/menu%00",
            "cgi-bin/%ff",
            // Path parameters: the deny list and proxy_allow would read another path than a
            // server that strips `;…` from a segment.
            "sns;x/userinfo",
            "cgi-bin/menu/..;/user/info",
            "cgi-bin/token;jsessionid=1",
            "sns%3Bx/userinfo",
        ] {
            assert!(invalid(raw), "{raw:?} should be invalid");
        }
    }

    #[test]
    fn credential_and_quota_endpoints_and_sns_are_denied_whatever_the_allowlist() {
        for raw in [
            "cgi-bin/token",
            "cgi-bin/stable_token",
            "CGI-BIN/Token",
            "cgi-bin/%74oken",
            "cgi-bin/ticket/getticket",
            "cgi-bin/clear_quota",
            "cgi-bin/clear_quota/v2",
            "cgi-bin/openapi/quota/clear",
            "sns/userinfo",
            "sns/oauth2/access_token",
        ] {
            let p = WechatPath::parse(raw).unwrap();
            assert!(
                matches!(p.check_allowed(&[]), Err(PathError::NotAllowed(_))),
                "{raw:?} should be denied"
            );
            assert!(p.check_allowed(&["/".into()]).is_err());
        }
        // Neighbours of denied names are not caught by accident.
        for raw in ["cgi-bin/tokenizer", "cgi-bin/openapi/quota/get", "snsx/a"] {
            let p = WechatPath::parse(raw).unwrap();
            assert_eq!(p.check_allowed(&[]), Ok(()), "{raw:?}");
        }
    }

    #[test]
    fn allowlist_prefixes_are_matched_against_the_decoded_path() {
        let allow = vec!["/cgi-bin/menu/".to_owned(), "/cgi-bin/message/".to_owned()];
        let ok = WechatPath::parse("cgi-bin/%6Denu/create").unwrap();
        assert_eq!(ok.check_allowed(&allow), Ok(()));
        let other = WechatPath::parse("cgi-bin/user/info").unwrap();
        assert!(matches!(
            other.check_allowed(&allow),
            Err(PathError::NotAllowed(_))
        ));
        let sibling = WechatPath::parse("cgi-bin/menuextra/x").unwrap();
        assert!(sibling.check_allowed(&allow).is_err());
    }

    #[test]
    fn caller_access_tokens_are_replaced_and_other_parameters_kept_verbatim() {
        assert_eq!(upstream_query(None, "T"), "access_token=T");
        assert_eq!(
            upstream_query(
                Some("type=image&access_token=evil&next_openid=&q=%E4%B8%AD+x&access%5Ftoken=2"),
                "T-1_x"
            ),
            "type=image&next_openid=&q=%E4%B8%AD+x&access_token=T-1_x"
        );
        assert_eq!(upstream_query(Some("&&a=1&"), "T"), "a=1&access_token=T");
    }
}
