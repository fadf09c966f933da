//! The third-party platform (开放平台 第三方平台): authorization events and authorization links.
//!
//! A third-party platform ("component") manages official accounts that merchants authorize
//! it for. WeChat tells it about that on one URL, the authorization event URL (授权事件接收URL):
//! every ten minutes a `component_verify_ticket` (without a fresh one no component token can
//! be fetched), and a push whenever an account authorizes (`authorized`), changes its grant
//! (`updateauthorized`) or revokes it (`unauthorized`). Those pushes are always encrypted, in
//! an envelope that carries `AppId` instead of `ToUserName`; [`crate::open_push`] opens it
//! with the component's Token and key (expected appid: the component appid), and
//! [`AuthEvent::parse`] reads the plaintext here — through [`Fields::parse_document`], so
//! the same XML guarantees hold (DTDs refused, bounded depth, no panics).
//!
//! Merchants start an authorization from a link to WeChat's login page (PC) or bind page
//! (mobile); [`component_login_url`] and [`component_mobile_url`] build them. The web login
//! of an authorized account goes through [`crate::oauth::component_authorize_url`].
//!
//! The ticket, the authorization code and the pre-authorization code are secrets: the
//! `Debug` forms of [`AuthInfo`] and [`Grant`] show their first 4 characters only.

use std::fmt;

use crate::oauth::encode_query_value;
use crate::xml::{push_cdata_element, push_plain_element, Fields, ParseError};

/// `InfoType` of the ticket push.
pub const INFO_VERIFY_TICKET: &str = "component_verify_ticket";
/// `InfoType` of a new authorization.
pub const INFO_AUTHORIZED: &str = "authorized";
/// `InfoType` of a changed authorization.
pub const INFO_UPDATE_AUTHORIZED: &str = "updateauthorized";
/// `InfoType` of a revoked authorization.
pub const INFO_UNAUTHORIZED: &str = "unauthorized";

/// A decrypted push to the authorization event URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// `AppId`: the third-party platform's own appid (component_appid).
    pub component_appid: String,
    /// `CreateTime`, unix seconds; `0` when absent or not an integer. The field is only
    /// informational (the push is authenticated by `msg_signature` before it is read), and a
    /// ticket must not be lost because of it.
    pub create_time: i64,
    /// What happened, chosen by `InfoType`.
    pub info: AuthInfo,
}

/// The content of an [`AuthEvent`], chosen by `InfoType`.
///
/// `Debug` shows only the first 4 characters of the ticket and of the codes.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthInfo {
    /// `component_verify_ticket`: the ticket needed to fetch a component_access_token.
    VerifyTicket {
        /// `ComponentVerifyTicket`.
        ticket: String,
    },
    /// `authorized`: an account authorized the platform.
    Authorized(Grant),
    /// `updateauthorized`: an account changed the permissions it grants.
    UpdateAuthorized(Grant),
    /// `unauthorized`: an account revoked its authorization.
    Unauthorized {
        /// `AuthorizerAppid`: the account that revoked.
        authorizer_appid: String,
    },
    /// Any other `InfoType` (e.g. `notify_third_fasteregister`), as sent (trimmed).
    Other {
        /// `InfoType`.
        info_type: String,
    },
}

/// An (updated) authorization: the code to exchange with `api_query_auth`.
///
/// `Debug` shows only the first 4 characters of the codes.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// `AuthorizerAppid`: the account that authorized.
    pub authorizer_appid: String,
    /// `AuthorizationCode`: single use, exchanged for the authorizer's tokens.
    pub authorization_code: String,
    /// `AuthorizationCodeExpiredTime`, unix seconds; `0` when absent or not an integer (the
    /// code is exchanged at once anyway).
    pub code_expires_at: i64,
    /// `PreAuthCode`: the pre-authorization code of the link the merchant followed, when sent
    /// and not empty.
    pub pre_auth_code: Option<String>,
}

impl AuthEvent {
    /// Parses the plaintext of an authorization event push (the result of
    /// [`crate::open_push`]).
    ///
    /// Errors for malformed XML (including any `<!DOCTYPE>`), and with
    /// [`ParseError::MissingField`] when `AppId`, `InfoType` or a field the `InfoType` needs
    /// (`ComponentVerifyTicket`; `AuthorizerAppid`; `AuthorizationCode`) is absent or blank.
    /// Identifiers, tickets and codes are trimmed of surrounding whitespace; `InfoType` is
    /// matched ignoring ASCII case. An unknown `InfoType` is [`AuthInfo::Other`], not an error.
    /// Never panics.
    pub fn parse(xml: &[u8]) -> Result<AuthEvent, ParseError> {
        let (_root, fields) = Fields::parse_document(xml)?;
        AuthEvent::from_fields(&fields)
    }

