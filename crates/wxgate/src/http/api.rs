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
use super::json::JsonObject;
use super::{body, ApiError, ApiResult, AppState};
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
        .merge(crate::oauth::api_router().route_layer(require(Scope::Users)))
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

impl TokenAnswer<'_> {
    /// The same JSON as `Json(self)`, written directly ([`JsonObject`]).
    fn into_response(self) -> Response {
        let mut json = JsonObject::with_capacity(96 + self.access_token.len());
        json.string("access_token", self.access_token)
            .number("expires_at", self.expires_at)
            .number("expires_in", self.expires_in)
            .number("fetched_at", self.fetched_at);
        json.into_response()
    }
}

/// `GET tickets/…` (SPEC shape).
#[derive(Serialize)]
struct TicketAnswer<'a> {
    ticket: &'a str,
    expires_at: i64,
    expires_in: i64,
}

impl TicketAnswer<'_> {
    /// The same JSON as `Json(self)`, written directly ([`JsonObject`]).
    fn into_response(self) -> Response {
        let mut json = JsonObject::with_capacity(64 + self.ticket.len());
        json.string("ticket", self.ticket)
            .number("expires_at", self.expires_at)
            .number("expires_in", self.expires_in);
        json.into_response()
    }
}

fn token_json(c: &Credential) -> Response {
    TokenAnswer {
        access_token: &c.value,
        expires_at: c.expires_at,
        expires_in: c.expires_in(unix_now()).max(0),
        fetched_at: c.fetched_at,
    }
    .into_response()
}

fn ticket_json(c: &Credential) -> Response {
    TicketAnswer {
        ticket: &c.value,
        expires_at: c.expires_at,
        expires_in: c.expires_in(unix_now()).max(0),
    }
    .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::json::answer_body;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written credential answers are byte for byte what `axum::Json` gives.
        #[test]
        fn credential_answers_are_the_json_serde_writes(
            value in "\\PC*|[\\x00-\\x7f]*",
            expires_at: i64,
            expires_in: i64,
            fetched_at: i64,
        ) {
            let token = TokenAnswer { access_token: &value, expires_at, expires_in, fetched_at };
            let expected = serde_json::to_vec(&token).unwrap();
            prop_assert_eq!(answer_body(token.into_response()), expected);
            let ticket = TicketAnswer { ticket: &value, expires_at, expires_in };
            let expected = serde_json::to_vec(&ticket).unwrap();
            let response = ticket.into_response();
            prop_assert_eq!(
                response.headers().get(axum::http::header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            prop_assert_eq!(answer_body(response), expected);
        }
    }
}
