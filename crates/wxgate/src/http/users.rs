//! The users API (`/api/v1/accounts/{account}/users…`, Bearer keys applied by [`super::api`]):
//! `users/{openid}` and `users?after=&limit=` read the user database (`users`). That database
//! has no account column: users of every account of this gateway share it (openids differ per
//! account anyway), so any account's path lists all of them.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::extract::AccountPath;
use super::params::{optional, page_limit};
use super::{ApiError, ApiResult, AppState};
use crate::users::{UserDbError, UserPage, DEFAULT_LIST_LIMIT};

/// `accounts/{account}/users` and `accounts/{account}/users/{openid}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}/users", get(list_users))
        .route("/api/v1/accounts/{account}/users/{openid}", get(get_user))
}

impl From<UserDbError> for ApiError {
    fn from(e: UserDbError) -> Self {
        ApiError::Unavailable(format!("user database: {e}"))
    }
}

async fn get_user(
    State(state): State<AppState>,
    account: AccountPath,
    Path((_, openid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let users = state.users.for_account(&account.name);
    let user = users.get(&openid).await?.ok_or_else(|| {
        ApiError::not_found(
            "unknown_user",
            format!("no user with openid {openid:?} is stored"),
        )
    })?;
    Ok(Json(user).into_response())
}

async fn list_users(
    State(state): State<AppState>,
    account: AccountPath,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<UserPage>> {
    let raw = raw.as_deref();
    let after = optional(raw, "after")?;
    let limit = page_limit(raw, DEFAULT_LIST_LIMIT)?;
    let users = state.users.for_account(&account.name);
    let page = crate::users::page(users.as_ref(), after.as_deref(), limit).await?;
    Ok(Json(page))
}
