//! [`WechatClient`]: typed calls to the WeChat API with retries, metrics and no leaked secrets.
//!
//! Every call goes through one attempt loop that bounds each attempt by [`ClientOptions::timeout`]
//! (the wait for one of the `max_in_flight` permits of [`UpstreamLimit`] included: a permit is held
//! per attempt, never across a backoff), records it with [`Metrics::upstream_call`], maps the
//! answer to a typed success or an [`UpstreamError`] (the reading is `answer.rs`'s), and retries
//! transient failures with exponential backoff and full jitter. How much may be retried depends on
//! the call: credential fetches are idempotent enough to retry every transient failure; the OAuth
//! code exchange (a code is single use) and the customer-service message (a retry could send the
//! message twice) are only retried when the request provably never reached WeChat. Request URLs
//! carry AppSecrets and tokens, so they are never logged and are stripped from transport errors.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::{check, credential, oauth_token};
use super::{UpstreamError, UpstreamLimit};
use crate::domain::{redact, TicketKind, TokenApi};
use crate::metrics::Metrics;
use crate::scrub::reqwest_error;

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first included (0 is treated as 1).
    pub attempts: u32,
    /// Backoff before the second attempt; doubles with each further attempt.
    pub base_delay: Duration,
    /// Cap of one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 200 ms base, 2 s cap.
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The sleep before attempt `attempt + 1` (`attempt` counts from 1): full jitter over
    /// `min(max_delay, base_delay * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if cap_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::thread_rng().gen_range(0..=cap_ms))
    }
}

/// Where the WeChat API is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `https://api.weixin.qq.com` or a mock; a trailing `/` is ignored.
    pub api_base: String,
    /// Bound of one attempt, from the wait for a permit to the last body byte.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Most attempts in flight at once, over every clone of the client and the API proxy
    /// (`upstream.max_in_flight`).
    pub max_in_flight: usize,
}

/// A credential WeChat issued, with the lifetime WeChat gave (seconds from now).
#[derive(Debug)]
pub struct IssuedCredential {
    pub value: SecretString,
    pub expires_in: u64,
}

/// The answer to an OAuth code exchange (`sns/oauth2/access_token`).
#[derive(Debug, Clone)]
pub struct OAuthToken {
    /// The per-user web access_token (not the account's global access_token).
    pub access_token: SecretString,
    pub expires_in: u64,
    pub refresh_token: SecretString,
    pub openid: String,
    pub scope: String,
    pub unionid: Option<String>,
    /// `is_snapshotuser: 1`: the user is on a snapshot page (快照页) and the identity is virtual.
    pub is_snapshotuser: bool,
}

/// A user profile from `sns/userinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub openid: String,
    #[serde(default)]
    pub nickname: String,
    /// 1 male, 2 female, 0 unknown (WeChat now always answers 0).
    #[serde(default)]
    pub sex: i64,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub headimgurl: String,
    #[serde(default)]
    pub privilege: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

/// What may be retried for one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Every transient failure.
    Transient,
    /// Only failures where the request provably never reached WeChat (connect errors) or was
    /// provably refused before any processing (45011 rate limit).
    NotDelivered,
}

/// One failed attempt: the error and whether the request may have reached WeChat.
struct Failure {
    error: UpstreamError,
    maybe_delivered: bool,
}

/// Talks to the WeChat API. Cheap to clone; clones share the connection pool and metrics.
#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    api_base: Arc<str>,
    timeout: Duration,
    retry: RetryPolicy,
    limit: UpstreamLimit,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatClient")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

