//! Upstream failures on the anonymous routes (`/jssdk/…`, `/oauth/…`) against a real gateway and
//! the mock WeChat API: the caller gets the code, status and WeChat's errcode but a generic
//! message, never the operator's hint (the egress IP of a 40164); the authenticated API still
//! names the IP.

use crate::helpers::{start_mock, GatewayConfig};
use crate::web_support::{authorize, hit, spawn_web_app, WebCalls};
use serde_json::Value;
use wxgate_mock::Fault;

/// The egress IP the mock names in its 40164 errmsg.
const IP: &str = "203.0.113.7";

fn config(mock: std::net::SocketAddr) -> GatewayConfig {
    let mut c = GatewayConfig::new(mock);
    c.account_extra = "js_domains = [\"h5.example.com\"]\n\
                       oauth_redirects = [\"https://h5.example.com/\"]\n"
        .into();
    c
}

fn assert_generic(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 502, "{what}: {body}");
    let error = &body["error"];
    assert_eq!(error["code"], "upstream_rejected", "{what}: {body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("operator"), "{what}: {message}");
    let text = body.to_string();
    for secret in [IP, "whitelist", "IP"] {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
    // What WeChat said stays in SPEC.md's error shape; what to do about it does not.
    assert_eq!(error["wechat_errcode"], 40164, "{what}: {body}");
}

#[tokio::test]
async fn upstream_hints_are_for_the_operator_not_for_anonymous_callers() {
    let (mock, addr) = start_mock().await;
    mock.inject_fault("cgi-bin/stable_token", Fault::Errcode(40164));
    let app = spawn_web_app(&config(addr)).await;
    let (status, body) = app
        .get("/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2F")
        .await;
    assert_generic(status, &body, "jssdk config");

    // The web login: WeChat refuses the code exchange; the repeated callback answers the same.
    let authorize_url = app
        .start_login("main", "https://h5.example.com/", None)
        .await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    mock.inject_fault("sns/oauth2/access_token", Fault::Errcode(40164));
    let (status, _, body) = hit(&app.http, &callback).await;
    assert_generic(status, &body, "oauth callback");
    let (status, _, again) = hit(&app.http, &callback).await;
    assert_eq!((status, &again), (502, &body));
    app.stop().await;

    // The business API, authenticated, names the IP to whitelist (a gateway of its own, so no
    // state of the first one is involved).
    mock.inject_fault("cgi-bin/stable_token", Fault::Errcode(40164));
    let api = spawn_web_app(&config(addr)).await;
    let (status, body) = api.api_get("main/access_token").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!(body["error"]["wechat_errcode"], 40164);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(IP), "{message}");
    api.stop().await;
}
