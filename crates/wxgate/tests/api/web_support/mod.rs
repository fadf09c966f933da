//! Harness additions for the browser-facing tests (JS-SDK, OAuth, the demo page): the calls
//! they make on the shared harness's gateway, and the steps of a login followed by hand. Their
//! HTTP client keeps cookies like a browser (a login is bound to the browser that started it).

use reqwest::header::LOCATION;
use serde_json::Value;
use wxgate::config::Settings;
use wxgate::http::AppState;

use crate::helpers::{spawn_app_full, GatewayConfig, TestApp, API_KEY};

/// A gateway in this process whose `server.public_url` is its own address: the shared
/// harness's, with the calls of the web tests added below and a cookie-keeping client.
pub type WebApp = TestApp;

pub async fn spawn_web_app(config: &GatewayConfig) -> WebApp {
    spawn_web_app_with(config, None, |_, _| {}).await
}

/// Same, with mode-specific routes (the sandbox's demo page) and a last change to the settings
/// that may use the gateway's base URL (e.g. `oauth_redirects` pointing at the gateway itself).
pub async fn spawn_web_app_with(
    config: &GatewayConfig,
    routes: Option<axum::Router<AppState>>,
    tune: impl FnOnce(&mut Settings, &str),
) -> WebApp {
    let mut app = spawn_app_full(config, routes, tune).await;
    app.http = browser();
    app
}

/// A client that behaves like one browser: no automatic redirects, and a cookie jar.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The calls of the web tests on the shared harness's gateway (a trait, as `proxy`'s
/// `ProxyCalls` is, so each area's calls are in scope only where that area imports them).
pub trait WebCalls {
    fn url(&self, path: &str) -> String;

    /// GET with the API key; status and JSON body (`Null` when not JSON).
    async fn api_get(&self, path: &str) -> (u16, Value);

    /// GET without credentials; status and JSON body.
    async fn get(&self, path_and_query: &str) -> (u16, Value);

    /// The account's current jsapi ticket, from the business API.
    async fn jsapi_ticket(&self, account: &str) -> String;

    /// `GET /oauth/{account}/login?redirect=..&scope=..`: the authorize URL it redirects to.
    async fn start_login(&self, account: &str, redirect: &str, scope: Option<&str>) -> String;
}

impl WebCalls for TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn api_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.api(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn jsapi_ticket(&self, account: &str) -> String {
        let (status, body) = self.api_get(&format!("{account}/tickets/jsapi")).await;
        assert_eq!(status, 200, "{body}");
        body["ticket"].as_str().unwrap().to_owned()
    }

    async fn start_login(&self, account: &str, redirect: &str, scope: Option<&str>) -> String {
        let mut query = vec![("redirect", redirect)];
        if let Some(s) = scope {
            query.push(("scope", s));
        }
        let resp = self
            .http
            .get(self.url(&format!("/oauth/{account}/login")))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 302, "{:?}", resp.text().await);
        location(&resp)
    }
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What WeChat's authorize page does for a user: the mock's answer to `authorize` (without its
/// `#wechat_redirect`) with `extra` mock parameters (`mock_openid=…`, `mock_snapshot=1`,
/// `mock_deny=1`). Returns the callback URL the browser is sent to.
pub async fn authorize(http: &reqwest::Client, authorize_url: &str, extra: &str) -> String {
    let without_fragment = authorize_url.split('#').next().unwrap();
    let url = if extra.is_empty() {
        without_fragment.to_owned()
    } else {
        format!("{without_fragment}&{extra}")
    };
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "{:?}", resp.text().await);
    location(&resp)
}

/// Hits a callback URL; status, Location (when redirected) and JSON body (when not).
pub async fn hit(http: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let loc = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, loc, resp.json().await.unwrap_or(Value::Null))
}
