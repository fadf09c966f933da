//! Forwarding one business call to WeChat with the central access_token, streaming both ways,
//! and the single refresh-and-retry on a token error.
//!
//! Guarantees:
//! - **bounded memory**: request and response bodies are streamed; only a request body of at
//!   most [`REPLAY_MAX`] bytes (so it can be sent again) and a JSON-looking response of at most
//!   [`INSPECT_MAX`] bytes (so its `errcode` can be read) are held whole;
//! - **size limit**: `server.max_body_bytes` is checked against `Content-Length` up front and
//!   counted while streaming (413 `body_too_large` either way);
//! - **time limit without cutting transfers**: `upstream.timeout_ms` bounds every *silence* —
//!   from the last request byte sent to the response headers, and between two chunks of either
//!   body — so a slow WeChat answers 504 `upstream_unavailable` but a long download or upload
//!   that keeps moving is not cut (a whole transfer is capped at [`TRANSFER_CAP`]);
//! - **one retry, never a loop**: a token errcode (40001/40014/42001) in a JSON answer triggers
//!   the credential manager's one refresh-and-retry (`CredentialManager::with_fresh_token`: a
//!   guarded refresh reporting the token used, so a burst of failing calls causes at most one
//!   fetch) and, when the body can be replayed and the token changed, exactly one more attempt. A body that was streamed is not replayed: the caller gets
//!   WeChat's answer with an `X-Wxgate-Hint` header, and the token is refreshed all the same so
//!   its own retry works;
//! - **bounded concurrency**: each attempt holds one of the `upstream.max_in_flight` permits
//!   ([`crate::upstream::UpstreamLimit`]) until WeChat's headers are in — not while a streamed
//!   answer trickles to the caller (see `Call::attempt`); the wait for it counts against the
//!   first silence bound;
//! - **nothing secret leaks**: the caller's `Authorization` (its wxgate API key) and other
//!   headers are not forwarded, only `REQUEST_HEADERS`; logs carry the path, never the query
//!   (it holds the token), plus WeChat's `rid` and wxgate's request id for failed calls;
//!   transport errors are rendered by [`crate::scrub::reqwest_error`], without the URL.
//!
//! The caller's body comes in as a stream of byte chunks and WeChat's answer goes out as plain
//! data ([`Forwarded`]); the HTTP layer turns one into the other.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::idle::{idle_bounded, send_within, Progress, SendError};
use super::path::{upstream_query, WechatPath};
use super::{ByteStream, Forwarded, ForwardedBody, ProxyError};
use crate::config::Account;
use crate::credentials::{Again, ErrorRecord, Fresh, NotRetried};
use crate::domain::{lock, unix_now};
use crate::gateway::Gateway;
use crate::scrub::reqwest_error;
use crate::upstream::{is_token_invalid_errcode, UpstreamError};

/// Request bodies up to this size are read whole and may be sent twice (token retry).
pub const REPLAY_MAX: usize = 64 * 1024;
/// JSON answers up to this size are read whole to look for a token errcode.
pub const INSPECT_MAX: usize = 64 * 1024;
/// Upper bound of one whole proxied transfer, however steadily it moves.
pub const TRANSFER_CAP: Duration = Duration::from_secs(30 * 60);
/// The metrics endpoint label of proxied calls.
pub const ENDPOINT: &str = "proxy";

/// Caller headers forwarded to WeChat (plus `Content-Length` of streamed bodies).
static REQUEST_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
];

/// WeChat headers answered to the caller.
static RESPONSE_HEADERS: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    header::EXPIRES,
];

/// The header that explains what wxgate did (or could not do) about a token error.
pub const HINT_HEADER: &str = "x-wxgate-hint";

const HINT_NOT_REPLAYED: &str = "WeChat rejected the access_token; wxgate refreshed it but did \
     not retry because the request body was streamed (over 64 KiB or of unknown length) and \
     cannot be replayed - send the request again";
const HINT_SAME_TOKEN: &str = "WeChat rejected the access_token and no newer one is available \
     yet (wxgate forces at most one refresh per account per 30 s) - retry shortly; if this \
     persists another program is fetching tokens for this account";
const HINT_RETRY_REJECTED: &str = "WeChat rejected the refreshed access_token as well; wxgate \
     does not retry twice - check that no other program fetches tokens for this account";
const HINT_REFRESH_FAILED: &str = "WeChat rejected the access_token and refreshing it failed; \
     see GET /api/v1/accounts/{account}/status for the cause";

