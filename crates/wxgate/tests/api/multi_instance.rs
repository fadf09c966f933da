//! Several `wxgate serve` processes sharing one real Redis (or one SQLite file): exactly one
//! fetch per validity window, and a crashed lease holder is replaced (PostgreSQL:
//! `multi_instance_postgres`).

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;

use crate::helpers::*;

/// `n` gateway processes on `storage_url` (a fresh key prefix) answer `requests` concurrent
/// token requests between them, WeChat answering in 300 ms: one token everywhere, one fetch.
/// Returns the mock, the config, the token and the gateways, for more checks.
pub(crate) async fn one_fetch_for_concurrent_requests(
    storage_url: String,
    n: usize,
    requests: usize,
) -> (
    wxgate_mock::MockWechat,
    GatewayConfig,
    HashSet<String>,
    Vec<GatewayProcess>,
) {
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(300));
    let mut config = GatewayConfig::new(addr);
    config.storage_url = storage_url;
    config.key_prefix = unique_prefix();
    let gateways = join_all((0..n).map(|_| GatewayProcess::start(&config))).await;
    let http = http_client();
    let urls: Vec<String> = (0..requests)
        .map(|i| gateways[i % n].api("main/access_token"))
        .collect();
    let answers = join_all(urls.iter().map(|u| get_json(&http, u))).await;
    let mut tokens = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        tokens.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens.len(), 1, "one token everywhere");
    assert_eq!(mock.calls("cgi-bin/stable_token"), 1);
    (mock, config, tokens, gateways)
}

