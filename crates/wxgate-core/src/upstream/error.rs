//! Typed upstream failures and what each means for a caller.
//!
//! Every failed WeChat call ends up as one [`UpstreamError`]: a WeChat `errcode` (with the
//! `errmsg` and the `rid` WeChat support asks for), a non-2xx HTTP status, a timeout, a
//! transport failure or an unreadable body. The type answers the questions a caller has —
//! retry? refresh the token? is the account misconfigured? — and [`UpstreamError::hint`] turns
//! it into a sentence an operator can act on. No variant ever carries a request URL, an
//! AppSecret or a token.

use std::net::IpAddr;

/// A failed WeChat call, after any retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// WeChat answered with a non-zero `errcode`.
    #[error("WeChat error {errcode}: {errmsg}")]
    WeChat {
        errcode: i64,
        errmsg: String,
        rid: Option<String>,
    },
    /// A non-2xx HTTP status.
    #[error("WeChat answered HTTP {0}")]
    HttpStatus(u16),
    /// No answer within `upstream.timeout_ms`.
    #[error("WeChat did not answer in time")]
    Timeout,
    /// Connection-level failure (DNS, refused, reset). Never contains the request URL.
    #[error("could not reach WeChat: {0}")]
    Transport(String),
    /// A 2xx answer that is not the JSON we expect.
    #[error("WeChat answered something unreadable: {0}")]
    Unparseable(String),
    /// Not sent: all `upstream.max_in_flight` calls of this instance stayed busy for the
    /// attempt's `upstream.timeout_ms`.
    #[error("too many WeChat calls in flight; this one was not sent")]
    Saturated,
}

/// Whether a WeChat errcode says the access_token used is invalid or expired (40001 invalid,
/// 40014 not a valid token, 42001 expired): the one definition of "refresh and retry".
pub fn is_token_invalid_errcode(errcode: i64) -> bool {
    matches!(errcode, 40001 | 40014 | 42001)
}

/// The WeChat errcodes that mean "the account or this server is misconfigured": retrying
/// cannot help, an operator has to act.
const CONFIG_ERRCODES: [i64; 11] = [
    40002, // invalid grant_type
    40013, // invalid appid
    40125, // invalid appsecret
    40164, // caller IP not in whitelist
    61004, // caller IP not registered (stable_token flavour)
    40243, // AppSecret frozen
    41002, // appid missing
    41004, // appsecret missing
    45009, // daily quota reached
    48001, // API unauthorized for this account
    50002, // account limited (frozen, migrated)
];

impl UpstreamError {
    /// Builds a [`UpstreamError::WeChat`], taking the `rid` from the `rid: ` suffix WeChat
    /// appends to every errmsg.
    pub fn wechat(errcode: i64, errmsg: impl Into<String>) -> Self {
        let errmsg = errmsg.into();
        let rid = parse_rid(&errmsg);
        UpstreamError::WeChat {
            errcode,
            errmsg,
            rid,
        }
    }