/// One proxied call, already validated.
pub struct Call<'a> {
    pub gateway: &'a Gateway,
    pub account: &'a Account,
    pub method: Method,
    pub path: WechatPath,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// `X-Wxgate-Request-Id` of the call, for log lines.
    pub request_id: Option<String>,
}

/// Forwards `call` with `body` (the caller's body, chunk by chunk) and returns WeChat's
/// response (see the module documentation).
pub async fn forward<S, E>(call: Call<'_>, body: S) -> Result<Forwarded, ProxyError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let limit = call.gateway.settings.server.max_body_bytes;
    let declared = content_length(&call.headers);
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    let outgoing = Outgoing::prepare(body, declared, limit).await?;
    let again = if outgoing.is_replayable() {
        Again::IfTokenChanged
    } else {
        Again::Never
    };
    let attempt = |token: SecretString| call.attempt(token, &outgoing);
    let rejected =
        |r: &Result<Answer, ProxyError>| r.as_ref().is_ok_and(|a| a.token_errcode().is_some());
    let account = call.account.name.as_str();
    let answered = call
        .gateway
        .creds
        .with_fresh_token(account, again, attempt, rejected)
        .await?;
    let request_id = call.request_id.as_deref().unwrap_or("-");
    let (answer, hint) = match answered {
        Fresh::First(answer) => (answer?, None),
        Fresh::Retried { first, second } => {
            let errcode = first.ok().and_then(|a| a.token_errcode());
            tracing::info!(account, path = %call.path.decoded, errcode, request_id,
                "proxied call hit a token error; retried once with the refreshed token");
            let second = second?;
            let hint = second.token_errcode().map(|_| HINT_RETRY_REJECTED);
            (second, hint)
        }
        Fresh::NotRetried { first, why } => {
            let first = first?;
            let errcode = first.token_errcode();
            let hint = match why {
                NotRetried::RefreshFailed(e) => {
                    tracing::warn!(account, path = %call.path.decoded, errcode,
                        error = %e, request_id,
                        "proxied call hit a token error and the refresh failed");
                    HINT_REFRESH_FAILED
                }
                NotRetried::NotRepeatable => {
                    tracing::warn!(account, path = %call.path.decoded, errcode,
                        request_id,
                        "proxied call hit a token error; token refreshed, streamed body not retried");
                    HINT_NOT_REPLAYED
                }
                NotRetried::SameToken => HINT_SAME_TOKEN,
            };
            (first, Some(hint))
        }
    };
    Ok(answer.into_forwarded(hint))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The request body as it will be sent.
enum Outgoing {
    /// Read whole (at most [`REPLAY_MAX`] bytes): sent on every attempt.
    Replayable(Bytes),
    /// Larger or of unknown length: streamed once (`None` after it was taken; behind a lock
    /// only so attempts can share `&Outgoing`).
    Streamed {
        stream: Mutex<Option<ByteStream>>,
        declared: Option<u64>,
    },
}

impl Outgoing {
    /// Reads up to [`REPLAY_MAX`] bytes; a body that ends by then is replayable, any other is
    /// streamed (what was read first goes first), counted against `limit`.
    async fn prepare<S, E>(
        mut data: S,
        declared: Option<u64>,
        limit: u64,
    ) -> Result<Self, ProxyError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut prefix: Vec<Bytes> = Vec::new();
        let mut read: usize = 0;
        let may_replay = declared.is_none_or(|n| n <= REPLAY_MAX as u64);
        if may_replay {
            loop {
                match data.next().await {
                    None => {
                        let whole = match prefix.len() {
                            0 => Bytes::new(),
                            1 => prefix.swap_remove(0),
                            _ => Bytes::from(prefix.concat()),
                        };
                        return Ok(Outgoing::Replayable(whole));
                    }
                    Some(Ok(chunk)) => {
                        read += chunk.len();
                        if read as u64 > limit {
                            return Err(ProxyError::BodyTooLarge(limit));
                        }
                        prefix.push(chunk);
                        if read > REPLAY_MAX {
                            break;
                        }
                    }
                    Some(Err(e)) => return Err(bad_body(&e)),
                }
            }
        }
        let stream = stream::iter(prefix.into_iter().map(Ok))
            .chain(data)
            .map_err(std::io::Error::other)
            .boxed();
        Ok(Outgoing::Streamed {
            stream: Mutex::new(Some(stream)),
            declared,
        })
    }

    fn is_replayable(&self) -> bool {
        matches!(self, Outgoing::Replayable(_))
    }

    /// The body of one attempt, the `Content-Length` to declare for it, or `None` for an empty
    /// body.
    fn take(&self, limit: u64, progress: &Arc<Progress>) -> Option<(reqwest::Body, Option<u64>)> {
        match self {
            Outgoing::Replayable(bytes) if bytes.is_empty() => None,
            Outgoing::Replayable(bytes) => Some((reqwest::Body::from(bytes.clone()), None)),
            Outgoing::Streamed { stream, declared } => {
                let stream = lock(stream).take()?;
                let progress = progress.clone();
                let mut sent: u64 = 0;
                let counted = stream.map(move |item| match item {
                    Ok(chunk) => {
                        sent += chunk.len() as u64;
                        if sent > limit {
                            progress.too_large.store(true, Ordering::Relaxed);
                            return Err(std::io::Error::other("request body over the limit"));
                        }
                        progress.touch();
                        Ok(chunk)
                    }
                    Err(e) => {
                        progress.caller_failed.store(true, Ordering::Relaxed);
                        Err(e)
                    }
                });
                Some((reqwest::Body::wrap_stream(counted), *declared))
            }
        }
    }
}

