//! The mock's WeChat console over real HTTP, with a small axum server standing in for the
//! gateway: the server URL verified with `echostr` (right and wrong answers, an unreachable
//! URL), pushes in safe mode arriving encrypted and the encrypted reply opened as WeChat does,
//! domains saved only when `MP_verify_<code>.txt` holds the code, the IP whitelist answering
//! 40164 with the caller's address, the web-authorization domain refusing other redirects, and
//! the page's forms doing the same as the JSON controls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::routing::get;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use wxgate_mock::{crypto, MockConfig, MockWechat};

const APPID: &str = "wx00000000c0501e01";
const SECRET: &str = "console-secret";
const TOKEN: &str = "gatewaytoken123";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// How the stand-in gateway behaves.
#[derive(Default)]
struct Behaviour {
    /// Answer verification GETs with this instead of `echostr`.
    wrong_echo: Option<String>,
    /// Answer pushes with this plain text (None: an encrypted text reply "got: <Content>").
    plain_answer: Option<String>,
    /// The content served at `/MP_verify_*.txt` (None: 404).
    verify_file: Option<String>,
}

/// One push as the stand-in saw it.
struct Push {
    query: HashMap<String, String>,
    body: String,
}

#[derive(Clone)]
struct Gateway {
    behaviour: Arc<Mutex<Behaviour>>,
    pushes: mpsc::UnboundedSender<Push>,
}

fn query_map(q: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// An element of flat XML, CDATA or plain.
fn field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let from = xml
        .find(&open)
        .unwrap_or_else(|| panic!("<{name}> in {xml}"))
        + open.len();
    let len = xml[from..].find(&format!("</{name}>")).unwrap();
    let value = &xml[from..from + len];
    value
        .strip_prefix("<![CDATA[")
        .and_then(|v| v.strip_suffix("]]>"))
        .unwrap_or(value)
        .to_owned()
}

async fn verify(State(gw): State<Gateway>, RawQuery(q): RawQuery) -> String {
    let q = query_map(q);
    assert_eq!(
        crypto::signature(TOKEN, &q["timestamp"], &q["nonce"]),
        q["signature"],
        "the verification GET is signed with the Token"
    );
    let wrong = gw.behaviour.lock().unwrap().wrong_echo.clone();
    wrong.unwrap_or_else(|| q["echostr"].clone())
}

async fn receive(State(gw): State<Gateway>, RawQuery(q): RawQuery, body: String) -> String {
    let query = query_map(q);
    let _ = gw.pushes.send(Push {
        query: query.clone(),
        body: body.clone(),
    });
    if let Some(answer) = gw.behaviour.lock().unwrap().plain_answer.clone() {
        return answer;
    }
    let key = crypto::aes_key(KEY).unwrap();
    let inner = crypto::decrypt_for(&key, &field(&body, "Encrypt"), APPID).unwrap();
    let reply = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName>\
         <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[got: {}]]></Content></xml>",
        field(&inner, "FromUserName"),
        field(&inner, "ToUserName"),
        field(&inner, "Content"),
    );
    let encrypt = crypto::encrypt(&key, &reply, APPID);
    let signature = crypto::msg_signature(TOKEN, "1700000000", "42", &encrypt);
    format!(
        "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>\
         <TimeStamp>1700000000</TimeStamp><Nonce><![CDATA[42]]></Nonce></xml>"
    )
}

async fn verify_file(State(gw): State<Gateway>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match gw.behaviour.lock().unwrap().verify_file.clone() {
        Some(content) => content.into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "no").into_response(),
    }
}

struct Env {
    mock: MockWechat,
    base: String,
    /// The stand-in gateway's `host:port`.
    gateway: String,
    behaviour: Arc<Mutex<Behaviour>>,
    pushes: mpsc::UnboundedReceiver<Push>,
    http: reqwest::Client,
}

