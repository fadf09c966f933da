//! Shared by the push tests: the helpers that play WeChat (signed, safe-mode and compatible-mode
//! pushes, encrypted replies opened as WeChat opens them), gateways configured for a test, and
//! a webhook served in this process that counts calls and checks the HMAC header.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rand::Rng;
use serde_json::Value;
use wxgate_proto::crypto::{seal_reply, AesKey, KeyRing};
use wxgate_proto::signature::{msg_signature, signature};
use wxgate_proto::xml::Fields;
use wxgate_proto::{ParsedReply, Reply};

use crate::helpers::{spawn_app, start_mock, GatewayConfig, TestApp, AES_KEY, APPID, TOKEN};

pub(super) const OLD_AES_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
pub(super) const OTHER_APPID: &str = "wx9999999999999999";
const WEBHOOK_SECRET: &str = "webhook-secret-123";

// ---------------------------------------------------------------------------------------------
// Playing WeChat.

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(super) fn nonce() -> String {
    rand::thread_rng()
        .gen_range(1_000_000_000u64..9_999_999_999)
        .to_string()
}

pub(super) fn msg_id() -> u64 {
    rand::thread_rng().gen_range(1u64..1_000_000_000_000_000)
}

pub(super) fn text_xml(openid: &str, content: &str, id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{id}</MsgId></xml>",
        now()
    )
}

pub(super) fn event_xml(openid: &str, event: &str, key: Option<&str>, create_time: i64) -> String {
    let key = key
        .map(|k| format!("<EventKey><![CDATA[{k}]]></EventKey>"))
        .unwrap_or_default();
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event>{key}</xml>"
    )
}

/// What WeChat would send for one account.
pub(super) struct Wechat {
    pub(super) base: String,
    pub(super) account: String,
    pub(super) token: String,
    pub(super) appid: String,
    pub(super) http: reqwest::Client,
}

/// A push as sent: its query string and body.
pub(super) struct Push {
    pub(super) query: String,
    pub(super) body: String,
}

impl Wechat {
    pub(super) fn new(app: &TestApp) -> Self {
        Self::for_base(&app.base)
    }

    fn for_base(base: &str) -> Self {
        Wechat {
            base: base.to_owned(),
            account: "main".into(),
            token: TOKEN.into(),
            appid: APPID.into(),
            http: crate::helpers::http_client(),
        }
    }

    pub(super) fn url(&self) -> String {
        format!("{}/wx/{}", self.base, self.account)
    }

    pub(super) fn signed_query_at(&self, ts: i64) -> (String, String, String) {
        let ts = ts.to_string();
        let n = nonce();
        let sig = signature(&self.token, &ts, &n);
        (
            format!("signature={sig}&timestamp={ts}&nonce={n}&openid=oUser"),
            ts,
            n,
        )
    }

    pub(super) fn plain(&self, xml: &str) -> Push {
        let (query, _, _) = self.signed_query_at(now());
        Push {
            query,
            body: xml.to_owned(),
        }
    }

    /// Safe mode: only `<Encrypt>` (plus `ToUserName`) in the body.
    pub(super) fn safe_with(&self, xml: &str, key: &str, appid: &str, ts: i64) -> Push {
        let (query, ts, n) = self.signed_query_at(ts);
        let key = AesKey::from_encoding_aes_key(key).unwrap();
        let sealed = seal_reply(
            &key,
            &self.token,
            appid,
            xml,
            Some(ts.parse().unwrap()),
            Some(&n),
        );
        Push {
            query: format!(
                "{query}&encrypt_type=aes&msg_signature={}",
                sealed.msg_signature
            ),
            body: format!(
                "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
                sealed.encrypt
            ),
        }
    }

    pub(super) fn safe(&self, xml: &str) -> Push {
        self.safe_with(xml, AES_KEY, &self.appid, now())
    }

    /// Compatible mode: the plaintext fields AND `<Encrypt>` in one body.
    pub(super) fn compatible(&self, xml: &str) -> Push {
        let safe = self.safe(xml);
        let encrypt_start = safe.body.find("<Encrypt>").unwrap();
        let encrypt_end = safe.body.find("</Encrypt>").unwrap() + "</Encrypt>".len();
        let encrypt = &safe.body[encrypt_start..encrypt_end];
        let body = xml.replacen("</xml>", &format!("{encrypt}</xml>"), 1);
        Push {
            query: safe.query,
            body,
        }
    }