fn bad_body(e: &dyn std::fmt::Display) -> ProxyError {
    ProxyError::BadBody(e.to_string())
}

/// What WeChat answered to one attempt.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: AnswerBody,
    /// `errcode` of a JSON answer read whole (0 or absent: `None`).
    errcode: Option<i64>,
    idle: Duration,
}

enum AnswerBody {
    Whole(Bytes),
    Stream {
        prefix: Vec<Bytes>,
        rest: reqwest::Response,
    },
}

#[derive(Deserialize)]
struct WxStatus {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

impl Answer {
    fn token_errcode(&self) -> Option<i64> {
        self.errcode.filter(|c| is_token_invalid_errcode(*c))
    }

    /// Headers, then (for small JSON-looking answers) the whole body.
    async fn read(
        mut resp: reqwest::Response,
        method: &Method,
        idle: Duration,
    ) -> Result<(Self, Option<String>), UpstreamError> {
        let status = resp.status();
        let mut headers = HeaderMap::new();
        for name in &RESPONSE_HEADERS {
            if let Some(v) = resp.headers().get(name) {
                headers.insert(name.clone(), v.clone());
            }
        }
        let inspect = *method != Method::HEAD
            && looks_like_json(resp.headers())
            && resp
                .content_length()
                .is_none_or(|n| n <= INSPECT_MAX as u64);
        let mut prefix: Vec<Bytes> = Vec::new();
        if inspect {
            let mut read = 0usize;
            loop {
                let chunk = tokio::time::timeout(idle, resp.chunk())
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
                    .map_err(|e| UpstreamError::Transport(reqwest_error(e)))?;
                match chunk {
                    None => {
                        let whole = Bytes::from(prefix.concat());
                        let parsed = serde_json::from_slice::<WxStatus>(&whole).ok();
                        let errcode = parsed.as_ref().and_then(|p| p.errcode).filter(|c| *c != 0);
                        let errmsg = parsed.and_then(|p| p.errmsg);
                        headers.remove(header::CONTENT_LENGTH);
                        let answer = Answer {
                            status,
                            headers,
                            body: AnswerBody::Whole(whole),
                            errcode,
                            idle,
                        };
                        return Ok((answer, errmsg));
                    }
                    Some(c) => {
                        read += c.len();
                        prefix.push(c);
                        if read > INSPECT_MAX {
                            break;
                        }
                    }
                }
            }
        }
        let answer = Answer {
            status,
            headers,
            body: AnswerBody::Stream { prefix, rest: resp },
            errcode: None,
            idle,
        };
        Ok((answer, None))
    }

    fn into_forwarded(self, hint: Option<&'static str>) -> Forwarded {
        let body = match self.body {
            AnswerBody::Whole(bytes) => ForwardedBody::Whole(bytes),
            AnswerBody::Stream { prefix, rest } => ForwardedBody::Stream(idle_bounded(
                prefix,
                rest.bytes_stream()
                    .map_err(|e| std::io::Error::other(reqwest_error(e))),
                self.idle,
            )),
        };
        let mut headers = self.headers;
        if let Some(hint) = hint {
            headers.insert(HINT_HEADER, HeaderValue::from_static(hint));
        }
        Forwarded {
            status: self.status,
            headers,
            body,
        }
    }
}

/// WeChat answers JSON as `application/json`, sometimes `text/plain`, occasionally without a
/// content type; media is `image/*`, `audio/*`, `application/octet-stream`, … and is never held.
fn looks_like_json(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.contains("json") || ct.starts_with("text/plain")
        }
    }
}

