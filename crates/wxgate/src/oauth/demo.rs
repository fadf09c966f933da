//! The sandbox's demo page (never served by `wxgate serve`).
//!
//! Placeholder.

use axum::Router;

use crate::http::AppState;

/// `/demo` and `/demo/login-result`.
pub fn router() -> Router<AppState> {
    Router::new()
}
