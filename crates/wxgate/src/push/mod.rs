//! Message push: the server URL that WeChat calls (`/wx/{account}`).
//!
//! WeChat verifies the URL with a signed `GET` and then POSTs every message and event there,
//! in plaintext, compatible or safe (AES) mode, expecting a passive reply or `success` within
//! 5 s and retrying otherwise. This module authenticates each request (`signature` always,
//! `msg_signature` and the appid when encrypted, a replay window on the timestamp), answers
//! each push once however often WeChat retries (the answer is kept in the shared store, so
//! this holds across instances), keeps follower records current from subscribe/unsubscribe
//! events, and picks the reply from the configured rules or the business webhook, whose late
//! answers go out through the customer-service API instead.
//!
//! Errors are the SPEC's JSON bodies: 404 `unknown_account`, 403 `push_disabled` (no `token`
//! configured), 400 `missing_parameter` / `invalid_parameter` / `invalid_message` /
//! `encryption_not_configured`, 403 `invalid_signature` / `stale_timestamp`, 413
//! `body_too_large`, and 503 `unavailable` only when the follower record cannot be written (so
//! that WeChat retries).

mod dedup;
mod inbound;
mod runtime;
mod service;
pub mod webhook;

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

pub use self::runtime::PushRuntime;
use crate::http::{ApiError, AppState};

/// Routes called by WeChat (`/wx/{account}`).
pub fn router() -> Router<AppState> {
    Router::new().route("/wx/{account}", get(verify_url).post(receive))
}

async fn verify_url(
    State(state): State<AppState>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service::verify_url(&state, &account, query.as_deref())
}

/// Takes the whole request, so that its headers are read in place rather than copied.
async fn receive(
    State(state): State<AppState>,
    Path(account): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    service::receive(&state, &account, parts.uri.query(), &parts.headers, body).await
}
