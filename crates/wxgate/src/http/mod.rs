//! HTTP: the shared application state, the router that merges every area's routes, and the
//! cross-cutting middleware (request ids, metrics, JSON 404/405).
//!
//! Handlers stay thin: they parse into valid values, call one service function and map its
//! error into [`ApiError`]. Each area (`api`, `ops`, …) exposes `router()`.

pub mod api;
pub mod auth;
pub mod body;
pub mod error;
pub mod ops;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::Rng;

pub use self::error::{ApiError, ApiResult};
use crate::config::Settings;
use crate::credentials::CredentialManager;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::upstream::WechatClient;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

pub struct AppInner {
    pub settings: Settings,
    pub creds: Arc<CredentialManager>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub client: WechatClient,
    pub api_keys: auth::ApiKeys,
    /// User records (`[database]`).
    pub users: Arc<dyn crate::users::UserDb>,
    /// Push material prepared at start.
    pub push: crate::push::PushRuntime,
    /// The jsapi tickets already added to `diagnose`'s history.
    pub jssdk_tickets: crate::jssdk::sign::RecordedTickets,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Fails with `unknown_account` for names that are not configured.
    pub fn require_account(&self, name: &str) -> ApiResult<&crate::config::AccountSettings> {
        self.settings
            .account(name)
            .ok_or_else(|| ApiError::UnknownAccount(name.to_owned()))
    }
}

/// The whole application router, with optional mode-specific `extra` routes.
pub fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    Router::new()
        .merge(extra.unwrap_or_default())
        .merge(ops::router())
        .merge(crate::push::router())
        .merge(crate::jssdk::router())
        .merge(crate::oauth::router())
        .merge(crate::proxy::router())
        .merge(api::router(state.clone()))
        .route_layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// Records request counts and latency by route template (never the raw path, which may carry
/// one-time codes).
async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // `MatchedPath` is a shared string: cloning it allocates nothing.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.http_request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Adds `X-Wxgate-Request-Id` to every answer (the caller's own id is kept when it sends one).
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-wxgate-request-id")
        .filter(|v| v.len() <= 64)
        .cloned()
        .unwrap_or_else(new_request_id);
    // Handlers log it too, so it goes into the request as well as the answer.
    let mut req = req;
    req.headers_mut().insert("x-wxgate-request-id", id.clone());
    let mut response = next.run(req).await.into_response();
    response.headers_mut().insert("x-wxgate-request-id", id);
    response
}

/// 16 random hex digits, formatted on the stack.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n: u64 = rand::thread_rng().gen();
    let mut buf = [0u8; 16];
    for b in buf.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}
