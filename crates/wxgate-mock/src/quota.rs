//! `POST cgi-bin/openapi/quota/get?access_token=` `{"cgi_path": "/cgi-bin/…"}`: an API's daily
//! quota as WeChat answers it (`{"errcode":0,"errmsg":"ok","quota":{"daily_limit","used",
//! "remain"}}`). `used` is real: every call the mock receives with a valid access_token is
//! counted per appid and path ([`Inner::count_quota_use`]). Errors as WeChat's: 40001/41001/
//! 42001 for the token, 76021 for a path that is not one of the APIs it knows, 76022 for `/sns/*`
//! (not counted by this API).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::routes::{answer, params, wx_error};
use super::state::Inner;
use super::wire::WxErr;
use super::Shared;

/// The APIs whose daily limit the mock answers (any other path: 76021).
const LIMITS: [(&str, u64); 11] = [
    ("/cgi-bin/token", 2000),
    ("/cgi-bin/stable_token", 10_000),
    ("/cgi-bin/ticket/getticket", 100_000),
    ("/cgi-bin/getcallbackip", 100_000),
    ("/cgi-bin/message/custom/send", 500_000),
    ("/cgi-bin/message/template/send", 100_000),
    ("/cgi-bin/user/info", 5_000_000),
    ("/cgi-bin/user/get", 500),
    ("/cgi-bin/media/upload", 100_000),
    ("/cgi-bin/media/get", 100_000),
    ("/cgi-bin/openapi/quota/get", 10_000),
];

pub(crate) async fn quota_get(
    State(shared): State<std::sync::Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = params(q);
    let s = shared.lock();
    let appid = match s.check_access_token(q.get("access_token").map(String::as_str)) {
        Ok(appid) => appid,
        Err(e) => return wx_error(e),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return wx_error(WxErr::code(47001));
    };
    let Some(path) = body.get("cgi_path").and_then(Value::as_str) else {
        return wx_error(WxErr::code(76021));
    };
    if path.starts_with("/sns/") {
        return wx_error(WxErr::code(76022));
    }
    let Some(daily_limit) = LIMITS.iter().find(|(p, _)| *p == path).map(|(_, l)| *l) else {
        return wx_error(WxErr::code(76021));
    };
    let used = s.quota_used(&appid, path);
    answer(Ok(json!({
        "errcode": 0,
        "errmsg": "ok",
        "quota": {
            "daily_limit": daily_limit,
            "used": used,
            "remain": daily_limit.saturating_sub(used),
        }
    })))
}

impl Inner {
    /// Counts one call of `path` (`/cgi-bin/…`) made with the access token in `query`, when it
    /// names a valid one.
    pub(crate) fn count_quota_use(&mut self, path: &str, query: Option<&str>) {
        if !path.starts_with("/cgi-bin/") {
            return;
        }
        let token = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        });
        if let Ok(appid) = self.check_access_token(token.as_deref()) {
            *self.quota_used.entry((appid, path.to_owned())).or_default() += 1;
        }
    }

    pub(crate) fn quota_used(&self, appid: &str, path: &str) -> u64 {
        self.quota_used
            .get(&(appid.to_owned(), path.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}
