//! The admin API (`/admin/api/v1/…`, `Authorization: Bearer <admin key>`): thin handlers over
//! the core [`crate::admin`] service, and the one mapping of [`AdminError`] to SPEC.md's
//! answers. The key is checked before anything else (401 `unauthorized`; 403 `admin_disabled`
//! when `admin.keys` is empty), in constant time like the business API's keys.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{auth, body, ApiError, AppState};
use crate::admin::{self, AdminError};
use crate::registry::record::AccountView;
use crate::registry::Entry;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/api/v1/accounts", get(list_accounts))
        .route(
            "/admin/api/v1/accounts/{name}",
            get(get_account).put(put_account).delete(delete_account),
        )
        .route("/admin/api/v1/keys", get(list_keys).post(create_key))
        .route("/admin/api/v1/keys/{id}", axum::routing::delete(delete_key))
        .route_layer(middleware::from_fn_with_state(state, require_admin_key))
}

async fn require_admin_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let keys = &state.admin_keys;
    if keys.is_empty() {
        return ApiError::client(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is disabled: configure at least one key in [admin] keys",
        )
        .into_response();
    }
    match auth::bearer_token(request.headers()) {
        Some(key) if keys.accepts(key) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let message = e.to_string();
        match e {
            AdminError::UnknownAccount(name) => ApiError::UnknownAccount(name),
            AdminError::ReadOnly(_) => {
                ApiError::client(StatusCode::CONFLICT, "read_only_account", message)
            }
            AdminError::InvalidAccount(invalid) => ApiError::bad_request(
                "invalid_account",
                if invalid.field.is_empty() {
                    invalid.message
                } else {
                    format!("`{}`: {}", invalid.field, invalid.message)
                },
            ),
            AdminError::InvalidKey { .. } => ApiError::bad_request("invalid_key", message),
            AdminError::UnknownKey(_) => ApiError::not_found("unknown_key", message),
            AdminError::NoMasterKey => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "master_key_missing",
                message,
            ),
            AdminError::Contended | AdminError::Database(_) => ApiError::Unavailable(message),
        }
    }
}

fn view(entry: &Entry) -> AccountView<'_> {
    AccountView::new(
        &entry.account,
        &entry.settings,
        entry.source.clone(),
        entry.times,
    )
}

async fn list_accounts(State(state): State<AppState>) -> Response {
    let entries = admin::accounts(&state);
    let views: Vec<AccountView<'_>> = entries.iter().map(view).collect();
    Json(json!({ "accounts": views })).into_response()
}

async fn get_account(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let entry = admin::account(&state, &name)?;
    Ok(Json(view(&entry)).into_response())
}

async fn put_account(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read_limited(&headers, request, state.settings.server.max_body_bytes).await?;
    let (created, entry) = admin::put_account(&state, &name, &bytes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&entry))).into_response())
}

async fn delete_account(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin::delete_account(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(state): State<AppState>) -> Response {
    Json(json!({ "keys": admin::list_keys(&state) })).into_response()
}

async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read_limited(&headers, request, state.settings.server.max_body_bytes).await?;
    let (view, key) = admin::create_key(&state, &bytes).await?;
    let answer = json!({
        "id": view.id,
        "name": view.name,
        "key": key,
        "accounts": view.accounts,
        "scopes": view.scopes,
        "created_at": view.created_at,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn delete_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin::delete_key(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
