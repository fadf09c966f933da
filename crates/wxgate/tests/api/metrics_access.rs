//! `/metrics` kept from the public: behind `server.metrics_token`, or on `server.metrics_listen`
//! only.

use serde_json::Value;

use crate::helpers::{spawn_app, start_mock, GatewayConfig};

const METRICS_TOKEN: &str = "metrics-token-0123456789";

#[tokio::test]
async fn with_a_metrics_token_metrics_answers_only_that_bearer_token() {
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.server_extra = format!("metrics_token = \"{METRICS_TOKEN}\"");
    let app = spawn_app(&config).await;
    let url = format!("{}/metrics", app.base);
    for presented in [
        None,
        Some("wrong-token-0123456789"),
        Some(&METRICS_TOKEN[..METRICS_TOKEN.len() - 1]),
    ] {
        let mut req = app.http.get(&url);
        if let Some(t) = presented {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{presented:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{presented:?}");
    }
    // An API key is not the metrics token either.
    let resp = app
        .http
        .get(&url)
        .bearer_auth(crate::helpers::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .http
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("wxgate_"));
    // The other operations routes stay open.
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn with_metrics_listen_metrics_is_served_on_that_address_only() {
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.server_extra = "metrics_listen = \"127.0.0.1:0\"".into();
    let app = spawn_app(&config).await;
    let metrics_base = app.metrics_base.clone().expect("a metrics address");
    assert_ne!(metrics_base, app.base);

    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "not on the main listener");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let resp = app
        .http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("wxgate_"));

    // Only /metrics there.
    for path in ["/healthz", "/api/v1/accounts/main/access_token", "/wx/main"] {
        let resp = app
            .http
            .get(format!("{metrics_base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    app.stop().await;
}
