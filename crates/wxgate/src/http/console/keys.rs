//! The API keys page: the live scoped keys, a form to create one (the key is shown once, with
//! a copy button) and a revoke button per key — over the admin service's key functions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::json;

use super::session::{see_other, SignedIn};
use super::{failure, render, view};
use crate::admin;
use crate::http::AppState;

const SCOPES: [&str; 4] = ["credentials", "proxy", "users", "status"];

fn page_with(state: &AppState, me: &SignedIn, created: Option<serde_json::Value>) -> Response {
    let keys = admin::list_keys(state);
    let accounts: Vec<String> = state
        .registry
        .snapshot()
        .entries
        .keys()
        .take(200)
        .cloned()
        .collect();
    render(
        StatusCode::OK,
        "keys.html",
        view::page(
            &me.session.csrf,
            "API keys",
            json!({ "keys": keys, "scopes": SCOPES, "created": created, "accounts": accounts }),
        ),
    )
}

/// `GET /admin/keys`.
pub async fn page(State(state): State<AppState>, Extension(me): Extension<SignedIn>) -> Response {
    page_with(&state, &me, None)
}

/// `POST /admin/keys` (form: `name`, `accounts` comma- or line-separated, one `scope` field
/// per ticked scope). Repeated fields are read from the raw body, which `Form` cannot do.
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    body: axum::body::Bytes,
) -> Response {
    let mut name = String::new();
    let mut accounts = Vec::new();
    let mut scopes = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "name" => name = v.into_owned(),
            "accounts" => accounts.extend(
                v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
            ),
            "scope" => scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let request = json!({ "name": name, "accounts": accounts, "scopes": scopes });
    match admin::create_key(&state, request.to_string().as_bytes()).await {
        Ok((view, key)) => page_with(
            &state,
            &me,
            Some(json!({ "id": view.id, "name": view.name, "key": key })),
        ),
        Err(e) => failure(e.into()),
    }
}

/// `POST /admin/keys/{id}/revoke`.
pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match admin::delete_key(&state, &id).await {
        Ok(()) => see_other("/admin/keys"),
        Err(e) => failure(e.into()),
    }
}
