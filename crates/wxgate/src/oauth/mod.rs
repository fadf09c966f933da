//! Web login (OAuth2 网页授权) for H5 pages, and the users API.
//!
//! Browsers: `GET /oauth/{account}/login?redirect=…[&scope=…]` sends the browser to WeChat's
//! authorize page; WeChat sends it back to `GET /oauth/{account}/callback?code&state`, which
//! exchanges the code, records the user and sends the browser on to `redirect` with a one-time
//! `wxgate_code`. The page's backend redeems that code with
//! `GET /api/v1/accounts/{account}/logins/{code}` — the browser never sees an openid it could
//! forge, nor an API key. The flow, its store keys and its guarantees are in [`flow`]; the
//! state token and the login cookie that binds it to the browser in [`state_token`]; the
//! redirect allowlist in [`redirect`].
//!
//! These routes are anonymous: an upstream failure is answered with its code and status but a
//! generic message ([`ApiError::for_public`]); the operator's hint goes to the log and `status`.
//!
//! Business API: `users/{openid}` and `users?after=&limit=` read the user database. That
//! database has no account column: users of every account of this gateway share it (openids
//! differ per account anyway), so any account's path lists all of them.

pub mod demo;
pub mod flow;
pub mod redirect;
pub mod state_token;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wxgate_proto::oauth::Scope;

use self::flow::Outcome;
use crate::http::{ApiError, ApiResult, AppState};
use crate::query;
use crate::users::MAX_LIST_LIMIT;

/// Page size of `users` when no `limit` is given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// Routes called by browsers (`/oauth/{account}/…`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/{account}/login", get(login))
        .route("/oauth/{account}/callback", get(callback))
}

/// Business API routes (Bearer auth applied by the caller):
/// `accounts/{account}/logins/{code}`, `accounts/{account}/users…`.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}/logins/{code}", get(redeem))
        .route("/api/v1/accounts/{account}/users", get(list_users))
        .route("/api/v1/accounts/{account}/users/{openid}", get(get_user))
}

/// A query parameter decoded once; `None` when absent or blank.
fn optional(raw: Option<&str>, name: &'static str) -> ApiResult<Option<String>> {
    match query::param(raw, name) {
        None => Ok(None),
        Some(Ok(v)) if v.is_empty() => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(())) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("the query parameter `{name}` is not valid UTF-8 once percent-decoded"),
        )),
    }
}

fn found(location: &str) -> Response {
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
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match start_login(&state, &account, raw.as_deref()).await {
        Ok(response) => response,
        Err(e) => e.for_public().into_response(),
    }
}

async fn start_login(state: &AppState, account: &str, raw: Option<&str>) -> ApiResult<Response> {
    let settings = state.require_account(account)?;
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
    let (authorize, cookie) = flow::start(state, &settings, &redirect, scope).await?;
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| ApiError::Internal("the login cookie is not a valid header value".into()))?;
    let mut response = found(&authorize);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

async fn callback(
    State(state): State<AppState>,
    Path(account): Path<String>,
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
    account: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let settings = state.require_account(account)?;
    let code = optional(raw, "code")?;
    let login_state = optional(raw, "state")?;
    let cookies: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let outcome = flow::callback(
        state,
        &settings,
        code.as_deref(),
        login_state.as_deref(),
        &cookies,
    )
    .await?;
    Ok(match outcome {
        Outcome::Redirect { location } => found(&location),
        Outcome::Failed { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response(),
    })
}

async fn redeem(
    State(state): State<AppState>,
    Path((account, code)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let settings = state.require_account(&account)?;
    Ok(Json(flow::redeem(&state, &settings, &code).await?))
}

async fn get_user(
    State(state): State<AppState>,
    Path((account, openid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = state.require_account(&account)?;
    let user = state
        .users
        .for_account(&account.name)
        .get(&openid)
        .await
        .map_err(|e| ApiError::Unavailable(format!("user database: {e}")))?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_user",
                format!("no user with openid {openid:?} is stored"),
            )
        })?;
    Ok(Json(user).into_response())
}

async fn list_users(
    State(state): State<AppState>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let account = state.require_account(&account)?;
    let users_of = state.users.for_account(&account.name);
    let raw = raw.as_deref();
    let after = optional(raw, "after")?;
    let limit = match optional(raw, "limit")? {
        None => DEFAULT_LIST_LIMIT,
        Some(l) => match l.trim().parse::<u64>() {
            Ok(n) if n >= 1 => u32::try_from(n.min(u64::from(MAX_LIST_LIMIT))).unwrap_or(MAX_LIST_LIMIT),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT} (larger values are capped), got {l:?}"),
                ))
            }
        },
    };
    let db = |e: crate::users::UserDbError| ApiError::Unavailable(format!("user database: {e}"));
    // One row more than the page tells whether a user follows it; the database caps a query
    // at MAX_LIST_LIMIT rows, so a full page of that size asks once more.
    let fetch = if limit < MAX_LIST_LIMIT {
        limit + 1
    } else {
        limit
    };
    let mut users = users_of.list(after.as_deref(), fetch).await.map_err(db)?;
    let more = if users.len() > limit as usize {
        users.truncate(limit as usize);
        true
    } else if users.len() == limit as usize && fetch == limit {
        match users.last() {
            Some(last) => !users_of
                .list(Some(&last.openid), 1)
                .await
                .map_err(db)?
                .is_empty(),
            None => false,
        }
    } else {
        false
    };
    let next = if more {
        users.last().map(|u| u.openid.clone())
    } else {
        None
    };
    Ok(Json(json!({ "users": users, "next": next })))
}
