//! The platform's HTTP surface: the `cgi-bin/component/*` endpoints, web login through a
//! component, the authorization pages, and the `/__mock/component*` controls.
//!
//! Merged into the mock's router before its gate, so every WeChat endpoint here is counted,
//! delayed, switched off and faulted like the others; handlers only parse, ask the state and
//! shape the answer (HTTP 200 + errcode/errmsg with a `rid` on errors). Pushes are sealed
//! under the lock and sent after it is released.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::model::field;
use super::{pages, push, MockComponent, MockWechat, PushError};
use crate::routes::{answer, bad_request, json_body, not_json, ok, params, wx_error};
use crate::wire::WxErr;
use crate::Shared;

type St = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/cgi-bin/component/api_component_token",
            any(component_token),
        )
        .route(
            "/cgi-bin/component/api_create_preauthcode",
            any(preauthcode),
        )
        .route("/cgi-bin/component/api_query_auth", any(query_auth))
        .route(
            "/cgi-bin/component/api_authorizer_token",
            any(authorizer_token),
        )
        .route(
            "/cgi-bin/component/api_get_authorizer_info",
            any(authorizer_info),
        )
        .route(
            "/cgi-bin/component/api_start_push_ticket",
            any(start_push_ticket),
        )
        .route("/sns/oauth2/component/access_token", any(oauth_exchange))
        .route("/sns/oauth2/component/refresh_token", any(oauth_refresh))
        .route("/cgi-bin/componentloginpage", get(pages::login_page))
        .route("/safe/bindcomponent", get(pages::bind_page))
        .route("/__mock/component/authorize", get(pages::authorize))
        .route("/__mock/components", post(ctl_add_component))
        .route("/__mock/component/rotation", post(ctl_rotation))
        .route("/__mock/component/push_ticket", post(ctl_push_ticket))
        .route("/__mock/component/ticket", get(ctl_ticket))
        .route("/__mock/component/revoke", post(ctl_revoke))
        .route(
            "/__mock/component/invalidate_refresh_token",
            post(ctl_invalidate_refresh_token),
        )
        .route(
            "/__mock/component/authorize_directly",
            post(ctl_authorize_directly),
        )
        .route("/__mock/component/authorizer", get(ctl_authorizer))
        .route("/__mock/component/tokens", get(ctl_component_tokens))
        .route("/__mock/component_token_ttl", post(ctl_component_token_ttl))
}

/// A JSON body as WeChat reads it: anything else is 47001 (data format error).
fn wx_body(body: &Bytes) -> Result<Value, WxErr> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or(WxErr::code(47001))
}

async fn component_token(State(shared): St, body: Bytes) -> Response {
    answer(wx_body(&body).and_then(|b| shared.lock().api_component_token(&b)))
}

async fn preauthcode(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    answer(wx_body(&body).and_then(|b| shared.lock().api_create_preauthcode(&q, &b)))
}

async fn query_auth(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    answer(wx_body(&body).and_then(|b| shared.lock().api_query_auth(&q, &b)))
}

async fn authorizer_token(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    answer(wx_body(&body).and_then(|b| shared.lock().api_authorizer_token(&q, &b)))
}

async fn authorizer_info(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    answer(wx_body(&body).and_then(|b| shared.lock().api_authorizer_info(&q, &b)))
}

/// Checks the component's appid and secret, answers at once and pushes a fresh ticket in the
/// background (WeChat pushes "soon").
async fn start_push_ticket(State(shared): St, body: Bytes) -> Response {
    let component = match wx_body(&body).and_then(|b| shared.lock().api_start_push_ticket(&b)) {
        Ok(c) => c,
        Err(e) => return wx_error(e),
    };
    match push::ticket_push(&shared, &component) {
        Ok(Some(sealed)) => push::deliver_later(sealed),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "mock WeChat: ticket push impossible"),
    }
    answer(Ok(json!({"errcode": 0, "errmsg": "ok"})))
}

async fn oauth_exchange(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().component_oauth_exchange(&q))
}

async fn oauth_refresh(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().component_oauth_refresh(&q))
}

// ---- /__mock/component* controls ----

fn push_error(e: &PushError) -> Response {
    let status = match e {
        PushError::UnknownComponent | PushError::UnknownAuthorizer => {
            axum::http::StatusCode::NOT_FOUND
        }
        PushError::Transport(_) => axum::http::StatusCode::BAD_GATEWAY,
        _ => axum::http::StatusCode::CONFLICT,
    };
    (
        status,
        Json(json!({"error": {"code": "push_failed", "message": e.to_string()}})),
    )
        .into_response()
}

fn mock(shared: Arc<Shared>) -> MockWechat {
    MockWechat { shared }
}

