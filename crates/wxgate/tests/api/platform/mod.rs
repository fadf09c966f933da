//! Third-party platforms end to end: a gateway with a `[[components]]` entry in front of the
//! mock WeChat that plays the Open Platform (ticket pushes, authorization pages, component and
//! authorizer tokens), on real stores and databases.
//!
//! The harness here starts a platform (the gateway first, then the mock's component pointed at
//! the gateway's event URL, which pushes the first ticket), authorizes merchants the way
//! WeChat's pages do, and sends events and messages signed and encrypted by the mock's own
//! crypto (written independently of the gateway's).

mod events;
mod flow;
mod multi;
mod serving;

use std::time::Duration;

use serde_json::Value;
use wxgate_mock::{MockComponent, MockWechat};

use crate::helpers::{spawn_app_full, GatewayConfig, TestApp};

pub const COMPONENT: &str = "platform";
pub const COMPONENT_APPID: &str = "wx00000000000c0de1";
pub const COMPONENT_SECRET: &str = "component-secret-0123";
pub const COMPONENT_TOKEN: &str = "platformtoken";
pub const COMPONENT_KEY: &str = "zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUT";
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const SAAS: &str = "https://saas.example.com/done";

/// The config lines of the platform (and the master key it needs).
pub fn component_tail() -> String {
    format!(
        r#"
[admin]
master_key = "{MASTER_KEY}"

[[components]]
name = "{COMPONENT}"
appid = "{COMPONENT_APPID}"
secret = "{COMPONENT_SECRET}"
token = "{COMPONENT_TOKEN}"
encoding_aes_key = "{COMPONENT_KEY}"
auth_redirects = ["https://saas.example.com/"]
js_domains = ["h5.example.com"]
oauth_redirects = ["https://h5.example.com/"]

[[components.rules]]
keyword = "ping"
reply = {{ type = "text", content = "pong from the platform" }}
"#
    )
}

/// A gateway config with the platform, in front of the mock at `mock`.
pub fn platform_config(mock: std::net::SocketAddr) -> GatewayConfig {
    let mut config = GatewayConfig::new(mock);
    config.tail = component_tail();
    config
}

/// The mock's component, pushing to the gateway at `base`.
pub fn mock_component(base: &str) -> MockComponent {
    MockComponent {
        push_url: Some(event_url(base)),
        ..MockComponent::new(
            COMPONENT_APPID,
            COMPONENT_SECRET,
            COMPONENT_TOKEN,
            COMPONENT_KEY,
        )
    }
}

pub fn event_url(base: &str) -> String {
    format!("{base}/wx/component/{COMPONENT}")
}

/// The mock, and a gateway with the platform that has received its first ticket.
pub async fn start_platform() -> (MockWechat, TestApp) {
    let (mock, addr) = crate::helpers::start_mock().await;
    let app = spawn_app_full(&platform_config(addr), None, |_, _| {}).await;
    register(&mock, &app.base).await;
    (mock, app)
}

/// Registers the component with the mock (which pushes a ticket to `base`) and waits until
/// the gateway at `base` has it.
pub async fn register(mock: &MockWechat, base: &str) {
    mock.add_component(mock_component(base));
    let answer = mock.push_ticket_now(COMPONENT_APPID).await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "success"),
        "the ticket push is accepted"
    );
}

/// The business API of the platform.
pub fn component_api(base: &str, path: &str) -> String {
    format!("{base}/api/v1/components/{COMPONENT}/{path}")
}

