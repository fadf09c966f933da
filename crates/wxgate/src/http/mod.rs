//! HTTP: the shared application state, the router that merges every area's routes, the front
//! service that answers the busiest route before it ([`front`]), and the cross-cutting
//! middleware (request ids, metrics, the per-request [`deadline`], JSON 404/405). The
//! connections themselves (limits, timeouts, shutdown) are [`crate::server`]'s.
//!
//! Handlers stay thin: they parse into valid values, call one service function and map its
//! error into [`ApiError`]. Each area (`api`, `ops`, …) exposes `router()`.

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod component;
pub mod console;
mod cors;
pub mod deadline;
pub mod demo;
pub mod error;
pub mod extract;
pub mod front;
pub mod json;
pub mod jssdk;
pub mod miniprogram;
pub mod oauth;
pub mod ops;
pub mod params;
pub mod proxy;
pub mod push;
pub mod request_meta;
pub mod users;
pub mod verify_files;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use self::error::{ApiError, ApiResult};
pub use crate::gateway::Gateway;

/// Everything a handler may need: the core [`Gateway`]; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Gateway>);

impl std::ops::Deref for AppState {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.0
    }
}

/// The service the server runs: the application router ([`router`]) with the busiest route
/// answered in front of it ([`front`]).
pub fn service(state: AppState, extra: Option<Router<AppState>>) -> front::Front {
    front::Front::new(state.clone(), router(state, extra))
}

/// The whole application router, with optional mode-specific `extra` routes. `/metrics` is on
/// it unless `server.metrics_listen` moves it to [`metrics_service`].
///
/// Not every request reaches it: plain `GET /jssdk/{account}/config` requests are answered in
/// front of it by [`front`] (same handler, same request-id, metrics and deadline bookkeeping),
/// because axum's per-route matching and boxing were the largest cost left on that route (see
/// docs/performance.md). A new route needs nothing there; a change to the config route's path
/// changes [`jssdk::CONFIG_ROUTE`], which both follow.
fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    let server = &state.settings.server;
    let mut routes = Router::new()
        .merge(extra.unwrap_or_default())
        .merge(ops::router());
    if server.metrics_listen.is_none() {
        routes = routes.merge(ops::metrics_router(server));
    }
    routes
        .merge(push::router())
        .merge(component::router())
        .merge(component::api_router(state.clone()))
        .merge(jssdk::router())
        .merge(oauth::router())
        .merge(verify_files::router())
        .merge(api::router(state.clone()))
        .merge(admin::router(state.clone()))
        .merge(console::router(state.clone()))
        .route_layer(request_meta::RequestMetaLayer::new(
            Arc::clone(&state.metrics),
            server.request_timeout(),
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What `server.metrics_listen` serves: `/metrics` alone (JSON 404 for everything else).
pub fn metrics_service(state: AppState) -> Router {
    let server = &state.settings.server;
    ops::metrics_router(server)
        .route_layer(request_meta::RequestMetaLayer::new(
            Arc::clone(&state.metrics),
            server.request_timeout(),
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Unknown paths and methods are not counted by route; they still get a request id.
async fn not_found(headers: HeaderMap) -> Response {
    with_request_id(
        &headers,
        ApiError::not_found("not_found", "no such endpoint"),
    )
}

async fn method_not_allowed(headers: HeaderMap) -> Response {
    with_request_id(
        &headers,
        ApiError::client(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method",
        ),
    )
}

fn with_request_id(headers: &HeaderMap, error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(request_meta::REQUEST_ID, request_meta::request_id(headers));
    response
}
