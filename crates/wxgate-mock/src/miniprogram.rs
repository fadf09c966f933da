//! The mini-program side of the mock: WeChat's `sns/jscode2session`, `wxa/checksession` and
//! `wxa/business/getuserphonenumber`, the `/__mock/miniprogram/*` controls that mint what a
//! mini program's front end would get from WeChat (a `wx.login` code, a `getPhoneNumber`
//! code) or read what a test needs (a user's session_key), and [`json_push`]: a push in the
//! JSON data format a mini program may choose, plain or encrypted, as WeChat sends it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::platform::crypto;
use super::routes::{answer, bad_request, json_body, not_json, params, wx_error};
use super::wire::WxErr;
use super::Shared;

type St = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sns/jscode2session", any(jscode2session))
        .route("/wxa/checksession", any(check_session))
        .route("/wxa/business/getuserphonenumber", any(phone_number))
        .route("/__mock/miniprogram/code", post(ctl_code))
        .route("/__mock/miniprogram/phone_code", post(ctl_phone_code))
        .route("/__mock/miniprogram/session", get(ctl_session))
        .route("/__mock/miniprogram/renew_session", post(ctl_renew_session))
}

async fn jscode2session(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().jscode2session(&q))
}

async fn check_session(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    answer(shared.lock().check_session(&q))
}

async fn phone_number(State(shared): St, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = params(q);
    match serde_json::from_slice::<Value>(&body) {
        Ok(body) if body.is_object() => answer(shared.lock().user_phone_number(&q, &body)),
        _ => wx_error(WxErr::code(47001)),
    }
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `{"appid", "user", "risky"?}` → `{"code"}`: what `wx.login` gives the mini program `appid`
/// for the user called `user` (the same name gives the same unionid in every account).
async fn ctl_code(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(appid), Some(user)) = (str_field(&body, "appid"), str_field(&body, "user")) else {
        return bad_request("`appid` and `user` are required");
    };
    let risky = body.get("risky").and_then(Value::as_bool).unwrap_or(false);
    let code = shared.lock().mint_login_code(appid, user, risky);
    Json(json!({ "code": code })).into_response()
}

/// `{"appid", "phone"}` → `{"code"}`: what a `getPhoneNumber` button gives the mini program.
async fn ctl_phone_code(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(appid), Some(phone)) = (str_field(&body, "appid"), str_field(&body, "phone")) else {
        return bad_request("`appid` and `phone` are required");
    };
    let code = shared.lock().mint_phone_code(appid, phone);
    Json(json!({ "code": code })).into_response()
}

/// `?appid&openid` → `{"session_key"}` (tests encrypt open data with it).
async fn ctl_session(State(shared): St, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let (Some(appid), Some(openid)) = (q.get("appid"), q.get("openid")) else {
        return bad_request("`appid` and `openid` are required");
    };
    match shared.lock().session_key(appid, openid) {
        Some(key) => Json(json!({ "session_key": key })).into_response(),
        None => bad_request("no login of this openid at this appid"),
    }
}

/// `{"appid", "openid"}`: a new session_key, as after a `wx.login` elsewhere.
async fn ctl_renew_session(State(shared): St, body: Bytes) -> Response {
    let Some(body) = json_body(&body) else {
        return not_json();
    };
    let (Some(appid), Some(openid)) = (str_field(&body, "appid"), str_field(&body, "openid"))
    else {
        return bad_request("`appid` and `openid` are required");
    };
    if shared.lock().renew_session(appid, openid) {
        super::routes::ok()
    } else {
        bad_request("no login of this openid at this appid")
    }
}

/// A push in the JSON data format, as WeChat POSTs it to a mini program's server URL.
#[derive(Debug, Clone)]
pub struct JsonPush {
    /// The query string: `signature`, `timestamp`, `nonce`, and in safe mode `encrypt_type=aes`
    /// and `msg_signature`.
    pub query: String,
    /// The body: the message itself, or `{"ToUserName","Encrypt"}` in safe mode.
    pub body: String,
}

/// Builds the push of `message` (a JSON object) for a server with `token`; with
/// `encoding_aes_key`, in safe mode for `appid` (WXBizMsgCrypt, the plaintext being the
/// message's JSON). `timestamp` and `nonce` are as WeChat would send them.
pub fn json_push(
    token: &str,
    encoding_aes_key: Option<&str>,
    appid: &str,
    message: &Value,
    timestamp: u64,
    nonce: &str,
) -> Result<JsonPush, crypto::CryptoError> {
    let timestamp = timestamp.to_string();
    let signature = crypto::signature(token, &timestamp, nonce);
    let plain = message.to_string();
    let Some(key) = encoding_aes_key else {
        return Ok(JsonPush {
            query: format!("signature={signature}&timestamp={timestamp}&nonce={nonce}"),
            body: plain,
        });
    };
    let key = crypto::aes_key(key)?;
    let encrypt = crypto::encrypt(&key, &plain, appid);
    let msg_signature = crypto::msg_signature(token, &timestamp, nonce, &encrypt);
    let to_user = message.get("ToUserName").cloned().unwrap_or(Value::Null);
    Ok(JsonPush {
        query: format!(
            "signature={signature}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_signature}"
        ),
        body: json!({"ToUserName": to_user, "Encrypt": encrypt}).to_string(),
    })
}
