//! Stand-ins for WeChat's authorization pages on the `mp_base` side, and the merchant's click.
//!
//! A merchant authorizes a platform on `mp.weixin.qq.com` (`cgi-bin/componentloginpage` on a
//! PC, `safe/bindcomponent` on a phone) by scanning a QR code with the account owner's WeChat.
//! The mock replaces the owner with a small form (which account, which name) whose submit
//! button (`#authorize`) goes to `GET /__mock/component/authorize`; tests without a browser
//! call that route directly with the same parameters. It consumes the pre_auth_code, records
//! the authorizer, pushes `authorized` (or `updateauthorized`) to the component in the
//! background and redirects to `redirect_uri` with `auth_code` and `expires_in` added.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::json;

use super::model::AUTH_CODE_TTL_S;
use super::push;
use crate::routes::params;
use crate::Shared;

/// WeChat's pages answer errors as a page, not as JSON.
fn error_page(text: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Oops! Something went wrong:(\n\n{text}"),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": "bad_request", "message": message}})),
    )
        .into_response()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The name a merchant gets when the form's is left empty: `测试商户` and the appid's end.
fn default_nick(appid: &str) -> String {
    let tail: Vec<char> = appid.chars().rev().take(4).collect();
    format!("测试商户{}", tail.into_iter().rev().collect::<String>())
}

/// A fresh appid: `wx` and 16 hex digits, like a real one.
fn fresh_appid() -> String {
    format!("wx{:016x}", rand::thread_rng().gen::<u64>())
}

fn auth_type(q: &HashMap<String, String>) -> Option<&str> {
    match q.get("auth_type").map(String::as_str) {
        None | Some("") => Some("3"),
        Some(t @ ("1" | "2" | "3")) => Some(t),
        Some(_) => None,
    }
}

fn redirect_uri(q: &HashMap<String, String>) -> Option<url::Url> {
    q.get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// The checks both pages and the authorize route make: a known component, a valid
/// pre_auth_code of it, an http(s) redirect_uri and an auth_type of 1, 2 or 3.
fn check(shared: &Shared, q: &HashMap<String, String>) -> Result<(), String> {
    let component = q
        .get("component_appid")
        .map(String::as_str)
        .unwrap_or_default();
    let code = q
        .get("pre_auth_code")
        .map(String::as_str)
        .unwrap_or_default();
    {
        let s = shared.lock();
        if !s.platform.components.contains_key(component) {
            return Err("component_appid 参数错误 (unknown component)".into());
        }
        s.platform
            .check_pre_auth_code(component, code, s.now())
            .map_err(str::to_owned)?;
    }
    if redirect_uri(q).is_none() {
        return Err("redirect_uri 参数错误 (an absolute http(s) URL is required)".into());
    }
    if auth_type(q).is_none() {
        return Err("auth_type 参数错误 (1, 2 or 3)".into());
    }
    Ok(())
}

fn page(shared: &Shared, q: &HashMap<String, String>, mobile: bool) -> Response {
    if let Err(text) = check(shared, q) {
        return error_page(&text);
    }
    let get = |k: &str| escape(q.get(k).map(String::as_str).unwrap_or_default());
    let appid = q
        .get("biz_appid")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(fresh_appid);
    let nick = default_nick(&appid);
    let title = if mobile {
        "授权 (手机)"
    } else {
        "公众平台账号授权"
    };
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>第三方平台 <code>{component}</code> 请求获得你的账号的授权 (auth_type {auth_type}).</p>
<form id="authorize-form" method="get" action="../__mock/component/authorize">
<input type="hidden" name="component_appid" value="{component}">
<input type="hidden" name="pre_auth_code" value="{code}">
<input type="hidden" name="redirect_uri" value="{redirect}">
<input type="hidden" name="auth_type" value="{auth_type}">
<p><label>AppID <input name="authorizer_appid" value="{appid}"></label></p>
<p><label>名称 <input name="nick_name" value="{nick}"></label></p>
<p><button type="submit" id="authorize">授权</button></p>
</form>
</body></html>
"#,
        component = get("component_appid"),
        code = get("pre_auth_code"),
        redirect = get("redirect_uri"),
        auth_type = escape(auth_type(q).unwrap_or("3")),
        appid = escape(&appid),
        nick = escape(&nick),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// `GET /cgi-bin/componentloginpage?component_appid&pre_auth_code&redirect_uri&auth_type`.
pub(crate) async fn login_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Response {
    page(&shared, &params(q), false)
}

/// `GET /safe/bindcomponent?action=bindcomponent&no_scan=1&component_appid&pre_auth_code&…`.
pub(crate) async fn bind_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = params(q);
    if q.get("action").is_some_and(|a| a != "bindcomponent") {
        return error_page("action 参数错误");
    }
    page(&shared, &q, true)
}

/// The merchant's click: `GET /__mock/component/authorize` with the page's fields
/// (`authorizer_appid` and `nick_name` optional; `func_ids=1,2,3` overrides the permission
/// sets; `push=0` skips the `authorized` push). 302 to `redirect_uri` with `auth_code` and
/// `expires_in`; 400 for anything the page would not have allowed.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = params(q);
    if let Err(text) = check(&shared, &q) {
        return bad_request(&text);
    }
    let (Some(mut redirect), Some(auth_type)) = (redirect_uri(&q), auth_type(&q)) else {
        return bad_request("redirect_uri or auth_type is invalid");
    };
    let component = q.get("component_appid").cloned().unwrap_or_default();
    let pre_auth_code = q.get("pre_auth_code").cloned().unwrap_or_default();
    let appid = q
        .get("authorizer_appid")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(fresh_appid);
    let nick_name = q
        .get("nick_name")
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| default_nick(&appid));
    let func_ids = match q.get("func_ids").filter(|f| !f.is_empty()) {
        None => None,
        Some(list) => match list.split(',').map(|id| id.trim().parse::<u32>()).collect() {
            Ok(ids) => Some(ids),
            Err(_) => return bad_request("`func_ids` must be a comma-separated list of numbers"),
        },
    };
    let auth = {
        let mut s = shared.lock();
        let now = s.now();
        if let Err(text) = s
            .platform
            .consume_pre_auth_code(&component, &pre_auth_code, now)
        {
            return bad_request(text);
        }
        s.platform.authorize(
            &component,
            &appid,
            &nick_name,
            func_ids,
            auth_type == "2",
            now,
        )
    };
    if q.get("push").map(String::as_str) != Some("0") {
        let inner = push::authorized_event(
            &component,
            auth.info_type,
            &appid,
            &auth.code,
            &pre_auth_code,
        );
        match push::event_push(&shared, &component, &inner) {
            Ok(Some(sealed)) => push::deliver_later(sealed),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "mock WeChat: authorized push impossible"),
        }
    }
    redirect
        .query_pairs_mut()
        .append_pair("auth_code", &auth.code)
        .append_pair("expires_in", &AUTH_CODE_TTL_S.to_string());
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}
