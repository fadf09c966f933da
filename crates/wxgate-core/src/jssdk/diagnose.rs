//! Explaining why a `wx.config` signature does not verify.
//!
//! "invalid signature" is the most common JS-SDK support question, and WeChat says nothing more.
//! Given the page URL and the `signature`, `timestamp` and `nonceStr` the page passed to
//! `wx.config`, [`diagnose`] recomputes what WeChat computes and, when it differs, searches the
//! usual mistakes — a foreign domain, the `#fragment` signed, `&amp;` for `&`, percent-encoding
//! changed (decoded, re-encoded, `encodeURIComponent`-ed, hex case), `http` for `https`, a
//! missing `/` or WeChat's `from=…&isappinstalled=…` share parameters, a ticket that has since
//! been replaced, another account's ticket — by signing each variant with each known ticket and
//! reporting, in order, a finding per check in plain words. Nonce and timestamp mistakes cannot
//! be told apart from a wrong ticket (all are inside the hash), and it says so.
//!
//! Tickets never leave this module: findings name the account and when a ticket was replaced,
//! nothing derived from the ticket itself.

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::page::PageUrl;
use crate::config::DomainPattern;
use wxgate_proto::signature::Sha1Hex;

/// A ticket the signature may have been made with.
#[derive(Debug, Clone)]
pub struct KnownTicket {
    pub account: String,
    pub appid: String,
    pub ticket: String,
    /// `None` for the current ticket; otherwise when it was replaced (its successor's fetch).
    pub replaced_since: Option<i64>,
}

/// What the page passed to `wx.config`.
#[derive(Debug, Clone)]
pub struct Presented<'a> {
    pub url: &'a str,
    pub signature: &'a str,
    pub timestamp: u64,
    pub nonce_str: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check found nothing wrong.
    Pass,
    /// The check found the (or a) cause.
    Fail,
    /// Something to know that is not itself the cause.
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
}

/// The signing input that reproduced the signature, when one did.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// Which transformation of the page URL was signed (`exact` = the correct one).
    pub variant: &'static str,
    /// The URL string that was signed.
    pub url: String,
    /// `current` or `replaced`.
    pub ticket: &'static str,
    pub account: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The signature verifies for this page, this account and its current ticket, and the
    /// page's domain is allowed: `wx.config` will accept it.
    pub valid: bool,
    pub account: String,
    /// The string WeChat hashes: the page URL without its fragment.
    pub url: String,
    #[serde(rename = "match")]
    pub matched: Option<Match>,
    pub findings: Vec<Finding>,
    /// One sentence: the verdict.
    pub summary: String,
}

/// Characters browsers percent-encode in a URL's path and query (besides all non-ASCII).
const BROWSER: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
/// What `encodeURIComponent` encodes.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

struct Variant {
    name: &'static str,
    check: &'static str,
    url: String,
}

/// The URL strings a backend may have signed instead of the right one, the right one first.
fn variants(raw: &str) -> Vec<Variant> {
    let exact = wxgate_proto::jssdk::strip_fragment(raw).to_owned();
    let mut out: Vec<Variant> = Vec::new();
    let mut push = |name, check, url: String| {
        if !out.iter().any(|v: &Variant| v.url == url) {
            out.push(Variant { name, check, url });
        }
    };
    push("exact", "exact", exact.clone());
    push("with_fragment", "fragment", raw.to_owned());
    push("amp_decoded", "html_entity", exact.replace("&amp;", "&"));
    push("amp_encoded", "html_entity", exact.replace('&', "&amp;"));
    if let Ok(decoded) = percent_decode_str(&exact).decode_utf8() {
        push("percent_decoded", "percent_encoding", decoded.into_owned());
    }
    push(
        "percent_encoded",
        "percent_encoding",
        utf8_percent_encode(&exact, BROWSER).to_string(),
    );
    push(
        "encode_uri_component",
        "percent_encoding",
        utf8_percent_encode(&exact, URI_COMPONENT).to_string(),
    );
    push(
        "hex_lower_case",
        "percent_encoding",
        hex_case(&exact, false),
    );
    push("hex_upper_case", "percent_encoding", hex_case(&exact, true));
    if let Some(rest) = exact.strip_prefix("https://") {
        push("scheme_swapped", "scheme", format!("http://{rest}"));
    } else if let Some(rest) = exact.strip_prefix("http://") {
        push("scheme_swapped", "scheme", format!("https://{rest}"));
    }
    if let Some(v) = toggle_root_slash(&exact) {
        push("root_slash", "url_shape", v);
    }
    push(
        "without_share_params",
        "url_shape",
        without_share_params(&exact),
    );
    out
}

