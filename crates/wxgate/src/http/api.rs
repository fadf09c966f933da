//! The business API (`/api/v1/accounts/{account}/…`, Bearer keys): credentials handed to the
//! account's own services, and what an operator looks at first.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{self, Scope};
use super::extract::AccountPath;
use super::{body, json, ApiError, ApiResult, AppState};
use crate::credentials::Credential;
use crate::domain::{unix_now, CredentialKind};

pub fn router(state: AppState) -> Router<AppState> {
    let require = |scope| auth::RequireApiKeyLayer::new(state.clone(), scope);
    let credentials = Router::new()
        .route("/api/v1/accounts/{account}/access_token", get(access_token))
        .route(
            "/api/v1/accounts/{account}/access_token/refresh",
            post(refresh),
        )
        .route(
            "/api/v1/accounts/{account}/tickets/jsapi",
            get(jsapi_ticket),
        )
        .route(
            "/api/v1/accounts/{account}/tickets/wx_card",
            get(wx_card_ticket),
        )
        .route_layer(require(Scope::Credentials));
    let status = Router::new()
        .route("/api/v1/accounts/{account}/status", get(status))
        .route_layer(require(Scope::Status));
    credentials
        .merge(status)
        .merge(super::oauth::api_router().route_layer(require(Scope::Users)))
        .merge(super::users::router().route_layer(require(Scope::Users)))
        .merge(super::miniprogram::router().route_layer(require(Scope::Users)))
        .merge(super::proxy::api_router().route_layer(require(Scope::Proxy)))
}

/// `GET access_token` and the refresh answer (SPEC shape).
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    expires_at: i64,
    expires_in: i64,
    fetched_at: i64,
}

/// `GET tickets/…` (SPEC shape).
#[derive(Serialize)]
struct TicketAnswer<'a> {
    ticket: &'a str,
    expires_at: i64,
    expires_in: i64,
}

/// The keys, the times and the punctuation of a credential answer fit in this many bytes; the
/// credential is as long as it is.
const CREDENTIAL_ANSWER_ROOM: usize = 96;

pub(super) fn token_json(c: &Credential) -> Response {
    let answer = TokenAnswer {
        access_token: &c.value,
        expires_at: c.expires_at,
        expires_in: c.expires_in(unix_now()).max(0),
        fetched_at: c.fetched_at,
    };
    json::answer(&answer, CREDENTIAL_ANSWER_ROOM + c.value.len())
}

fn ticket_json(c: &Credential) -> Response {
    let answer = TicketAnswer {
        ticket: &c.value,
        expires_at: c.expires_at,
        expires_in: c.expires_in(unix_now()).max(0),
    };
    json::answer(&answer, CREDENTIAL_ANSWER_ROOM + c.value.len())
}

async fn access_token(State(state): State<AppState>, account: AccountPath) -> ApiResult<Response> {
    let c = state
        .creds
        .get(&account.name, CredentialKind::AccessToken)
        .await?;
    Ok(token_json(&c))
}

#[derive(Deserialize)]
struct RefreshRequest {
    #[serde(default)]
    invalid_token: Option<String>,
}

async fn refresh(
    State(state): State<AppState>,
    account: AccountPath,
    headers: HeaderMap,
    req_body: Body,
) -> ApiResult<Response> {
    let bytes =
        body::read_limited(&headers, req_body, state.settings.server.max_body_bytes).await?;
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        RefreshRequest {
            invalid_token: None,
        }
    } else {
        serde_json::from_slice::<RefreshRequest>(&bytes).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("expected an empty body or {{\"invalid_token\": \"...\"}}: {e}"),
            )
        })?
    };
    let invalid = request.invalid_token.filter(|t| !t.is_empty());
    let c = state
        .creds
        .refresh_access_token(&account.name, invalid.as_deref())
        .await?;
    Ok(token_json(&c))
}

async fn jsapi_ticket(State(state): State<AppState>, account: AccountPath) -> ApiResult<Response> {
    account.require_official("the jsapi_ticket (JS-SDK)")?;
    let c = state
        .creds
        .get(&account.name, CredentialKind::jsapi())
        .await?;
    Ok(ticket_json(&c))
}

async fn wx_card_ticket(
    State(state): State<AppState>,
    account: AccountPath,
) -> ApiResult<Response> {
    account.require_official("the wx_card ticket")?;
    let c = state
        .creds
        .get(&account.name, CredentialKind::wx_card())
        .await?;
    Ok(ticket_json(&c))
}

async fn status(State(state): State<AppState>, account: AccountPath) -> ApiResult<Json<Value>> {
    let credentials = state.creds.status(&account.name).await?;
    Ok(Json(json!({
        "account": account.name,
        "appid": account.appid,
        "token_api": account.token_api,
        "now": unix_now(),
        "credentials": credentials,
        "upstream_calls": state.metrics.upstream_counts(&account.name),
        "last_upstream_errors": state.metrics.last_upstream_errors(&account.name),
    })))
}
