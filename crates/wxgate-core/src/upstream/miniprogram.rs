//! A mini program's calls (`sns/jscode2session`, `wxa/business/getuserphonenumber`,
//! `wxa/checksession`), on the same attempt loop, metrics and secrecy as every other call of
//! [`WechatClient`].
//!
//! A login code and a phone-number code are single use, so those calls are retried only when
//! the request never reached WeChat (or was refused with 45011 before any processing);
//! `checksession` only reads, and is retried on every transient failure.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::answer::{missing, str_field};
use super::client::{json_bytes, Retry};
use super::{UpstreamError, WechatClient};

/// What `sns/jscode2session` answers. The `session_key` is a secret: `Debug` leaves it out.
pub struct CodeSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SecretString,
}

impl std::fmt::Debug for CodeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeSession")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

/// `phone_info` of `wxa/business/getuserphonenumber`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneNumber {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    pub country_code: String,
}

impl WechatClient {
    /// Exchanges a `wx.login` code for the user's openid, unionid and session_key.
    pub async fn jscode2session(
        &self,
        account: &str,
        appid: &str,
        secret: &SecretString,
        js_code: &str,
    ) -> Result<CodeSession, UpstreamError> {
        let url = self.url("sns/jscode2session");
        let answer = self
            .call(account, "sns/jscode2session", Retry::NotDelivered, || {
                self.http().get(&url).query(&[
                    ("appid", appid),
                    ("secret", secret.expose_secret()),
                    ("js_code", js_code),
                    ("grant_type", "authorization_code"),
                ])
            })
            .await?;
        let openid = str_field(&answer, "openid").ok_or_else(|| missing("openid"))?;
        let session_key =
            str_field(&answer, "session_key").ok_or_else(|| missing("session_key"))?;
        Ok(CodeSession {
            openid: openid.to_owned(),
            unionid: str_field(&answer, "unionid")
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            session_key: SecretString::from(session_key.to_owned()),
        })
    }

    /// The phone number a `getPhoneNumber` button's code stands for.
    pub async fn user_phone_number(
        &self,
        account: &str,
        access_token: &SecretString,
        code: &str,
    ) -> Result<PhoneNumber, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
        }
        let url = self.url("wxa/business/getuserphonenumber");
        let bytes = json_bytes(&Body { code })?;
        let answer = self
            .call(
                account,
                "wxa/business/getuserphonenumber",
                Retry::NotDelivered,
                || {
                    self.http()
                        .post(&url)
                        .query(&[("access_token", access_token.expose_secret())])
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(bytes.clone())
                },
            )
            .await?;
        let info = answer
            .get("phone_info")
            .ok_or_else(|| missing("phone_info"))?;
        let field = |name: &str| {
            str_field(info, name)
                .map(str::to_owned)
                .ok_or_else(|| missing(&format!("phone_info.{name}")))
        };
        Ok(PhoneNumber {
            phone_number: field("phoneNumber")?,
            pure_phone_number: field("purePhoneNumber")?,
            country_code: field("countryCode")?,
        })
    }

    /// Asks WeChat whether `signature` (`hmac_sha256(session_key, "")`) is the current login
    /// state of `openid`: `Ok` when it is; WeChat's 87009 when it is not.
    pub async fn check_session(
        &self,
        account: &str,
        access_token: &SecretString,
        openid: &str,
        signature: &str,
    ) -> Result<(), UpstreamError> {
        let url = self.url("wxa/checksession");
        self.call(account, "wxa/checksession", Retry::Transient, || {
            self.http().get(&url).query(&[
                ("access_token", access_token.expose_secret()),
                ("signature", signature),
                ("openid", openid),
                ("sig_method", "hmac_sha256"),
            ])
        })
        .await
        .map(|_| ())
    }
}
