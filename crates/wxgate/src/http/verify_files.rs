//! Domain verification files (`/MP_verify_<code>.txt`).
//!
//! Before WeChat accepts a JS-safe domain or a web-authorization (OAuth) domain it fetches
//! `http(s)://<domain>/MP_verify_<code>.txt` and expects the file's exact content. wxgate answers
//! that file from any account's `verify_files` (names are validated at start to
//! `MP_verify_[A-Za-z0-9]+\.txt`, and two accounts cannot serve one name differently), with
//! `GET` and `HEAD`, as `text/plain`, so no nginx `location` or static file is needed on the
//! domain. No other name is served at the root: everything else is the usual JSON 404, so the
//! route cannot be turned into a file server.

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::{ApiError, AppState};

/// `/{file}` for the domain verification files (static routes such as `/healthz` and
/// `/metrics` take precedence; every other name is a JSON 404).
pub fn router() -> Router<AppState> {
    Router::new().route("/{file}", any(verify_file))
}

/// `/{file}`: the configured body for a configured name, else 404 `not_found`.
async fn verify_file(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    // Compared as sent: configured names need no percent-encoding, so an encoded variant is
    // simply another (unknown) name.
    let name = uri.path().trim_start_matches('/');
    let snapshot = state.registry.snapshot();
    let body = snapshot.verify_files.get(name);
    match body {
        None => ApiError::not_found("not_found", "no such endpoint").into_response(),
        Some(body) if method == Method::GET || method == Method::HEAD => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body.clone(),
        )
            .into_response(),
        Some(_) => ApiError::client(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "verification files are served with GET and HEAD only",
        )
        .into_response(),
    }
}
