//! The harness: a mock with one component pushing to a local receiver that records pushes,
//! the opening of a push as a platform would (signatures checked, then decrypted with the
//! mock's own crypto), and short-hands for the component API.

pub use std::collections::HashMap;
pub use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::routing::post;
pub use serde_json::{json, Value};
use tokio::sync::mpsc;
use wxgate_mock::{crypto, MockAccount};
pub use wxgate_mock::{MockComponent, MockConfig, MockWechat, PushError};

pub const COMPONENT: &str = "wxc0c0c0c0c0c0c0c1";
pub const SECRET: &str = "component-secret-0123456789abcdef";
pub const TOKEN: &str = "platformtoken";
pub const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// One push as the receiver saw it.
pub struct Push {
    pub query: HashMap<String, String>,
    pub body: String,
}

pub struct Env {
    pub mock: MockWechat,
    pub base: String,
    pub http: reqwest::Client,
    pub pushes: mpsc::UnboundedReceiver<Push>,
    pub push_url: String,
}

/// A receiver standing in for the platform's event URL: records every push, answers `success`.
pub async fn receiver() -> (String, mpsc::UnboundedReceiver<Push>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/events",
            post(
                |State(tx): State<mpsc::UnboundedSender<Push>>,
                 RawQuery(q): RawQuery,
                 body: String| async move {
                    let query = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                    let _ = tx.send(Push { query, body });
                    "success"
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/events?from=mock"), rx)
}

pub fn component(push_url: Option<String>) -> MockComponent {
    let mut c = MockComponent::new(COMPONENT, SECRET, TOKEN, KEY);
    c.push_url = push_url;
    c
}

/// A mock with one account and (unless `register` is false) the component, pushing to a
/// local receiver.
pub async fn env_with(register: bool, ticket_every: Option<Duration>) -> Env {
    let config = MockConfig {
        accounts: vec![MockAccount::new("wx00000000000acc01", "account-secret")],
        mp_base_public: Some("http://mp.mock.test".into()),
        ..MockConfig::default()
    };
    let (mock, addr) = MockWechat::start(config).await.unwrap();
    let (push_url, pushes) = receiver().await;
    if register {
        let mut c = component(Some(push_url.clone()));
        c.ticket_every = ticket_every;
        mock.add_component(c);
    }
    Env {
        mock,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap(),
        pushes,
        push_url,
    }
}

pub async fn env() -> Env {
    let mut e = env_with(true, None).await;
    // The ticket pushed on registration.
    let first = e.next_push().await;
    assert_eq!(field(&first, "InfoType"), "component_verify_ticket");
    e
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}

#[track_caller]
pub fn assert_errcode(v: &Value, code: i64) {
    assert_eq!(errcode(v), code, "{v}");
    assert!(v["errmsg"].as_str().unwrap().contains(" rid: "), "{v}");
}

/// The text between `start` and `end` in `s`.
pub fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap_or_else(|| panic!("{start} in {s}")) + start.len();
    let len = s[from..].find(end).unwrap();
    &s[from..from + len]
}

/// An element of the event XML, CDATA or plain.
pub fn field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let value = between(xml, &open, &format!("</{name}>"));
    value
        .strip_prefix("<![CDATA[")
        .and_then(|v| v.strip_suffix("]]>"))
        .unwrap_or(value)
        .to_owned()
}

impl Env {
    /// Checks the push's signatures and decrypts it as a platform would.
    pub async fn next_push(&mut self) -> String {
        let push = tokio::time::timeout(Duration::from_secs(5), self.pushes.recv())
            .await
            .expect("a push within 5 s")
            .unwrap();
        let q = &push.query;
        assert_eq!(q["from"], "mock", "the push URL's own query is kept");
        assert_eq!(q["encrypt_type"], "aes");
        assert_eq!(field(&push.body, "AppId"), COMPONENT);
        let encrypt = field(&push.body, "Encrypt");
        let (ts, nonce) = (&q["timestamp"], &q["nonce"]);
        assert_eq!(
            crypto::msg_signature(TOKEN, ts, nonce, &encrypt),
            q["msg_signature"]
        );
        assert_eq!(crypto::signature(TOKEN, ts, nonce), q["signature"]);
        let key = crypto::aes_key(KEY).unwrap();
        let inner = crypto::decrypt_for(&key, &encrypt, COMPONENT).unwrap();
        assert_eq!(field(&inner, "AppId"), COMPONENT);
        let create: u64 = field(&inner, "CreateTime").parse().unwrap();
        assert!(create.abs_diff(ts.parse().unwrap()) <= 5);
        inner
    }

    pub async fn no_push_within(&mut self, wait: Duration) {
        let got = tokio::time::timeout(wait, self.pushes.recv()).await;
        assert!(got.is_err(), "no push expected");
    }

    pub async fn post(&self, path: &str, query: &[(&str, &str)], body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .query(query)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let resp = self.get(path, query).await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    pub async fn component_token_with(&self, ticket: &str) -> Value {
        let body = json!({
            "component_appid": COMPONENT,
            "component_appsecret": SECRET,
            "component_verify_ticket": ticket,
        });
        self.post("/cgi-bin/component/api_component_token", &[], &body)
            .await
    }

    pub async fn component_token(&self) -> String {
        let ticket = self.mock.current_ticket(COMPONENT).unwrap();
        let v = self.component_token_with(&ticket).await;
        v["component_access_token"].as_str().unwrap().to_owned()
    }

    /// A component API call with the token in the query.
    pub async fn api(&self, name: &str, token: &str, body: Value) -> Value {
        let path = format!("/cgi-bin/component/{name}");
        self.post(&path, &[("component_access_token", token)], &body)
            .await
    }

    pub async fn pre_auth_code(&self, token: &str) -> String {
        let v = self
            .api(
                "api_create_preauthcode",
                token,
                json!({"component_appid": COMPONENT}),
            )
            .await;
        v["pre_auth_code"].as_str().unwrap().to_owned()
    }

    /// The merchant's click without a browser: the authorization code from the redirect.
    pub async fn authorize(&self, token: &str, appid: &str) -> String {
        let code = self.pre_auth_code(token).await;
        let resp = self
            .get(
                "/__mock/component/authorize",
                &[
                    ("component_appid", COMPONENT),
                    ("pre_auth_code", &code),
                    ("redirect_uri", "https://saas.example.com/back"),
                    ("auth_type", "1"),
                    ("authorizer_appid", appid),
                    ("nick_name", "小店"),
                    ("push", "0"),
                ],
            )
            .await;
        assert_eq!(resp.status(), 302);
        let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        q["auth_code"].clone()
    }

    /// Authorizes `appid` and exchanges the code: (access token, refresh token).
    pub async fn authorized(&self, token: &str, appid: &str) -> (String, String) {
        let code = self.authorize(token, appid).await;
        let v = self
            .api(
                "api_query_auth",
                token,
                json!({"component_appid": COMPONENT, "authorization_code": code}),
            )
            .await;
        let info = &v["authorization_info"];
        (
            info["authorizer_access_token"].as_str().unwrap().to_owned(),
            info["authorizer_refresh_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    pub async fn refresh(&self, token: &str, appid: &str, refresh_token: &str) -> Value {
        self.api(
            "api_authorizer_token",
            token,
            json!({
                "component_appid": COMPONENT,
                "authorizer_appid": appid,
                "authorizer_refresh_token": refresh_token,
            }),
        )
        .await
    }

    pub async fn getticket(&self, access_token: &str) -> Value {
        self.get_json(
            "/cgi-bin/ticket/getticket",
            &[("access_token", access_token), ("type", "jsapi")],
        )
        .await
    }
}
