//! Who may call what: API keys, unknown accounts, operations endpoints, error shapes.

use crate::helpers::*;

#[tokio::test]
async fn the_business_api_is_disabled_when_no_key_is_configured() {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.api_keys.clear();
    let app = spawn_app(&config).await;
    let (status, body) = app.get_json("main/access_token").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "api_disabled");
    assert!(body["error"]["message"].as_str().is_some());
    assert_eq!(mock.total_calls(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_unauthorized() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let url = app.api("main/access_token");
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let resp = app.http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .http
        .get(&url)
        .header("authorization", format!("Basic {API_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(mock.total_calls(), 0);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_account_is_a_404_with_the_spec_code() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    for path in ["nope/access_token", "nope/tickets/jsapi", "nope/status"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "unknown_account");
    }
    let (status, body) = app.post_json("nope/access_token/refresh", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_account");
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_or_oversized_refresh_body_is_a_client_error() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let url = app.api("main/access_token/refresh");
    let resp = app
        .http
        .post(&url)
        .bearer_auth(API_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .http
        .post(&url)
        .bearer_auth(API_KEY)
        .body(vec![b' '; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_request_ids_answer() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-wxgate-request-id"));
    assert_eq!(resp.text().await.unwrap(), "ok");
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The earlier requests are counted by route template and status.
    let metrics = resp.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.contains("route=\"/healthz\"")
            && l.contains("status=\"200\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
    let resp = app
        .http
        .get(format!("{}/nothing-here", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("x-wxgate-request-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // A wrong method on a known path: 405, with the caller's own request id echoed.
    let resp = app
        .http
        .delete(format!("{}/healthz", app.base))
        .header("x-wxgate-request-id", "mine-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["x-wxgate-request-id"], "mine-7");
    app.stop().await;
}

#[tokio::test]
async fn readiness_turns_503_when_the_store_stops_answering() {
    // A Redis of this test's own, so it can be stopped without touching anyone else's.
    if redis_url("readiness_turns_503_when_the_store_stops_answering").is_none() {
        return;
    }
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed where WXGATE_TEST_REDIS_URL is set");
    let url = format!("redis://127.0.0.1:{port}/0");
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.storage_url = url;
    // The store connects at start: wait for the server to accept connections.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let app = spawn_app(&config).await;
    let readyz = format!("{}/readyz", app.base);
    let resp = app.http.get(&readyz).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    redis.kill().await.unwrap();
    let resp = app.http.get(&readyz).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text().await.unwrap(), "storage is not answering");
    // Liveness is not readiness: the process itself is fine.
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}
