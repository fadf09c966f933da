//! STUB — message push (issue 4). Replaced by the push implementation.

use axum::Router;

use crate::config::Settings;
use crate::http::AppState;

/// Per-account push material prepared once at start (key rings, compiled rules).
pub struct PushRuntime;

impl PushRuntime {
    pub fn new(_settings: &Settings) -> Result<Self, String> {
        Ok(PushRuntime)
    }
}

/// Routes called by WeChat (`/wx/{account}`).
pub fn router() -> Router<AppState> {
    Router::new()
}
