//! The token-free WeChat API proxy and the domain verification files.
//!
//! Business services call `{ANY} /api/v1/accounts/{account}/wechat/{path…}` exactly as they
//! would call `https://api.weixin.qq.com/{path…}`, minus the `access_token`: wxgate injects the
//! central token (replacing any the caller sent), streams the body both ways, answers WeChat's
//! status, headers that matter and body as is, and on a token error refreshes the token once
//! (guarded, so a burst of failing calls costs one fetch) and retries once. Paths are validated
//! before any allowlist is applied, and the token, ticket, quota-reset and `sns/*` endpoints are
//! never proxied ([`path`]). Forwarding itself lives in [`forward`].
//!
//! The verification files WeChat asks for before it accepts a JS-safe or web-authorization
//! domain (`MP_verify_<code>.txt`) are answered at the root from the accounts' `verify_files`,
//! so no nginx `location` or static file is needed on the domain ([`verify`]).

pub mod forward;
pub mod path;
mod verify;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use percent_encoding::percent_decode_str;

use self::path::{PathError, WechatPath};
use crate::http::{request_meta, ApiError, ApiResult, AppState};

/// Public routes: `/{file}` for the domain verification files (static routes such as
/// `/healthz` and `/metrics` take precedence; every other name is a JSON 404).
pub fn router() -> Router<AppState> {
    Router::new().route("/{file}", any(verify::verify_file))
}

/// Business API routes (Bearer auth applied by the caller):
/// `accounts/{account}/wechat/{*path}`.
/// The route of the streaming API proxy: the one route without the per-request deadline
/// (`crate::http::deadline`), since [`forward`] bounds its silences instead.
pub const API_ROUTE: &str = "/api/v1/accounts/{account}/wechat/{*path}";

pub fn api_router() -> Router<AppState> {
    Router::new().route(API_ROUTE, any(proxy))
}

async fn proxy(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The id this call is logged with is the one it is answered with (the request-id layer
    // keeps an id a handler answered with).
    let request_id = request_meta::request_id(&headers);
    let logged_id = request_id.to_str().ok().map(str::to_owned);
    let mut response = match proxy_call(&state, method, &uri, headers, logged_id, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(request_meta::REQUEST_ID, request_id);
    response
}

async fn proxy_call(
    state: &AppState,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    request_id: Option<String>,
    body: Body,
) -> ApiResult<Response> {
    let (account, raw_path) = split_path(uri.path())?;
    let settings = state.require_account(&account)?;
    let path = WechatPath::parse(raw_path)
        .and_then(|p| p.check_allowed(&settings.proxy_allow).map(|()| p))
        .map_err(path_error)?;
    let call = forward::Call {
        state,
        account: &account,
        method,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        request_id,
    };
    forward::forward(call, body).await
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

fn path_error(e: PathError) -> ApiError {
    match e {
        PathError::Invalid(why) => ApiError::bad_request("invalid_path", why),
        PathError::NotAllowed(why) => {
            ApiError::client(StatusCode::FORBIDDEN, "path_not_allowed", why)
        }
    }
}