impl WechatClient {
    pub fn new(options: ClientOptions, metrics: Arc<Metrics>) -> Result<Self, UpstreamError> {
        let api_base = options.api_base.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&api_base)
            .map_err(|e| UpstreamError::Transport(format!("upstream.api_base is invalid: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(UpstreamError::Transport(
                "upstream.api_base must be an http(s) URL".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UpstreamError::Transport(reqwest_error(e)))?;
        Ok(Self {
            http,
            api_base: api_base.into(),
            timeout: options.timeout,
            retry: options.retry,
            limit: UpstreamLimit::new(options.max_in_flight),
            metrics,
        })
    }

    /// The configured API base, without a trailing `/`.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The underlying HTTP client (shared pool), for callers that forward raw requests. They
    /// hold a permit of [`Self::limit`] per request like the client's own calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The bound of WeChat calls in flight (`upstream.max_in_flight`), shared by every clone.
    pub fn limit(&self) -> &UpstreamLimit {
        &self.limit
    }

    /// Fetches an access_token with `cgi-bin/stable_token` (`force_refresh` honoured) or
    /// `cgi-bin/token` (`force_refresh` ignored: every classic call issues a new token).
    pub async fn access_token(
        &self,
        account: &str,
        appid: &str,
        secret: &SecretString,
        api: TokenApi,
        force_refresh: bool,
    ) -> Result<IssuedCredential, UpstreamError> {
        let answer = match api {
            TokenApi::Classic => {
                let url = self.url("cgi-bin/token");
                self.call(account, "cgi-bin/token", Retry::Transient, || {
                    self.http.get(&url).query(&[
                        ("grant_type", "client_credential"),
                        ("appid", appid),
                        ("secret", secret.expose_secret()),
                    ])
                })
                .await?
            }
            TokenApi::Stable => {
                let url = self.url("cgi-bin/stable_token");
                let body = json_bytes(&StableTokenRequest {
                    grant_type: "client_credential",
                    appid,
                    secret: secret.expose_secret(),
                    force_refresh,
                })?;
                self.call(account, "cgi-bin/stable_token", Retry::Transient, || {
                    self.http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                })
                .await?
            }
        };
        let cred = credential(&answer, "access_token")?;
        tracing::debug!(
            account,
            api = ?api,
            force_refresh,
            token = %redact(cred.value.expose_secret()),
            expires_in = cred.expires_in,
            "access_token issued"
        );
        Ok(cred)
    }

    /// Fetches a JS-SDK ticket (`cgi-bin/ticket/getticket?type=jsapi|wx_card`).
    pub async fn ticket(
        &self,
        account: &str,
        access_token: &SecretString,
        kind: TicketKind,
    ) -> Result<IssuedCredential, UpstreamError> {
        let url = self.url("cgi-bin/ticket/getticket");
        let answer = self
            .call(
                account,
                "cgi-bin/ticket/getticket",
                Retry::Transient,
                || {
                    self.http.get(&url).query(&[
                        ("access_token", access_token.expose_secret()),
                        ("type", kind.as_wechat_type()),
                    ])
                },
            )
            .await?;
        let cred = credential(&answer, "ticket")?;
        tracing::debug!(
            account,
            kind = kind.as_wechat_type(),
            ticket = %redact(cred.value.expose_secret()),
            expires_in = cred.expires_in,
            "ticket issued"
        );
        Ok(cred)
    }

    /// A cheap call (`cgi-bin/getcallbackip`) that tells whether WeChat accepts a token:
    /// `Err(e)` with `e.is_token_invalid()` when it does not.
    pub async fn probe_access_token(
        &self,
        account: &str,
        access_token: &SecretString,
    ) -> Result<(), UpstreamError> {
        let url = self.url("cgi-bin/getcallbackip");
        self.call(account, "cgi-bin/getcallbackip", Retry::Transient, || {
            self.http
                .get(&url)
                .query(&[("access_token", access_token.expose_secret())])
        })
        .await
        .map(|_| ())
    }

    /// Exchanges an OAuth `code` for a web access_token (`sns/oauth2/access_token`). A code is
    /// single use, so this is retried only when the request never reached WeChat.
    pub async fn oauth_exchange_code(
        &self,
        account: &str,
        appid: &str,
        secret: &SecretString,
        code: &str,
    ) -> Result<OAuthToken, UpstreamError> {
        let url = self.url("sns/oauth2/access_token");
        let answer = self
            .call(
                account,
                "sns/oauth2/access_token",
                Retry::NotDelivered,
                || {
                    self.http.get(&url).query(&[
                        ("appid", appid),
                        ("secret", secret.expose_secret()),
                        ("code", code),
                        ("grant_type", "authorization_code"),
                    ])
                },
            )
            .await?;
        let token = oauth_token(&answer)?;
        tracing::debug!(account, scope = %token.scope, is_snapshotuser = token.is_snapshotuser, "oauth code exchanged");
        Ok(token)
    }

    /// A user's profile (`sns/userinfo`, snsapi_userinfo scope only).
    pub async fn oauth_userinfo(
        &self,
        account: &str,
        web_token: &SecretString,
        openid: &str,
    ) -> Result<UserInfo, UpstreamError> {
        let url = self.url("sns/userinfo");
        let answer = self
            .call(account, "sns/userinfo", Retry::Transient, || {
                self.http.get(&url).query(&[
                    ("access_token", web_token.expose_secret()),
                    ("openid", openid),
                    ("lang", "zh_CN"),
                ])
            })
            .await?;
        serde_json::from_value(answer).map_err(|e| {
            UpstreamError::Unparseable(format!("sns/userinfo answer has an unexpected shape: {e}"))
        })
    }

    /// Sends a customer-service message (`cgi-bin/message/custom/send`). The body is sent as
    /// raw UTF-8 JSON. Never retried once the request may have reached WeChat: a retry after a
    /// timeout could deliver the message twice.
    pub async fn send_custom_message(
        &self,
        account: &str,
        access_token: &SecretString,
        body: &Value,
    ) -> Result<(), UpstreamError> {
        let url = self.url("cgi-bin/message/custom/send");
        let bytes = json_bytes(body)?;
        self.call(
            account,
            "cgi-bin/message/custom/send",
            Retry::NotDelivered,
            || {
                self.http
                    .post(&url)
                    .query(&[("access_token", access_token.expose_secret())])
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone())
            },
        )
        .await
        .map(|_| ())
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.api_base, path)
    }

    /// The attempt loop: returns WeChat's JSON object when it carries no non-zero errcode.
    pub(super) async fn call(
        &self,
        account: &str,
        endpoint: &str,
        retry: Retry,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, UpstreamError> {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1u32;
        loop {
            let result = self.attempt(build()).await;
            match result {
                Ok(value) => {
                    self.metrics.upstream_call(account, endpoint, "ok");
                    if attempt > 1 {
                        tracing::debug!(account, endpoint, attempt, "WeChat call succeeded");
                    }
                    return Ok(value);
                }
                Err(Failure {
                    error,
                    maybe_delivered,
                }) => {
                    let outcome = error.outcome_label();
                    self.metrics.upstream_call(account, endpoint, &outcome);
                    self.learn_egress_ip(&error);
                    let retryable = match retry {
                        Retry::Transient => error.is_transient(),
                        Retry::NotDelivered => {
                            (error.is_transient() && !maybe_delivered)
                                || error.wechat_errcode() == Some(45011)
                        }
                    };
                    if !retryable || attempt >= attempts {
                        tracing::warn!(
                            account,
                            endpoint,
                            attempt,
                            outcome,
                            error = %error,
                            "WeChat call failed"
                        );
                        return Err(error);
                    }
                    let delay = self.retry.backoff(attempt);
                    tracing::debug!(
                        account,
                        endpoint,
                        attempt,
                        outcome,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "transient WeChat failure, retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Tells the activity recorder this server's egress IP when WeChat named it in a
    /// whitelist refusal (40164, 61004).
    fn learn_egress_ip(&self, error: &UpstreamError) {
        if let UpstreamError::WeChat {
            errcode: 40164 | 61004,
            errmsg,
            ..
        } = error
        {
            if let (Some(activity), Some(ip)) =
                (self.metrics.activity(), super::error::caller_ip(errmsg))
            {
                activity.egress_ip(&ip.to_string());
            }
        }
    }

    /// One attempt: a permit, then the exchange, both within `timeout`. A caller that waited
    /// for its permit has only the rest of the time for WeChat, so a full queue never makes an
    /// attempt longer than `upstream.timeout_ms`.
    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Ok(_permit) = self.limit.acquire_until(deadline).await else {
            return Err(Failure {
                error: UpstreamError::Saturated,
                maybe_delivered: false,
            });
        };
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(1));
        let request = request.timeout(left);
        // reqwest enforces the rest of the attempt's time; this is a backstop covering the
        // whole exchange should a body stall in a way reqwest does not see.
        let exchange = async {
            let response = request.send().await.map_err(request_failure)?;
            let status = response.status();
            let body = response.bytes().await.map_err(request_failure)?;
            Ok::<_, Failure>((status, body))
        };
        let (status, body) =
            match tokio::time::timeout(left + Duration::from_millis(250), exchange).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Failure {
                        error: UpstreamError::Timeout,
                        maybe_delivered: true,
                    })
                }
            };
        check(status, &body).map_err(|error| Failure {
            error,
            maybe_delivered: true,
        })
    }
}

/// Serializes as raw UTF-8 JSON (serde_json never writes `\uXXXX` for non-ASCII).
pub(super) fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<bytes::Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| UpstreamError::Unparseable(format!("request body not serializable: {e}")))
}

/// Maps a reqwest failure without ever keeping its URL (it carries secrets).
fn request_failure(e: reqwest::Error) -> Failure {
    let maybe_delivered = !e.is_connect();
    let error = if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Transport(reqwest_error(e))
    };
    Failure {
        error,
        maybe_delivered,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for attempt in 1..10 {
            assert!(p.backoff(attempt) <= Duration::from_millis(300));
        }
        assert!(p.backoff(1) <= Duration::from_millis(100));
    }

    #[test]
    fn stable_body_is_in_official_order() {
        let body = json_bytes(&StableTokenRequest {
            grant_type: "client_credential",
            appid: "wx1",
            secret: "s",
            force_refresh: false,
        })
        .unwrap();
        assert_eq!(
            &body[..],
            br#"{"grant_type":"client_credential","appid":"wx1","secret":"s","force_refresh":false}"#
        );
    }
}
