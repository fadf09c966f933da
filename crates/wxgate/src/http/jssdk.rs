//! The JS-SDK routes, called by browsers; the work is the core's (`jssdk`).
//!
//! - `GET /jssdk/{account}/config?url=…[&apis=a,b]` signs the page URL byte for byte (fragment
//!   removed, nothing decoded or re-encoded beyond reading the query parameter once) with the
//!   account's current jsapi_ticket, a fresh nonce and the current time — only for pages on the
//!   account's `js_domains` (`jssdk::sign`).
//! - `GET /jssdk/{account}/diagnose?url=…&signature=…&timestamp=…&nonceStr=…` says in plain
//!   words why a signature a page used does not verify (`jssdk::diagnose`).
//! - `GET /jssdk/{account}/wxgate.js` is the browser side: it signs the landing URL on iOS and the
//!   current URL elsewhere, then calls `wx.config`.
//!
//! `config` and `diagnose` answer CORS for origins on `js_domains` ([`super::cors`]), and are
//! never cached. These routes are anonymous: an upstream failure is answered with its code and
//! status but a generic message ([`ApiError::for_public`]); the operator's hint goes to the log
//! and `status`. Plain `GET`s of the config route are usually answered by [`super::front`],
//! which calls [`config`] in front of the router.

use axum::extract::{RawQuery, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::extract::AccountPath;
use super::params::{required, required_value};
use super::{cors, json, ApiError, ApiResult, AppState};
use crate::config::Account;
use crate::jssdk::sign::{self, ConfigAnswer};
use crate::jssdk::{self, DiagnoseRequest, JssdkError};
use crate::query;

/// The browser script, served as is; it reads the gateway and account from its own URL.
const SCRIPT: &str = include_str!("wxgate.js");

/// The config route's template; [`super::front`] answers its plain GETs before the router and
/// counts them under this template.
pub const CONFIG_ROUTE: &str = "/jssdk/{account}/config";

/// Routes called by browsers (`/jssdk/{account}/…`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(CONFIG_ROUTE, get(config).options(preflight))
        .route(
            "/jssdk/{account}/diagnose",
            get(diagnose).options(preflight),
        )
        .route("/jssdk/{account}/wxgate.js", get(script))
}

impl From<JssdkError> for ApiError {
    fn from(e: JssdkError) -> Self {
        match e {
            JssdkError::PageUrlTooLong { .. } | JssdkError::InvalidPageUrl(_) => {
                ApiError::bad_request("invalid_url", e.to_string())
            }
            JssdkError::DomainNotAllowed { .. } => {
                ApiError::client(StatusCode::FORBIDDEN, "domain_not_allowed", e.to_string())
            }
            JssdkError::FieldTooLong | JssdkError::InvalidTimestamp => {
                ApiError::bad_request("invalid_parameter", e.to_string())
            }
            JssdkError::Credential(c) => ApiError::from(c),
        }
    }
}

/// The answer (success or error, as answered to anonymous callers), never cached, decorated for
/// CORS.
fn finish(result: ApiResult<Response>, origin: Option<&HeaderValue>) -> Response {
    let mut response = result.unwrap_or_else(|e| e.for_public().into_response());
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors::decorate(response, origin)
}

/// Takes the whole request rather than `HeaderMap` and `RawQuery` extractors, which would copy
/// every header and the query string of the busiest JS-SDK route. Usually called by
/// [`super::front`] before the router; the route serves HEAD and encoded paths.
pub(crate) async fn config(
    State(state): State<AppState>,
    account: AccountPath,
    request: Request,
) -> Response {
    let origin = cors::allowed_origin(&account.js_domains, request.headers()).cloned();
    finish(
        config_answer(&state, &account, request.uri().query()).await,
        origin.as_ref(),
    )
}

async fn config_answer(
    state: &AppState,
    account: &Account,
    raw: Option<&str>,
) -> ApiResult<Response> {
    account.require_official("the JS-SDK")?;
    let [url, apis] = query::params(raw, ["url", "apis"]);
    let page = jssdk::page_url(required_value(url, "url", "invalid_url")?)?;
    let apis = match apis {
        Some(Ok(a)) => sign::api_list(Some(&a)),
        Some(Err(())) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`apis` is not valid UTF-8",
            ))
        }
        None => Vec::new(),
    };
    let answer = sign::sign_config(state, account, &page, apis).await?;
    Ok(json::answer(&answer, answer_capacity(&answer)))
}

/// The length of a config answer with nothing to escape (the usual case: page URLs reach
/// wxgate percent-encoded), so that the body takes the buffer as it is: the keys, the appid, a
/// ten-digit time, the nonce and the signature take 162 bytes, each api name its length, its
/// quotes and a comma between, the page URL its length.
fn answer_capacity(answer: &ConfigAnswer<'_>) -> usize {
    let apis: usize = answer.js_api_list.iter().map(|a| a.len() + 3).sum();
    162 + apis.saturating_sub(1) + answer.url.len()
}

async fn diagnose(
    State(state): State<AppState>,
    account: AccountPath,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let origin = cors::allowed_origin(&account.js_domains, &headers).cloned();
    finish(
        diagnose_answer(&state, &account, raw.as_deref()).await,
        origin.as_ref(),
    )
}

async fn diagnose_answer(
    state: &AppState,
    account: &Account,
    raw: Option<&str>,
) -> ApiResult<Response> {
    account.require_official("the JS-SDK")?;
    let url = required(raw, "url", "invalid_url")?;
    let signature = required(raw, "signature", "invalid_parameter")?;
    let timestamp = required(raw, "timestamp", "invalid_parameter")?;
    // `nonceStr` as in wx.config; `noncestr` as in the signed string is accepted too.
    let nonce_str = match query::param(raw, "nonceStr") {
        Some(_) => required(raw, "nonceStr", "invalid_parameter")?,
        None => required(raw, "noncestr", "invalid_parameter")
            .map_err(|_| ApiError::MissingParameter("nonceStr"))?,
    };
    let request = DiagnoseRequest {
        url,
        signature,
        timestamp,
        nonce_str,
    };
    let diagnosis = jssdk::diagnose_page(state, account, &request).await?;
    Ok(Json(diagnosis).into_response())
}

async fn preflight(account: AccountPath, headers: HeaderMap) -> Response {
    cors::preflight(&account.js_domains, &headers)
}

async fn script(_: AccountPath) -> Response {
    (
        StatusCode::OK,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxgate_proto::jssdk::{nonce_str, sign};

    #[test]
    fn the_buffer_of_a_usual_answer_is_its_length() {
        let url = "https://h5.example.com/a?b=%E4%B8%AD&c=中";
        for apis in [
            vec![],
            vec!["scanQRCode"],
            vec!["scanQRCode", "chooseImage"],
        ] {
            let answer = ConfigAnswer {
                app_id: "wx1234567890abcdef",
                timestamp: 1_700_000_000,
                nonce_str: nonce_str(),
                signature: sign("ticket", "nonce", 1, url),
                js_api_list: apis.iter().map(|a| (*a).to_owned()).collect(),
                url,
            };
            let json = serde_json::to_vec(&answer).unwrap();
            assert_eq!(answer_capacity(&answer), json.len(), "{apis:?}");
        }
    }
}