    pub(super) async fn send(&self, push: &Push) -> (u16, HeaderMap, String) {
        self.send_raw(&push.query, push.body.clone()).await
    }

    pub(super) async fn send_raw(
        &self,
        query: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, HeaderMap, String) {
        let resp = self
            .http
            .post(format!("{}?{query}", self.url()))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }
}

pub(super) fn content_type(h: &HeaderMap) -> String {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

pub(super) fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

/// An encrypted reply opened as WeChat would: `MsgSignature` checked, decrypted with `key`
/// (which must work), appid checked. Returns the reply and its envelope fields.
pub(super) fn open_encrypted(body: &str, key: &str) -> (ParsedReply, String, String) {
    let (_, fields) = Fields::parse_document(body.as_bytes()).unwrap();
    let encrypt = fields.text("Encrypt").expect("Encrypt");
    let ts = fields.text("TimeStamp").expect("TimeStamp").to_owned();
    let n = fields.text("Nonce").expect("Nonce").to_owned();
    let sig = fields.text("MsgSignature").expect("MsgSignature");
    assert_eq!(
        sig,
        msg_signature(TOKEN, &ts, &n, encrypt),
        "reply MsgSignature"
    );
    let ring = KeyRing::from_encoding_aes_keys(key, None).unwrap();
    let (decrypted, _) = ring
        .decrypt(encrypt, Some(APPID))
        .expect("decrypts with this key");
    let xml = decrypted.into_message_string().unwrap();
    (Reply::parse_xml(xml.as_bytes()).unwrap(), ts, n)
}

pub(super) fn plain_reply(body: &str) -> ParsedReply {
    Reply::parse_xml(body.as_bytes()).unwrap_or_else(|e| panic!("not a reply ({e}): {body}"))
}

pub(super) const HELLO_RULE: &str = r#"
[[accounts.rules]]
keyword = "hello"
reply = { type = "text", content = "world" }
"#;

pub(super) fn aes_extra() -> String {
    format!("encoding_aes_key = \"{AES_KEY}\"\n")
}

/// A key, and plaintext pushes still accepted (the switch-over to safe mode): for tests that
/// send the same push in both modes.
pub(super) fn aes_mixed_extra() -> String {
    format!("{}accept_plaintext = true\n", aes_extra())
}

pub(super) async fn app_with(extra: &str, tail: &str) -> (TestApp, GatewayConfig) {
    let (_mock, addr) = start_mock().await;
    std::mem::forget(_mock);
    let mut config = GatewayConfig::new(addr);
    config.account_extra = extra.to_owned();
    config.tail = tail.to_owned();
    (spawn_app(&config).await, config)
}

// ---------------------------------------------------------------------------------------------
// A webhook in this process.

#[derive(Clone)]
pub(super) struct Hook {
    pub(super) calls: Arc<AtomicUsize>,
    pub(super) bad_signatures: Arc<AtomicUsize>,
    pub(super) bodies: Arc<Mutex<Vec<Value>>>,
    pub(super) delay: Duration,
    pub(super) status: u16,
    pub(super) answer: String,
}

impl Hook {
    pub(super) fn answering(answer: Value) -> Hook {
        Hook {
            calls: Arc::default(),
            bad_signatures: Arc::default(),
            bodies: Arc::default(),
            delay: Duration::ZERO,
            status: 200,
            answer: answer.to_string(),
        }
    }

    pub(super) async fn start(self) -> (Hook, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook_handler))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (self, addr)
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn hook_handler(
    State(hook): State<Hook>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    hook.calls.fetch_add(1, Ordering::SeqCst);
    let expected = wxgate::push::webhook::sign(WEBHOOK_SECRET.as_bytes(), &body);
    // Checked independently of wxgate's own helper too: HMAC-SHA256 over the exact body.
    {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        assert_eq!(
            expected,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
    let got = headers
        .get("x-wxgate-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != expected {
        hook.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        hook.bodies.lock().unwrap().push(v);
    }
    tokio::time::sleep(hook.delay).await;
    (
        StatusCode::from_u16(hook.status).unwrap(),
        [("content-type", "application/json")],
        hook.answer.clone(),
    )
}

pub(super) fn webhook_extra(addr: SocketAddr, timeout_ms: u64) -> String {
    format!(
        "webhook = {{ url = \"http://{addr}/hook\", secret = \"{WEBHOOK_SECRET}\", timeout_ms = {timeout_ms} }}\n"
    )
}
