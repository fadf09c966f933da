//! The sandbox's demo page: the JS-SDK and web login working end to end in a browser, with no
//! WeChat account. Only `wxgate sandbox` mounts it (through `Application::with_routes`);
//! `wxgate serve` never serves `/demo`.
//!
//! `GET /demo` is a static page for the gateway's first account (or `?account=`): it signs its own URL with
//! `wxgate.js` (stubbing `window.wx` when WeChat's jweixin cannot load, and showing what
//! `wx.config` got), checks the signature with `diagnose`, and logs in through the mock's
//! authorize step (a button, or `?autologin=1`). `GET /demo/login-result?code=` redeems the
//! `wxgate_code` on the server side, as a business backend would, so the browser never holds
//! an API key.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, ApiResult, AppState};
use crate::config::Account;
use crate::oauth::flow::{self, Redeemed};
use crate::query;

const PAGE: &str = include_str!("demo.html");
const PLACEHOLDER: &str = "/*WXGATE_DEMO*/null";

/// `/demo` and `/demo/login-result`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/login-result", get(login_result))
}

/// The account of `?account=` (the console's onboarding wizard links to it), else the first.
fn demo_account(state: &AppState, raw: Option<&str>) -> ApiResult<Arc<Account>> {
    let snapshot = state.registry.snapshot();
    let named = query::param(raw, "account")
        .and_then(Result::ok)
        .filter(|name| !name.is_empty());
    let found = match named {
        Some(name) => snapshot.accounts.get(&name).cloned(),
        None => snapshot.accounts.iter().next().cloned(),
    };
    found.ok_or_else(|| ApiError::not_found("not_found", "the demo needs a configured account"))
}

async fn page(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let account = demo_account(&state, raw.as_deref())?;
    let settings = json!({
        "account": account.name,
        "publicUrl": state.settings.server.public_url,
    });
    // JSON inside <script>: `<` escaped so no value can close the element.
    let settings = settings.to_string().replace('<', "\\u003c");
    let html = PAGE.replacen(PLACEHOLDER, &settings, 1);
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response())
}

async fn login_result(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Redeemed>> {
    let account = demo_account(&state, raw.as_deref())?;
    let code = match query::param(raw.as_deref(), "code") {
        Some(Ok(c)) if !c.is_empty() => c,
        _ => return Err(ApiError::MissingParameter("code")),
    };
    Ok(Json(flow::redeem(&state, &account, &code).await?))
}