    /// Worth another attempt after a backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::WeChat { errcode, .. } => matches!(errcode, -1 | 45011),
            UpstreamError::HttpStatus(s) => *s >= 500,
            UpstreamError::Timeout
            | UpstreamError::Transport(_)
            | UpstreamError::Unparseable(_)
            | UpstreamError::Saturated => true,
        }
    }

    /// The access_token used was invalid or expired ([`is_token_invalid_errcode`]).
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, UpstreamError::WeChat { errcode, .. } if is_token_invalid_errcode(*errcode))
    }

    /// The account or this server is misconfigured (wrong appid/AppSecret, IP not
    /// whitelisted, AppSecret frozen, daily quota spent, API not granted): never retried, an
    /// operator has to act. A 40001 answered by the token endpoint itself also means a wrong
    /// AppSecret, but only the caller knows that context, so it is not included here.
    pub fn is_config_error(&self) -> bool {
        match self {
            UpstreamError::WeChat { errcode, .. } => CONFIG_ERRCODES.contains(errcode),
            _ => false,
        }
    }

    /// The WeChat errcode, when WeChat gave one.
    pub fn wechat_errcode(&self) -> Option<i64> {
        match self {
            UpstreamError::WeChat { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The WeChat rid, when WeChat gave one.
    pub fn wechat_rid(&self) -> Option<&str> {
        match self {
            UpstreamError::WeChat { rid, .. } => rid.as_deref(),
            _ => None,
        }
    }

    /// A short label for metrics: `errcode_40001`, `http_502`, `timeout`, `saturated`, ...
    pub fn outcome_label(&self) -> String {
        match self {
            UpstreamError::WeChat { errcode, .. } => format!("errcode_{errcode}"),
            UpstreamError::HttpStatus(s) => format!("http_{s}"),
            UpstreamError::Timeout => "timeout".into(),
            UpstreamError::Transport(_) => "transport".into(),
            UpstreamError::Unparseable(_) => "unparseable".into(),
            UpstreamError::Saturated => "saturated".into(),
        }
    }

    /// A sentence telling an operator what to do about this error.
    pub fn hint(&self) -> String {
        match self {
            UpstreamError::WeChat {
                errcode, errmsg, ..
            } => wechat_hint(*errcode, errmsg),
            UpstreamError::HttpStatus(s) if *s >= 500 => format!(
                "WeChat answered HTTP {s}; this is usually a passing outage on WeChat's side — \
                 wxgate retries, try again later"
            ),
            UpstreamError::HttpStatus(s) => format!(
                "WeChat answered HTTP {s}; check that upstream.api_base points at the WeChat API"
            ),
            UpstreamError::Timeout => "WeChat did not answer in time; check this server's \
                 network path to upstream.api_base or raise upstream.timeout_ms"
                .into(),
            UpstreamError::Transport(msg) => format!(
                "could not reach WeChat ({msg}); check DNS, firewall and proxy settings for \
                 upstream.api_base"
            ),
            UpstreamError::Unparseable(msg) => format!(
                "WeChat answered something that is not the expected JSON ({msg}); check that \
                 upstream.api_base points at the WeChat API and not at a proxy or login page"
            ),
            UpstreamError::Saturated => "every one of this instance's upstream.max_in_flight \
                 WeChat calls stayed busy for upstream.timeout_ms, so this call was not sent: \
                 WeChat is answering slowly or this instance has more callers than it may \
                 serve — see wxgate_upstream_waiting in /metrics, raise \
                 upstream.max_in_flight or add instances"
                .into(),
        }
    }
}

fn wechat_hint(errcode: i64, errmsg: &str) -> String {
    let ip_hint = || match caller_ip(errmsg) {
        Some(ip) => format!(
            "WeChat refused this server's IP: add {ip} to the account's IP whitelist \
             (WeChat console → 设置与开发 → 基本配置 → IP白名单)"
        ),
        None => "WeChat refused this server's IP: add this server's public IP to the account's \
                 IP whitelist (WeChat console → 设置与开发 → 基本配置 → IP白名单)"
            .to_owned(),
    };
    match errcode {
        40164 | 61004 => ip_hint(),
        40125 => "the AppSecret is wrong: copy it again from the WeChat console \
                  (设置与开发 → 基本配置 → AppSecret) into the account's `secret`"
            .into(),
        40013 => "the appid is invalid: check the account's `appid` against the WeChat console \
                  (设置与开发 → 基本配置)"
            .into(),
        40243 => "the AppSecret is frozen: unfreeze it in the WeChat console \
                  (设置与开发 → 基本配置) before calling again"
            .into(),
        45009 => "the account's daily API quota is spent: wait until midnight Beijing time \
                  (UTC+8) for the reset, or reset it now with cgi-bin/clear_quota \
                  (10 resets per month)"
            .into(),
        45011 => "WeChat rate-limited this call (per-minute frequency limit): slow down; \
                  wxgate backs off and retries"
            .into(),
        code if is_token_invalid_errcode(code) => {
            "the access_token is invalid or expired: wxgate refreshes it; \
                  if this persists, another program is fetching tokens for the same account \
                  with cgi-bin/token or forcing stable_token refreshes — let wxgate be the only \
                  one (or, on the token endpoint itself, the AppSecret is wrong)"
                .into()
        }
        48001 => "this API is not authorized for the account (account type or permission \
                  missing): check the account's interface permissions in the WeChat console"
            .into(),
        61023 => "WeChat refused the authorizer's refresh token: the authorization is gone, \
                   and the merchant must authorize the platform again"
            .into(),
        61005 | 61006 => "the component_verify_ticket is expired or invalid: check that the \
                          platform's authorization event URL reaches wxgate \
                          (/wx/component/<name>) and that its Token and key match"
            .into(),
        61003 => {
            "this account has not authorized the platform (or withdrew the authorization)".into()
        }
        -1 => "WeChat is busy (system error -1): transient, wxgate retries with backoff".into(),
        _ => format!("WeChat error {errcode}: {errmsg}"),
    }
}

/// The `rid` WeChat appends to errmsg as `... rid: 64f7f8b6-27a5f0a1-3b2c5e1d`.
pub(crate) fn parse_rid(errmsg: &str) -> Option<String> {
    let (_, tail) = errmsg.rsplit_once("rid:")?;
    let rid: String = tail
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!rid.is_empty()).then_some(rid)
}

/// The caller IP named in a whitelist error, e.g.
/// `invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist`.
pub(crate) fn caller_ip(errmsg: &str) -> Option<IpAddr> {
    let candidate = |word: &str| {
        word.trim_matches(|c: char| matches!(c, ',' | ';' | '[' | ']' | '(' | ')' | '"' | '\''))
            .parse::<IpAddr>()
            .ok()
    };
    if let Some((_, tail)) = errmsg.split_once("invalid ip ") {
        if let Some(ip) = tail.split_whitespace().next().and_then(candidate) {
            return Some(ip);
        }
    }
    let words: Vec<&str> = errmsg.split_whitespace().collect();
    words
        .iter()
        .filter_map(|w| candidate(w))
        .find(IpAddr::is_ipv4)
        .or_else(|| words.iter().filter_map(|w| candidate(w)).next())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rid_is_parsed_from_errmsg() {
        assert_eq!(
            parse_rid("invalid appsecret rid: 64f7f8b6-27a5f0a1-3b2c5e1d").as_deref(),
            Some("64f7f8b6-27a5f0a1-3b2c5e1d")
        );
        assert_eq!(parse_rid("invalid appsecret"), None);
    }

    #[test]
    fn whitelist_ip_is_found() {
        let msg = "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: 1-2-3";
        assert_eq!(caller_ip(msg).unwrap().to_string(), "1.2.3.4");
        let e = UpstreamError::wechat(40164, msg);
        assert!(e
            .hint()
            .contains("add 1.2.3.4 to the account's IP whitelist"));
        assert!(e.is_config_error());
        assert_eq!(caller_ip("access clientip is not registered"), None);
    }
}
