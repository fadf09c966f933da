//! The mock's HTTP surface: WeChat's endpoints and the `/__mock/*` controls.
//!
//! A middleware in front of every WeChat endpoint counts the call (and the calls in flight at
//! once), applies the configured latency, the outage switch and the next queued fault, in that
//! order; `/__mock/*` is exempt from all of it. Handlers only parse the request, ask
//! [`Inner`](super::state::Inner) for the answer and shape it like WeChat does (HTTP 200,
//! `errcode`/`errmsg` with a `rid`). Logs name the endpoint and errcode, never a query string,
//! token or secret.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::wire::{random_rid, WxErr};
use super::{Fault, Shared};

type St = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/cgi-bin/token", any(classic_token))
        .route("/cgi-bin/stable_token", any(stable_token))
        .route("/cgi-bin/ticket/getticket", any(getticket))
        .route("/cgi-bin/getcallbackip", any(getcallbackip))
        .route("/cgi-bin/message/custom/send", any(custom_send))
        .route("/cgi-bin/openapi/quota/get", any(super::quota::quota_get))
        .route("/cgi-bin/media/upload", any(super::media::upload))
        .route("/cgi-bin/media/get", any(super::media::get))
        .route("/connect/oauth2/authorize", get(authorize))
        .route("/sns/oauth2/access_token", any(oauth_access_token))
        .route("/sns/oauth2/refresh_token", any(oauth_refresh_token))
        .route("/sns/userinfo", any(userinfo))
        .route("/sns/auth", any(sns_auth))
        .route("/__mock/calls", get(ctl_calls))
        .route("/__mock/fault", post(ctl_fault))
        .route("/__mock/latency", post(ctl_latency))
        .route("/__mock/down", post(ctl_down))
        .route("/__mock/reset", post(ctl_reset))
        .route("/__mock/custom_messages", get(ctl_custom_messages))
        .route("/__mock/invalidate", post(ctl_invalidate))
        .route("/__mock/advance", post(ctl_advance))
        .route("/__mock/accounts", post(ctl_add_account))
        .route("/__mock/token_ttl", post(ctl_token_ttl))
        .route("/__mock/ticket_ttl", post(ctl_ticket_ttl))
        .route("/__mock/classic_grace", post(ctl_classic_grace))
        .route("/__mock/tokens", get(ctl_tokens))
        .route("/__mock/info", get(ctl_info))
        .merge(super::platform::routes::router())
        .merge(super::console::router())
        .merge(super::miniprogram::router())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Counting (calls, and calls in flight until the answer is ready), latency, outage and
/// injected faults for every WeChat endpoint.
async fn gate(State(shared): St, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/__mock" || path.starts_with("/__mock/") {
        return next.run(req).await;
    }
    let _in_flight = shared.in_flight.enter();
    let (latency, down, fault) = {
        let mut s = shared.lock();
        s.count_call(&path);
        s.count_quota_use(&path, req.uri().query());
        let fault = if s.down { None } else { s.pop_fault(&path) };
        (s.latency, s.down, fault)
    };
    tracing::debug!(endpoint = %path, ?fault, down, "mock WeChat call");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if down {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        )
            .into_response();
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::Errcode(code)) => wx_error(WxErr::code(code)),
        Some(Fault::HttpStatus(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{status}")).into_response()
        }
        Some(Fault::Garbage) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><head><title>502 Bad Gateway</title></head><body>stgw</body></html>",
        )
            .into_response(),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
    }
}

pub(crate) fn wx_error(WxErr(code, msg): WxErr) -> Response {
    tracing::debug!(errcode = code, "mock WeChat error answer");
    Json(json!({"errcode": code, "errmsg": format!("{msg} rid: {}", random_rid())})).into_response()
}

pub(crate) fn answer(result: Result<Value, WxErr>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => wx_error(e),
    }
}

pub(crate) fn params(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The caller's address (None when the router is served without connection info).
type Caller = Option<Extension<ConnectInfo<SocketAddr>>>;

fn caller_ip(caller: Caller) -> Option<IpAddr> {
    caller.map(|Extension(ConnectInfo(addr))| addr.ip())
}

async fn classic_token(State(shared): St, caller: Caller, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let mut s = shared.lock();
    let appid = q.get("appid").map(String::as_str).unwrap_or_default();
    if let Err(e) = s.console.check_ip(appid, caller_ip(caller)) {
        return wx_error(e);
    }
    answer(s.classic_token(&q))
}

async fn stable_token(State(shared): St, caller: Caller, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(body) => {
            let mut s = shared.lock();
            let appid = body
                .get("appid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Err(e) = s.console.check_ip(appid, caller_ip(caller)) {
                return wx_error(e);
            }
            answer(s.stable_token(&body))
        }
        Err(_) => wx_error(WxErr::code(47001)),
    }
}

