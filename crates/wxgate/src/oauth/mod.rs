//! STUB — OAuth web login and the users API (issue 5).

use axum::Router;

use crate::http::AppState;

/// Routes called by browsers (`/oauth/{account}/…`).
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Business API routes under `/api/v1` (Bearer auth applied by the caller):
/// `accounts/{account}/logins/{code}`, `accounts/{account}/users…`.
pub fn api_router() -> Router<AppState> {
    Router::new()
}