/// `%xx` escapes with their hex digits upper- or lower-cased.
fn hex_case(url: &str, upper: bool) -> String {
    let mut out = String::with_capacity(url.len());
    let mut left = 0usize;
    for c in url.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// `https://host` ↔ `https://host/` (and with a query), the slash browsers always show.
fn toggle_root_slash(url: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let after = &url[scheme_end..];
    let auth_end = after.find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
    let (head, tail) = url.split_at(auth_end);
    if tail.is_empty() || tail.starts_with('?') {
        Some(format!("{head}/{tail}"))
    } else if tail == "/" || tail.starts_with("/?") {
        Some(format!("{head}{}", &tail[1..]))
    } else {
        None
    }
}

/// The URL without the `from` and `isappinstalled` parameters WeChat appends to shared links.
fn without_share_params(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            key != "from" && key != "isappinstalled"
        })
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

fn same_signature(expected: &str, presented: &str) -> bool {
    let presented = presented.trim().to_ascii_lowercase();
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// At most this many tickets are tried (the first ones: the account's own current and past
/// tickets come first), so the work of one diagnosis is bounded whatever the gateway holds.
pub const MAX_TICKETS: usize = 32;

/// Diagnoses `presented` for the page of `account`; `domain_allowed` is `None` when the URL is
/// not an absolute http(s) URL. `tickets` starts with the account's current ticket; only the
/// first [`MAX_TICKETS`] are tried.
pub fn diagnose(
    account: &str,
    js_domains: &[DomainPattern],
    presented: &Presented<'_>,
    tickets: &[KnownTicket],
) -> Diagnosis {
    let mut findings = Vec::new();
    let page = PageUrl::parse(presented.url);
    let signed_url = wxgate_proto::jssdk::strip_fragment(presented.url).to_owned();

    // 1. Foreign domain.
    let domain_ok = match &page {
        Err(_) => {
            findings.push(Finding {
                check: "domain",
                status: Status::Fail,
                message: format!(
                    "{:?} is not an absolute http:// or https:// URL; pass the page's location.href",
                    presented.url
                ),
            });
            false
        }
        Ok(p) if p.allowed_by(js_domains) => {
            findings.push(Finding {
                check: "domain",
                status: Status::Pass,
                message: if js_domains.is_empty() {
                    format!("account {account:?} has no js_domains, so any host ({}) may be signed; WeChat still requires it among the account's JS接口安全域名", p.host())
                } else {
                    format!("{} is on the js_domains of account {account:?}", p.host())
                },
            });
            true
        }
        Ok(p) => {
            findings.push(Finding {
                check: "domain",
                status: Status::Fail,
                message: format!(
                    "{} is not on the js_domains of account {account:?}: wxgate does not sign its pages, and WeChat refuses wx.config on a host missing from the account's JS接口安全域名",
                    p.host()
                ),
            });
            false
        }
    };

    // Search: every URL variant with every known ticket, the right combination first.
    let candidates = variants(presented.url);
    let mut matched: Option<(&Variant, &KnownTicket)> = None;
    let tickets = &tickets[..tickets.len().min(MAX_TICKETS)];
    'search: for v in &candidates {
        for t in tickets {
            // `sign` strips a fragment itself; the with-fragment variant needs the raw hash.
            let sig = if v.name == "with_fragment" {
                raw_sign(&t.ticket, presented.nonce_str, presented.timestamp, &v.url)
            } else {
                wxgate_proto::jssdk::sign(
                    &t.ticket,
                    presented.nonce_str,
                    presented.timestamp,
                    &v.url,
                )
            };
            if same_signature(&sig, presented.signature) {
                matched = Some((v, t));
                break 'search;
            }
        }
    }
    let variant_name = matched.map(|(v, _)| v.name);
    let failed_check = matched.map(|(v, _)| v.check);
    let fail_if = |check: &str| failed_check == Some(check);

    // 2. Fragment.
    let fragment = presented.url.contains('#');
    findings.push(if fail_if("fragment") {
        Finding { check: "fragment", status: Status::Fail, message: "the signature covers the #fragment; WeChat hashes the URL without it — sign location.href.split('#')[0]".into() }
    } else if fragment {
        Finding { check: "fragment", status: Status::Info, message: "the URL has a #fragment; it is not part of what WeChat hashes (wxgate's config leaves it out)".into() }
    } else {
        Finding { check: "fragment", status: Status::Pass, message: "no #fragment in the URL".into() }
    });

    // 3. &amp;
    let has_amp = presented.url.contains("&amp;");
    findings.push(match variant_name {
        Some("amp_decoded") => Finding { check: "html_entity", status: Status::Fail, message: "the page URL contains \"&amp;\" but the signature was made with \"&\": sign the URL exactly as location.href shows it".into() },
        Some("amp_encoded") => Finding { check: "html_entity", status: Status::Fail, message: "the signature was made with \"&amp;\" where the page URL has \"&\": the URL was HTML-escaped (e.g. by a template) before it was signed".into() },
        _ if has_amp => Finding { check: "html_entity", status: Status::Info, message: "the URL contains \"&amp;\", usually a link that was HTML-escaped twice; WeChat hashes it as is, so it must be signed as is".into() },
        _ => Finding { check: "html_entity", status: Status::Pass, message: "no \"&amp;\" in the URL".into() },
    });

    // 4. Percent-encoding.
    findings.push(match variant_name {
        Some("percent_decoded") => Finding { check: "percent_encoding", status: Status::Fail, message: "the signature matches the URL with its %-escapes decoded: the URL was decoded once too often before signing; sign it exactly as location.href shows it".into() },
        Some("percent_encoded") => Finding { check: "percent_encoding", status: Status::Fail, message: "the signature matches the URL with non-ASCII characters or spaces %-encoded, but the page reports them unencoded: sign the URL as the page reports it, never re-encoded".into() },
        Some("encode_uri_component") => Finding { check: "percent_encoding", status: Status::Fail, message: "the signature matches encodeURIComponent(url): the URL was sent encoded and signed without being decoded; decode the query parameter once (or use wxgate's config endpoint)".into() },
        Some("hex_lower_case") | Some("hex_upper_case") => Finding { check: "percent_encoding", status: Status::Fail, message: "the signature matches the URL with the hex digits of its %-escapes in another case (%2f vs %2F): something normalised the URL before signing".into() },
        _ => Finding { check: "percent_encoding", status: Status::Pass, message: "no decoded or re-encoded form of the URL matches better than the URL as given".into() },
    });

    // 5. Scheme.
    findings.push(if fail_if("scheme") {
        Finding { check: "scheme", status: Status::Fail, message: "the signature was made for the other scheme (http vs https): sign the URL with the scheme the page is actually served on (behind a TLS proxy, take it from location.href, not from the backend's request)".into() }
    } else {
        Finding { check: "scheme", status: Status::Pass, message: "the scheme is not the difference".into() }
    });

    // 5b. URL shape.
    findings.push(match variant_name {
        Some("root_slash") => Finding { check: "url_shape", status: Status::Fail, message: "the signature differs only by the \"/\" after the host; browsers always report it (https://host/), sign location.href".into() },
        Some("without_share_params") => Finding { check: "url_shape", status: Status::Fail, message: "the signature was made without the from=…&isappinstalled=… parameters WeChat appends to shared links; sign the URL the page really has".into() },
        _ => Finding { check: "url_shape", status: Status::Pass, message: "no missing \"/\" or dropped share parameters".into() },
    });

    // 6. Nonce and timestamp.
    let exact_current = matches!(matched, Some((v, t)) if v.name == "exact" && t.replaced_since.is_none() && t.account == account);
    findings.push(if matched.is_some() {
        Finding { check: "nonce_timestamp", status: Status::Pass, message: "nonceStr and timestamp are the ones that were signed (they are part of the hash that matched)".into() }
    } else {
        Finding { check: "nonce_timestamp", status: Status::Info, message: "nonceStr and timestamp cannot be checked on their own (they are inside the hash). Since no variant matched, check that wx.config gets exactly the signed nonceStr (that spelling and case) and timestamp (the same integer), and that the page URL did not change between signing and wx.config (single-page apps: on iOS sign the landing URL, elsewhere the current one)".into() }
    });

    // 7. Ticket.
    findings.push(match matched {
        Some((_, t)) if t.account == account && t.replaced_since.is_none() => Finding { check: "ticket", status: Status::Pass, message: "signed with the account's current jsapi_ticket".into() },
        Some((_, t)) if t.account == account => Finding { check: "ticket", status: Status::Fail, message: format!("signed with a jsapi_ticket that has since been replaced (at unix time {}); fetch a fresh config for each page load instead of caching it", t.replaced_since.unwrap_or_default()) },
        Some(_) => Finding { check: "ticket", status: Status::Info, message: "signed with another account's ticket (see `account`)".into() },
        None => Finding { check: "ticket", status: Status::Info, message: format!("does not verify with the current jsapi_ticket nor with the {} earlier one(s) wxgate remembers", tickets.iter().filter(|t| t.account == account && t.replaced_since.is_some()).count()) },
    });

    // 8. Account.
    findings.push(match matched {
        Some((_, t)) if t.account != account => Finding { check: "account", status: Status::Fail, message: format!("signed with the ticket of account {:?} (appId {}): call wx.config with that account's appId, or sign with account {account:?}", t.account, t.appid) },
        Some(_) => Finding { check: "account", status: Status::Pass, message: format!("signed for account {account:?}") },
        None => Finding { check: "account", status: Status::Info, message: "does not verify with the ticket of any account of this gateway either".into() },
    });

    let valid = exact_current && domain_ok;
    let summary = if valid {
        "the signature is valid for this page: if wx.config still fails, check that appId is this account's and that the domain is a JS接口安全域名 in the WeChat console".to_owned()
    } else if !domain_ok && exact_current {
        "the signature itself is right, but the page's domain is not allowed".to_owned()
    } else if let Some(f) = findings.iter().find(|f| f.status == Status::Fail) {
        f.message.clone()
    } else {
        "the signature does not verify and no common mistake explains it; see the nonce_timestamp finding".to_owned()
    };
    Diagnosis {
        valid,
        account: account.to_owned(),
        url: signed_url,
        matched: matched.map(|(v, t)| Match {
            variant: v.name,
            url: v.url.clone(),
            ticket: if t.replaced_since.is_none() {
                "current"
            } else {
                "replaced"
            },
            account: t.account.clone(),
        }),
        findings,
        summary,
    }
}