async fn getticket(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().ticket(&q))
}

async fn getcallbackip(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let checked = shared
        .lock()
        .check_access_token(q.get("access_token").map(String::as_str));
    answer(checked.map(|_| json!({"ip_list": ["127.0.0.1"]})))
}

async fn custom_send(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    let mut s = shared.lock();
    let sender = match s.check_access_token(q.get("access_token").map(String::as_str)) {
        Ok(appid) => appid,
        Err(e) => return wx_error(e),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(message) if message.is_object() => {
            s.custom_messages.push(message);
            s.custom_senders.push(sender);
            answer(Ok(json!({"errcode": 0, "errmsg": "ok"})))
        }
        _ => wx_error(WxErr::code(47001)),
    }
}

/// What a browser sees: a 302 back to `redirect_uri` with `code` and `state`, or WeChat's
/// plain error page. `mock_openid=<user>` picks the user, `mock_snapshot=1` a snapshot-page
/// user, `mock_deny=1` a user who refuses (no `code`).
async fn authorize(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let error_page = |code: u32, text: &str| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Oops! Something went wrong:(\n\n{code}: {text}"),
        )
            .into_response()
    };
    let appid = q.get("appid").map(String::as_str).unwrap_or_default();
    // With `component_appid` (web login through a third-party platform), the appid must be an
    // active authorizer of that component.
    let component = q.get("component_appid").filter(|c| !c.is_empty());
    let known = {
        let s = shared.lock();
        match component {
            Some(c) => s.platform.is_active_authorizer(appid, c),
            None => s.known_appid(appid),
        }
    };
    if !known {
        return error_page(10016, "appid 参数错误");
    }
    let Some(mut redirect) = q
        .get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return error_page(10003, "redirect_uri 参数错误");
    };
    // A 网页授权域名 saved in the console: the redirect must be on it (host and port).
    if component.is_none() {
        let domain = shared.lock().console.oauth_domain(appid).map(str::to_owned);
        if domain.is_some_and(|d| super::state::console::authority(&redirect) != Some(d)) {
            return error_page(10003, "redirect_uri域名与后台配置不一致");
        }
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return error_page(10004, "response_type 参数错误");
    }
    let scope = match q.get("scope").map(String::as_str) {
        Some(s @ ("snsapi_base" | "snsapi_userinfo")) => s.to_owned(),
        _ => return error_page(10005, "scope 参数错误或没有 scope 权限"),
    };
    let state = q.get("state").cloned().unwrap_or_default();
    if q.get("mock_deny").map(String::as_str) == Some("1") {
        redirect.query_pairs_mut().append_pair("state", &state);
    } else {
        let user = q
            .get("mock_openid")
            .filter(|u| !u.is_empty())
            .map_or("mock-user", String::as_str);
        let snapshot = q.get("mock_snapshot").map(String::as_str) == Some("1");
        let code =
            shared
                .lock()
                .issue_code(appid, user, &scope, snapshot, component.map(String::as_str));
        redirect
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}

async fn oauth_access_token(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().exchange_code(&q))
}

async fn oauth_refresh_token(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().refresh_web_token(&q))
}

async fn userinfo(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().userinfo(&q))
}

async fn sns_auth(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().check_web_auth(&q))
}

/// Any other `cgi-bin/*` API: checks the token and echoes the request back.
async fn fallback(
    State(shared): St,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if !path.starts_with("/cgi-bin/") {
        return (StatusCode::NOT_FOUND, "404 Not Found").into_response();
    }
    let mut q = params(uri.query().map(str::to_owned));
    let token = q.remove("access_token");
    if let Err(e) = shared.lock().check_access_token(token.as_deref()) {
        return wx_error(e);
    }
    let query: BTreeMap<String, String> = q.into_iter().collect();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    answer(Ok(json!({
        "errcode": 0,
        "errmsg": "ok",
        "method": method.as_str(),
        "path": path,
        "query": query,
        "body": body,
        "content_type": content_type,
    })))
}

// ---- /__mock controls ----

pub(crate) fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": "bad_request", "message": message}})),
    )
        .into_response()
}

pub(crate) fn ok() -> Response {
    Json(json!({"ok": true})).into_response()
}

pub(crate) fn json_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

pub(crate) fn not_json() -> Response {
    bad_request("the body must be a JSON object")
}

fn u64_field(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_u64)
}

async fn ctl_calls(State(shared): St) -> Response {
    Json(shared.lock().calls.clone()).into_response()
}

