//! The WeChat API client: the only code in wxgate that talks to `api.weixin.qq.com`.
//!
//! WeChat reports most errors as HTTP 200 with a non-zero `errcode`; this module turns every
//! answer into either a typed success or an [`UpstreamError`] carrying errcode, errmsg and rid,
//! retries what is transient (-1, 45011, HTTP 5xx, timeouts, unparseable bodies) with
//! exponential backoff and jitter, and never retries configuration errors. URLs carrying an
//! AppSecret or token never reach a log line or an error message. Every attempt holds one of
//! the `upstream.max_in_flight` permits of [`UpstreamLimit`] while it talks to WeChat.

mod answer;
mod client;
mod component;
mod error;
mod limit;
mod miniprogram;
mod quota;
mod webhook_client;

pub use self::client::{
    ClientOptions, IssuedCredential, OAuthToken, RetryPolicy, UserInfo, WechatClient,
};
pub use self::component::{Authorization, AuthorizerInfo, AuthorizerToken};
pub use self::error::{is_token_invalid_errcode, UpstreamError};
pub use self::limit::{Permit, Saturated, UpstreamLimit};
pub use self::miniprogram::{CodeSession, PhoneNumber};
pub use self::quota::DailyQuota;
pub use self::webhook_client::WebhookClient;