/// A merchant authorizes the platform through the pages (PC): the gateway's authorize link,
/// WeChat's page (the mock's), the merchant's click, the gateway's callback. Returns the final
/// redirect.
pub async fn authorize_through_pages(mock: &MockWechat, base: &str, authorizer: &str) -> String {
    let _ = mock;
    let http = crate::helpers::http_client();
    let start = http
        .get(format!(
            "{base}/component/{COMPONENT}/authorize?redirect={}",
            urlencode(SAAS)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302, "{:?}", start.text().await);
    let cookie = set_cookie(&start);
    let page = location(&start);
    let page = url::Url::parse(&page).unwrap();
    assert_eq!(page.path(), "/cgi-bin/componentloginpage");
    let q: std::collections::HashMap<String, String> = page.query_pairs().into_owned().collect();
    assert_eq!(q["component_appid"], COMPONENT_APPID);
    // The merchant confirms on WeChat's page (push=0: this test sends no event).
    let confirmed = http
        .get(format!(
            "{}://{}/__mock/component/authorize",
            page.scheme(),
            page.host_str()
                .zip(page.port())
                .map(|(h, p)| format!("{h}:{p}"))
                .unwrap()
        ))
        .query(&[
            ("component_appid", q["component_appid"].as_str()),
            ("pre_auth_code", q["pre_auth_code"].as_str()),
            ("redirect_uri", q["redirect_uri"].as_str()),
            ("authorizer_appid", authorizer),
            ("nick_name", "Merchant"),
            ("push", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 302, "{:?}", confirmed.text().await);
    let back = location(&confirmed);
    assert!(back.starts_with(&format!("{base}/component/{COMPONENT}/callback?state=")));
    let done = http
        .get(&back)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 302, "{:?}", done.text().await);
    location(&done)
}

/// Authorizes `authorizer` without pages: the mock records the merchant and the gateway gets
/// the `authorized` event (sent here, awaited).
pub async fn authorize_by_event(mock: &MockWechat, base: &str, authorizer: &str) {
    let code = mock
        .authorize_directly(COMPONENT_APPID, authorizer, "Merchant", false)
        .unwrap();
    let now = unix_now();
    let inner = format!(
        "<xml><AppId><![CDATA[{COMPONENT_APPID}]]></AppId><CreateTime>{now}</CreateTime>\
         <InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[{authorizer}]]></AuthorizerAppid>\
         <AuthorizationCode><![CDATA[{code}]]></AuthorizationCode>\
         <AuthorizationCodeExpiredTime>{}</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[]]></PreAuthCode></xml>",
        now + 3600
    );
    let (status, body) = send_event(base, &inner).await;
    assert_eq!((status, body.as_str()), (200, "success"));
}

/// Sends `inner` (the plaintext XML of an authorization event) to the event URL as WeChat
/// does: encrypted with the platform's key, signed with its Token.
pub async fn send_event(base: &str, inner: &str) -> (u16, String) {
    let (query, body) = seal(inner, COMPONENT_APPID, unix_now());
    post_raw(&format!("{}?{query}", event_url(base)), body).await
}

/// `inner` sealed as WeChat seals a platform's push: the query (timestamp, nonce, encrypt_type,
/// msg_signature) and the body `<xml><AppId/><Encrypt/></xml>`.
pub fn seal(inner: &str, receive_id: &str, timestamp: i64) -> (String, String) {
    use wxgate_mock::crypto;
    let key = crypto::aes_key(COMPONENT_KEY).unwrap();
    let encrypt = crypto::encrypt(&key, inner, receive_id);
    let ts = timestamp.to_string();
    let nonce = rand::random::<u32>().to_string();
    let sig = crypto::msg_signature(COMPONENT_TOKEN, &ts, &nonce, &encrypt);
    (
        format!("timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={sig}"),
        format!(
            "<xml><AppId><![CDATA[{COMPONENT_APPID}]]></AppId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
    )
}

pub async fn post_raw(url: &str, body: String) -> (u16, String) {
    let resp = crate::helpers::http_client()
        .post(url)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// GET with the test's API key: status and JSON.
pub async fn get_api(url: &str) -> (u16, Value) {
    crate::helpers::get_json(&crate::helpers::http_client(), url).await
}

/// Waits until `check` holds (polling every 20 ms), at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` of the response's cookie, for the next request.
pub fn set_cookie(resp: &reqwest::Response) -> String {
    let raw = resp
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    raw.split(';').next().unwrap().to_owned()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An authorizer appid (`wx` + 16 hex) made from `n`.
pub fn authorizer_appid(n: u64) -> String {
    format!("wx{n:016x}")
}
