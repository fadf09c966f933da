//! JS-SDK for browsers: `wx.config` signatures, a diagnosis of failing ones, and a small script
//! that does the right thing on every device.
//!
//! - `GET /jssdk/{account}/config?url=…[&apis=a,b]` signs the page URL byte for byte (fragment
//!   removed, nothing decoded or re-encoded beyond reading the query parameter once) with the
//!   account's current jsapi_ticket, a fresh nonce and the current time — only for pages on the
//!   account's `js_domains`.
//! - `GET /jssdk/{account}/diagnose?url=…&signature=…&timestamp=…&nonceStr=…` says in plain
//!   words why a signature a page used does not verify ([`diagnose`]).
//! - `GET /jssdk/{account}/wxgate.js` is the browser side: it signs the landing URL on iOS and the
//!   current URL elsewhere, then calls `wx.config`.
//!
//! `config` and `diagnose` answer CORS for origins on `js_domains` ([`cors`]). Handlers only
//! parse; the work is in [`sign`] and [`diagnose`]. These routes are anonymous: an upstream
//! failure is answered with its code and status but a generic message
//! ([`ApiError::for_public`]); the operator's hint goes to the log and `status`.

pub mod cors;
pub mod diagnose;
pub mod page;
pub mod sign;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use self::diagnose::{KnownTicket, Presented};
use self::page::PageUrl;
use crate::config::Account;
use crate::domain::CredentialKind;
use crate::http::{ApiError, ApiResult, AppState};
use crate::query;

/// The browser script, served as is; it reads the gateway and account from its own URL.
const SCRIPT: &str = include_str!("wxgate.js");
/// At most this many other accounts are tried by `diagnose` ("signed for the wrong account"),
/// and only with the tickets this instance already holds (never fetched for `diagnose`).
const MAX_OTHER_ACCOUNTS: usize = 16;
/// Longest page URL `config` signs and `diagnose` examines. Both routes are anonymous, and
/// `diagnose` hashes a dozen variants of the URL with every known ticket: the bound keeps the
/// work per request small and fixed. Real page URLs are far shorter (WeChat's own share links
/// included).
pub const MAX_PAGE_URL_BYTES: usize = 4096;
/// Longest `nonceStr` / `signature` `diagnose` takes (wx.config's are 16-32 and 40 characters).
const MAX_DIAGNOSE_FIELD: usize = 64;

/// The config route's template; `crate::http::front` answers its plain GETs before the router.
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

/// A required query parameter, decoded once; blank counts as missing.
fn required(
    raw: Option<&str>,
    name: &'static str,
    invalid_code: &'static str,
) -> ApiResult<String> {
    required_value(query::param(raw, name), name, invalid_code)
}

/// [`required`] for a value already read out of the query ([`query::params`]).
fn required_value(
    value: Option<Result<String, ()>>,
    name: &'static str,
    invalid_code: &'static str,
) -> ApiResult<String> {
    match value {
        None => Err(ApiError::MissingParameter(name)),
        Some(Ok(v)) if v.is_empty() => Err(ApiError::MissingParameter(name)),
        Some(Ok(v)) => Ok(v),
        Some(Err(())) => Err(ApiError::bad_request(
            invalid_code,
            format!("the query parameter `{name}` is not valid UTF-8 once percent-decoded"),
        )),
    }
}

fn parse_page(raw: String) -> ApiResult<PageUrl> {
    check_page_len(&raw)?;
    PageUrl::parse(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_url",
            format!("{e}; pass the page's location.href, encoded with encodeURIComponent"),
        )
    })
}

fn check_page_len(url: &str) -> ApiResult<()> {
    if url.len() > MAX_PAGE_URL_BYTES {
        return Err(ApiError::bad_request(
            "invalid_url",
            format!(
                "the page URL is {} bytes long; at most {MAX_PAGE_URL_BYTES} are signed",
                url.len()
            ),
        ));
    }
    Ok(())
}

