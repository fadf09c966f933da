//! Small value types shared by every part of the service, so that a handler can only ever see
//! an account name, a credential kind or a token API that has already been validated.

use std::fmt;

/// Which WeChat endpoint issues an account's access_token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenApi {
    /// `POST cgi-bin/stable_token`: idempotent in normal mode, isolated from classic tokens.
    #[default]
    Stable,
    /// `GET cgi-bin/token`: every call issues a new token and retires the previous one.
    Classic,
}

/// What an account is: an Official Account (公众号) or a mini program (小程序). A mini program
/// has the same access_token and proxy, but no JS-SDK, no web login and no wx_card ticket; it
/// logs users in with `sns/jscode2session` instead ([`crate::miniprogram`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    #[default]
    Official,
    Miniprogram,
}

impl AccountKind {
    /// The name of the kind in the config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Official => "official",
            AccountKind::Miniprogram => "miniprogram",
        }
    }

    /// The default, left out when settings are written (keeps stored rows as they were).
    pub fn is_official(&self) -> bool {
        *self == AccountKind::Official
    }
}

/// How an account's pushes are written: XML (every Official Account) or JSON (a mini program
/// may choose it in its console). Signatures, encryption and de-duplication are the same.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    #[default]
    Xml,
    Json,
}

impl DataFormat {
    /// The default, left out when settings are written.
    pub fn is_xml(&self) -> bool {
        *self == DataFormat::Xml
    }
}

/// The JS-SDK tickets, fetched with `cgi-bin/ticket/getticket?type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TicketKind {
    Jsapi,
    WxCard,
}

impl TicketKind {
    /// The `type` query value WeChat expects.
    pub fn as_wechat_type(self) -> &'static str {
        match self {
            TicketKind::Jsapi => "jsapi",
            TicketKind::WxCard => "wx_card",
        }
    }
}

/// Every credential wxgate manages per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    AccessToken,
    Ticket(TicketKind),
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 3] = [
        CredentialKind::AccessToken,
        CredentialKind::Ticket(TicketKind::Jsapi),
        CredentialKind::Ticket(TicketKind::WxCard),
    ];

    pub fn jsapi() -> Self {
        CredentialKind::Ticket(TicketKind::Jsapi)
    }

    pub fn wx_card() -> Self {
        CredentialKind::Ticket(TicketKind::WxCard)
    }

    /// The ticket kind, for the ticket credentials.
    pub fn ticket(self) -> Option<TicketKind> {
        match self {
            CredentialKind::AccessToken => None,
            CredentialKind::Ticket(t) => Some(t),
        }
    }

    /// Stable name used in store keys, metrics labels and the status API.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AccessToken => "access_token",
            CredentialKind::Ticket(TicketKind::Jsapi) => "jsapi_ticket",
            CredentialKind::Ticket(TicketKind::WxCard) => "wx_card_ticket",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an authorizer of a third-party platform stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthorizerStatus {
    /// Authorized: its tokens are fetched with its refresh token.
    Authorized,
    /// The merchant withdrew the authorization (`unauthorized`): not served any more.
    Revoked,
    /// WeChat refused its refresh token (61023): the merchant must authorize again.
    RefreshTokenInvalid,
}

impl AuthorizerStatus {
    pub const ALL: [AuthorizerStatus; 3] = [
        AuthorizerStatus::Authorized,
        AuthorizerStatus::Revoked,
        AuthorizerStatus::RefreshTokenInvalid,
    ];

    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizerStatus::Authorized => "authorized",
            AuthorizerStatus::Revoked => "revoked",
            AuthorizerStatus::RefreshTokenInvalid => "refresh_token_invalid",
        }
    }

    /// The status named `s`, if it is one.
    pub fn parse(s: &str) -> Option<AuthorizerStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `len` random letters and digits (62 symbols, about 5.95 bits each) from the thread's CSPRNG:
/// states, login codes, API keys, console sessions, generated Tokens.
pub fn random_alnum(len: usize) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Seconds since the Unix epoch, the unit of every time wxgate stores or answers.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Shows the first 4 characters of a secret and hides the rest: enough to tell two tokens
/// apart in a log, never enough to use one.
pub fn redact(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("{shown}…({} chars)", secret.chars().count())
}

/// The file a `sqlite://PATH` or `sqlite:PATH` url names (relative to the working directory
/// unless absolute; `sqlite:///abs/file.db` is absolute), for the store and the user database
/// alike. The error is a message naming the url; `in_memory` is the message for `:memory:`,
/// which each caller explains in its own terms.
pub fn sqlite_file_path<'a>(url: &'a str, in_memory: &str) -> Result<&'a str, String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| format!("{url:?} does not start with sqlite:"))?;
    if path.is_empty() {
        return Err(format!("{url:?} names no file"));
    }
    if path == ":memory:" || path.starts_with(":memory:?") {
        return Err(in_memory.to_owned());
    }
    if path.contains('?') {
        return Err(format!(
            "{url:?}: query parameters are not supported in a sqlite url"
        ));
    }
    Ok(path)
}

/// The last failure of an upstream call, as the status API shows it (per credential, and per
/// endpoint in `last_upstream_errors`). Here, beside the other plain values, because both the
/// credential manager and the metrics keep them and neither should import the other.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorRecord {
    pub at: i64,
    pub message: String,
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wechat_errcode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wechat_rid: Option<String>,
}

/// Locks `m`, also after another thread panicked while holding it: every value wxgate keeps
/// behind a `Mutex` stays consistent between statements, so a poisoned lock is still usable.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_a_file_or_say_why_not() {
        assert_eq!(
            sqlite_file_path("sqlite://wxgate.db", "mem"),
            Ok("wxgate.db")
        );
        assert_eq!(sqlite_file_path("sqlite:wxgate.db", "mem"), Ok("wxgate.db"));
        assert_eq!(
            sqlite_file_path("sqlite:///var/lib/wx.db", "mem"),
            Ok("/var/lib/wx.db")
        );
        assert_eq!(
            sqlite_file_path("postgres://x", "mem"),
            Err("\"postgres://x\" does not start with sqlite:".to_owned())
        );
        assert_eq!(
            sqlite_file_path("sqlite://", "mem"),
            Err("\"sqlite://\" names no file".to_owned())
        );
        for memory in ["sqlite::memory:", "sqlite://:memory:?cache=shared"] {
            assert_eq!(sqlite_file_path(memory, "mem"), Err("mem".to_owned()));
        }
        assert!(sqlite_file_path("sqlite://x.db?mode=ro", "mem")
            .unwrap_err()
            .contains("query parameters are not supported"));
    }
}
