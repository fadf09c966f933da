//! The third-party platform's calls (`cgi-bin/component/*`, and the web-login code exchange
//! of an authorizer), on the same attempt loop, metrics and secrecy as every other call of
//! [`WechatClient`].
//!
//! Token fetches are retried on every transient failure, like account tokens. The exchange of
//! an authorization code is retried only when the request never reached WeChat (a code may be
//! single use), and so is `api_create_preauthcode` (a retry would only waste a code, but a
//! merchant is waiting).

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::answer::{credential, missing, oauth_token, str_field};
use super::client::{json_bytes, Retry};
use super::{IssuedCredential, OAuthToken, UpstreamError, WechatClient};

/// What `api_query_auth` answers: the authorizer, its first token and its refresh token.
#[derive(Debug)]
pub struct Authorization {
    pub authorizer_appid: String,
    pub access_token: IssuedCredential,
    pub refresh_token: SecretString,
    /// WeChat's `func_info` list, as given.
    pub func_info: Value,
}

/// What `api_authorizer_token` answers.
#[derive(Debug)]
pub struct AuthorizerToken {
    pub access_token: IssuedCredential,
    /// The refresh token WeChat handed back (it may be a new one).
    pub refresh_token: Option<SecretString>,
}

/// What `api_get_authorizer_info` says of an authorizer.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerInfo {
    pub nick_name: String,
    pub principal_name: String,
    /// `authorization_info.func_info`, as given (`[]` when absent).
    pub func_info: Value,
}

impl WechatClient {
    /// POSTs `body` as raw UTF-8 JSON to `path` (with `component_access_token` in the query
    /// when given) and returns WeChat's object.
    async fn component_call<B: Serialize>(
        &self,
        account: &str,
        path: &str,
        token: Option<&SecretString>,
        body: &B,
        retry: Retry,
    ) -> Result<Value, UpstreamError> {
        let url = self.url(path);
        let bytes = json_bytes(body)?;
        self.call(account, path, retry, || {
            let mut request = self
                .http()
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            if let Some(token) = token {
                request = request.query(&[("component_access_token", token.expose_secret())]);
            }
            request
        })
        .await
    }