/// `{"appid","secret","token","encoding_aes_key","push_url"?,"ticket_every_ms"?}`.
async fn ctl_add_component(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(appid), Some(secret), Some(token), Some(key)) = (
        field(&body, "appid"),
        field(&body, "secret"),
        field(&body, "token"),
        field(&body, "encoding_aes_key"),
    ) else {
        return bad_request("`appid`, `secret`, `token` and `encoding_aes_key` are required");
    };
    if super::crypto::aes_key(key).is_err() {
        return bad_request("`encoding_aes_key` must be 43 base64 characters");
    }
    let push_url = field(&body, "push_url").map(str::to_owned);
    if push_url
        .as_deref()
        .is_some_and(|u| url::Url::parse(u).is_err())
    {
        return bad_request("`push_url` must be an absolute URL");
    }
    let mut component = MockComponent::new(appid, secret, token, key);
    component.push_url = push_url;
    component.ticket_every = body
        .get("ticket_every_ms")
        .and_then(Value::as_u64)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    mock(shared).add_component(component);
    ok()
}

/// `{"component_appid","enabled": bool}`.
async fn ctl_rotation(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(component), Some(on)) = (
        field(&body, "component_appid"),
        body.get("enabled").and_then(Value::as_bool),
    ) else {
        return bad_request("`component_appid` and `enabled` (true or false) are required");
    };
    if !shared.lock().platform.set_rotation(component, on) {
        return push_error(&PushError::UnknownComponent);
    }
    ok()
}

/// `{"component_appid"}` → `{"ticket","status","body"}` once the receiver answered.
async fn ctl_push_ticket(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(component) = field(&body, "component_appid") else {
        return bad_request("`component_appid` is required");
    };
    let mock = mock(shared);
    match mock.push_ticket_now(component).await {
        Ok(a) => Json(json!({
            "ticket": mock.current_ticket(component),
            "status": a.status,
            "body": a.body,
        }))
        .into_response(),
        Err(e) => push_error(&e),
    }
}

/// `?component_appid=` → `{"ticket"}` (the newest, or null).
async fn ctl_ticket(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let Some(component) = q.get("component_appid") else {
        return bad_request("`component_appid` is required");
    };
    Json(json!({"ticket": mock(shared).current_ticket(component)})).into_response()
}

/// `{"component_appid","authorizer_appid"}` → `{"status","body"}` of the `unauthorized` push
/// (both null without push URL).
async fn ctl_revoke(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(component), Some(authorizer)) = (
        field(&body, "component_appid"),
        field(&body, "authorizer_appid"),
    ) else {
        return bad_request("`component_appid` and `authorizer_appid` are required");
    };
    match mock(shared).revoke_authorizer(component, authorizer).await {
        Ok(a) => Json(json!({
            "status": a.as_ref().map(|a| a.status),
            "body": a.map(|a| a.body),
        }))
        .into_response(),
        Err(e) => push_error(&e),
    }
}

/// `{"authorizer_appid"}`.
async fn ctl_invalidate_refresh_token(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(authorizer) = field(&body, "authorizer_appid") else {
        return bad_request("`authorizer_appid` is required");
    };
    mock(shared).invalidate_refresh_token(authorizer);
    ok()
}

/// `{"component_appid","authorizer_appid","nick_name"?,"push"?: bool}` →
/// `{"authorization_code"}`.
async fn ctl_authorize_directly(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(component), Some(authorizer)) = (
        field(&body, "component_appid"),
        field(&body, "authorizer_appid"),
    ) else {
        return bad_request("`component_appid` and `authorizer_appid` are required");
    };
    let nick_name = field(&body, "nick_name").unwrap_or("测试商户");
    let push = body.get("push").and_then(Value::as_bool).unwrap_or(false);
    match mock(shared).authorize_directly(component, authorizer, nick_name, push) {
        Ok(code) => Json(json!({"authorization_code": code})).into_response(),
        Err(e) => push_error(&e),
    }
}

/// `?authorizer_appid=` → the authorizer as the mock knows it, with its token count.
async fn ctl_authorizer(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let Some(appid) = q.get("authorizer_appid") else {
        return bad_request("`authorizer_appid` is required");
    };
    let mock = mock(shared);
    let Some(a) = mock.authorizer(appid) else {
        return push_error(&PushError::UnknownAuthorizer);
    };
    Json(json!({
        "appid": a.appid,
        "component_appid": a.component_appid,
        "nick_name": a.nick_name,
        "refresh_token": a.refresh_token,
        "revoked": a.revoked,
        "func_ids": a.func_ids,
        "mini_program": a.mini_program,
        "token_calls": mock.authorizer_token_calls(appid),
    }))
    .into_response()
}

/// `?component_appid=` → `{"component_access_tokens": [...]}` (those valid now).
async fn ctl_component_tokens(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let Some(component) = q.get("component_appid") else {
        return bad_request("`component_appid` is required");
    };
    let tokens = mock(shared).current_component_tokens(component);
    Json(json!({"component_access_tokens": tokens})).into_response()
}

async fn ctl_component_token_ttl(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let Some(secs) = body.get("secs").and_then(Value::as_u64) else {
        return bad_request("`secs` is required");
    };
    shared.lock().set_component_token_ttl(secs);
    ok()
}
