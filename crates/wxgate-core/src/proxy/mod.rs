//! The token-free WeChat API proxy: the service behind
//! `{ANY} /api/v1/accounts/{account}/wechat/{path…}` (its route and handler are the HTTP
//! layer's `proxy` module).
//!
//! Business services call that route exactly as they would call
//! `https://api.weixin.qq.com/{path…}`, minus the `access_token`: wxgate injects the central
//! token (replacing any the caller sent), streams the body both ways, answers WeChat's status,
//! headers that matter and body as is, and on a token error refreshes the token once (guarded,
//! so a burst of failing calls costs one fetch) and retries once. Paths are validated before any
//! allowlist is applied, and the token, ticket, quota-reset and `sns/*` endpoints are never
//! proxied ([`path`], applied by [`allowed_path`]). Forwarding itself lives in [`mod@forward`],
//! which returns WeChat's answer as plain data ([`Forwarded`]) for the HTTP layer to send;
//! its silence bounds (`upstream.timeout_ms` between two moves, not over a whole transfer) are
//! `idle`.
//! Refusals are [`ProxyError`]s, mapped to the SPEC's answers by the HTTP layer.

mod error;
pub mod forward;
mod idle;
pub mod path;

use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderMap, StatusCode};

pub use self::error::ProxyError;
pub use self::forward::{forward, Call};
use self::path::WechatPath;
use crate::config::Account;

/// A body as a stream of byte chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// WeChat's answer to a proxied call, to be passed on as is.
pub struct Forwarded {
    pub status: StatusCode,
    /// WeChat's headers that are passed on (the forwarder's `RESPONSE_HEADERS`), plus
    /// [`forward::HINT_HEADER`] when wxgate has something to say about a token error.
    pub headers: HeaderMap,
    pub body: ForwardedBody,
}

/// The body of a [`Forwarded`] answer.
pub enum ForwardedBody {
    /// A small answer read whole (to look for a token errcode): its length is known.
    Whole(Bytes),
    /// Everything else, streamed; it ends with an error when WeChat stays silent for longer
    /// than `upstream.timeout_ms` (the caller sees a cut-off transfer).
    Stream(ByteStream),
}

/// The WeChat path `raw` (the tail after `…/wechat/`, still percent-encoded), validated and
/// checked against the deny list and `account`'s `proxy_allow`.
pub fn allowed_path(account: &Account, raw: &str) -> Result<WechatPath, ProxyError> {
    let path = WechatPath::parse(raw)?;
    path.check_allowed(&account.proxy_allow)?;
    Ok(path)
}