    /// Builds an event from an already-read field map (phase two alone).
    pub fn from_fields(fields: &Fields) -> Result<AuthEvent, ParseError> {
        let component_appid = required(fields, "AppId")?;
        let create_time = integer_or_zero(fields, "CreateTime");
        let info_type = required(fields, "InfoType")?;
        let is = |name: &str| info_type.eq_ignore_ascii_case(name);
        let info = if is(INFO_VERIFY_TICKET) {
            AuthInfo::VerifyTicket {
                ticket: required(fields, "ComponentVerifyTicket")?,
            }
        } else if is(INFO_AUTHORIZED) {
            AuthInfo::Authorized(Grant::from_fields(fields)?)
        } else if is(INFO_UPDATE_AUTHORIZED) {
            AuthInfo::UpdateAuthorized(Grant::from_fields(fields)?)
        } else if is(INFO_UNAUTHORIZED) {
            AuthInfo::Unauthorized {
                authorizer_appid: required(fields, "AuthorizerAppid")?,
            }
        } else {
            AuthInfo::Other { info_type }
        };
        Ok(AuthEvent {
            component_appid,
            create_time,
            info,
        })
    }

    /// The event as WeChat sends it (the plaintext, before encryption): what a stand-in for
    /// WeChat pushes. Text fields are CDATA, so any value survives [`AuthEvent::parse`]
    /// (up to the trimming it does); [`AuthInfo::Other`] writes only its `InfoType`.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("<xml>");
        push_cdata_element(&mut out, "AppId", &self.component_appid);
        push_plain_element(&mut out, "CreateTime", self.create_time);
        push_cdata_element(&mut out, "InfoType", self.info.info_type());
        match &self.info {
            AuthInfo::VerifyTicket { ticket } => {
                push_cdata_element(&mut out, "ComponentVerifyTicket", ticket);
            }
            AuthInfo::Authorized(grant) | AuthInfo::UpdateAuthorized(grant) => {
                push_cdata_element(&mut out, "AuthorizerAppid", &grant.authorizer_appid);
                push_cdata_element(&mut out, "AuthorizationCode", &grant.authorization_code);
                push_plain_element(
                    &mut out,
                    "AuthorizationCodeExpiredTime",
                    grant.code_expires_at,
                );
                if let Some(pre_auth_code) = &grant.pre_auth_code {
                    push_cdata_element(&mut out, "PreAuthCode", pre_auth_code);
                }
            }
            AuthInfo::Unauthorized { authorizer_appid } => {
                push_cdata_element(&mut out, "AuthorizerAppid", authorizer_appid);
            }
            AuthInfo::Other { .. } => {}
        }
        out.push_str("</xml>");
        out
    }
}

impl AuthInfo {
    /// The `InfoType` wire value (as sent for [`AuthInfo::Other`]).
    pub fn info_type(&self) -> &str {
        match self {
            AuthInfo::VerifyTicket { .. } => INFO_VERIFY_TICKET,
            AuthInfo::Authorized(_) => INFO_AUTHORIZED,
            AuthInfo::UpdateAuthorized(_) => INFO_UPDATE_AUTHORIZED,
            AuthInfo::Unauthorized { .. } => INFO_UNAUTHORIZED,
            AuthInfo::Other { info_type } => info_type,
        }
    }

    /// The account concerned: the authorizer of a grant or a revocation.
    pub fn authorizer_appid(&self) -> Option<&str> {
        match self {
            AuthInfo::Authorized(grant) | AuthInfo::UpdateAuthorized(grant) => {
                Some(&grant.authorizer_appid)
            }
            AuthInfo::Unauthorized { authorizer_appid } => Some(authorizer_appid),
            AuthInfo::VerifyTicket { .. } | AuthInfo::Other { .. } => None,
        }
    }
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthInfo::VerifyTicket { ticket } => f
                .debug_struct("VerifyTicket")
                .field("ticket", &Redacted(ticket))
                .finish(),
            AuthInfo::Authorized(grant) => f.debug_tuple("Authorized").field(grant).finish(),
            AuthInfo::UpdateAuthorized(grant) => {
                f.debug_tuple("UpdateAuthorized").field(grant).finish()
            }
            AuthInfo::Unauthorized { authorizer_appid } => f
                .debug_struct("Unauthorized")
                .field("authorizer_appid", authorizer_appid)
                .finish(),
            AuthInfo::Other { info_type } => f
                .debug_struct("Other")
                .field("info_type", info_type)
                .finish(),
        }
    }
}

