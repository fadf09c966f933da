//! Operations endpoints: liveness, readiness, Prometheus metrics.
//!
//! `/metrics` names the accounts and shows their traffic, so it can be kept from the public:
//! with `server.metrics_token` it answers only `Authorization: Bearer <token>` (compared in
//! constant time, as a digest like the API keys; 401 `unauthorized` otherwise), and with
//! `server.metrics_listen` it is served only on that second address
//! ([`super::metrics_service`]), not on `server.listen`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::{bearer_token, ApiKeys};
use super::{ApiError, AppState};
use crate::config::ServerSettings;
use crate::metrics::Gauge;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `/metrics`, guarded by `server.metrics_token` when one is set.
pub fn metrics_router(server: &ServerSettings) -> Router<AppState> {
    let token: Option<Arc<ApiKeys>> = server
        .metrics_token
        .as_ref()
        .map(|t| Arc::new(ApiKeys::new(std::slice::from_ref(t))));
    Router::new().route(
        "/metrics",
        get(move |state: State<AppState>, headers: HeaderMap| {
            let token = token.clone();
            async move {
                match token {
                    Some(t) if !bearer_token(&headers).is_some_and(|k| t.accepts(k)) => {
                        metrics_refused()
                    }
                    _ => metrics(state).await.into_response(),
                }
            }
        }),
    )
}

/// 401 for a `/metrics` request without the configured token.
fn metrics_refused() -> Response {
    let mut response = ApiError::client(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send server.metrics_token as `Authorization: Bearer <token>`",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok")
}

/// 200 when the store and the user database answer, else 503 (a load balancer then stops
/// sending traffic here).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed: storage");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            text_plain,
            "storage is not answering".to_owned(),
        );
    }
    if let Err(e) = state.users.ping().await {
        tracing::warn!(error = %e, "readiness check failed: database");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            text_plain,
            "database is not answering".to_owned(),
        );
    }
    (StatusCode::OK, text_plain, "ready".to_owned())
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut gauges: Vec<Gauge> = state
        .creds
        .cached_expiries()
        .into_iter()
        .map(|(account, kind, secs)| Gauge {
            name: "wxgate_credential_expires_in_seconds",
            help: "Seconds until WeChat's expiry of each cached credential.",
            labels: vec![
                ("account", account),
                ("credential", kind.as_str().to_owned()),
            ],
            value: secs as f64,
        })
        .collect();
    gauges.extend(crate::platform::report::gauges(&state).await);
    gauges.extend(state.client.limit().gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}