impl Call<'_> {
    /// One attempt with `token`: send, wait for the headers under the idle bound, read a small
    /// JSON answer whole; count it in the metrics and log a failure.
    async fn attempt(
        &self,
        token: SecretString,
        outgoing: &Outgoing,
    ) -> Result<Answer, ProxyError> {
        let gateway = self.gateway;
        let limit = gateway.settings.server.max_body_bytes;
        let timeout = gateway.settings.upstream.timeout();
        let url = format!(
            "{}/{}?{}",
            gateway.client.api_base(),
            self.path.raw,
            upstream_query(self.query.as_deref(), token.expose_secret())
        );
        let progress = Progress::new();
        // One of `upstream.max_in_flight` calls, waited for within the first silence bound.
        // Held until WeChat's headers (and a small JSON answer) are in: by then WeChat has done
        // its work. Not for a streamed answer: that runs at the pace of the caller's reading
        // for up to TRANSFER_CAP, and a few slow downloads would hold every permit and stall
        // every token fetch of the instance. (An upload does hold it: WeChat answers after the
        // last byte, and the silence bound stops an upload that stalls.)
        let deadline = progress.idle_deadline(timeout);
        let Ok(permit) = gateway.client.limit().acquire_until(deadline).await else {
            let error = UpstreamError::Saturated;
            self.record_failure(&error);
            return Err(ProxyError::Upstream(error));
        };
        let mut request = gateway
            .client
            .http()
            .request(self.method.clone(), url)
            .timeout(TRANSFER_CAP);
        for name in &REQUEST_HEADERS {
            if let Some(v) = self.headers.get(name) {
                request = request.header(name, v);
            }
        }
        if let Some((body, declared)) = outgoing.take(limit, &progress) {
            if let Some(n) = declared {
                request = request.header(header::CONTENT_LENGTH, n);
            }
            request = request.body(body);
        }
        let sent = send_within(request.send(), &progress, timeout).await;
        if progress.too_large.load(Ordering::Relaxed) {
            return Err(ProxyError::BodyTooLarge(limit));
        }
        let resp = match sent {
            Ok(resp) => resp,
            Err(SendError::Reqwest(e)) if progress.caller_failed.load(Ordering::Relaxed) => {
                return Err(bad_body(&reqwest_error(e)));
            }
            Err(e) => {
                let error = match e {
                    SendError::Idle => UpstreamError::Timeout,
                    SendError::Reqwest(e) if e.is_timeout() => UpstreamError::Timeout,
                    SendError::Reqwest(e) => UpstreamError::Transport(reqwest_error(e)),
                };
                self.record_failure(&error);
                return Err(ProxyError::Upstream(error));
            }
        };
        let read = Answer::read(resp, &self.method, timeout).await;
        drop(permit);
        match read {
            Ok((answer, errmsg)) => {
                self.record(&answer, errmsg);
                Ok(answer)
            }
            Err(error) => {
                self.record_failure(&error);
                Err(ProxyError::Upstream(error))
            }
        }
    }

    fn record(&self, answer: &Answer, errmsg: Option<String>) {
        let failure = if !answer.status.is_success() {
            Some(UpstreamError::HttpStatus(answer.status.as_u16()))
        } else {
            answer
                .errcode
                .map(|code| UpstreamError::wechat(code, errmsg.unwrap_or_default()))
        };
        match failure {
            Some(error) => self.record_failure(&error),
            None => {
                self.gateway
                    .metrics
                    .upstream_call(&self.account.name, ENDPOINT, "ok");
                tracing::debug!(account = self.account.name.as_str(), method = %self.method,
                    path = %self.path.decoded, status = answer.status.as_u16(), "proxied call");
            }
        }
    }

    fn record_failure(&self, error: &UpstreamError) {
        let metrics = &self.gateway.metrics;
        let account = self.account.name.as_str();
        metrics.upstream_call(account, ENDPOINT, &error.outcome_label());
        metrics.upstream_error(
            account,
            ENDPOINT,
            ErrorRecord {
                at: unix_now(),
                message: format!("{} {}: {error}", self.method, self.path.decoded),
                hint: error.hint(),
                wechat_errcode: error.wechat_errcode(),
                wechat_rid: error.wechat_rid().map(str::to_owned),
            },
        );
        tracing::warn!(
            account,
            method = %self.method,
            path = %self.path.decoded,
            outcome = %error.outcome_label(),
            wechat_rid = error.wechat_rid().unwrap_or("-"),
            request_id = self.request_id.as_deref().unwrap_or("-"),
            error = %error,
            "proxied WeChat call failed"
        );
    }
}
