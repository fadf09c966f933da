//! The web-login routes (OAuth2 网页授权); the flow itself is the core's (`oauth::flow`).
//!
//! Browsers: `GET /oauth/{account}/login?redirect=…[&scope=…]` sends the browser to WeChat's
//! authorize page with the login cookie; WeChat sends it back to
//! `GET /oauth/{account}/callback?code&state`, which sends the browser on to `redirect` with a
//! one-time `wxgate_code`. The page's backend redeems that code with
//! `GET /api/v1/accounts/{account}/logins/{code}` ([`api_router`], Bearer keys) — the browser
//! never sees an openid it could forge, nor an API key.
//!
//! The browser routes are anonymous: an upstream failure is answered with its code and status
//! but a generic message ([`ApiError::for_public`]); the operator's hint goes to the log and
//! `status`. Redirects and error answers of these routes are never cached.

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wxgate_proto::oauth::Scope;

use super::extract::AccountPath;
use super::params::optional;
use super::{ApiError, ApiResult, AppState};
use crate::oauth::flow::{self, Outcome, Redeemed};
use crate::oauth::OauthError;

/// Routes called by browsers (`/oauth/{account}/…`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/{account}/login", get(login))
        .route("/oauth/{account}/callback", get(callback))
}

/// Business API route (Bearer auth applied by the caller): `accounts/{account}/logins/{code}`.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/api/v1/accounts/{account}/logins/{code}", get(redeem))
}

impl From<OauthError> for ApiError {
    fn from(e: OauthError) -> Self {
        match e {
            OauthError::RedirectTooLong { .. } => {
                ApiError::bad_request("redirect_too_long", e.to_string())
            }
            OauthError::RedirectNotAllowed { .. } | OauthError::RedirectNoLongerAllowed => {
                ApiError::bad_request("redirect_not_allowed", e.to_string())
            }
            OauthError::InvalidState(_) => ApiError::bad_request("invalid_state", e.to_string()),
            OauthError::LoginInProgress => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "login_in_progress",
                e.to_string(),
            ),
            OauthError::InvalidCode => ApiError::not_found("invalid_code", e.to_string()),
            OauthError::Upstream(u) => ApiError::Upstream(u),
            OauthError::Credential(c) => ApiError::from(*c),
            OauthError::UserDb(db) => ApiError::from(db),
            OauthError::Store(s) => ApiError::from(s),
            OauthError::Internal(reason) => ApiError::Internal(reason),
        }
    }
}

/// A `302 Found` to `location`, never cached.
pub(super) fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::FOUND,
            [
                (LOCATION, value),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => ApiError::Internal(format!(
            "a redirect location of {} bytes is not a valid header value",
            location.len()
        ))
        .into_response(),
    }
}

async fn login(
    State(state): State<AppState>,
    account: AccountPath,
    RawQuery(raw): RawQuery,
) -> Response {
    match start_login(&state, &account, raw.as_deref()).await {
        Ok(response) => response,
        Err(e) => e.for_public().into_response(),
    }
}

async fn start_login(
    state: &AppState,
    account: &AccountPath,
    raw: Option<&str>,
) -> ApiResult<Response> {
    account.require_official("web login (OAuth)")?;
    let redirect = optional(raw, "redirect")?.ok_or(ApiError::MissingParameter("redirect"))?;
    let scope = match optional(raw, "scope")? {
        None => Scope::Base,
        Some(s) => s.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_scope",
                format!("scope {s:?} is not snsapi_base or snsapi_userinfo"),
            )
        })?,
    };
    let started = flow::start(state, account, &redirect, scope).await?;
    let cookie = HeaderValue::from_str(&started.set_cookie)
        .map_err(|_| ApiError::Internal("the login cookie is not a valid header value".into()))?;
    let mut response = found(&started.authorize);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

async fn callback(
    State(state): State<AppState>,
    account: AccountPath,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    match finish_login(&state, &account, raw.as_deref(), &headers).await {
        Ok(response) => response,
        Err(e) => e.for_public().into_response(),
    }
}

async fn finish_login(
    state: &AppState,
    account: &AccountPath,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    account.require_official("web login (OAuth)")?;
    let code = optional(raw, "code")?;
    let login_state = optional(raw, "state")?;
    let cookies = cookie_headers(headers);
    let outcome = flow::callback(
        state,
        account,
        code.as_deref(),
        login_state.as_deref(),
        &cookies,
        public_failure,
    )
    .await?;
    Ok(outcome_response(outcome))
}

/// The request's `Cookie` header values.
pub(super) fn cookie_headers(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The answer of a callback: its redirect, or the error answer its first call got.
pub(super) fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Redirect { location } => found(&location),
        Outcome::Failed { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response(),
    }
}

/// How a failed first callback is answered, and answered again to the callbacks that repeat it
/// (the flow stores it): the error as anonymous callers get it, status and JSON body.
async fn public_failure(e: OauthError) -> Outcome {
    failure_outcome(ApiError::from(e)).await
}

/// [`public_failure`] for any error already mapped.
pub(super) async fn failure_outcome(e: ApiError) -> Outcome {
    let response = e.for_public().into_response();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or_else(|| json!({"error": {"code": "internal", "message": "login failed"}}));
    Outcome::Failed { status, body }
}

async fn redeem(
    State(state): State<AppState>,
    account: AccountPath,
    Path((_, code)): Path<(String, String)>,
) -> ApiResult<Json<Redeemed>> {
    account.require_official("web login (OAuth)")?;
    Ok(Json(flow::redeem(&state, &account, &code).await?))
}
