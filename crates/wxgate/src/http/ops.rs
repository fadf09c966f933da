//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::metrics::Gauge;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    let gauges: Vec<Gauge> = state
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
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}
