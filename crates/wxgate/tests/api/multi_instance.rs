//! Several `wxgate serve` processes sharing one real Redis (or one SQLite file): exactly one
//! fetch per validity window, and a crashed lease holder is replaced.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;

use crate::helpers::*;

#[tokio::test]
async fn three_processes_on_redis_make_one_fetch_for_240_concurrent_requests() {
    let Some(redis) =
        redis_url("three_processes_on_redis_make_one_fetch_for_240_concurrent_requests")
    else {
        return;
    };
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(300));
    let mut config = GatewayConfig::new(addr);
    config.storage_url = redis;
    config.key_prefix = unique_prefix();
    let gateways = join_all((0..3).map(|_| GatewayProcess::start(&config))).await;
    let http = http_client();
    let urls: Vec<String> = (0..240)
        .map(|i| gateways[i % 3].api("main/access_token"))
        .collect();
    let answers = join_all(urls.iter().map(|u| get_json(&http, u))).await;
    let mut tokens = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        tokens.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens.len(), 1, "one token everywhere");
    assert_eq!(mock.calls("cgi-bin/stable_token"), 1);
    for g in gateways {
        let _ = g.stop_and_collect_log().await;
    }
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_make_one_fetch() {
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::new(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    config.token_api = "classic";
    let gateways = join_all((0..2).map(|_| GatewayProcess::start(&config))).await;
    let http = http_client();
    let urls: Vec<String> = (0..100)
        .map(|i| gateways[i % 2].api("main/tickets/jsapi"))
        .collect();
    let answers = join_all(urls.iter().map(|u| get_json(&http, u))).await;
    let tickets: HashSet<String> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, 200, "{b}");
            b["ticket"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tickets.len(), 1);
    assert_eq!(mock.calls("cgi-bin/token"), 1);
    assert_eq!(mock.calls("cgi-bin/ticket/getticket"), 1);
    for g in gateways {
        let _ = g.stop_and_collect_log().await;
    }
}

#[tokio::test]
async fn when_the_lease_holder_dies_mid_fetch_another_process_takes_over_after_the_lease_expires() {
    let Some(redis) = redis_url("when_the_lease_holder_dies_mid_fetch") else {
        return;
    };
    let (mock, addr) = start_mock().await;
    // Each attempt takes 800 ms of a 1000 ms budget: the holder is surely mid-fetch when killed.
    mock.set_latency(Duration::from_millis(800));
    let mut config = GatewayConfig::new(addr);
    config.storage_url = redis;
    config.key_prefix = unique_prefix();
    config.timeout_ms = 1000;
    let mut holder = GatewayProcess::start(&config).await;
    let survivor = GatewayProcess::start(&config).await;
    let http = http_client();

    let holder_url = holder.api("main/access_token");
    let pending = tokio::spawn({
        let http = http.clone();
        async move { http.get(holder_url).bearer_auth(API_KEY).send().await }
    });
    // Wait until the holder's fetch has reached WeChat, then crash it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.calls("cgi-bin/stable_token") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the holder never fetched"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.kill().await;
    assert!(
        pending.await.unwrap().is_err(),
        "the killed process cannot answer"
    );

    let started = tokio::time::Instant::now();
    let (status, body) = get_json(&http, &survivor.api("main/access_token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some());
    // It waited for the dead holder's lease rather than fetching at once.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.calls("cgi-bin/stable_token"), 2);
    let _ = survivor.stop_and_collect_log().await;
}

#[tokio::test]
async fn a_forced_refresh_on_one_instance_reaches_the_other_within_a_scan() {
    // Classic tokens: the forced refresh retires the old token, so every instance must switch.
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::new(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    config.token_api = "classic";
    let a = spawn_app(&config).await;
    let b = spawn_app(&config).await;
    let (_, first) = a.get_json("main/access_token").await;
    let (_, same) = b.get_json("main/access_token").await;
    assert_eq!(first["access_token"], same["access_token"]);

    let (status, refreshed) = a.post_json("main/access_token/refresh", None).await;
    assert_eq!(status, 200);
    assert_ne!(refreshed["access_token"], first["access_token"]);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, seen) = b.get_json("main/access_token").await;
        if seen["access_token"] == refreshed["access_token"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance b still serves the retired token"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(mock.calls("cgi-bin/token"), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn concurrent_invalid_token_reports_on_two_instances_all_get_the_one_new_token() {
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::new(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    config.token_api = "classic";
    let a = spawn_app(&config).await;
    let b = spawn_app(&config).await;
    let (_, first) = a.get_json("main/access_token").await;
    let stale = first["access_token"].as_str().unwrap().to_owned();
    let report = Some(serde_json::json!({ "invalid_token": stale }));
    let answers = join_all((0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.post_json("main/access_token/refresh", report.clone())
    }))
    .await;
    let tokens: HashSet<String> = answers
        .iter()
        .map(|(s, body)| {
            assert_eq!(*s, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "everyone got the same token: {tokens:?}");
    assert!(
        !tokens.contains(&stale),
        "nobody got the reported token back"
    );
    assert_eq!(mock.calls("cgi-bin/token"), 2);
    a.stop().await;
    b.stop().await;
}