/// The signature over `url` exactly as given (fragment included).
fn raw_sign(ticket: &str, nonce: &str, timestamp: u64, url: &str) -> Sha1Hex {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(
        format!("jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url}")
            .as_bytes(),
    );
    wxgate_proto::signature::sha1_hex_inline(&h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxgate_proto::jssdk::sign;

    fn tickets() -> Vec<KnownTicket> {
        vec![
            KnownTicket {
                account: "main".into(),
                appid: "wx1".into(),
                ticket: "T-now".into(),
                replaced_since: None,
            },
            KnownTicket {
                account: "main".into(),
                appid: "wx1".into(),
                ticket: "T-old".into(),
                replaced_since: Some(100),
            },
            KnownTicket {
                account: "other".into(),
                appid: "wx2".into(),
                ticket: "T-other".into(),
                replaced_since: None,
            },
        ]
    }

    fn run(url: &str, signature: &str) -> Diagnosis {
        diagnose(
            "main",
            &[DomainPattern::parse("h5.example.com").unwrap()],
            &Presented {
                url,
                signature,
                timestamp: 1,
                nonce_str: "n",
            },
            &tickets(),
        )
    }

    fn failed(d: &Diagnosis) -> Vec<&'static str> {
        d.findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn only_the_first_max_tickets_are_tried() {
        let many: Vec<KnownTicket> = (0..MAX_TICKETS + 10)
            .map(|i| KnownTicket {
                account: format!("a{i}"),
                appid: "wx1".into(),
                ticket: format!("T-{i}"),
                replaced_since: None,
            })
            .collect();
        let url = "https://h5.example.com/";
        let run_with = |ticket: &str| {
            diagnose(
                "a0",
                &[],
                &Presented {
                    url,
                    signature: &sign(ticket, "n", 1, url),
                    timestamp: 1,
                    nonce_str: "n",
                },
                &many,
            )
        };
        let last_tried = format!("T-{}", MAX_TICKETS - 1);
        assert!(run_with(&last_tried).matched.is_some());
        let beyond = format!("T-{MAX_TICKETS}");
        assert!(run_with(&beyond).matched.is_none());
    }

    #[test]
    fn a_right_signature_is_valid() {
        let url = "https://h5.example.com/p?a=1#x";
        let d = run(url, &sign("T-now", "n", 1, url));
        assert!(d.valid, "{d:?}");
        assert!(failed(&d).is_empty());
    }

    #[test]
    fn each_common_mistake_is_named() {
        let page = "https://h5.example.com/p?q=%E4%B8%AD&x=1#/r";
        let cases = [
            (raw_sign("T-now", "n", 1, page), "fragment", "with_fragment"),
            (
                sign("T-now", "n", 1, "https://h5.example.com/p?q=中&x=1"),
                "percent_encoding",
                "percent_decoded",
            ),
            (
                sign("T-now", "n", 1, "https://h5.example.com/p?q=%e4%b8%ad&x=1"),
                "percent_encoding",
                "hex_lower_case",
            ),
            (
                sign(
                    "T-now",
                    "n",
                    1,
                    "https://h5.example.com/p?q=%E4%B8%AD&amp;x=1",
                ),
                "html_entity",
                "amp_encoded",
            ),
            (
                sign("T-now", "n", 1, "http://h5.example.com/p?q=%E4%B8%AD&x=1"),
                "scheme",
                "scheme_swapped",
            ),
            (sign("T-old", "n", 1, page), "ticket", "exact"),
            (sign("T-other", "n", 1, page), "account", "exact"),
        ];
        for (signature, check, variant) in cases {
            let d = run(page, &signature);
            assert!(!d.valid);
            assert_eq!(failed(&d), vec![check], "{check}: {d:#?}");
            assert_eq!(d.matched.as_ref().map(|m| m.variant), Some(variant));
        }
        let d = run(page, "0000");
        assert!(d.matched.is_none());
        assert!(failed(&d).is_empty());
        assert!(d
            .findings
            .iter()
            .any(|f| f.check == "nonce_timestamp" && f.status == Status::Info));
    }

    #[test]
    fn foreign_domains_and_bad_urls_fail_the_domain_check() {
        let url = "https://evil.example.org/";
        let d = run(url, &sign("T-now", "n", 1, url));
        assert!(!d.valid);
        assert_eq!(failed(&d), vec!["domain"]);
        assert_eq!(failed(&run("/relative", "x")), vec!["domain"]);
    }

    #[test]
    fn url_shape_variants() {
        assert_eq!(
            toggle_root_slash("https://h").as_deref(),
            Some("https://h/")
        );
        assert_eq!(
            toggle_root_slash("https://h/?a").as_deref(),
            Some("https://h?a")
        );
        assert_eq!(toggle_root_slash("https://h/p"), None);
        assert_eq!(
            without_share_params("https://h/p?a=1&from=singlemessage&isappinstalled=0"),
            "https://h/p?a=1"
        );
        assert_eq!(hex_case("a%2fb%E4", true), "a%2Fb%E4");
    }
}