#[tokio::test]
async fn three_processes_on_redis_make_one_fetch_for_240_concurrent_requests() {
    let Some(redis) =
        redis_url("three_processes_on_redis_make_one_fetch_for_240_concurrent_requests")
    else {
        return;
    };
    let (_mock, _config, _tokens, gateways) =
        one_fetch_for_concurrent_requests(redis, 3, 240).await;
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

/// Two processes on `storage_url`; WeChat answers each call in 2 s and the upstream timeout is
/// 3 s, so a lease lasts 5 s unless renewed, while the stable-token path for a token reported
/// invalid (normal mode, probe, force) takes 6 s. The second process reports the same token
/// while the first is refreshing: it must wait for that refresh and answer its token, with no
/// fetch of its own, and afterwards both serve the newest token.
pub(crate) async fn a_refresh_that_outlives_one_lease_ttl_stays_the_only_one(storage_url: String) {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.storage_url = storage_url;
    config.key_prefix = unique_prefix();
    config.timeout_ms = 3000;
    let a = GatewayProcess::start(&config).await;
    let b = GatewayProcess::start(&config).await;
    let http = http_client();
    let (_, first) = get_json(&http, &a.api("main/access_token")).await;
    let (_, same) = get_json(&http, &b.api("main/access_token")).await;
    let stale = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(same["access_token"], first["access_token"]);
    assert_eq!(mock.calls("cgi-bin/stable_token"), 1);

    // Normal mode hands back the same token and WeChat rejects it in the probe: force path.
    mock.inject_fault("cgi-bin/getcallbackip", wxgate_mock::Fault::Errcode(40001));
    mock.set_latency(Duration::from_secs(2));
    let report = |url: String| {
        let http = http.clone();
        let body = serde_json::json!({ "invalid_token": stale });
        async move {
            let resp = http
                .post(url)
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let on_a = tokio::spawn(report(a.api("main/access_token/refresh")));
    // Once a is probing (its lease 2 s old), b gets the same report.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while mock.calls("cgi-bin/getcallbackip") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a never probed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_b = tokio::spawn(report(b.api("main/access_token/refresh")));
    let (status_a, answer_a) = on_a.await.unwrap();
    let (status_b, answer_b) = on_b.await.unwrap();
    assert_eq!(status_a, 200, "{answer_a}");
    assert_eq!(status_b, 200, "{answer_b}");
    let fresh = answer_a["access_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, stale);
    assert!(mock.current_access_tokens(APPID).contains(&fresh));
    assert_eq!(
        answer_b["access_token"], answer_a["access_token"],
        "b answered before a's refresh ended (the lease expired under a)"
    );
    // One window, one refresh: the initial fetch, then normal mode and force, one probe.
    assert_eq!(mock.calls("cgi-bin/stable_token"), 3);
    assert_eq!(mock.calls("cgi-bin/getcallbackip"), 1);

    mock.set_latency(Duration::ZERO);
    for g in [&a, &b] {
        let (status, body) = get_json(&http, &g.api("main/access_token")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["access_token"].as_str(), Some(fresh.as_str()));
    }
    assert_eq!(mock.calls("cgi-bin/stable_token"), 3);
    let _ = a.stop_and_collect_log().await;
    let _ = b.stop_and_collect_log().await;
}

#[tokio::test]
async fn a_forced_refresh_longer_than_the_lease_ttl_is_one_fetch_on_redis() {
    let Some(redis) = redis_url("a_forced_refresh_longer_than_the_lease_ttl_is_one_fetch_on_redis")
    else {
        return;
    };
    a_refresh_that_outlives_one_lease_ttl_stays_the_only_one(redis).await;
}

#[tokio::test]
async fn a_forced_refresh_longer_than_the_lease_ttl_is_one_fetch_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    a_refresh_that_outlives_one_lease_ttl_stays_the_only_one(url).await;
}

/// A credential manager (the core of one instance) on `store`, with a 1 s lease TTL.
fn manager(
    mock: std::net::SocketAddr,
    store: std::sync::Arc<dyn wxgate::store::Store>,
) -> std::sync::Arc<wxgate::credentials::CredentialManager> {
    manager_with(mock, store, |_| {})
}

/// [`manager`] with its options adjusted by `tune`.
pub(crate) fn manager_with(
    mock: std::net::SocketAddr,
    store: std::sync::Arc<dyn wxgate::store::Store>,
    tune: impl FnOnce(&mut wxgate::credentials::ManagerOptions),
) -> std::sync::Arc<wxgate::credentials::CredentialManager> {
    use wxgate::credentials::{CredentialManager, ManagerOptions};
    use wxgate::upstream::{ClientOptions, RetryPolicy, WechatClient};
    let settings = GatewayConfig::new(mock).settings();
    let timeout = Duration::from_secs(2);
    let metrics = std::sync::Arc::new(wxgate::metrics::Metrics::new());
    let client = WechatClient::new(
        ClientOptions {
            api_base: format!("http://{mock}"),
            timeout,
            retry: RetryPolicy::default(),
            max_in_flight: 64,
        },
        metrics.clone(),
    )
    .unwrap();
    let mut options = ManagerOptions {
        lease_ttl: Duration::from_secs(1),
        ..ManagerOptions::for_upstream(timeout, 3)
    };
    tune(&mut options);
    std::sync::Arc::new(CredentialManager::new(
        &settings.validate().unwrap().accounts,
        &[],
        store,
        client,
        metrics,
        options,
    ))
}

/// Two credential managers on two handles of one SQLite file — two instances as far as the
/// lease is concerned — with a lease TTL of 1 s and a WeChat answering each call in 600 ms: the
/// stable-token path for a token reported invalid (normal, probe, force) takes 1.8 s. Whoever
/// gets the second report while the first refresh runs must wait for it and return its token.
#[tokio::test]
async fn a_lease_shorter_than_the_refresh_is_renewed_so_a_second_instance_waits_for_it() {
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let a = manager(addr, wxgate::store::connect(&url, "").await.unwrap());
    let b = manager(addr, wxgate::store::connect(&url, "").await.unwrap());
    let token = wxgate::domain::CredentialKind::AccessToken;
    let first = a.get("main", token).await.unwrap();
    assert_eq!(b.get("main", token).await.unwrap().value, first.value);

    mock.inject_fault("cgi-bin/getcallbackip", wxgate_mock::Fault::Errcode(40001));
    mock.set_latency(Duration::from_millis(600));
    let stale = first.value.clone();
    let on_a = tokio::spawn({
        let (a, stale) = (a.clone(), stale.clone());
        async move { a.refresh_access_token("main", Some(&stale)).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.calls("cgi-bin/getcallbackip") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a never probed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let from_b = b.refresh_access_token("main", Some(&stale)).await.unwrap();
    let from_a = on_a.await.unwrap().unwrap();
    assert_ne!(from_a.value, stale);
    assert_eq!(
        from_b.value, from_a.value,
        "b went ahead when a's lease expired, answering the token being replaced"
    );
    assert_eq!(mock.calls("cgi-bin/stable_token"), 3);
    assert_eq!(mock.calls("cgi-bin/getcallbackip"), 1);
    mock.set_latency(Duration::ZERO);
    assert_eq!(a.get("main", token).await.unwrap().value, from_a.value);
    assert_eq!(b.get("main", token).await.unwrap().value, from_a.value);
}

/// The token a forced refresh fetched is stored even when, meanwhile, another instance stored a
/// credential from a fetch that *started* later but *completed* earlier (here: the token being
/// replaced, as a normal-mode fetch would hand it back): WeChat issued the forced one last, and
/// it just invalidated the other.
#[tokio::test]
async fn a_force_refreshed_token_wins_over_one_fetched_during_its_refresh() {
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let store = wxgate::store::connect(&url, "").await.unwrap();
    let a = manager(addr, store.clone());
    let token = wxgate::domain::CredentialKind::AccessToken;
    let first = a.get("main", token).await.unwrap();

    mock.inject_fault("cgi-bin/getcallbackip", wxgate_mock::Fault::Errcode(40001));
    mock.set_latency(Duration::from_millis(400));
    let stale = first.value.clone();
    let on_a = tokio::spawn({
        let (a, stale) = (a.clone(), stale.clone());
        async move { a.refresh_access_token("main", Some(&stale)).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.calls("cgi-bin/getcallbackip") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a never probed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another instance's fetch, started after a's and done before it, stores the old token.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut other: serde_json::Value = serde_json::to_value(&*first).unwrap();
    other["fetched_at_ms"] = now_ms.into();
    other["fetched_at"] = (now_ms / 1000).into();
    assert!(store
        .put_if_newer(
            "cred:main:access_token",
            &serde_json::to_vec(&other).unwrap(),
            now_ms,
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap());

    let fresh = on_a.await.unwrap().unwrap();
    assert_ne!(fresh.value, stale);
    assert!(mock.current_access_tokens(APPID).contains(&fresh.value));
    assert!(!mock.current_access_tokens(APPID).contains(&stale));
    mock.set_latency(Duration::ZERO);
    // A fresh instance on the same store serves the token WeChat accepts.
    let b = manager(addr, store.clone());
    assert_eq!(b.get("main", token).await.unwrap().value, fresh.value);
    assert_eq!(a.get("main", token).await.unwrap().value, fresh.value);
}
