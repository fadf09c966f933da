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
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use percent_encoding::percent_decode_str;

use self::path::{PathError, WechatPath};
use crate::http::{ApiError, ApiResult, AppState};

/// Public routes: `/{file}` for the domain verification files (static routes such as
/// `/healthz` and `/metrics` take precedence; every other name is a JSON 404).
pub fn router() -> Router<AppState> {
    Router::new().route("/{file}", any(verify::verify_file))
}

/// Business API routes under `/api/v1` (Bearer auth applied by the caller):
/// `accounts/{account}/wechat/{*path}`.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/accounts/{account}/wechat/{*path}", any(proxy))
}

async fn proxy(
    State(state): State<AppState>,
    params: RawPathParams,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (account, raw_path) = path_params(&params)?;
    let settings = state.require_account(&account)?;
    let path = WechatPath::parse(&raw_path)
        .and_then(|p| p.check_allowed(&settings.proxy_allow).map(|()| p))
        .map_err(path_error)?;
    let request_id = headers
        .get("x-wxgate-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let call = forward::Call {
        state: &state,
        account: &account,
        method,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        request_id,
    };
    forward::forward(call, body).await
}

/// The account (decoded) and the WeChat path (still percent-encoded, validated later).
fn path_params(params: &RawPathParams) -> ApiResult<(String, String)> {
    let mut account = None;
    let mut raw_path = None;
    for (key, value) in params {
        match key {
            "account" => account = Some(value),
            "path" => raw_path = Some(value),
            _ => {}
        }
    }
    let account = account
        .and_then(|a| percent_decode_str(a).decode_utf8().ok())
        .ok_or_else(|| ApiError::UnknownAccount(String::new()))?;
    let raw_path = raw_path.unwrap_or_default().trim_start_matches('/');
    Ok((account.into_owned(), raw_path.to_owned()))
}

fn path_error(e: PathError) -> ApiError {
    match e {
        PathError::Invalid(why) => ApiError::bad_request("invalid_path", why),
        PathError::NotAllowed(why) => {
            ApiError::client(StatusCode::FORBIDDEN, "path_not_allowed", why)
        }
    }
}
