//! OAuth2 web authorization (网页授权) URLs.
//!
//! Logging a user in on an H5 page starts with a browser redirect to WeChat's authorize
//! page; WeChat sends the browser back to `redirect_uri` with a `code`. Building that URL
//! is pure string work, but easy to get wrong: the `redirect_uri` must be percent-encoded
//! as one query value, and the URL must end with `#wechat_redirect`. The code exchange
//! itself is an HTTP call and lives in the service. An account authorized to a third-party
//! platform logs users in through the platform: [`component_authorize_url`].

use std::fmt;
use std::str::FromStr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

/// Everything but RFC 3986 unreserved characters is encoded (like `encodeURIComponent`
/// minus `!'()*`, which WeChat's docs also encode).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The authorization scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Scope {
    /// `snsapi_base`: silent, yields the openid only.
    #[default]
    #[serde(rename = "snsapi_base")]
    Base,
    /// `snsapi_userinfo`: consent page, then profile via `sns/userinfo`.
    #[serde(rename = "snsapi_userinfo")]
    UserInfo,
}

impl Scope {
    /// The wire value (`snsapi_base` / `snsapi_userinfo`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope string was neither `snsapi_base` nor `snsapi_userinfo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OAuth scope (expected snsapi_base or snsapi_userinfo)")]
pub struct UnknownScope;

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        match s {
            "snsapi_base" => Ok(Scope::Base),
            "snsapi_userinfo" => Ok(Scope::UserInfo),
            _ => Err(UnknownScope),
        }
    }
}

/// Percent-encodes one query-string value (RFC 3986 unreserved characters kept).
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The authorize URL the browser is redirected to:
/// `{open_base}/connect/oauth2/authorize?appid=..&redirect_uri=<encoded>&response_type=code&scope=..&state=..#wechat_redirect`.
///
/// A trailing `/` on `open_base` is ignored; `appid`, `redirect_uri` and `state` are
/// percent-encoded.
pub fn authorize_url(
    open_base: &str,
    appid: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
) -> String {
    authorize_url_with(open_base, appid, redirect_uri, scope, state, None)
}

/// The authorize URL of an account authorized to a third-party platform, whose web login
/// goes through the platform: [`authorize_url`] with `&component_appid=..` after `state`
/// (WeChat's documented order), still ending with `#wechat_redirect`.
///
/// The code the browser brings back is exchanged with `sns/oauth2/component/access_token`,
/// not `sns/oauth2/access_token`.
pub fn component_authorize_url(
    open_base: &str,
    appid: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
    component_appid: &str,
) -> String {
    authorize_url_with(
        open_base,
        appid,
        redirect_uri,
        scope,
        state,
        Some(component_appid),
    )
}

fn authorize_url_with(
    open_base: &str,
    appid: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
    component_appid: Option<&str>,
) -> String {
    let mut url = format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope={}&state={}",
        open_base.trim_end_matches('/'),
        encode_query_value(appid),
        encode_query_value(redirect_uri),
        scope.as_str(),
        encode_query_value(state),
    );
    if let Some(component_appid) = component_appid {
        url.push_str("&component_appid=");
        url.push_str(&encode_query_value(component_appid));
    }
    url.push_str("#wechat_redirect");
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_url() {
        let url = authorize_url(
            "https://open.weixin.qq.com/",
            "wx1234567890abcdef",
            "https://wx.example.com/oauth/main/callback?x=1&y=a b",
            Scope::UserInfo,
            "Abc123",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1234567890abcdef\
             &redirect_uri=https%3A%2F%2Fwx.example.com%2Foauth%2Fmain%2Fcallback%3Fx%3D1%26y%3Da%20b\
             &response_type=code&scope=snsapi_userinfo&state=Abc123#wechat_redirect"
        );
        let base = authorize_url("http://mock", "a", "http://r/", Scope::Base, "s");
        assert!(base.contains("&scope=snsapi_base&"));
        assert!(base.starts_with("http://mock/connect/oauth2/authorize?appid=a&"));
        assert!(base.ends_with("#wechat_redirect"));
    }

    #[test]
    fn component_authorize_url_adds_the_component_appid_before_the_fragment() {
        let url = component_authorize_url(
            "https://open.weixin.qq.com/",
            "wxauthorizer00001",
            "https://saas.example.com/cb?a=1",
            Scope::Base,
            "st 1",
            "wxcomponent00001",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxauthorizer00001\
             &redirect_uri=https%3A%2F%2Fsaas.example.com%2Fcb%3Fa%3D1\
             &response_type=code&scope=snsapi_base&state=st%201\
             &component_appid=wxcomponent00001#wechat_redirect"
        );
        // Without the component part it is exactly the plain authorize URL.
        let plain = authorize_url(
            "https://open.weixin.qq.com",
            "wxauthorizer00001",
            "https://saas.example.com/cb?a=1",
            Scope::Base,
            "st 1",
        );
        assert_eq!(url.replace("&component_appid=wxcomponent00001", ""), plain);
    }

    #[test]
    fn scope_parses_prints_and_serializes() {
        assert_eq!("snsapi_base".parse::<Scope>(), Ok(Scope::Base));
        assert_eq!("snsapi_userinfo".parse::<Scope>(), Ok(Scope::UserInfo));
        assert_eq!("snsapi_login".parse::<Scope>(), Err(UnknownScope));
        assert_eq!(Scope::UserInfo.to_string(), "snsapi_userinfo");
        assert_eq!(Scope::default(), Scope::Base);
        assert_eq!(
            serde_json::to_string(&Scope::UserInfo).unwrap(),
            "\"snsapi_userinfo\""
        );
        assert_eq!(
            serde_json::from_str::<Scope>("\"snsapi_base\"").unwrap(),
            Scope::Base
        );
    }

    #[test]
    fn state_and_unicode_are_encoded() {
        assert_eq!(encode_query_value("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_query_value("中#&="), "%E4%B8%AD%23%26%3D");
    }
}