/// `{"endpoint", "errcode": N | "http_status": N | "garbage": true | "delay_ms": N,
/// "times"?: N}`.
async fn ctl_fault(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(endpoint) = body.get("endpoint").and_then(Value::as_str) else {
        return bad_request("`endpoint` (e.g. \"cgi-bin/token\") is required");
    };
    let fault = if let Some(code) = body.get("errcode").and_then(Value::as_i64) {
        Fault::Errcode(code)
    } else if let Some(status) = u64_field(&body, "http_status") {
        match u16::try_from(status) {
            Ok(s) if (100..=999).contains(&s) => Fault::HttpStatus(s),
            _ => return bad_request("`http_status` must be an HTTP status code"),
        }
    } else if body.get("garbage").and_then(Value::as_bool) == Some(true) {
        Fault::Garbage
    } else if let Some(ms) = u64_field(&body, "delay_ms") {
        Fault::Delay(Duration::from_millis(ms))
    } else {
        return bad_request("one of `errcode`, `http_status`, `garbage`, `delay_ms` is required");
    };
    let times = u64_field(&body, "times").unwrap_or(1).min(10_000);
    let mut s = shared.lock();
    for _ in 0..times {
        s.push_fault(endpoint, fault.clone());
    }
    ok()
}

async fn ctl_latency(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(ms) = u64_field(&body, "ms") else {
        return bad_request("`ms` is required");
    };
    shared.lock().latency = Duration::from_millis(ms);
    ok()
}

async fn ctl_down(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(down) = body.get("down").and_then(Value::as_bool) else {
        return bad_request("`down` (true or false) is required");
    };
    shared.lock().down = down;
    ok()
}

async fn ctl_reset(State(shared): St) -> Response {
    shared.lock().reset();
    shared.in_flight.reset_max();
    ok()
}

async fn ctl_custom_messages(State(shared): St) -> Response {
    Json(shared.lock().custom_messages.clone()).into_response()
}

async fn ctl_invalidate(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(appid) = body.get("appid").and_then(Value::as_str) else {
        return bad_request("`appid` is required");
    };
    shared.lock().invalidate_access_tokens(appid);
    ok()
}

/// `{"secs": N}` or `{"ms": N}`: moves the mock clock forward.
async fn ctl_advance(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let by = match (u64_field(&body, "secs"), u64_field(&body, "ms")) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(ms)) => Duration::from_millis(ms),
        (None, None) => return bad_request("`secs` or `ms` is required"),
    };
    shared.lock().advance(by);
    ok()
}

async fn ctl_add_account(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(appid), Some(secret)) = (
        body.get("appid").and_then(Value::as_str),
        body.get("secret").and_then(Value::as_str),
    ) else {
        return bad_request("`appid` and `secret` are required");
    };
    shared.lock().add_account(appid, secret);
    ok()
}

async fn secs_control(
    shared: &Shared,
    body: &Bytes,
    apply: fn(&mut super::state::Inner, u64),
) -> Response {
    let Some(body) = json_body(body) else {
        return not_json();
    };
    let Some(secs) = u64_field(&body, "secs") else {
        return bad_request("`secs` is required");
    };
    apply(&mut shared.lock(), secs);
    ok()
}

async fn ctl_token_ttl(State(shared): St, body: Bytes) -> Response {
    secs_control(&shared, &body, |s, v| s.set_token_ttl(v)).await
}

async fn ctl_ticket_ttl(State(shared): St, body: Bytes) -> Response {
    secs_control(&shared, &body, |s, v| s.set_ticket_ttl(v)).await
}

async fn ctl_classic_grace(State(shared): St, body: Bytes) -> Response {
    secs_control(&shared, &body, |s, v| s.set_classic_grace(v)).await
}

async fn ctl_tokens(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let Some(appid) = q.get("appid") else {
        return bad_request("`appid` is required");
    };
    Json(json!({"access_tokens": shared.lock().current_access_tokens(appid)})).into_response()
}

async fn ctl_info(State(shared): St) -> Response {
    let s = shared.lock();
    let c = s.config();
    Json(json!({
        "appids": s.appids(),
        "open_base_public": c.open_base_public,
        "mp_base": c.mp_base_public,
        "component_appids": s.platform.component_appids(),
        "component_token_ttl_s": c.component_token_ttl_s,
        "token_ttl_s": c.token_ttl_s,
        "ticket_ttl_s": c.ticket_ttl_s,
        "classic_grace_s": c.classic_grace_s,
        "code_ttl_s": c.code_ttl_s,
        "latency_ms": u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX),
        "down": s.down,
        "in_flight": shared.in_flight.now(),
        "max_in_flight": shared.in_flight.max(),
    }))
    .into_response()
}
