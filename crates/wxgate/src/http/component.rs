//! The routes of third-party platforms: WeChat's authorization events
//! (`POST /wx/component/{component}`) and authorizers' messages
//! (`POST /wx/component/{component}/{appid}`), the merchant's authorization pages
//! (`GET /component/{component}/authorize|callback`), and the business API
//! (`/api/v1/components/{component}/…`, scope `credentials`, keys reaching `*` or the
//! platform's name). Thin handlers over [`crate::platform`], and the one mapping of
//! [`PlatformError`].

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::auth::{self, Grant, Scope};
use super::oauth::{cookie_headers, failure_outcome, found, outcome_response};
use super::params::{optional, page_limit};
use super::{body, ApiError, ApiResult, AppState};
use crate::oauth::flow::Outcome;
use crate::platform::flow::PageOptions;
use crate::platform::{events, flow, report, PlatformError};
use crate::push::TEXT_CONTENT_TYPE;

/// The routes WeChat and merchants' browsers call.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/wx/component/{component}", post(event))
        .route("/wx/component/{component}/{appid}", post(authorizer_push))
        .route("/component/{component}/authorize", get(authorize))
        .route("/component/{component}/callback", get(callback))
}

/// The business API's platform routes.
pub fn api_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/components/{component}/access_token",
            get(access_token),
        )
        .route(
            "/api/v1/components/{component}/authorizers",
            get(authorizers),
        )
        .route("/api/v1/components/{component}/status", get(status))
        .route_layer(auth::RequireApiKeyLayer::new(state, Scope::Credentials))
}

/// `POST /wx/component/{component}`: `success` once the event is handled.
async fn event(
    State(state): State<AppState>,
    Path(component): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, request_body) = request.into_parts();
    let checked =
        events::check(&state, &component, parts.uri.query()).map_err(|e| refused(&component, e))?;
    let limit = state.settings.server.max_body_bytes;
    let bytes = body::read_limited(&parts.headers, request_body, limit).await?;
    events::receive(&state, checked, &bytes)
        .await
        .map_err(|e| refused(&component, e))?;
    Ok(super::push::answer(TEXT_CONTENT_TYPE, "success"))
}

/// `POST /wx/component/{component}/{appid}`: a push to an active authorizer, answered as any
/// account's (404 `unknown_account` for an appid that is not one of this platform's).
async fn authorizer_push(
    State(state): State<AppState>,
    Path((component, appid)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let account = {
        let snapshot = state.registry.snapshot();
        if snapshot.component(&component).is_none() {
            return Err(PlatformError::UnknownComponent(component).into());
        }
        snapshot.authorizer(&component, &appid).cloned()
    };
    let account = account.ok_or(ApiError::UnknownAccount(appid))?;
    super::push::receive_for(&state, &account, request).await
}

/// `GET /component/{component}/authorize?redirect&mobile&auth_type`: 302 to WeChat's page.
async fn authorize(
    State(state): State<AppState>,
    Path(component): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match start(&state, &component, raw.as_deref()).await {
        Ok(response) => response,
        Err(e) => e.for_public().into_response(),
    }
}

async fn start(state: &AppState, component: &str, raw: Option<&str>) -> ApiResult<Response> {
    let redirect = optional(raw, "redirect")?.ok_or(ApiError::MissingParameter("redirect"))?;
    let mobile = matches!(optional(raw, "mobile")?.as_deref(), Some("1" | "true"));
    let auth_type = match optional(raw, "auth_type")? {
        None => None,
        Some(t) => Some(t.parse::<u8>().map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                "`auth_type` must be 1 (Official Accounts), 2 (mini programs) or 3 (both)",
            )
        })?),
    };
    let started = flow::start(
        state,
        component,
        &redirect,
        PageOptions { mobile, auth_type },
    )
    .await?;
    let cookie = HeaderValue::from_str(&started.set_cookie)
        .map_err(|_| ApiError::Internal("the state cookie is not a valid header value".into()))?;
    let mut response = found(&started.location);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

/// `GET /component/{component}/callback?state&auth_code&expires_in`: 302 to the start's
/// redirect with `wxgate_authorizer=<appid>`.
async fn callback(
    State(state): State<AppState>,
    Path(component): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let code = optional(raw.as_deref(), "auth_code")?;
        let login_state = optional(raw.as_deref(), "state")?;
        let cookies = cookie_headers(&headers);
        let outcome: Outcome = flow::callback(
            &state,
            &component,
            code.as_deref(),
            login_state.as_deref(),
            &cookies,
            |e| failure_outcome(ApiError::from(e)),
        )
        .await?;
        Ok::<_, ApiError>(outcome_response(outcome))
    };
    match result.await {
        Ok(response) => response,
        Err(e) => e.for_public().into_response(),
    }
}

/// Refuses a key that reaches neither `*` nor the platform.
fn check_key(grant: Option<Extension<std::sync::Arc<Grant>>>, component: &str) -> ApiResult<()> {
    auth::check_grant(grant.as_ref().map(|g| &*g.0), component)
}

async fn access_token(
    State(state): State<AppState>,
    Path(component): Path<String>,
    grant: Option<Extension<std::sync::Arc<Grant>>>,
) -> ApiResult<Response> {
    check_key(grant, &component)?;
    let token = report::access_token(&state, &component).await?;
    Ok(super::api::token_json(&token))
}

async fn authorizers(
    State(state): State<AppState>,
    Path(component): Path<String>,
    grant: Option<Extension<std::sync::Arc<Grant>>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<report::AuthorizerPage>> {
    check_key(grant, &component)?;
    let after = optional(raw.as_deref(), "after")?;
    let limit = page_limit(raw.as_deref(), report::DEFAULT_LIMIT)?;
    Ok(Json(
        report::authorizers(&state, &component, after.as_deref(), limit).await?,
    ))
}

async fn status(
    State(state): State<AppState>,
    Path(component): Path<String>,
    grant: Option<Extension<std::sync::Arc<Grant>>>,
) -> ApiResult<Json<report::ComponentStatus>> {
    check_key(grant, &component)?;
    Ok(Json(report::status(&state, &component).await?))
}

/// The answer to `e`; a forged or replayed event is worth a warning.
fn refused(component: &str, e: PlatformError) -> ApiError {
    let e = ApiError::from(e);
    super::push::log_rejection(component, "platform event", &e);
    e
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::UnknownComponent(_) => {
                ApiError::not_found("unknown_component", e.to_string())
            }
            PlatformError::Push(p) => ApiError::from(p),
            PlatformError::MissingParameter(name) => ApiError::MissingParameter(name),
            PlatformError::InvalidParameter { .. } => {
                ApiError::bad_request("invalid_parameter", e.to_string())
            }
            PlatformError::RedirectNotAllowed { .. } => {
                ApiError::bad_request("redirect_not_allowed", e.to_string())
            }
            PlatformError::Login(o) => ApiError::from(o),
            PlatformError::Credential(c) => ApiError::from(c),
            PlatformError::Upstream(u) => ApiError::Upstream(u),
            PlatformError::Database(db) => ApiError::from(db),
            PlatformError::Store(s) => ApiError::from(s),
            PlatformError::Registry(r) => ApiError::Unavailable(r.to_string()),
            PlatformError::ExchangeInProgress => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "exchange_in_progress",
                e.to_string(),
            ),
            PlatformError::NoMasterKey => ApiError::Internal(e.to_string()),
        }
    }
}
