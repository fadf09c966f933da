//! Message push end to end over HTTP: a real gateway (in-process, or two of them on Redis) is
//! sent what WeChat sends — signed, and in safe/compatible mode encrypted, with the helpers
//! below playing WeChat — and its answers are checked byte for byte where the protocol fixes
//! them. Webhooks are small axum servers in this process that count calls and check the HMAC
//! header; late replies are read back from the mock WeChat API's customer-service endpoint;
//! follower records are read from the gateway's own database (SQLite, and PostgreSQL when
//! `WXGATE_TEST_POSTGRES_URL` is set).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use wxgate_proto::crypto::{seal_reply, AesKey, KeyRing};
use wxgate_proto::signature::{msg_signature, signature};
use wxgate_proto::xml::Fields;
use wxgate_proto::{ParsedReply, Reply};

use crate::helpers::{
    in_fresh_mongo_db, in_fresh_pg_schema, spawn_app, start_mock, GatewayConfig, TestApp, AES_KEY,
    APPID, TOKEN,
};

const OLD_AES_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
const OTHER_APPID: &str = "wx9999999999999999";
const WEBHOOK_SECRET: &str = "webhook-secret-123";

// ---------------------------------------------------------------------------------------------
// Playing WeChat.

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nonce() -> String {
    rand::thread_rng()
        .gen_range(1_000_000_000u64..9_999_999_999)
        .to_string()
}

fn msg_id() -> u64 {
    rand::thread_rng().gen_range(1u64..1_000_000_000_000_000)
}

fn text_xml(openid: &str, content: &str, id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{id}</MsgId></xml>",
        now()
    )
}

