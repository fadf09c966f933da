//! STUB — JS-SDK signing (issue 5).

use axum::Router;

use crate::http::AppState;

/// Routes called by browsers (`/jssdk/{account}/…`).
pub fn router() -> Router<AppState> {
    Router::new()
}
