//! Central credentials over HTTP: single flight, persistence, outages, retries, the refresh
//! guard and refresh-ahead, against the real mock WeChat API.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use wxgate_mock::Fault;

use crate::helpers::*;

const STABLE: &str = "cgi-bin/stable_token";
const CLASSIC: &str = "cgi-bin/token";
const TICKET: &str = "cgi-bin/ticket/getticket";

#[tokio::test]
async fn three_hundred_concurrent_cold_requests_cause_one_token_and_one_ticket_fetch() {
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(300));
    let app = spawn_app(&GatewayConfig::new(addr)).await;

    let requests = (0..300).map(|i| {
        let path = if i % 2 == 0 {
            "main/tickets/jsapi"
        } else {
            "main/access_token"
        };
        app.get_json(path)
    });
    let answers = join_all(requests).await;

    let mut tokens = std::collections::HashSet::new();
    let mut tickets = std::collections::HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        if let Some(t) = body["access_token"].as_str() {
            tokens.insert(t.to_owned());
        }
        if let Some(t) = body["ticket"].as_str() {
            tickets.insert(t.to_owned());
        }
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(tickets.len(), 1);
    assert_eq!(mock.calls(STABLE), 1);
    assert_eq!(mock.calls(TICKET), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_token_answer_has_the_spec_shape_and_wechat_expiry() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let before = chrono_now();
    let (status, body) = app.get_json("main/access_token").await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(mock
        .current_access_tokens(APPID)
        .contains(&token.to_owned()));
    let fetched_at = body["fetched_at"].as_i64().unwrap();
    let expires_at = body["expires_at"].as_i64().unwrap();
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((before - 1..=before + 2).contains(&fetched_at));
    assert_eq!(expires_at, fetched_at + 7200);
    assert!((7190..=7200).contains(&expires_in));

    let (status, ticket) = app.get_json("main/tickets/wx_card").await;
    assert_eq!(status, 200, "{ticket}");
    assert!(ticket["ticket"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(ticket["expires_at"].as_i64().is_some());
    assert!(ticket["expires_in"].as_i64().is_some());
    app.stop().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_restart_on_the_sqlite_store_fetches_nothing_while_the_token_is_valid() {
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::new(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("store.db").display());
    config.token_api = "classic";

    let first = spawn_app(&config).await;
    let (_, a) = first.get_json("main/access_token").await;
    let (_, t) = first.get_json("main/tickets/jsapi").await;
    first.stop().await;

    let second = spawn_app(&config).await;
    let (status, b) = second.get_json("main/access_token").await;
    let (_, t2) = second.get_json("main/tickets/jsapi").await;
    assert_eq!(status, 200);
    assert_eq!(a["access_token"], b["access_token"]);
    assert_eq!(t["ticket"], t2["ticket"]);
    assert_eq!(mock.calls(CLASSIC), 1);
    assert_eq!(mock.calls(TICKET), 1);

    // Even with WeChat unreachable, the stored token is served after a restart.
    second.stop().await;
    mock.set_down(true);
    let third = spawn_app(&config).await;
    let (status, c) = third.get_json("main/access_token").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(a["access_token"], c["access_token"]);
    third.stop().await;
}

#[tokio::test]
async fn an_upstream_outage_after_the_first_fetch_keeps_the_valid_token_served() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (_, first) = app.get_json("main/access_token").await;
    mock.set_down(true);
    for _ in 0..5 {
        let (status, again) = app.get_json("main/access_token").await;
        assert_eq!(status, 200);
        assert_eq!(first["access_token"], again["access_token"]);
    }
    // A credential never fetched yet cannot be served: the caller gets a clear 5xx.
    let (status, body) = app.get_json("main/tickets/jsapi").await;
    assert!(status == 502 || status == 503, "{status} {body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    app.stop().await;
}

#[tokio::test]
async fn system_busy_twice_then_success_is_retried_with_backoff() {
    let (mock, addr) = start_mock().await;
    mock.inject_fault(STABLE, Fault::Errcode(-1));
    mock.inject_fault(STABLE, Fault::Errcode(-1));
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (status, body) = app.get_json("main/access_token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.calls(STABLE), 3);
    app.stop().await;
}

#[tokio::test]
async fn persistent_transient_errors_answer_upstream_unavailable_after_three_attempts() {
    let (mock, addr) = start_mock().await;
    for _ in 0..3 {
        mock.inject_fault(STABLE, Fault::HttpStatus(502));
    }
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (status, body) = app.get_json("main/access_token").await;
    assert!(status == 502 || status == 503, "{status} {body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert_eq!(mock.calls(STABLE), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_answers_502_with_the_wechat_errcode_and_never_logs_the_secret() {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.secret = "wrong-secret-7d1f0c2e9b".into();
    let gateway = GatewayProcess::start(&config).await;
    let http = http_client();
    let (status, body) = get_json(&http, &gateway.api("main/access_token")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!(body["error"]["wechat_errcode"], 40125);
    let message = body["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("appsecret"), "{message}");
    // Configuration errors are not retried.
    assert_eq!(mock.calls(STABLE), 1);
    let log = gateway.stop_and_collect_log().await;
    assert!(!log.is_empty(), "the gateway logged nothing at debug level");
    assert!(
        !log.contains("wrong-secret-7d1f0c2e9b"),
        "secret in log:\n{log}"
    );
    assert!(!body.to_string().contains("wrong-secret-7d1f0c2e9b"));
}

#[tokio::test]
async fn a_stale_invalid_token_report_causes_no_fetch() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (_, current) = app.get_json("main/access_token").await;
    let (status, answer) = app
        .post_json(
            "main/access_token/refresh",
            Some(json!({"invalid_token": "an-older-token"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["access_token"], current["access_token"]);
    assert_eq!(mock.calls(STABLE), 1);
    app.stop().await;
}

#[tokio::test]
async fn five_rapid_forced_refreshes_cause_at_most_one_fetch() {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.token_api = "classic";
    let app = spawn_app(&config).await;
    let (_, first) = app.get_json("main/access_token").await;
    assert_eq!(mock.calls(CLASSIC), 1);
    let answers = join_all((0..5).map(|_| app.post_json("main/access_token/refresh", None))).await;
    let mut seen = std::collections::HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        seen.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(mock.calls(CLASSIC), 2, "one initial fetch and one forced");
    assert_eq!(seen.len(), 1, "every caller got the refreshed token");
    assert_ne!(
        seen.iter().next().map(String::as_str),
        first["access_token"].as_str()
    );
    // Still within 30 s: another forced refresh fetches nothing.
    let (status, _) = app.post_json("main/access_token/refresh", None).await;
    assert_eq!(status, 200);
    assert_eq!(mock.calls(CLASSIC), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_stable_token_reported_invalid_but_accepted_by_wechat_is_not_force_refreshed() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (_, first) = app.get_json("main/access_token").await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let (status, answer) = app
        .post_json(
            "main/access_token/refresh",
            Some(json!({"invalid_token": token})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Normal mode handed back the same token; the probe showed WeChat still accepts it.
    assert_eq!(answer["access_token"], first["access_token"]);
    assert_eq!(mock.calls(STABLE), 2);
    assert_eq!(mock.calls("cgi-bin/getcallbackip"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_stable_token_rejected_by_wechat_is_replaced_with_force_refresh() {
    let (mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let (_, first) = app.get_json("main/access_token").await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    mock.invalidate_access_tokens(APPID);
    let (status, answer) = app
        .post_json(
            "main/access_token/refresh",
            Some(json!({"invalid_token": token})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let fresh = answer["access_token"].as_str().unwrap();
    assert_ne!(fresh, token);
    assert!(mock
        .current_access_tokens(APPID)
        .contains(&fresh.to_owned()));
    // And the new token works for a ticket.
    let (status, ticket) = app.get_json("main/tickets/jsapi").await;
    assert_eq!(status, 200, "{ticket}");
    app.stop().await;
}

#[tokio::test]
async fn a_ticket_fetch_rejected_for_the_token_refreshes_the_token_once_and_retries() {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.token_api = "classic";
    let app = spawn_app(&config).await;
    let (_, first) = app.get_json("main/access_token").await;
    mock.invalidate_access_tokens(APPID);
    let (status, ticket) = app.get_json("main/tickets/jsapi").await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(mock.calls(CLASSIC), 2);
    assert_eq!(mock.calls(TICKET), 2);
    let (_, now) = app.get_json("main/access_token").await;
    assert_ne!(first["access_token"], now["access_token"]);
    app.stop().await;
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_ahead_and_never_served_expired() {
    let (mock, addr) = start_mock_with(|c| c.token_ttl_s = 8).await;
    let mut config = GatewayConfig::new(addr);
    config.token_api = "classic";
    let app = spawn_app(&config).await;
    let mut tokens = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(14);
    while tokio::time::Instant::now() < deadline {
        let (status, body) = app.get_json("main/access_token").await;
        assert_eq!(status, 200, "{body}");
        let expires_at = body["expires_at"].as_i64().unwrap();
        assert!(
            expires_at > chrono_now() - 1,
            "served an expired token: {body}"
        );
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(
            mock.current_access_tokens(APPID).contains(&token),
            "served a token WeChat no longer accepts"
        );
        tokens.insert(token);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tokens.len() >= 2, "no refresh happened: {tokens:?}");
    // Refreshed ahead, not on every request: roughly one fetch per half lifetime.
    let fetches = mock.calls(CLASSIC);
    assert!((2..=6).contains(&fetches), "{fetches} fetches in 14 s");
    app.stop().await;
}

#[tokio::test]
async fn status_and_metrics_show_credentials_and_upstream_calls() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let _ = app.get_json("main/tickets/jsapi").await;
    let (status, body) = app.get_json("main/status").await;
    assert_eq!(status, 200, "{body}");
    let creds = body["credentials"].as_array().unwrap();
    let token = creds
        .iter()
        .find(|c| c["credential"] == "access_token")
        .unwrap();
    assert_eq!(token["present"], true);
    assert!(token["expires_in"].as_i64().unwrap() > 7000);
    assert_eq!(token["last_refresh_reason"], "initial");
    assert_eq!(body["upstream_calls"]["cgi-bin/stable_token"]["ok"], 1);
    assert!(!body.to_string().contains(SECRET));

    let metrics = app.metrics_text().await;
    assert!(metrics.contains(
        "wxgate_upstream_calls_total{account=\"main\",endpoint=\"cgi-bin/stable_token\",outcome=\"ok\"} 1"
    ), "{metrics}");
    assert!(metrics.contains("wxgate_credential_refreshes_total{account=\"main\",credential=\"jsapi_ticket\",reason=\"initial\"} 1"));
    assert!(metrics.contains(
        "wxgate_credential_expires_in_seconds{account=\"main\",credential=\"access_token\"}"
    ));
    assert!(metrics.contains("wxgate_http_requests_total{route=\"/api/v1/accounts/{account}/tickets/jsapi\",status=\"200\"} 1"));
    // Store calls are counted by operation: one versioned write per credential fetched.
    assert!(
        metrics.contains("wxgate_store_operations_total{op=\"put_if_newer\"} 2"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_credentials_keep_working_after_the_stored_value_is_corrupted() {
    // A value in the store that is not a credential is ignored and replaced, not a 500.
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::new(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = wxgate::store::connect(&config.storage_url, "")
        .await
        .unwrap();
    store
        .put("cred:main:access_token", b"not json", None)
        .await
        .unwrap();
    let app = spawn_app(&config).await;
    let (status, body): (u16, Value) = app.get_json("main/access_token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.calls(STABLE), 1);
    app.stop().await;
}

#[tokio::test]
async fn fifty_requests_during_an_outage_share_one_fetch_and_a_remembered_failure_costs_no_call() {
    let (mock, addr) = start_mock().await;
    mock.set_down(true);
    let app = spawn_app(&GatewayConfig::new(addr)).await;

    let started = tokio::time::Instant::now();
    let answers = join_all((0..50).map(|_| app.get_json("main/access_token"))).await;
    let took = started.elapsed();
    for (status, body) in &answers {
        assert!(*status == 502 || *status == 503, "{status} {body}");
        assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    }
    let outage_calls = mock.calls(STABLE);
    assert!(
        (1..=3).contains(&outage_calls),
        "one fetch's attempts, not one fetch per caller: {outage_calls} calls"
    );
    // One fetch's attempts and backoffs, not 50 of them in a row (generous bound).
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Within the backoff: answered at once from memory, no call, and told when to come back.
    let resp = app
        .http
        .get(app.api("main/access_token"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed moments ago"),
        "{body}"
    );
    assert_eq!(mock.calls(STABLE), outage_calls);

    // WeChat is back; callers keep being refused without a call until the backoff ends, then
    // exactly one fetch succeeds.
    mock.set_down(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let token = loop {
        let (status, body) = app.get_json("main/access_token").await;
        if status == 200 {
            break body["access_token"].as_str().unwrap().to_owned();
        }
        assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
        assert_eq!(
            mock.calls(STABLE),
            outage_calls,
            "a call during the backoff"
        );
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the failure was remembered for the backoff: {:?}",
        started.elapsed()
    );
    assert_eq!(mock.calls(STABLE), outage_calls + 1);
    assert!(mock.current_access_tokens(APPID).contains(&token));
    app.stop().await;
}

#[tokio::test]
async fn an_absurd_expires_in_from_wechat_is_capped_not_overflowed() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/stable_token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            // u64::MAX, written out: serde_json reads it as a u64.
            r#"{"access_token":"tok-huge-lifetime","expires_in":18446744073709551615}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let app = spawn_app(&GatewayConfig::new(*server.address())).await;
    for _ in 0..3 {
        let (status, body) = app.get_json("main/access_token").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["access_token"], "tok-huge-lifetime");
        let lifetime = body["expires_at"].as_i64().unwrap() - body["fetched_at"].as_i64().unwrap();
        assert_eq!(lifetime, wxgate::credentials::MAX_LIFETIME_S);
        assert!(body["expires_in"].as_i64().unwrap() <= lifetime);
    }
    // Cached like any other credential: one fetch.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    app.stop().await;
}