/// The account's settings and the request's origin when allowed by CORS, or
/// `unknown_account`.
fn account_and_origin(
    state: &AppState,
    account: &str,
    headers: &HeaderMap,
) -> ApiResult<(std::sync::Arc<Account>, Option<HeaderValue>)> {
    let settings = state.require_account(account)?;
    let origin = cors::allowed_origin(&settings.js_domains, headers).cloned();
    Ok((settings, origin))
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
/// `crate::http::front` before the router; the route below serves HEAD and encoded paths.
pub(crate) async fn config(
    State(state): State<AppState>,
    Path(account): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (settings, origin) = match account_and_origin(&state, &account, request.headers()) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    finish(
        config_answer(&state, &settings, request.uri().query()).await,
        origin.as_ref(),
    )
}

async fn config_answer(
    state: &AppState,
    settings: &Account,
    raw: Option<&str>,
) -> ApiResult<Response> {
    let [url, apis] = query::params(raw, ["url", "apis"]);
    let page = parse_page(required_value(url, "url", "invalid_url")?)?;
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
    let answer = sign::sign_config(state, settings, &page, apis).await?;
    Ok(answer.into_response())
}

async fn diagnose(
    State(state): State<AppState>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (settings, origin) = match account_and_origin(&state, &account, &headers) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    finish(
        diagnose_answer(&state, &settings, raw.as_deref()).await,
        origin.as_ref(),
    )
}

async fn diagnose_answer(
    state: &AppState,
    settings: &Account,
    raw: Option<&str>,
) -> ApiResult<Response> {
    let url = required(raw, "url", "invalid_url")?;
    let signature = required(raw, "signature", "invalid_parameter")?;
    let timestamp = required(raw, "timestamp", "invalid_parameter")?;
    // `nonceStr` as in wx.config; `noncestr` as in the signed string is accepted too.
    let nonce_str = match query::param(raw, "nonceStr") {
        Some(_) => required(raw, "nonceStr", "invalid_parameter")?,
        None => required(raw, "noncestr", "invalid_parameter")
            .map_err(|_| ApiError::MissingParameter("nonceStr"))?,
    };
    check_page_len(&url)?;
    if signature.len() > MAX_DIAGNOSE_FIELD || nonce_str.len() > MAX_DIAGNOSE_FIELD {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "`signature` and `nonceStr` are at most {MAX_DIAGNOSE_FIELD} characters (as \
                 wx.config's are)"
            ),
        ));
    }
    let timestamp: u64 = timestamp.trim().parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            "`timestamp` must be the integer given to wx.config (unix seconds)",
        )
    })?;
    let tickets = known_tickets(state, settings).await?;
    let presented = Presented {
        url: &url,
        signature: &signature,
        timestamp,
        nonce_str: &nonce_str,
    };
    let diagnosis = diagnose::diagnose(&settings.name, &settings.js_domains, &presented, &tickets);
    Ok(Json(diagnosis).into_response())
}

/// The account's current ticket first, then its remembered ones, then the other accounts' that
/// this instance holds in its cache.
async fn known_tickets(state: &AppState, account: &Account) -> ApiResult<Vec<KnownTicket>> {
    let current = state
        .creds
        .get(&account.name, CredentialKind::jsapi())
        .await?;
    let mut tickets = vec![KnownTicket {
        account: account.name.clone(),
        appid: account.appid.clone(),
        ticket: current.value.clone(),
        replaced_since: None,
    }];
    push_history(state, account, &current.value, &mut tickets).await;
    let snapshot = state.registry.snapshot();
    let others = snapshot
        .accounts
        .iter()
        .filter(|a| a.name != account.name)
        .take(MAX_OTHER_ACCOUNTS);
    for other in others {
        // Only tickets this instance already holds: an anonymous diagnose must not make wxgate
        // fetch (or wait for) up to 16 other accounts' credentials, nor read them from the store.
        let now = crate::domain::unix_now();
        let Some(ticket) =
            state
                .creds
                .with_cached(&other.name, CredentialKind::jsapi(), now, |c| {
                    c.value.clone()
                })
        else {
            continue;
        };
        tickets.push(KnownTicket {
            account: other.name.clone(),
            appid: other.appid.clone(),
            ticket: ticket.clone(),
            replaced_since: None,
        });
        push_history(state, other, &ticket, &mut tickets).await;
    }
    Ok(tickets)
}

async fn push_history(
    state: &AppState,
    account: &Account,
    current: &str,
    out: &mut Vec<KnownTicket>,
) {
    let history = state
        .creds
        .history(&account.name, CredentialKind::jsapi())
        .await;
    // Newest first: a ticket's successor was fetched when it stopped being current.
    let mut successor_fetched_at = None;
    for past in history {
        if past.value != current {
            out.push(KnownTicket {
                account: account.name.clone(),
                appid: account.appid.clone(),
                ticket: past.value,
                replaced_since: Some(successor_fetched_at.unwrap_or(past.fetched_at)),
            });
        }
        successor_fetched_at = Some(past.fetched_at);
    }
}

async fn preflight(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.account(&account) {
        Some(settings) => cors::preflight(&settings.js_domains, &headers),
        None => ApiError::UnknownAccount(account).into_response(),
    }
}

async fn script(State(state): State<AppState>, Path(account): Path<String>) -> Response {
    if state.account(&account).is_none() {
        return ApiError::UnknownAccount(account).into_response();
    }
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
