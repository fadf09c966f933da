//! The mini-program API (`/api/v1/accounts/{account}/miniprogram/…`, scope `users`): login,
//! phone number, login-state check and open-data decryption, each a thin handler over
//! [`crate::miniprogram`], whose error is mapped here once; and `GET /api/v1/users?unionid=`,
//! one person's records across every account the key reaches. Also maps
//! [`NotSupported`] (the JS-SDK, web login and tickets asked of a mini program) to 400
//! `not_supported` for the routes of those areas.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::auth::Grant;
use super::extract::AccountPath;
use super::params::optional;
use super::{body, ApiError, ApiResult, AppState};
use crate::config::NotSupported;
use crate::miniprogram::{self, MiniprogramError};
use crate::upstream::PhoneNumber;
use crate::users::AccountUser;

/// The routes of this file (the caller applies the `users` scope).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}/miniprogram/login", post(login))
        .route("/api/v1/accounts/{account}/miniprogram/phone", post(phone))
        .route(
            "/api/v1/accounts/{account}/miniprogram/check-session",
            post(check_session),
        )
        .route(
            "/api/v1/accounts/{account}/miniprogram/decrypt",
            post(decrypt),
        )
        .route("/api/v1/users", get(users_by_unionid))
}

impl From<NotSupported> for ApiError {
    fn from(e: NotSupported) -> Self {
        ApiError::bad_request("not_supported", e.to_string())
    }
}

impl From<MiniprogramError> for ApiError {
    fn from(e: MiniprogramError) -> Self {
        let message = e.to_string();
        match e {
            MiniprogramError::NotMiniprogram { .. } => {
                ApiError::bad_request("not_supported", message)
            }
            MiniprogramError::InvalidParameter(_) => {
                ApiError::bad_request("invalid_parameter", message)
            }
            MiniprogramError::InvalidCode { .. } => ApiError::bad_request("invalid_code", message),
            MiniprogramError::RateLimited => {
                ApiError::client(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            }
            MiniprogramError::RiskyUser => {
                ApiError::client(StatusCode::FORBIDDEN, "risky_user", message)
            }
            MiniprogramError::NoSession { .. } => ApiError::not_found("no_session", message),
            MiniprogramError::InvalidData(_) => ApiError::bad_request("invalid_data", message),
            MiniprogramError::Upstream(u) => ApiError::Upstream(u),
            MiniprogramError::Credential(c) => ApiError::from(c),
            MiniprogramError::UserDb(u) => ApiError::from(u),
            MiniprogramError::Store(s) => ApiError::from(s),
        }
    }
}

/// The JSON body of a POST, under `server.max_body_bytes`; 400 `invalid_body` naming what is
/// expected when it does not parse.
async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    request: Body,
    expected: &str,
) -> ApiResult<T> {
    let bytes = body::read_limited(headers, request, state.settings.server.max_body_bytes).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("expected {expected}: {e}")))
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

async fn login(
    State(state): State<AppState>,
    account: AccountPath,
    headers: HeaderMap,
    request: Body,
) -> ApiResult<Json<miniprogram::Login>> {
    let body: CodeBody =
        json_body(&state, &headers, request, r#"{"code": "<wx.login code>"}"#).await?;
    Ok(Json(
        miniprogram::login(&state, &account, &body.code).await?,
    ))
}

async fn phone(
    State(state): State<AppState>,
    account: AccountPath,
    headers: HeaderMap,
    request: Body,
) -> ApiResult<Json<PhoneNumber>> {
    let body: CodeBody = json_body(
        &state,
        &headers,
        request,
        r#"{"code": "<getPhoneNumber code>"}"#,
    )
    .await?;
    Ok(Json(
        miniprogram::phone_number(&state, &account, &body.code).await?,
    ))
}

#[derive(Deserialize)]
struct OpenidBody {
    openid: String,
}

async fn check_session(
    State(state): State<AppState>,
    account: AccountPath,
    headers: HeaderMap,
    request: Body,
) -> ApiResult<Json<miniprogram::SessionCheck>> {
    let body: OpenidBody = json_body(&state, &headers, request, r#"{"openid": "…"}"#).await?;
    Ok(Json(
        miniprogram::check_session(&state, &account, &body.openid).await?,
    ))
}

#[derive(Deserialize)]
struct DecryptBody {
    openid: String,
    #[serde(alias = "encryptedData")]
    encrypted_data: String,
    iv: String,
}

#[derive(Serialize)]
struct Decrypted {
    data: Map<String, Value>,
}

async fn decrypt(
    State(state): State<AppState>,
    account: AccountPath,
    headers: HeaderMap,
    request: Body,
) -> ApiResult<Json<Decrypted>> {
    let body: DecryptBody = json_body(
        &state,
        &headers,
        request,
        r#"{"openid": "…", "encrypted_data": "…", "iv": "…"}"#,
    )
    .await?;
    let data = miniprogram::decrypt(
        &state,
        &account,
        &body.openid,
        &body.encrypted_data,
        &body.iv,
    )
    .await?;
    Ok(Json(Decrypted { data }))
}

/// One person's record in one account, with the account's kind (`null` for an account no
/// longer served).
#[derive(Serialize)]
struct PersonRecord {
    kind: Option<&'static str>,
    #[serde(flatten)]
    record: AccountUser,
}

/// `GET /api/v1/users?unionid=…`: the records of that unionid in every account the key
/// reaches (all for a key of `api.keys`).
async fn users_by_unionid(
    State(state): State<AppState>,
    grant: Option<Extension<Arc<Grant>>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let unionid = optional(raw.as_deref(), "unionid")?
        .filter(|u| !u.is_empty())
        .ok_or(ApiError::MissingParameter("unionid"))?;
    if unionid.len() > miniprogram::MAX_OPENID_LEN {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "`unionid` is longer than {} characters",
                miniprogram::MAX_OPENID_LEN
            ),
        ));
    }
    let records = state.users.find_by_unionid(&unionid).await?;
    let users: Vec<PersonRecord> = records
        .into_iter()
        .filter(|r| {
            grant
                .as_ref()
                .is_none_or(|Extension(g)| g.allows_account(&r.account))
        })
        .map(|record| PersonRecord {
            kind: state.account(&record.account).map(|a| a.kind.as_str()),
            record,
        })
        .collect();
    Ok(Json(json!({ "unionid": unionid, "users": users })))
}