async fn env() -> Env {
    let (mock, addr) = MockWechat::start(MockConfig::with_account(APPID, SECRET))
        .await
        .unwrap();
    let (tx, pushes) = mpsc::unbounded_channel();
    let behaviour = Arc::new(Mutex::new(Behaviour::default()));
    let gw = Gateway {
        behaviour: behaviour.clone(),
        pushes: tx,
    };
    let code = {
        let v: Value = reqwest::get(format!("http://{addr}/__mock/console/{APPID}/state"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["verify_file"].as_str().unwrap().to_owned()
    };
    let app = axum::Router::new()
        .route("/wx/main", get(verify).post(receive))
        .route(&format!("/{code}"), get(verify_file))
        .with_state(gw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Env {
        mock,
        base: format!("http://{addr}"),
        gateway,
        behaviour,
        pushes,
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Env {
    async fn control(&self, action: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/__mock/console/{APPID}/{action}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{action}");
        resp.json().await.unwrap()
    }

    async fn form(&self, action: &str, fields: &[(&str, &str)]) -> String {
        let resp = self
            .http
            .post(format!("{}/__mock/console/{APPID}/{action}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{action}");
        resp.text().await.unwrap()
    }

    async fn state(&self) -> Value {
        self.http
            .get(format!("{}/__mock/console/{APPID}/state", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn server_url(&self) -> String {
        format!("http://{}/wx/main", self.gateway)
    }

    async fn configure(&self, mode: &str) -> Value {
        let body = json!({"url": self.server_url(), "token": TOKEN, "encoding_aes_key": KEY, "mode": mode});
        self.control("server", body).await
    }
}

#[tokio::test]
async fn a_right_echo_saves_the_server_config_and_a_wrong_one_is_refused() {
    let e = env().await;
    assert!(e.state().await["server"].is_null());

    e.behaviour.lock().unwrap().wrong_echo = Some("not the echostr".into());
    let refused = e.configure("safe").await;
    assert_eq!(refused, json!({"ok": false, "message": "token验证失败"}));
    assert!(e.state().await["server"].is_null(), "nothing saved");

    e.behaviour.lock().unwrap().wrong_echo = None;
    let saved = e.configure("safe").await;
    assert_eq!(saved, json!({"ok": true, "message": "提交成功"}));
    let state = e.state().await;
    assert_eq!(state["server"]["url"], e.server_url());
    assert_eq!(state["server"]["mode"], "safe");
    assert_eq!(state["server"]["token"], TOKEN);

    let bad_key =
        json!({"url": e.server_url(), "token": TOKEN, "encoding_aes_key": "short", "mode": "safe"});
    let v = e.control("server", bad_key).await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("EncodingAESKey 格式错误"),
        "{v}"
    );

    // Nobody listens on port 1.
    let unreachable = json!({"url": "http://127.0.0.1:1/wx", "token": TOKEN, "encoding_aes_key": KEY, "mode": "safe"});
    let v = e.control("server", unreachable).await;
    assert_eq!(v, json!({"ok": false, "message": "请求URL超时"}));
    let v = e
        .control(
            "server",
            json!({"url": "not a url", "token": TOKEN, "mode": "plaintext"}),
        )
        .await;
    assert!(
        v["message"].as_str().unwrap().starts_with("URL格式错误"),
        "{v}"
    );
    assert_eq!(
        e.state().await["server"]["mode"],
        "safe",
        "the saved config stays"
    );
}

#[tokio::test]
async fn the_page_form_verifies_and_shows_wechats_message() {
    let e = env().await;
    let page = e
        .http
        .get(format!("{}/__mock/console/{APPID}", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("服务器配置 Server configuration"), "{html}");
    assert!(html.contains("<label for=\"server-url\""));

    let url = e.server_url();
    let fields = [
        ("url", url.as_str()),
        ("token", TOKEN),
        ("encoding_aes_key", KEY),
        ("mode", "compatible"),
    ];
    let html = e.form("server", &fields).await;
    assert!(
        html.contains(
            "id=\"server-message\" role=\"status\" class=\"ok\" data-ok=\"true\">提交成功<"
        ),
        "{html}"
    );
    assert!(
        html.contains("id=\"server-mode-compatible\" name=\"mode\" value=\"compatible\" checked")
    );

    e.behaviour.lock().unwrap().wrong_echo = Some("x".into());
    let html = e.form("server", &fields).await;
    assert!(html.contains("data-ok=\"false\">token验证失败<"), "{html}");

    let missing = e
        .http
        .get(format!("{}/__mock/console/wxunknown", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let json_missing = e
        .http
        .post(format!("{}/__mock/console/wxunknown/server", e.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_missing.status(), 404);
}

#[tokio::test]
async fn a_safe_mode_push_arrives_encrypted_and_the_reply_is_opened() {
    let mut e = env().await;
    let v = e.control("push", json!({"kind": "text"})).await;
    assert_eq!(v["ok"], false, "no server saved yet: {v}");
    assert_eq!(e.configure("safe").await["ok"], true);

    let v = e
        .control(
            "push",
            json!({"kind": "text", "content": "你好 hello", "openid": "oTester"}),
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["reply"]["content"], "got: 你好 hello");
    assert_eq!(v["reply"]["encrypted"], true);

    let push = e.pushes.recv().await.unwrap();
    let q = &push.query;
    assert_eq!(q["encrypt_type"], "aes");
    assert_eq!(q["openid"], "oTester");
    assert_eq!(
        crypto::signature(TOKEN, &q["timestamp"], &q["nonce"]),
        q["signature"]
    );
    assert!(
        !push.body.contains("Content"),
        "safe mode: only the envelope: {}",
        push.body
    );
    let encrypt = field(&push.body, "Encrypt");
    assert_eq!(
        crypto::msg_signature(TOKEN, &q["timestamp"], &q["nonce"], &encrypt),
        q["msg_signature"]
    );
    let inner = crypto::decrypt_for(&crypto::aes_key(KEY).unwrap(), &encrypt, APPID).unwrap();
    assert_eq!(field(&inner, "MsgType"), "text");
    assert_eq!(field(&inner, "Content"), "你好 hello");
    assert_eq!(field(&inner, "FromUserName"), "oTester");

    // `success`: no reply. A plaintext reply in safe mode: refused as WeChat does.
    e.behaviour.lock().unwrap().plain_answer = Some("success".into());
    let v = e.control("push", json!({"kind": "subscribe"})).await;
    assert_eq!(
        v,
        json!({"ok": true, "message": "no reply (success)", "reply": null, "openid": v["openid"]})
    );
    let subscribe = e.pushes.recv().await.unwrap();
    let inner = crypto::decrypt_for(
        &crypto::aes_key(KEY).unwrap(),
        &field(&subscribe.body, "Encrypt"),
        APPID,
    )
    .unwrap();
    assert_eq!(field(&inner, "Event"), "subscribe");
    e.behaviour.lock().unwrap().plain_answer = Some(
        "<xml><ToUserName>o</ToUserName><MsgType>text</MsgType><Content>x</Content></xml>".into(),
    );
    let v = e.control("push", json!({"kind": "text"})).await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("安全模式下回复必须加密"),
        "{v}"
    );

    // The page shows the decrypted reply.
    e.behaviour.lock().unwrap().plain_answer = None;
    let html = e
        .form(
            "push",
            &[("kind", "text"), ("content", "hi"), ("openid", "")],
        )
        .await;
    assert!(
        html.contains("<span id=\"push-reply-content\">got: hi</span>"),
        "{html}"
    );
}

#[tokio::test]
async fn a_domain_is_saved_only_when_the_verify_file_holds_the_code() {
    let e = env().await;
    let state = e.state().await;
    let code = state["verify_code"].as_str().unwrap().to_owned();
    let file = state["verify_file"].as_str().unwrap().to_owned();
    assert_eq!(file, format!("MP_verify_{code}.txt"));
    let download = e
        .http
        .get(format!("{}/__mock/console/{APPID}/{file}", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await.unwrap(), code);

    let v = e.control("js_domain", json!({"domain": e.gateway})).await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"].as_str().unwrap().starts_with("无法访问"),
        "{v}"
    );

    e.behaviour.lock().unwrap().verify_file = Some("something else".into());
    let v = e
        .control("oauth_domain", json!({"domain": e.gateway}))
        .await;
    assert_eq!(v, json!({"ok": false, "message": "文件内容不一致"}));

    e.behaviour.lock().unwrap().verify_file = Some(format!("{code}\n"));
    let v = e.control("js_domain", json!({"domain": e.gateway})).await;
    assert_eq!(
        v,
        json!({"ok": true, "message": "提交成功", "domain": e.gateway})
    );
    let domain_field = [("domain", e.gateway.as_str())];
    let html = e.form("oauth_domain", &domain_field).await;
    assert!(html.contains("id=\"oauth-domain-message\""), "{html}");
    let state = e.state().await;
    assert_eq!(state["js_domain"], e.gateway.as_str());
    assert_eq!(state["oauth_domain"], e.gateway.as_str());

    let v = e
        .control(
            "js_domain",
            json!({"domain": format!("http://{}", e.gateway)}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("协议头"), "{v}");
}

#[tokio::test]
async fn a_whitelist_answers_40164_with_the_callers_ip() {
    let e = env().await;
    let classic = format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}",
        e.base
    );
    let stable_body = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET});
    let token = |url: String| async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert!(token(classic.clone()).await["access_token"].is_string());

    let v = e
        .control(
            "ip_whitelist",
            json!({"ips": ["203.0.113.9", "2001:db8::1"]}),
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["ips"], json!(["203.0.113.9", "2001:db8::1"]));
    let refused = token(classic.clone()).await;
    assert_eq!(refused["errcode"], 40164);
    let errmsg = refused["errmsg"].as_str().unwrap();
    assert!(
        errmsg.starts_with("invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist rid: "),
        "{errmsg}"
    );
    let stable: Value = e
        .http
        .post(format!("{}/cgi-bin/stable_token", e.base))
        .json(&stable_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stable["errcode"], 40164, "{stable}");

    let html = e
        .form("ip_whitelist", &[("ips", "203.0.113.9\n127.0.0.1")])
        .await;
    assert!(html.contains("203.0.113.9, 127.0.0.1"), "{html}");
    assert!(token(classic.clone()).await["access_token"].is_string());

    let v = e.control("ip_whitelist", json!({"ips": ["nope"]})).await;
    assert_eq!(v["ok"], false);
    let v = e.control("ip_whitelist", json!({"ips": []})).await;
    assert_eq!(v["ok"], true);
    assert_eq!(e.state().await["ip_whitelist"], json!([]));
    assert!(token(classic).await["access_token"].is_string());
    assert!(e.mock.calls("cgi-bin/token") >= 4);
}

#[tokio::test]
async fn a_saved_oauth_domain_refuses_redirects_elsewhere() {
    let e = env().await;
    let authorize = |redirect: String| {
        let url = url::Url::parse_with_params(
            &format!("{}/connect/oauth2/authorize", e.base),
            &[
                ("appid", APPID),
                ("redirect_uri", redirect.as_str()),
                ("response_type", "code"),
                ("scope", "snsapi_base"),
                ("state", "s"),
            ],
        )
        .unwrap();
        let http = e.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let elsewhere = "http://127.0.0.1:1/back".to_owned();
    assert_eq!(
        authorize(elsewhere.clone()).await.status(),
        302,
        "no domain saved: any"
    );

    e.behaviour.lock().unwrap().verify_file =
        Some(e.state().await["verify_code"].as_str().unwrap().into());
    assert_eq!(
        e.control("oauth_domain", json!({"domain": e.gateway}))
            .await["ok"],
        true
    );

    let refused = authorize(elsewhere).await;
    assert_eq!(refused.status(), 200);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("10003: redirect_uri域名与后台配置不一致"),
        "{text}"
    );
    let other_port = format!(
        "http://127.0.0.1:{}/back",
        e.gateway
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
            ^ 1
    );
    assert_eq!(
        authorize(other_port).await.status(),
        200,
        "another port is another domain"
    );

    let ours = authorize(format!("http://{}/auth/callback?x=1", e.gateway)).await;
    assert_eq!(ours.status(), 302);
    let location = ours.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("http://{}/auth/callback?x=1&code=", e.gateway)),
        "{location}"
    );
}
