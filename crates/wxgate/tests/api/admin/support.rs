//! Shared by the admin tests: a mock that knows a second (shop) account, a config with the
//! admin API on, admin calls, pushes signed or sealed for an account, and waiting until a
//! change is in force.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use wxgate::vault::MasterKey;
use wxgate_proto::crypto::seal_reply;
use wxgate_proto::signature::signature;
use wxgate_proto::AesKey;

use crate::helpers::*;

pub(super) const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub(super) const SHOP_APPID: &str = "wx00000000000000a1";
pub(super) const SHOP_SECRET: &str = "shop-secret-0123456789";
pub(super) const SHOP_TOKEN: &str = "shoptoken42";
pub(super) const KEY_OLD: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub(super) const KEY_NEW: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
/// SPEC.md: a change is in force on every instance within 2 s.
pub(super) const FOLLOW_WITHIN: Duration = Duration::from_secs(2);

pub(super) fn admin_tail(master_key: &str) -> String {
    format!("[admin]\nkeys = [\"{ADMIN_KEY}\"]\nmaster_key = \"{master_key}\"\n")
}

/// A mock that knows the shop account too, and a config with the admin API on.
pub(super) async fn setup() -> (wxgate_mock::MockWechat, GatewayConfig) {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts.push(wxgate_mock::MockAccount {
            appid: SHOP_APPID.into(),
            secret: SHOP_SECRET.into(),
        })
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    config.tail = admin_tail(MasterKey::random().to_base64().expose_secret());
    (mock, config)
}

pub(super) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}/admin/api/v1/{path}", app.base))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(super) fn shop_body(extra: Value) -> Value {
    let mut body = json!({
        "appid": SHOP_APPID,
        "secret": SHOP_SECRET,
        "token": SHOP_TOKEN,
        "js_domains": ["h5.shop.example"],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Polls `check` until it holds or `within` passes; the elapsed time when it held.
pub(super) async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not in force within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn status_of(app: &TestApp, url: String, key: &str) -> u16 {
    app.http
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A plaintext text push to `/wx/{account}` signed with `token`.
pub(super) async fn plain_push(app: &TestApp, account: &str, token: &str) -> (u16, String) {
    send_plain_push_to(&app.base, account, token, "oUser", "hi").await
}

/// A safe-mode push sealed with `key`.
pub(super) async fn sealed_push(app: &TestApp, account: &str, key: &str) -> u16 {
    let ts = wxgate::domain::unix_now();
    let nonce = rand::random::<u32>().to_string();
    let sig = signature(SHOP_TOKEN, &ts.to_string(), &nonce);
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
         <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>\
         <MsgId>{}</MsgId></xml>",
        rand::random::<u32>()
    );
    let aes = AesKey::from_encoding_aes_key(key).unwrap();
    let sealed = seal_reply(
        &aes,
        SHOP_TOKEN,
        SHOP_APPID,
        &xml,
        Some(ts as u64),
        Some(&nonce),
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        sealed.encrypt
    );
    app.http
        .post(format!(
            "{}/wx/{account}?signature={sig}&timestamp={ts}&nonce={nonce}&openid=oUser&encrypt_type=aes&msg_signature={}",
            app.base, sealed.msg_signature
        ))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub(super) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
