//! The route of the token-free WeChat API proxy (`{ANY}
//! /api/v1/accounts/{account}/wechat/{path…}`, Bearer auth applied by the business API's
//! router): a thin handler over the core [`crate::proxy`] service, which wraps WeChat's answer
//! into a response, and the one mapping of [`ProxyError`] to the SPEC's answers.

use axum::body::Body;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Extension;
use axum::Router;
use percent_encoding::percent_decode_str;

use super::auth::Grant;
use super::{request_meta, ApiError, ApiResult, AppState};
use crate::proxy::path::PathError;
use crate::proxy::{self, Forwarded, ForwardedBody, ProxyError};

/// The route of the streaming API proxy: the one route without the per-request deadline
/// (`server.request_timeout_ms`, see [`super::deadline`]), since `proxy::forward` bounds its
/// silences instead and a long transfer that keeps moving must not be cut.
pub const API_ROUTE: &str = "/api/v1/accounts/{account}/wechat/{*path}";

/// Business API routes (Bearer auth applied by the caller): [`API_ROUTE`].
pub fn api_router() -> Router<AppState> {
    Router::new().route(API_ROUTE, any(forward))
}

async fn forward(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    grant: Option<Extension<Arc<Grant>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The id this call is logged with is the one it is answered with (the request-id layer
    // keeps an id a handler answered with).
    let request_id = request_meta::request_id(&headers);
    let logged_id = request_id.to_str().ok().map(str::to_owned);
    let grant = grant.map(|Extension(grant)| grant);
    let call = call(
        &state,
        method,
        &uri,
        grant.as_deref(),
        headers,
        logged_id,
        body,
    );
    let mut response = match call.await {
        Ok(forwarded) => answer(forwarded),
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(request_meta::REQUEST_ID, request_id);
    response
}

/// The account is found from the URI here rather than by `AccountPath`: the WeChat path must
/// be read as sent (see [`split_path`]), and axum refuses the whole route's parameters when
/// the path decodes to invalid UTF-8, which is the core's `invalid_path` to answer.
async fn call(
    state: &AppState,
    method: Method,
    uri: &Uri,
    grant: Option<&Grant>,
    headers: HeaderMap,
    request_id: Option<String>,
    body: Body,
) -> ApiResult<Forwarded> {
    let (name, raw_path) = split_path(uri.path())?;
    super::auth::check_grant(grant, &name)?;
    let account = state.account(&name).ok_or(ApiError::UnknownAccount(name))?;
    let path = proxy::allowed_path(&account, raw_path)?;
    let call = proxy::Call {
        gateway: state,
        account: &account,
        method,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        request_id,
    };
    Ok(proxy::forward(call, body.into_data_stream()).await?)
}

/// WeChat's answer as a response: its status, the headers passed on, the body whole (its
/// length known) or streamed.
fn answer(forwarded: Forwarded) -> Response {
    let body = match forwarded.body {
        ForwardedBody::Whole(bytes) => Body::from(bytes),
        ForwardedBody::Stream(stream) => Body::from_stream(stream),
    };
    let mut response = Response::new(body);
    *response.status_mut() = forwarded.status;
    *response.headers_mut() = forwarded.headers;
    response
}

/// The account (decoded) and the WeChat path *as sent* (still percent-encoded: axum's path
/// parameters are decoded, which would hide an encoded `/`), from
/// `[/api/v1]/accounts/{account}/wechat/{path…}`.
fn split_path(path: &str) -> ApiResult<(String, &str)> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut parts = path.splitn(5, '/');
    let (Some(""), Some("accounts"), Some(account), Some("wechat"), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ApiError::not_found("not_found", "no such endpoint"));
    };
    let account = percent_decode_str(account)
        .decode_utf8()
        .map_err(|_| ApiError::UnknownAccount(account.to_owned()))?;
    Ok((account.into_owned(), rest))
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Path(PathError::Invalid(why)) => ApiError::bad_request("invalid_path", why),
            ProxyError::Path(PathError::NotAllowed(why)) => {
                ApiError::client(StatusCode::FORBIDDEN, "path_not_allowed", why)
            }
            ProxyError::BodyTooLarge(limit) => ApiError::BodyTooLarge(limit),
            e @ ProxyError::BadBody(_) => ApiError::bad_request("bad_body", e.to_string()),
            ProxyError::Upstream(e) => ApiError::Upstream(e),
            ProxyError::Credential(e) => ApiError::from(e),
        }
    }
}
