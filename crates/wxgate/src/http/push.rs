//! The routes WeChat calls for message push (`/wx/{account}`): thin handlers over the core
//! [`crate::push`] service, and the one mapping of [`PushError`] to the SPEC's answers.
//!
//! The order of a push's checks is part of its guarantees: the account (404 `unknown_account`,
//! by [`AccountPath`]), then everything the query decides ([`push::check`]), and only then the
//! body, read here under `server.max_body_bytes` (413 `body_too_large`), so an unauthenticated
//! caller cannot make wxgate read (and hold) a body at all.

use std::time::Instant;

use axum::extract::{RawQuery, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::extract::AccountPath;
use super::{body, ApiError, AppState};
use crate::push::{self, PushError};

/// Routes called by WeChat (`/wx/{account}`).
pub fn router() -> Router<AppState> {
    Router::new().route("/wx/{account}", get(verify_url).post(receive))
}

/// `GET /wx/{account}`: the echostr of an authentic URL verification, as plain text.
async fn verify_url(
    State(state): State<AppState>,
    account: AccountPath,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let echostr = push::verify_url(&state, &account, query.as_deref())
        .map_err(|e| refused(&account.name, "url verification", e))?;
    Ok(answer(push::TEXT_CONTENT_TYPE, echostr))
}

/// `POST /wx/{account}`: the answer to a push. Takes the whole request, so that its headers
/// are read in place rather than copied.
async fn receive(
    State(state): State<AppState>,
    account: AccountPath,
    request: Request,
) -> Result<Response, ApiError> {
    receive_for(&state, &account, request).await
}

/// The answer to a push for `account` (also an authorizer's, at
/// `/wx/component/{component}/{appid}`).
pub(super) async fn receive_for(
    state: &AppState,
    account: &std::sync::Arc<crate::config::Account>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, request_body) = request.into_parts();
    // The query is authenticated before a byte of the body is read: an unsigned request costs
    // no body read at all.
    let checked = push::check(state, account, parts.uri.query())
        .map_err(|e| refused(&account.name, "push", e))?;
    let limit = state.settings.server.max_body_bytes;
    let bytes = body::read_limited(&parts.headers, request_body, limit)
        .await
        .inspect_err(|e| log_rejection(&account.name, "push", e))?;
    let answered = push::receive(&state.0, account, checked, bytes, started)
        .await
        .map_err(|e| refused(&account.name, "push", e))?;
    let (content_type, text) = answered.into_body();
    Ok(answer(content_type, text))
}

/// A `200` with `text` as `content_type`.
pub(super) fn answer(content_type: &'static str, text: impl IntoResponse) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        text,
    )
        .into_response()
}

/// The answer to `e`; a refusal of the request itself is logged ([`log_rejection`]).
pub(super) fn refused(account: &str, what: &str, e: PushError) -> ApiError {
    let logged = e.is_refusal();
    let e = ApiError::from(e);
    if logged {
        log_rejection(account, what, &e);
    }
    e
}

/// A forged or replayed push is worth a warning; any other malformed request a debug line.
pub(super) fn log_rejection(account: &str, what: &str, e: &ApiError) {
    match e {
        ApiError::Client {
            code: "invalid_signature" | "stale_timestamp",
            message,
            ..
        } => tracing::warn!(account, what, reason = %message, "push: request rejected"),
        other => tracing::debug!(account, what, error = ?other, "push: request rejected"),
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        let (status, code) = match &e {
            PushError::MissingParameter(name) => return ApiError::MissingParameter(name),
            PushError::FollowerRecord(_) | PushError::ShuttingDown => {
                return ApiError::Unavailable(e.to_string())
            }
            PushError::TaskFailed(_) => return ApiError::Internal(e.to_string()),
            PushError::Disabled { .. } => (StatusCode::FORBIDDEN, "push_disabled"),
            PushError::InvalidEncryptType => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            PushError::InvalidSignature(_) => (StatusCode::FORBIDDEN, "invalid_signature"),
            PushError::Stale { .. } => (StatusCode::FORBIDDEN, "stale_timestamp"),
            PushError::EncryptionRequired { .. } => {
                (StatusCode::BAD_REQUEST, "encryption_required")
            }
            PushError::EncryptionNotConfigured { .. } => {
                (StatusCode::BAD_REQUEST, "encryption_not_configured")
            }
            PushError::InvalidMessage(_) => (StatusCode::BAD_REQUEST, "invalid_message"),
        };
        ApiError::client(status, code, e.to_string())
    }
}