fn event_xml(openid: &str, event: &str, key: Option<&str>, create_time: i64) -> String {
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
struct Wechat {
    base: String,
    account: String,
    token: String,
    appid: String,
    http: reqwest::Client,
}

/// A push as sent: its query string and body.
struct Push {
    query: String,
    body: String,
}

impl Wechat {
    fn new(app: &TestApp) -> Self {
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

    fn url(&self) -> String {
        format!("{}/wx/{}", self.base, self.account)
    }

    fn signed_query_at(&self, ts: i64) -> (String, String, String) {
        let ts = ts.to_string();
        let n = nonce();
        let sig = signature(&self.token, &ts, &n);
        (
            format!("signature={sig}&timestamp={ts}&nonce={n}&openid=oUser"),
            ts,
            n,
        )
    }

    fn plain(&self, xml: &str) -> Push {
        let (query, _, _) = self.signed_query_at(now());
        Push {
            query,
            body: xml.to_owned(),
        }
    }

    /// Safe mode: only `<Encrypt>` (plus `ToUserName`) in the body.
    fn safe_with(&self, xml: &str, key: &str, appid: &str, ts: i64) -> Push {
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

    fn safe(&self, xml: &str) -> Push {
        self.safe_with(xml, AES_KEY, &self.appid, now())
    }

    /// Compatible mode: the plaintext fields AND `<Encrypt>` in one body.
    fn compatible(&self, xml: &str) -> Push {
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

    async fn send(&self, push: &Push) -> (u16, HeaderMap, String) {
        self.send_raw(&push.query, push.body.clone()).await
    }

    async fn send_raw(
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

fn content_type(h: &HeaderMap) -> String {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

/// An encrypted reply opened as WeChat would: `MsgSignature` checked, decrypted with `key`
/// (which must work), appid checked. Returns the reply and its envelope fields.
fn open_encrypted(body: &str, key: &str) -> (ParsedReply, String, String) {
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

fn plain_reply(body: &str) -> ParsedReply {
    Reply::parse_xml(body.as_bytes()).unwrap_or_else(|e| panic!("not a reply ({e}): {body}"))
}

const HELLO_RULE: &str = r#"
[[accounts.rules]]
keyword = "hello"
reply = { type = "text", content = "world" }
"#;

fn aes_extra() -> String {
    format!("encoding_aes_key = \"{AES_KEY}\"\n")
}

/// A key, and plaintext pushes still accepted (the switch-over to safe mode): for tests that
/// send the same push in both modes.
fn aes_mixed_extra() -> String {
    format!("{}accept_plaintext = true\n", aes_extra())
}

async fn app_with(extra: &str, tail: &str) -> (TestApp, GatewayConfig) {
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
struct Hook {
    calls: Arc<AtomicUsize>,
    bad_signatures: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
    delay: Duration,
    status: u16,
    answer: String,
}

impl Hook {
    fn answering(answer: Value) -> Hook {
        Hook {
            calls: Arc::default(),
            bad_signatures: Arc::default(),
            bodies: Arc::default(),
            delay: Duration::ZERO,
            status: 200,
            answer: answer.to_string(),
        }
    }

    async fn start(self) -> (Hook, SocketAddr) {
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

    fn calls(&self) -> usize {
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

fn webhook_extra(addr: SocketAddr, timeout_ms: u64) -> String {
    format!(
        "webhook = {{ url = \"http://{addr}/hook\", secret = \"{WEBHOOK_SECRET}\", timeout_ms = {timeout_ms} }}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// URL verification.

#[tokio::test]
async fn url_verification_echoes_echostr_for_the_official_vector() {
    let tail = r#"
[[accounts]]
name = "official"
appid = "wx0000000000000001"
secret = "s"
token = "AAAAA"
[push]
replay_window_s = 0
"#;
    let (app, _) = app_with("", tail).await;
    let resp = app
        .http
        .get(format!(
            "{}/wx/official?signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(content_type(resp.headers()).starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "4375120948345356249");

    let resp = app
        .http
        .get(format!(
            "{}/wx/official?signature=f464b24fc39322e44b38aa78f5edd27bd1441697&timestamp=1714036504&nonce=1514711492&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(&resp.text().await.unwrap()), "invalid_signature");
    app.stop().await;
}

#[tokio::test]
async fn url_verification_refuses_stale_timestamps_missing_parameters_and_unknown_accounts() {
    let (app, _) = app_with("", "").await;
    let wx = Wechat::new(&app);
    let get = |query: String| {
        let http = app.http.clone();
        let url = format!("{}?{query}", wx.url());
        async move {
            let r = http.get(url).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.text().await.unwrap())
        }
    };
    let (q, _, _) = wx.signed_query_at(now());
    assert_eq!(
        get(format!("{q}&echostr=abc")).await,
        (200, "abc".to_owned())
    );
    let (q, _, _) = wx.signed_query_at(now() - 3600);
    let (s, body) = get(format!("{q}&echostr=abc")).await;
    assert_eq!((s, error_code(&body).as_str()), (403, "stale_timestamp"));
    let (s, body) = get(format!("timestamp={}&nonce=1&echostr=abc", now())).await;
    assert_eq!((s, error_code(&body).as_str()), (400, "missing_parameter"));
    let (q, _, _) = wx.signed_query_at(now());
    let (s, body) = get(q).await;
    assert_eq!((s, error_code(&body).as_str()), (400, "missing_parameter"));
    let r = app
        .http
        .get(format!(
            "{}/wx/nobody?signature=a&timestamp=1&nonce=1&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.text().await.unwrap()), "unknown_account");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The three modes.

#[tokio::test]
async fn a_plaintext_text_message_gets_the_rule_reply_as_plain_xml() {
    let (app, _) = app_with("", HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let (status, headers, body) = wx
        .send(&wx.plain(&text_xml("oAlice", "hello", msg_id())))
        .await;
    assert_eq!(status, 200, "{body}");
    let ct = content_type(&headers);
    assert!(
        ct.starts_with("application/xml") || ct.starts_with("text/xml"),
        "{ct}"
    );
    let reply = plain_reply(&body);
    assert_eq!(reply.reply, Reply::text("world"));
    assert_eq!(reply.to_user, "oAlice");
    assert_eq!(reply.from_user, "gh_test");
    assert!((reply.create_time - now()).abs() < 5);
    app.stop().await;
}

#[tokio::test]
async fn a_message_no_rule_answers_gets_200_success_as_text_plain() {
    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    for push in [
        wx.plain(&text_xml("oAlice", "something else", msg_id())),
        wx.safe(&text_xml("oAlice", "something else", msg_id())),
    ] {
        let (status, headers, body) = wx.send(&push).await;
        assert_eq!((status, body.as_str()), (200, "success"));
        assert!(content_type(&headers).starts_with("text/plain"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_safe_mode_message_gets_an_encrypted_reply_with_a_fresh_nonce_and_timestamp() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.safe_with(
        &text_xml("oBob", "hello", msg_id()),
        AES_KEY,
        APPID,
        now() - 100,
    );
    let (status, headers, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type(&headers).contains("xml"));
    assert!(
        !body.contains("world"),
        "the reply must be encrypted: {body}"
    );
    let (reply, ts, n) = open_encrypted(&body, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    assert_eq!(reply.to_user, "oBob");
    assert!(
        !push.query.contains(&format!("nonce={n}&")),
        "nonce must be fresh"
    );
    assert!(
        (ts.parse::<i64>().unwrap() - now()).abs() < 5,
        "timestamp must be now"
    );
    app.stop().await;
}

#[tokio::test]
async fn compatible_mode_with_encrypt_type_aes_is_decrypted_and_answered_encrypted() {
    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.compatible(&text_xml("oCarol", "hello", msg_id()));
    assert!(push.body.contains("<Content>") && push.body.contains("<Encrypt>"));
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    let (reply, _, _) = open_encrypted(&body, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));

    // The same kind of body without encrypt_type is read as plaintext and answered so.
    let compat = wx.compatible(&text_xml("oCarol", "hello", msg_id()));
    let (plain_query, _, _) = wx.signed_query_at(now());
    let (status, _, body) = wx.send_raw(&plain_query, compat.body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    app.stop().await;
}

#[tokio::test]
async fn a_message_encrypted_with_the_previous_key_is_answered_with_the_previous_key() {
    let extra = format!(
        "{}encoding_aes_key_previous = \"{OLD_AES_KEY}\"\n",
        aes_extra()
    );
    let (app, _) = app_with(&extra, HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.safe_with(
        &text_xml("oDave", "hello", msg_id()),
        OLD_AES_KEY,
        APPID,
        now(),
    );
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    let (reply, _, _) = open_encrypted(&body, OLD_AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    let (_, fields) = Fields::parse_document(body.as_bytes()).unwrap();
    let current = KeyRing::from_encoding_aes_keys(AES_KEY, None).unwrap();
    assert!(current
        .decrypt(fields.text("Encrypt").unwrap(), Some(APPID))
        .is_err());

    // And the current key still works, answered with the current key.
    let (_, _, body) = wx
        .send(&wx.safe(&text_xml("oDave", "hello", msg_id())))
        .await;
    open_encrypted(&body, AES_KEY);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[tokio::test]
async fn bad_pushes_get_the_spec_error_codes() {
    let tail = format!(
        "{HELLO_RULE}\n[[accounts]]\nname = \"notoken\"\nappid = \"wx0000000000000002\"\nsecret = \"s\"\n\
         [[accounts]]\nname = \"plainonly\"\nappid = \"wx0000000000000003\"\nsecret = \"s\"\ntoken = \"{TOKEN}\"\n"
    );
    let (app, _) = app_with(&aes_mixed_extra(), &tail).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oEve", "hello", msg_id());

    let mut cases: Vec<(&str, String, String, u16, &str)> = Vec::new();
    // wrong signature
    let p = wx.plain(&xml);
    let bad = p.query.replacen("signature=", "signature=0", 1);
    cases.push(("wrong signature", bad, p.body, 403, "invalid_signature"));
    // wrong msg_signature
    let p = wx.safe(&xml);
    let bad = p.query.replacen("msg_signature=", "msg_signature=0", 1);
    cases.push(("wrong msg_signature", bad, p.body, 403, "invalid_signature"));
    // wrong appid inside the ciphertext
    let p = wx.safe_with(&xml, AES_KEY, OTHER_APPID, now());
    cases.push(("wrong appid", p.query, p.body, 403, "invalid_signature"));
    // stale timestamp, both modes
    let p = wx.safe_with(&xml, AES_KEY, APPID, now() - 601);
    cases.push(("stale safe", p.query, p.body, 403, "stale_timestamp"));
    let (q, _, _) = wx.signed_query_at(now() + 3600);
    cases.push(("future plain", q, xml.clone(), 403, "stale_timestamp"));
    // malformed XML
    let p = wx.plain("<xml><ToUserName>gh</ToUserName><FromUserName>");
    cases.push(("malformed", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain("not xml at all");
    cases.push(("not xml", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain("<xml><ToUserName>gh</ToUserName></xml>");
    cases.push(("missing fields", p.query, p.body, 400, "invalid_message"));
    // DTD bomb, in plaintext and as the decrypted content
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
        <xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>";
    let p = wx.plain(bomb);
    cases.push(("dtd bomb", p.query, p.body, 400, "invalid_message"));
    let p = wx.safe(bomb);
    cases.push((
        "encrypted dtd bomb",
        p.query,
        p.body,
        400,
        "invalid_message",
    ));
    let p = wx.plain("<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><xml/>");
    cases.push(("xxe", p.query, p.body, 400, "invalid_message"));
    // missing parameters
    let p = wx.plain(&xml);
    let no_sig: String = p
        .query
        .split('&')
        .filter(|kv| !kv.starts_with("signature="))
        .collect::<Vec<_>>()
        .join("&");
    cases.push((
        "no signature",
        no_sig,
        xml.clone(),
        400,
        "missing_parameter",
    ));
    let p = wx.safe(&xml);
    let no_msg_sig: String = p
        .query
        .split('&')
        .filter(|kv| !kv.starts_with("msg_signature="))
        .collect::<Vec<_>>()
        .join("&");
    cases.push((
        "no msg_signature",
        no_msg_sig,
        p.body,
        400,
        "missing_parameter",
    ));
    cases.push((
        "nothing",
        String::new(),
        xml.clone(),
        400,
        "missing_parameter",
    ));
    // a ciphertext nobody can decrypt but correctly signed
    let p = wx.safe_with(&xml, OLD_AES_KEY, APPID, now());
    cases.push(("unknown key", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain(&xml);
    cases.push((
        "odd encrypt_type",
        format!("{}&encrypt_type=rot13", p.query),
        p.body,
        400,
        "invalid_parameter",
    ));

    for (name, query, body, status, code) in cases {
        let (s, _, b) = wx.send_raw(&query, body).await;
        assert_eq!((s, error_code(&b).as_str()), (status, code), "{name}: {b}");
    }

    // oversize body
    let big = format!("<xml><Content>{}</Content></xml>", "a".repeat(70_000));
    let p = wx.plain(&big);
    let (s, _, b) = wx.send(&p).await;
    assert_eq!((s, error_code(&b).as_str()), (413, "body_too_large"));
    // streamed (chunked) oversize body
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'a'; 8192])).collect();
    let (s, _, b) = wx
        .send_raw(
            &p.query,
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!((s, error_code(&b).as_str()), (413, "body_too_large"));

    // unknown account, account without token, aes push to an account without a key
    let mut other = Wechat::new(&app);
    other.account = "nobody".into();
    let (s, _, b) = other.send(&other.plain(&xml)).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "unknown_account"));
    other.account = "notoken".into();
    let (s, _, b) = other.send(&other.plain(&xml)).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "push_disabled"));
    let r = app
        .http
        .get(format!(
            "{}/wx/notoken?signature=a&timestamp=1&nonce=1&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    other.account = "plainonly".into();
    other.appid = "wx0000000000000003".into();
    let (s, _, b) = other.send(&other.safe(&xml)).await;
    assert_eq!(
        (s, error_code(&b).as_str()),
        (400, "encryption_not_configured")
    );

    // And nothing broke.
    let (s, _, b) = wx
        .send(&wx.plain(&text_xml("oEve", "hello", msg_id())))
        .await;
    assert_eq!(s, 200);
    assert_eq!(plain_reply(&b).reply, Reply::text("world"));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// De-duplication.

#[tokio::test]
async fn a_retry_storm_runs_the_webhook_once_and_gets_identical_answers() {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "from the hook"}}));
    hook.delay = Duration::from_millis(400);
    let (hook, addr) = hook.start().await;
    let (app, _) = app_with(
        &format!("{}{}", aes_mixed_extra(), webhook_extra(addr, 3000)),
        "",
    )
    .await;
    let wx = Arc::new(Wechat::new(&app));
    let xml = text_xml("oFrank", "anything?", msg_id());
    // Three deliveries of the same message, each signed afresh like WeChat's retries.
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    assert_eq!(hook.calls(), 1, "the webhook must run once");
    assert_eq!(hook.bad_signatures.load(Ordering::SeqCst), 0);
    for (s, _, body) in &answers {
        assert_eq!(*s, 200);
        assert_eq!(body, &answers[0].2, "identical bytes for every delivery");
    }
    let (reply, _, _) = open_encrypted(&answers[0].2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("from the hook"));
    // A later retry too.
    let (_, _, again) = wx.send(&wx.safe(&xml)).await;
    assert_eq!(again, answers[0].2);
    assert_eq!(hook.calls(), 1);

    // Events are deduplicated by FromUserName + CreateTime + Event (+ EventKey).
    let ev = event_xml("oFrank", "CLICK", Some("MENU_1"), now());
    let (_, _, a) = wx.send(&wx.plain(&ev)).await;
    let (_, _, b) = wx.send(&wx.plain(&ev)).await;
    assert_eq!(a, b);
    assert_eq!(hook.calls(), 2);
    let other_key = event_xml("oFrank", "CLICK", Some("MENU_2"), now());
    wx.send(&wx.plain(&other_key)).await;
    assert_eq!(hook.calls(), 3);
    app.stop().await;
}

#[tokio::test]
async fn retries_of_a_rule_answered_push_get_the_very_same_encrypted_bytes() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oRita", "hello", msg_id());
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wx.send(&wx.safe(&xml)).await;
    for (s, _, body) in &answers {
        assert_eq!(*s, 200);
        assert_eq!(
            body, &later,
            "identical bytes, although every seal has a fresh nonce"
        );
    }
    assert_eq!(
        open_encrypted(&later, AES_KEY).0.reply,
        Reply::text("world")
    );
    // A different message is a different answer.
    let (_, _, other) = wx
        .send(&wx.safe(&text_xml("oRita", "hello", msg_id())))
        .await;
    assert_ne!(other, later);
    app.stop().await;
}

/// What the gateway's store holds for the push with MsgId `id` of account `main`.
async fn dedup_record(app: &TestApp, id: u64) -> Option<Vec<u8>> {
    app.state
        .store
        .get(&format!("push:main:id:{id}"))
        .await
        .unwrap()
}

/// The text message `content` from `openid` stamped `create_time` (WeChat's clock).
fn text_xml_at(openid: &str, content: &str, id: u64, create_time: i64) -> String {
    text_xml(openid, content, id).replacen(
        &format!("<CreateTime>{}</CreateTime>", now()),
        &format!("<CreateTime>{create_time}</CreateTime>"),
        1,
    )
}

#[tokio::test]
async fn a_current_rule_answered_push_gets_the_same_bytes_from_instances_that_share_no_store() {
    // Two gateways, each with its own memory store: nothing is shared but the configuration.
    let (a, config) = app_with(&aes_extra(), HELLO_RULE).await;
    let b = spawn_app(&config).await;
    let (wa, wb) = (Wechat::new(&a), Wechat::new(&b));
    let created = now() - 3;
    let id = msg_id();
    let xml = text_xml_at("oSam", "hello", id, created);
    let deliveries = [wa.safe(&xml), wb.safe(&xml), wa.safe(&xml)];
    let answers = futures::future::join_all(
        deliveries
            .iter()
            .zip([&wa, &wb, &wa])
            .map(|(p, w)| w.send(p)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wb.send(&wb.safe(&xml)).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body, &later,
            "every delivery, at either instance, gets the same bytes"
        );
    }
    let (reply, ts, n) = open_encrypted(&later, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    // Stamped with the push's own time, inside and outside the envelope; the nonce is none of
    // the requests'.
    assert_eq!(ts, created.to_string());
    assert_eq!(reply.create_time, created);
    for p in &deliveries {
        assert!(
            !p.query.contains(&format!("nonce={n}&")),
            "nonce must be fresh"
        );
    }
    // Nothing was written for it: the answer is derived from the push, not remembered.
    for app in [&a, &b] {
        assert_eq!(dedup_record(app, id).await, None);
    }
    // Another message with the same sender, time and reply is sealed differently.
    let (_, _, other) = wa
        .send(&wa.safe(&text_xml_at("oSam", "hello", msg_id(), created)))
        .await;
    let (other_reply, other_ts, other_nonce) = open_encrypted(&other, AES_KEY);
    assert_eq!(other_reply.reply, Reply::text("world"));
    assert_eq!(other_ts, ts);
    assert_ne!(other_nonce, n);
    assert_ne!(other, later);

    // Plaintext mode: the same for the reply XML.
    let (c, config) = app_with("", HELLO_RULE).await;
    let d = spawn_app(&config).await;
    let (wc, wd) = (Wechat::new(&c), Wechat::new(&d));
    let plain = text_xml_at("oSam", "hello", msg_id(), created);
    let (_, _, first) = wc.send(&wc.plain(&plain)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, second) = wd.send(&wd.plain(&plain)).await;
    assert_eq!(first, second);
    assert_eq!(plain_reply(&first).create_time, created);
    for app in [a, b, c, d] {
        app.stop().await;
    }
}

#[tokio::test]
async fn a_push_stamped_far_from_the_gateway_clock_is_answered_at_the_gateway_time_and_kept_for_retries(
) {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let id = msg_id();
    // An hour old (the request itself is current, so it passes the replay window).
    let xml = text_xml_at("oTess", "hello", id, now() - 3600);
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    let (reply, ts, _) = open_encrypted(&answers[0].2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    assert!(
        (ts.parse::<i64>().unwrap() - now()).abs() < 5,
        "timestamp must be now: {ts}"
    );
    assert!((reply.create_time - now()).abs() < 5);
    // A second later the clock has moved on, yet the retry gets the first answer's bytes: they
    // come from the de-duplication record.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wx.send(&wx.safe(&xml)).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &later);
    }
    assert!(
        dedup_record(&app, id).await.is_some(),
        "the answer is kept for retries"
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_are_deduplicated_across_two_gateway_instances_sharing_redis() {
    let Some(redis) = crate::helpers::redis_url(
        "retries_are_deduplicated_across_two_gateway_instances_sharing_redis",
    ) else {
        return;
    };
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "once"}}));
    hook.delay = Duration::from_millis(300);
    let (hook, addr) = hook.start().await;
    let (_mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.storage_url = redis;
    config.key_prefix = crate::helpers::unique_prefix();
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 3000));
    let a = spawn_app(&config).await;
    let b = spawn_app(&config).await;
    let wa = Wechat::new(&a);
    let wb = Wechat::new(&b);
    let xml = text_xml("oGrace", "hi", msg_id());
    let (pa, pb, pc) = (wa.safe(&xml), wb.safe(&xml), wa.safe(&xml));
    let (ra, rb, rc) = tokio::join!(wa.send(&pa), wb.send(&pb), wa.send(&pc));
    assert_eq!(hook.calls(), 1);
    assert_eq!(ra.2, rb.2);
    assert_eq!(ra.2, rc.2);
    let (reply, _, _) = open_encrypted(&ra.2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("once"));
    let (_, _, later) = wb.send(&wb.safe(&xml)).await;
    assert_eq!(later, ra.2);
    assert_eq!(hook.calls(), 1);
    a.stop().await;
    b.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Webhook.

#[tokio::test]
async fn the_webhook_gets_the_message_as_signed_json_and_its_reply_is_the_passive_reply() {
    let (hook, addr) = Hook::answering(json!({"reply": {"type": "news", "articles": [
        {"title": "T", "description": "D", "url": "https://e.com/a", "pic_url": "https://e.com/p.jpg"}]}}))
    .start()
    .await;
    let (app, _) = app_with(&webhook_extra(addr, 2000), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let id = msg_id();
    let (s, _, body) = wx
        .send(&wx.plain(&text_xml("oHeidi", "what's new?", id)))
        .await;
    assert_eq!(s, 200);
    let reply = plain_reply(&body);
    match reply.reply {
        Reply::News { articles } => assert_eq!(articles[0].pic_url, "https://e.com/p.jpg"),
        other => panic!("expected news, got {other:?}"),
    }
    assert_eq!(hook.bad_signatures.load(Ordering::SeqCst), 0);
    let sent = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["MsgType"], "text");
    assert_eq!(sent["Content"], "what's new?");
    assert_eq!(sent["FromUserName"], "oHeidi");
    assert_eq!(sent["ToUserName"], "gh_test");
    assert_eq!(sent["MsgId"], json!(id));

    // A rule answers first: the webhook is not asked.
    let (_, _, body) = wx
        .send(&wx.plain(&text_xml("oHeidi", "hello", msg_id())))
        .await;
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    assert_eq!(hook.calls(), 1);
    app.stop().await;
}

#[tokio::test]
async fn webhook_answers_without_a_reply_and_webhook_failures_give_success() {
    let answers: Vec<(u16, String)> = vec![
        (204, String::new()),
        (200, "{}".into()),
        (200, r#"{"reply": null}"#.into()),
        (500, r#"{"reply": {"type": "text", "content": "x"}}"#.into()),
        (200, "not json".into()),
        (200, r#"{"reply": {"type": "news", "articles": []}}"#.into()),
        (200, r#"{"reply": {"type": "bogus"}}"#.into()),
    ];
    for (status, answer) in answers {
        let mut hook = Hook::answering(Value::Null);
        hook.status = status;
        hook.answer = answer.clone();
        let (hook, addr) = hook.start().await;
        let (app, _) = app_with(&webhook_extra(addr, 2000), "").await;
        let wx = Wechat::new(&app);
        let (s, _, body) = wx.send(&wx.plain(&text_xml("oIvan", "q", msg_id()))).await;
        assert_eq!(
            (s, body.as_str()),
            (200, "success"),
            "webhook {status} {answer:?}"
        );
        assert_eq!(hook.calls(), 1);
        app.stop().await;
    }
    // Nobody listening at all.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (app, _) = app_with(&webhook_extra(port, 2000), "").await;
    let wx = Wechat::new(&app);
    let (s, _, body) = wx.send(&wx.plain(&text_xml("oIvan", "q", msg_id()))).await;
    assert_eq!((s, body.as_str()), (200, "success"));
    let metrics = app.metrics_text().await;
    assert!(metrics.contains("webhook"), "webhook failures are counted");
    app.stop().await;
}

/// The first customer-service message the mock WeChat API received, waiting up to 15 s.
async fn first_custom_message(mock: &wxgate_mock::MockWechat) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(m) = mock.custom_messages().first() {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no customer-service message arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_webhook_gets_success_in_time_and_its_late_reply_goes_out_as_a_customer_service_message(
) {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "sorry I'm late"}}));
    hook.delay = Duration::from_millis(1500);
    let (hook, addr) = hook.start().await;
    let (mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 300));
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);
    let started = Instant::now();
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oJudy", "slow?", msg_id())))
        .await;
    let took = started.elapsed();
    assert_eq!((s, body.as_str()), (200, "success"));
    assert!(
        took < Duration::from_millis(1200),
        "answered after {took:?}"
    );
    let sent = first_custom_message(&mock).await;
    assert_eq!(
        sent,
        json!({"touser": "oJudy", "msgtype": "text", "text": {"content": "sorry I'm late"}})
    );
    assert_eq!(hook.calls(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_late_reply_whose_token_was_invalidated_goes_out_after_one_refresh() {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "late again"}}));
    hook.delay = Duration::from_millis(1000);
    let (_hook, addr) = hook.start().await;
    let (mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.token_api = "classic";
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 300));
    let app = spawn_app(&config).await;
    let (status, first) = app.get_json("main/access_token").await;
    assert_eq!(status, 200, "{first}");
    // WeChat retires the token wxgate holds before the late reply goes out.
    mock.invalidate_access_tokens(APPID);
    let wx = Wechat::new(&app);
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oKate", "slow?", msg_id())))
        .await;
    assert_eq!((s, body.as_str()), (200, "success"));
    let sent = first_custom_message(&mock).await;
    assert_eq!(
        sent,
        json!({"touser": "oKate", "msgtype": "text", "text": {"content": "late again"}})
    );
    assert_eq!(mock.calls("cgi-bin/message/custom/send"), 2, "one retry");
    assert_eq!(mock.calls("cgi-bin/token"), 2, "one refresh");
    let (_, now) = app.get_json("main/access_token").await;
    assert_ne!(first["access_token"], now["access_token"]);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Rules.

#[tokio::test]
async fn rules_match_events_event_keys_keywords_and_regexes_with_every_reply_type() {
    let tail = r#"
[[accounts.rules]]
event = "subscribe"
reply = { type = "text", content = "welcome" }
[[accounts.rules]]
event = "CLICK"
event_key = "IMG"
reply = { type = "image", media_id = "img-1" }
[[accounts.rules]]
event = "click"
event_key = "VOICE"
reply = { type = "voice", media_id = "voice-1" }
[[accounts.rules]]
keyword = "video"
reply = { type = "video", media_id = "vid-1", title = "V", description = "a video" }
[[accounts.rules]]
keyword = "music"
reply = { type = "music", title = "M", description = "song", music_url = "http://m/1.mp3", hq_music_url = "http://m/1hq.mp3", thumb_media_id = "th-1" }
[[accounts.rules]]
regex = "^news( please)?$"
reply = { type = "news", articles = [{ title = "A", description = "B", pic_url = "http://p/1.jpg", url = "http://u/1" }, { title = "C" }] }
[[accounts.rules]]
regex = "(?i)human|agent"
reply = { type = "transfer_customer_service" }
[[accounts.rules]]
keyword = "news please"
reply = { type = "text", content = "never: the regex above matches first" }
"#;
    let (app, _) = app_with(&aes_mixed_extra(), tail).await;
    let wx = Wechat::new(&app);
    let cases: Vec<(String, Value)> = vec![
        (
            event_xml("oK", "subscribe", None, now()),
            json!({"type": "text", "content": "welcome"}),
        ),
        (
            event_xml("oK2", "CLICK", Some("IMG"), now()),
            json!({"type": "image", "media_id": "img-1"}),
        ),
        (
            event_xml("oK3", "CLICK", Some("VOICE"), now()),
            json!({"type": "voice", "media_id": "voice-1"}),
        ),
        (
            text_xml("oK", "video", msg_id()),
            json!({"type": "video", "media_id": "vid-1", "title": "V", "description": "a video"}),
        ),
        (
            text_xml("oK", "music", msg_id()),
            json!({"type": "music", "title": "M", "description": "song", "music_url": "http://m/1.mp3", "hq_music_url": "http://m/1hq.mp3", "thumb_media_id": "th-1"}),
        ),
        (
            text_xml("oK", "news please", msg_id()),
            json!({"type": "news", "articles": [
            {"title": "A", "description": "B", "pic_url": "http://p/1.jpg", "url": "http://u/1"},
            {"title": "C", "description": "", "pic_url": "", "url": ""}]}),
        ),
        (
            text_xml("oK", "I want a HUMAN", msg_id()),
            json!({"type": "transfer_customer_service"}),
        ),
    ];
    for (xml, expected) in cases {
        let expected: Reply = serde_json::from_value(expected).unwrap();
        let (s, _, body) = wx.send(&wx.plain(&xml)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(plain_reply(&body).reply, expected, "plain {xml}");
        // Same through safe mode (a new message so it is not a retry).
        // (Another sender makes an event new; a CreateTime far ahead would be refused.)
        let xml2 = xml
            .replace("<MsgId>", "<MsgId>1")
            .replace("<FromUserName><![CDATA[", "<FromUserName><![CDATA[x");
        let (_, _, body) = wx.send(&wx.safe(&xml2)).await;
        assert_eq!(
            open_encrypted(&body, AES_KEY).0.reply,
            expected,
            "safe {xml2}"
        );
    }
    // A CLICK with another key matches nothing.
    let (_, _, body) = wx
        .send(&wx.plain(&event_xml("oK", "CLICK", Some("OTHER"), now())))
        .await;
    assert_eq!(body, "success");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Follower records.

async fn follower_records_follow_subscribe_and_unsubscribe_events(database_url: String) {
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.database_url = database_url.clone();
    config.tail = "[[accounts.rules]]\nevent = \"subscribe\"\nreply = { type = \"text\", content = \"hi\" }\n".into();
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);
    let t = now() - 50;
    let (s, _, body) = wx
        .send(&wx.plain(&event_xml("oLiam", "subscribe", Some("qrscene_42"), t)))
        .await;
    assert_eq!(s, 200);
    assert_eq!(plain_reply(&body).reply, Reply::text("hi"));
    let db = wxgate::users::connect(&database_url)
        .await
        .unwrap()
        .for_account("main");
    let user = db
        .get("oLiam")
        .await
        .unwrap()
        .expect("recorded before the answer");
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene.as_deref(), Some("qrscene_42"));
    assert_eq!(user.subscribed_at, Some(t));

    wx.send(&wx.plain(&event_xml("oLiam", "unsubscribe", None, t + 10)))
        .await;
    let user = db.get("oLiam").await.unwrap().unwrap();
    assert_eq!(user.subscribed, Some(false));
    assert_eq!(user.unsubscribed_at, Some(t + 10));
    // An older subscribe arriving late changes nothing.
    wx.send(&wx.plain(&event_xml("oLiam", "subscribe", None, t + 5)))
        .await;
    assert_eq!(
        db.get("oLiam").await.unwrap().unwrap().subscribed,
        Some(false)
    );
    // A plain follow has no scene.
    wx.send(&wx.plain(&event_xml("oMia", "subscribe", None, t)))
        .await;
    let mia = db.get("oMia").await.unwrap().unwrap();
    assert_eq!((mia.subscribed, mia.subscribe_scene), (Some(true), None));
    app.stop().await;
}

/// When the follower record cannot be written, the push is answered 503 (so WeChat retries) and
/// nothing is kept for it: once the database works again, the retry is handled afresh — the
/// record is written and the rule reply sent.
#[tokio::test]
async fn a_follow_event_gets_503_while_the_user_database_fails_and_its_retry_is_handled_afresh() {
    use sqlx::Connection as _;

    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("users.db").display());
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.database_url = database_url.clone();
    config.tail = "[[accounts.rules]]\nevent = \"subscribe\"\nreply = { type = \"text\", content = \"hi\" }\n".into();
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);

    // Break the user database under the running gateway.
    let mut admin = sqlx::SqliteConnection::connect(&database_url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE wxgate_users RENAME TO wxgate_users_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let push = wx.plain(&event_xml("oNoah", "subscribe", Some("qrscene_7"), now()));
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "unavailable", "{body}");

    // Repaired: WeChat's retry (the very same request) is handled as a first delivery.
    sqlx::query("ALTER TABLE wxgate_users_away RENAME TO wxgate_users")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("hi"));
    let db = wxgate::users::connect(&database_url)
        .await
        .unwrap()
        .for_account("main");
    let user = db
        .get("oNoah")
        .await
        .unwrap()
        .expect("recorded by the retry");
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene.as_deref(), Some("qrscene_7"));
    app.stop().await;
}

#[tokio::test]
async fn follower_records_are_kept_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    follower_records_follow_subscribe_and_unsubscribe_events(format!(
        "sqlite://{}",
        dir.path().join("users.db").display()
    ))
    .await;
}

#[tokio::test]
async fn follower_records_are_kept_in_postgresql() {
    in_fresh_pg_schema(
        "push_follower_records",
        follower_records_follow_subscribe_and_unsubscribe_events,
    )
    .await;
}

#[tokio::test]
async fn follower_records_are_kept_in_mongodb() {
    in_fresh_mongo_db(
        "push_follower_records_mongo",
        follower_records_follow_subscribe_and_unsubscribe_events,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style robustness.

fn mutate(rng: &mut StdRng, s: &str) -> String {
    let mut bytes = s.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..6) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..6) {
            0 => bytes[i] = rng.gen(),
            1 => {
                bytes.truncate(i);
            }
            2 => bytes.insert(i, *b"<>&;]![/\"'".get(rng.gen_range(0..10)).unwrap()),
            3 => {
                bytes.remove(i);
            }
            4 => {
                let ins = [
                    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
                    "&a;",
                    "]]>",
                    "<![CDATA[",
                    "<x>",
                    "</xml>",
                    "\u{0}",
                    "é",
                ];
                let pick = ins[rng.gen_range(0..ins.len())].as_bytes();
                bytes.splice(i..i, pick.iter().copied());
            }
            _ => {
                let j = rng.gen_range(i..=bytes.len());
                let dup = bytes[i..j].to_vec();
                bytes.splice(j..j, dup);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn random_and_mutated_pushes_never_get_a_5xx_and_the_server_keeps_serving() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for case in 0..400 {
        let xml = if rng.gen_bool(0.5) {
            text_xml("oFuzz", "hello", rng.gen())
        } else {
            event_xml(
                "oFuzz",
                "subscribe",
                Some("qrscene_1"),
                rng.gen_range(0..i64::MAX),
            )
        };
        let (query, body): (String, Vec<u8>) = match rng.gen_range(0..7) {
            // A valid signature over a mutated plaintext body.
            0 => (wx.plain(&xml).query, mutate(&mut rng, &xml).into_bytes()),
            // A mutated encrypted envelope.
            1 => {
                let p = wx.safe(&xml);
                (p.query, mutate(&mut rng, &p.body).into_bytes())
            }
            // A correctly signed but corrupted ciphertext (reaches decryption).
            2 => {
                let (q, ts, n) = wx.signed_query_at(now());
                let p = wx.safe(&xml);
                let (_, fields) = Fields::parse_document(p.body.as_bytes()).unwrap();
                let enc = mutate(&mut rng, fields.text("Encrypt").unwrap());
                let ms = msg_signature(TOKEN, &ts, &n, &enc);
                let body = format!("<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>");
                (
                    format!("{q}&encrypt_type=aes&msg_signature={ms}"),
                    body.into_bytes(),
                )
            }
            // A correctly encrypted, mutated plaintext.
            3 => {
                let p = wx.safe(&mutate(&mut rng, &xml));
                (p.query, p.body.into_bytes())
            }
            // Mutated query string.
            4 => {
                let p = wx.safe(&xml);
                (mutate(&mut rng, &p.query), p.body.into_bytes())
            }
            // Random bytes everywhere.
            5 => {
                let n = rng.gen_range(0..2000);
                let body: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                let q: String = (0..rng.gen_range(0..80))
                    .map(|_| char::from(rng.gen_range(0x20u8..0x7f)))
                    .filter(|c| *c != '#')
                    .collect();
                (q, body)
            }
            // Deep nesting.
            _ => {
                let depth = rng.gen_range(10..3000);
                let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
                (wx.plain("").query, body.into_bytes())
            }
        };
        let query = query.replace([' ', '#'], "%20");
        let resp = wx
            .http
            .post(format!("{}?{query}", wx.url()))
            .body(body)
            .send()
            .await;
        let resp = resp.unwrap_or_else(|e| panic!("case {case}: request failed: {e}"));
        let status = resp.status().as_u16();
        assert!((200..500).contains(&status), "case {case}: status {status}");
        if status >= 400 {
            let text = resp.text().await.unwrap();
            assert!(!error_code(&text).is_empty(), "case {case}: {text}");
        }
    }
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oFuzz", "hello", msg_id())))
        .await;
    assert_eq!(s, 200);
    assert_eq!(open_encrypted(&body, AES_KEY).0.reply, Reply::text("world"));
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// `wxgate simulate`.

async fn simulate(config: &GatewayConfig, base: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    std::fs::write(&path, config.toml()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .arg("simulate")
        .arg("--config")
        .arg(&path)
        .arg("--account")
        .arg("main")
        .arg("--url")
        .arg(base)
        .args(args)
        .output()
        .await
        .unwrap();
    drop(dir);
    out
}

#[tokio::test]
async fn wxgate_simulate_prints_the_decrypted_rule_reply_of_a_running_gateway() {
    let tail = format!(
        "{HELLO_RULE}[[accounts.rules]]\nevent = \"subscribe\"\nreply = {{ type = \"text\", content = \"welcome aboard\" }}\n"
    );
    for extra in [aes_extra(), String::new()] {
        let (app, config) = app_with(&extra, &tail).await;
        let out = simulate(&config, &app.base, &["--text", "hello"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "stdout {stdout}\nstderr {stderr}");
        assert!(stdout.contains("world"), "stdout {stdout}\nstderr {stderr}");

        let out = simulate(
            &config,
            &app.base,
            &["--event", "subscribe", "--openid", "oSim"],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("welcome aboard"), "{stdout}");
        let user = wxgate::users::connect(&config.database_url)
            .await
            .unwrap()
            .for_account("main")
            .get("oSim")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.subscribed, Some(true));

        let out = simulate(&config, &app.base, &["--text", "no rule for this"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(stdout.contains("(no reply: success)"), "{stdout}");
        app.stop().await;
    }
}

#[tokio::test]
async fn wxgate_simulate_fails_with_a_clear_message_on_http_errors() {
    let (app, config) = app_with(&aes_extra(), HELLO_RULE).await;
    // A gateway with another token: the signature does not match.
    let mut other = config.clone();
    other.account_extra = format!("{}\n", aes_extra());
    let wrong = other.toml().replace(TOKEN, "someothertoken");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    std::fs::write(&path, wrong).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(["simulate", "--config"])
        .arg(&path)
        .args(["--account", "main", "--text", "hello", "--url", &app.base])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("invalid_signature"),
        "{stderr}"
    );

    // Nobody listening.
    let out = simulate(&config, "http://127.0.0.1:9", &["--text", "hello"]).await;
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_account_with_a_key_refuses_plaintext_pushes_unless_it_accepts_them() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oMallory", "hello", msg_id());
    // A plaintext push's signature does not cover its body: with a key it is refused.
    let (status, _, body) = wx.send(&wx.plain(&xml)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "encryption_required"),
        "{body}"
    );
    assert!(body.contains("accept_plaintext"), "{body}");
    let (status, _, body) = wx.send(&wx.safe(&xml)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(open_encrypted(&body, AES_KEY).0.reply, Reply::text("world"));
    app.stop().await;

    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let (status, _, body) = wx
        .send(&wx.plain(&text_xml("oMallory", "hello", msg_id())))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    app.stop().await;
}

#[tokio::test]
async fn a_push_created_in_the_future_is_refused_and_cannot_freeze_a_follower() {
    let (app, config) = app_with(&aes_extra(), "").await;
    let wx = Wechat::new(&app);
    // Signed now, but claiming to be created an hour from now.
    let future = event_xml("oFuture", "unsubscribe", None, now() + 3600);
    let (status, _, body) = wx.send(&wx.safe(&future)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "stale_timestamp"),
        "{body}"
    );
    // A real subscribe now is recorded (the forged event left no record to be "newer").
    let (status, _, _) = wx
        .send(&wx.safe(&event_xml("oFuture", "subscribe", None, now())))
        .await;
    assert_eq!(status, 200);
    let user = wxgate::users::connect(&config.database_url)
        .await
        .unwrap()
        .for_account("main")
        .get("oFuture")
        .await
        .unwrap()
        .expect("the follower is recorded");
    assert_eq!(user.subscribed, Some(true));
    // Within the window ahead (a clock a little off) is still accepted.
    let (status, _, body) = wx
        .send(&wx.safe(&event_xml("oFuture", "CLICK", Some("K"), now() + 60)))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_unsigned_push_is_refused_before_its_body_is_read() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let p = wx.safe(&text_xml("oEve", "hello", msg_id()));
    let forged = p.query.replacen("signature=", "signature=0", 1);
    // A body over server.max_body_bytes (64 KiB here): had it been read, the answer would be
    // 413; the query is checked first, so it is the signature that is refused.
    let (status, _, body) = wx.send_raw(&forged, vec![b'x'; 200_000]).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "invalid_signature"),
        "{body}"
    );
    // A signed one with the same oversized body is refused for its size.
    let (status, _, body) = wx.send_raw(&p.query, vec![b'x'; 200_000]).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "body_too_large")
    );
    app.stop().await;
}

#[tokio::test]
async fn two_delivery_reports_in_one_second_both_reach_the_webhook() {
    let (hook, addr) = Hook::answering(json!({})).start().await;
    let (app, _) = app_with(&format!("{}{}", aes_extra(), webhook_extra(addr, 3000)), "").await;
    let wx = Wechat::new(&app);
    let at = now();
    let report = |msg_id: u64| {
        event_xml("oReport", "TEMPLATESENDJOBFINISH", None, at).replace(
            "</xml>",
            &format!("<MsgID>{msg_id}</MsgID><Status><![CDATA[success]]></Status></xml>"),
        )
    };
    for id in [200163836u64, 200163840] {
        let (status, _, body) = wx.send(&wx.safe(&report(id))).await;
        assert_eq!((status, body.as_str()), (200, "success"));
    }
    // A retry of the first is still a retry.
    let (status, _, _) = wx.send(&wx.safe(&report(200163836))).await;
    assert_eq!(status, 200);
    assert_eq!(hook.calls(), 2, "two reports, each delivered once");
    let ids: Vec<Value> = hook
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["MsgID"].clone())
        .collect();
    assert_eq!(ids, vec![json!(200163836), json!(200163840)]);
    app.stop().await;
}