    /// `cgi-bin/component/api_component_token`: the component_access_token.
    pub async fn component_token(
        &self,
        account: &str,
        component_appid: &str,
        component_secret: &SecretString,
        ticket: &SecretString,
    ) -> Result<IssuedCredential, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
            component_appsecret: &'a str,
            component_verify_ticket: &'a str,
        }
        let answer = self
            .component_call(
                account,
                "cgi-bin/component/api_component_token",
                None,
                &Body {
                    component_appid,
                    component_appsecret: component_secret.expose_secret(),
                    component_verify_ticket: ticket.expose_secret(),
                },
                Retry::Transient,
            )
            .await?;
        credential(&answer, "component_access_token")
    }

    /// `cgi-bin/component/api_start_push_ticket`: asks WeChat to push a ticket now.
    pub async fn start_push_ticket(
        &self,
        account: &str,
        component_appid: &str,
        component_secret: &SecretString,
    ) -> Result<(), UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
            component_secret: &'a str,
        }
        self.component_call(
            account,
            "cgi-bin/component/api_start_push_ticket",
            None,
            &Body {
                component_appid,
                component_secret: component_secret.expose_secret(),
            },
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    /// `cgi-bin/component/api_create_preauthcode`: a pre_auth_code for one authorization page.
    pub async fn create_preauthcode(
        &self,
        account: &str,
        component_appid: &str,
        token: &SecretString,
    ) -> Result<SecretString, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
        }
        let answer = self
            .component_call(
                account,
                "cgi-bin/component/api_create_preauthcode",
                Some(token),
                &Body { component_appid },
                Retry::NotDelivered,
            )
            .await?;
        Ok(credential(&answer, "pre_auth_code")?.value)
    }

    /// `cgi-bin/component/api_query_auth`: exchanges an authorization code.
    pub async fn query_auth(
        &self,
        account: &str,
        component_appid: &str,
        token: &SecretString,
        authorization_code: &str,
    ) -> Result<Authorization, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
            authorization_code: &'a str,
        }
        let answer = self
            .component_call(
                account,
                "cgi-bin/component/api_query_auth",
                Some(token),
                &Body {
                    component_appid,
                    authorization_code,
                },
                Retry::NotDelivered,
            )
            .await?;
        let info = answer
            .get("authorization_info")
            .ok_or_else(|| missing("authorization_info"))?;
        let authorizer_appid = str_field(info, "authorizer_appid")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("authorization_info.authorizer_appid"))?
            .to_owned();
        let access_token = credential(info, "authorizer_access_token")?;
        let refresh_token = str_field(info, "authorizer_refresh_token")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("authorization_info.authorizer_refresh_token"))?;
        Ok(Authorization {
            authorizer_appid,
            access_token,
            refresh_token: SecretString::from(refresh_token.to_owned()),
            func_info: info
                .get("func_info")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        })
    }

    /// `cgi-bin/component/api_authorizer_token`: an authorizer's access token from its
    /// refresh token.
    pub async fn authorizer_token(
        &self,
        account: &str,
        component_appid: &str,
        token: &SecretString,
        authorizer_appid: &str,
        refresh_token: &SecretString,
    ) -> Result<AuthorizerToken, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
            authorizer_appid: &'a str,
            authorizer_refresh_token: &'a str,
        }
        let answer = self
            .component_call(
                account,
                "cgi-bin/component/api_authorizer_token",
                Some(token),
                &Body {
                    component_appid,
                    authorizer_appid,
                    authorizer_refresh_token: refresh_token.expose_secret(),
                },
                Retry::Transient,
            )
            .await?;
        Ok(AuthorizerToken {
            access_token: credential(&answer, "authorizer_access_token")?,
            refresh_token: str_field(&answer, "authorizer_refresh_token")
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned())),
        })
    }

    /// `cgi-bin/component/api_get_authorizer_info`: the authorizer's profile.
    pub async fn authorizer_info(
        &self,
        account: &str,
        component_appid: &str,
        token: &SecretString,
        authorizer_appid: &str,
    ) -> Result<AuthorizerInfo, UpstreamError> {
        #[derive(Serialize)]
        struct Body<'a> {
            component_appid: &'a str,
            authorizer_appid: &'a str,
        }
        let answer = self
            .component_call(
                account,
                "cgi-bin/component/api_get_authorizer_info",
                Some(token),
                &Body {
                    component_appid,
                    authorizer_appid,
                },
                Retry::Transient,
            )
            .await?;
        let text = |object: &str, field: &str| {
            answer
                .get(object)
                .and_then(|o| str_field(o, field))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(AuthorizerInfo {
            nick_name: text("authorizer_info", "nick_name"),
            principal_name: text("authorizer_info", "principal_name"),
            func_info: answer
                .get("authorization_info")
                .and_then(|i| i.get("func_info"))
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        })
    }

    /// `sns/oauth2/component/access_token`: an authorizer's web-login code exchange, made by
    /// its platform. Single use, so retried only when the request never reached WeChat.
    pub async fn oauth_exchange_code_component(
        &self,
        account: &str,
        appid: &str,
        code: &str,
        component_appid: &str,
        component_token: &SecretString,
    ) -> Result<OAuthToken, UpstreamError> {
        let url = self.url("sns/oauth2/component/access_token");
        let answer = self
            .call(
                account,
                "sns/oauth2/component/access_token",
                Retry::NotDelivered,
                || {
                    self.http().get(&url).query(&[
                        ("appid", appid),
                        ("code", code),
                        ("grant_type", "authorization_code"),
                        ("component_appid", component_appid),
                        ("component_access_token", component_token.expose_secret()),
                    ])
                },
            )
            .await?;
        oauth_token(&answer)
    }
}