impl Grant {
    fn from_fields(fields: &Fields) -> Result<Grant, ParseError> {
        Ok(Grant {
            authorizer_appid: required(fields, "AuthorizerAppid")?,
            authorization_code: required(fields, "AuthorizationCode")?,
            code_expires_at: integer_or_zero(fields, "AuthorizationCodeExpiredTime"),
            pre_auth_code: fields
                .text("PreAuthCode")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("authorizer_appid", &self.authorizer_appid)
            .field("authorization_code", &Redacted(&self.authorization_code))
            .field("code_expires_at", &self.code_expires_at)
            .field(
                "pre_auth_code",
                &self.pre_auth_code.as_deref().map(Redacted),
            )
            .finish()
    }
}

/// A secret in `Debug`: its first 4 characters and its length, like wxgate's `redact`.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(4).collect();
        write!(f, "\"{shown}…({} chars)\"", self.0.chars().count())
    }
}

/// A text field that must be present and not blank, trimmed.
fn required(fields: &Fields, name: &'static str) -> Result<String, ParseError> {
    match fields.text(name).map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(ParseError::MissingField(name)),
    }
}

fn integer_or_zero(fields: &Fields, name: &str) -> i64 {
    fields
        .text(name)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The PC authorization page (授权注册页面, scanned with the merchant's admin WeChat):
/// `{mp_base}/cgi-bin/componentloginpage?component_appid=..&pre_auth_code=..&redirect_uri=<encoded>[&auth_type=..]`.
///
/// A trailing `/` on `mp_base` is ignored; every value is percent-encoded as one query value;
/// `auth_type` (1 official accounts, 2 mini programs, 3 both, …) is left out when `None`.
pub fn component_login_url(
    mp_base: &str,
    component_appid: &str,
    pre_auth_code: &str,
    redirect_uri: &str,
    auth_type: Option<u8>,
) -> String {
    let mut url = format!(
        "{}/cgi-bin/componentloginpage?",
        mp_base.trim_end_matches('/')
    );
    push_grant_query(
        &mut url,
        component_appid,
        pre_auth_code,
        redirect_uri,
        auth_type,
    );
    url
}

/// The mobile authorization page (opened inside WeChat on the merchant's phone):
/// `{mp_base}/safe/bindcomponent?action=bindcomponent&no_scan=1&component_appid=..&pre_auth_code=..&redirect_uri=<encoded>[&auth_type=..]#wechat_redirect`.
///
/// Encoding and `auth_type` as for [`component_login_url`].
pub fn component_mobile_url(
    mp_base: &str,
    component_appid: &str,
    pre_auth_code: &str,
    redirect_uri: &str,
    auth_type: Option<u8>,
) -> String {
    let mut url = format!(
        "{}/safe/bindcomponent?action=bindcomponent&no_scan=1&",
        mp_base.trim_end_matches('/')
    );
    push_grant_query(
        &mut url,
        component_appid,
        pre_auth_code,
        redirect_uri,
        auth_type,
    );
    url.push_str("#wechat_redirect");
    url
}

/// `component_appid=..&pre_auth_code=..&redirect_uri=..[&auth_type=..]`, in WeChat's order.
fn push_grant_query(
    url: &mut String,
    component_appid: &str,
    pre_auth_code: &str,
    redirect_uri: &str,
    auth_type: Option<u8>,
) {
    url.push_str("component_appid=");
    url.push_str(&encode_query_value(component_appid));
    url.push_str("&pre_auth_code=");
    url.push_str(&encode_query_value(pre_auth_code));
    url.push_str("&redirect_uri=");
    url.push_str(&encode_query_value(redirect_uri));
    if let Some(auth_type) = auth_type {
        url.push_str("&auth_type=");
        url.push_str(itoa::Buffer::new().format(auth_type));
    }
}

#[cfg(test)]
mod tests;
