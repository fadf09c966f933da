//! STUB — token-free WeChat API proxy and domain verification files (issue 6).

use axum::Router;

use crate::http::AppState;

/// Public routes (`/MP_verify_*.txt`).
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Business API routes under `/api/v1` (Bearer auth applied by the caller):
/// `accounts/{account}/wechat/{*path}`.
pub fn api_router() -> Router<AppState> {
    Router::new()
}
