//! Several instances of one platform sharing a database and a store: the component token and
//! each authorizer's token fetched once per validity window across all of them (on one SQLite
//! file and on Redis), refresh tokens that survive a Redis flush and rotation under concurrent
//! forced refreshes, and a revocation received by one instance in force on the others within
//! 2 s.
//!
//! The counts are WeChat's (the mock's): `api_component_token` and `api_authorizer_token`
//! calls, per authorizer where it matters.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;

use super::*;
use crate::helpers::{get_json, http_client, redis_url, unique_prefix, TestApp};

const COMPONENT_TOKEN_CALL: &str = "cgi-bin/component/api_component_token";
const AUTHORIZER_TOKEN_CALL: &str = "cgi-bin/component/api_authorizer_token";
/// How many authorizers the counting tests serve, and how many requests they send at once.
const AUTHORIZERS: u64 = 100;
const REQUESTS: usize = 500;

async fn spawn(config: &GatewayConfig) -> TestApp {
    spawn_app_full(config, None, |_, _| {}).await
}

fn merchants() -> Vec<String> {
    (0..AUTHORIZERS)
        .map(|n| authorizer_appid(0x100 + n))
        .collect()
}

/// Records `merchants` as authorizers in the database of `config` through a throwaway instance
/// that shares only that database (its store is its own memory), stopped afterwards.
///
/// Why: recording an authorization keeps the access token `api_query_auth` answered, so the
/// first request fetches nothing. The instances measured afterwards share the database (the
/// authorizers and their refresh tokens) but not that store: every authorizer is cold for them
/// and must be fetched with its refresh token, as after a restart on an empty store, and the
/// component token too. No stored credential is deleted behind the gateway's back.
async fn authorize_all(mock: &MockWechat, config: &GatewayConfig, merchants: &[String]) {
    let mut own_store = config.clone();
    own_store.storage_url = "memory://".into();
    let setup = spawn(&own_store).await;
    register(mock, &setup.base).await;
    futures::stream::iter(merchants)
        .for_each_concurrent(8, |m| authorize_by_event(mock, &setup.base, m))
        .await;
    setup.stop().await;
}

/// `n` instances of `config`, the ticket pushed to the first (so in the shared store).
async fn start_instances(mock: &MockWechat, config: &GatewayConfig, n: usize) -> Vec<TestApp> {
    let apps = join_all((0..n).map(|_| spawn(config))).await;
    register(mock, &apps[0].base).await;
    apps
}

async fn stop_all(apps: Vec<TestApp>) {
    join_all(apps.into_iter().map(TestApp::stop)).await;
}

/// WeChat's token calls so far: the component's, and each authorizer's (`api_query_auth` and
/// `api_authorizer_token`).
struct Calls {
    component: u64,
    authorizer_total: u64,
    per_authorizer: Vec<u64>,
}

impl Calls {
    fn read(mock: &MockWechat, merchants: &[String]) -> Self {
        Calls {
            component: mock.calls(COMPONENT_TOKEN_CALL),
            authorizer_total: mock.calls(AUTHORIZER_TOKEN_CALL),
            per_authorizer: merchants
                .iter()
                .map(|m| mock.authorizer_token_calls(m))
                .collect(),
        }
    }

    /// New calls since `before`: the component's, the total of `api_authorizer_token`, and
    /// per authorizer.
    fn since(&self, before: &Calls) -> (u64, u64, Vec<u64>) {
        let per = self
            .per_authorizer
            .iter()
            .zip(&before.per_authorizer)
            .map(|(now, then)| now - then)
            .collect();
        (
            self.component - before.component,
            self.authorizer_total - before.authorizer_total,
            per,
        )
    }
}

/// `requests` concurrent `GET …/{appid}/access_token`: request `i` asks for authorizer
/// `i % len` on instance `(i / len) % instances`, so each authorizer is asked on every
/// instance. Answers (appid, status, body).
async fn hammer(
    apps: &[TestApp],
    merchants: &[String],
    requests: usize,
) -> Vec<(String, u16, Value)> {
    let http = http_client();
    join_all((0..requests).map(|i| {
        let merchant = &merchants[i % merchants.len()];
        let url = apps[(i / merchants.len()) % apps.len()].api(&format!("{merchant}/access_token"));
        let http = http.clone();
        async move {
            let (status, body) = get_json(&http, &url).await;
            (merchant.clone(), status, body)
        }
    }))
    .await
}

/// Every answer is 200, and each authorizer got one token everywhere: appid → token.
fn one_token_each(answers: &[(String, u16, Value)]) -> HashMap<String, String> {
    let mut tokens: HashMap<String, String> = HashMap::new();
    for (merchant, status, body) in answers {
        assert_eq!(*status, 200, "{merchant}: {body}");
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        assert!(!token.is_empty(), "{merchant}: {body}");
        let first = tokens
            .entry(merchant.clone())
            .or_insert_with(|| token.clone());
        assert_eq!(*first, token, "{merchant} was answered two tokens");
    }
    tokens
}

/// The authorizers whose new fetches since `before` are not `expected`, with their counts.
fn off_count(merchants: &[String], per: &[u64], expected: u64) -> Vec<(String, u64)> {
    merchants
        .iter()
        .zip(per)
        .filter(|(_, n)| **n != expected)
        .map(|(m, n)| (m.clone(), *n))
        .collect()
}

/// The 500 cold requests over 100 authorizers on `apps`: one component token and one token
/// per authorizer in all, and each authorizer answered one token everywhere.
async fn one_fetch_per_window(mock: &MockWechat, apps: &[TestApp], merchants: &[String]) {
    let before = Calls::read(mock, merchants);
    // WeChat answers slowly, so the requests for one credential overlap on every instance.
    mock.set_latency(Duration::from_millis(100));
    let answers = hammer(apps, merchants, REQUESTS).await;
    mock.set_latency(Duration::ZERO);
    let tokens = one_token_each(&answers);
    assert_eq!(tokens.len(), merchants.len());
    let (component, total, per) = Calls::read(mock, merchants).since(&before);
    // The store the instances share had no component token (see `authorize_all`): exactly
    // one fetch, by whichever instance took its lease first.
    assert_eq!(component, 1, "component_access_token fetches");
    assert_eq!(
        off_count(merchants, &per, 1),
        vec![],
        "authorizers not fetched exactly once"
    );
    assert_eq!(total, AUTHORIZERS, "api_authorizer_token calls in all");
}

#[tokio::test]
async fn two_instances_on_one_sqlite_file_fetch_each_token_once() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = platform_config(addr);
    // The database is the config's own SQLite file (shared by every clone); the store another
    // file of the same directory.
    config.storage_url = format!("sqlite://{}", dir.path().join("store.db").display());
    let merchants = merchants();
    authorize_all(&mock, &config, &merchants).await;
    let apps = start_instances(&mock, &config, 2).await;
    one_fetch_per_window(&mock, &apps, &merchants).await;
    stop_all(apps).await;
}

/// A `redis-server` of this test's own on a free port, killed when dropped: FLUSHALL on the
/// shared Redis of `WXGATE_TEST_REDIS_URL` would pull the keys from under concurrent tests.
struct PrivateRedis {
    url: String,
    _server: tokio::process::Child,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let server = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("WXGATE_TEST_REDIS_URL is set but redis-server cannot be started: {e}")
            });
        let redis = PrivateRedis {
            url: format!("redis://127.0.0.1:{port}/0"),
            _server: server,
        };
        let up = eventually(Duration::from_secs(10), || async {
            redis.command("PING").await.is_ok_and(|r| r == "PONG")
        })
        .await;
        assert!(up, "redis-server on port {port} never answered PING");
        redis
    }

    async fn command(&self, name: &str) -> redis::RedisResult<String> {
        let client = redis::Client::open(self.url.as_str())?;
        let connect = client.get_multiplexed_async_connection();
        let mut conn = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .map_err(|_| redis::RedisError::from(std::io::Error::other("connect timed out")))??;
        redis::cmd(name).query_async(&mut conn).await
    }
}

#[tokio::test]
async fn three_instances_on_redis_fetch_each_token_once_and_a_flush_loses_no_refresh_token() {
    if redis_url("three_instances_on_redis_fetch_each_token_once").is_none() {
        return;
    }
    let redis = PrivateRedis::start().await;
    let (mock, addr) = crate::helpers::start_mock().await;
    // Every api_authorizer_token answers a new refresh token and retires the one used: one
    // kept anywhere but the database would be lost with the flush and answer 61023 after it.
    mock.set_refresh_token_rotation(COMPONENT_APPID, true);
    let mut config = platform_config(addr);
    config.storage_url = redis.url.clone();
    config.key_prefix = unique_prefix();
    let merchants = merchants();
    authorize_all(&mock, &config, &merchants).await;
    let apps = start_instances(&mock, &config, 3).await;
    one_fetch_per_window(&mock, &apps, &merchants).await;
    // Every instance holds the component token in its memory (the ticket it needs for a new
    // one goes with the flush; WeChat pushes the next within 10 minutes).
    for app in &apps {
        let (status, body) = get_api(&component_api(&app.base, "access_token")).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = Calls::read(&mock, &merchants);

    assert_eq!(redis.command("FLUSHALL").await.unwrap(), "OK");
    // The instances still hold every authorizer's token in memory and would serve it without
    // asking anyone; forget those (as if they had expired), so each authorizer must be fetched
    // again, on a flushed store, with the refresh token in the database.
    for app in &apps {
        for m in &merchants {
            app.state.creds.drop_cached(m).await;
        }
    }
    let everywhere = merchants.len() * apps.len();
    mock.set_latency(Duration::from_millis(100));
    let answers = hammer(&apps, &merchants, everywhere).await;
    mock.set_latency(Duration::ZERO);
    one_token_each(&answers);
    let (component, total, per) = Calls::read(&mock, &merchants).since(&before);
    assert!(component <= 1, "{component} component_access_token fetches");
    assert_eq!(
        off_count(&merchants, &per, 1),
        vec![],
        "authorizers not fetched exactly once after the flush"
    );
    assert_eq!(total, AUTHORIZERS);
    stop_all(apps).await;
}

/// Waits until every instance serves `merchant`, authorized on one of them: the others learn
/// of it from the database (SPEC: within 2 s).
async fn served_everywhere(apps: &[TestApp], merchant: &str) {
    for (n, app) in apps.iter().enumerate() {
        let served = eventually(Duration::from_secs(2), || async {
            app.get_json(&format!("{merchant}/access_token")).await.0 == 200
        })
        .await;
        assert!(
            served,
            "instance {} does not serve {merchant} after 2 s",
            n + 1
        );
    }
}

/// Forced refreshes (`POST …/access_token/refresh`) and reads of one authorizer on `apps`, all
/// at once; each instance gets `per_instance` of each.
async fn refresh_round(apps: &[TestApp], merchant: &str, per_instance: usize) -> Vec<(u16, Value)> {
    let refresh = format!("{merchant}/access_token/refresh");
    let read = format!("{merchant}/access_token");
    let mut calls: Vec<futures::future::BoxFuture<'_, (u16, Value)>> = Vec::new();
    for app in apps {
        for _ in 0..per_instance {
            calls.push(Box::pin(app.post_json(&refresh, None)));
            calls.push(Box::pin(app.get_json(&read)));
        }
    }
    join_all(calls).await
}

#[tokio::test]
async fn rotated_refresh_tokens_under_concurrent_refreshes_leave_the_newest_in_the_database() {
    let (mock, addr) = crate::helpers::start_mock().await;
    mock.set_refresh_token_rotation(COMPONENT_APPID, true);
    // Authorizer tokens live 4 s: besides the forced refreshes, reads find them expired and
    // refresh-ahead replaces them (due at 2 s left), on both instances.
    mock.set_token_ttl(4);
    let dir = tempfile::tempdir().unwrap();
    let mut config = platform_config(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("store.db").display());
    let apps = start_instances(&mock, &config, 2).await;
    let merchant = authorizer_appid(0x77);
    authorize_by_event(&mock, &apps[0].base, &merchant).await;
    served_everywhere(&apps, &merchant).await;
    let first = mock.authorizer_token_calls(&merchant);

    let rounds = 8;
    for round in 0..rounds {
        for (status, body) in refresh_round(&apps, &merchant, 4).await {
            assert_eq!(status, 200, "round {round}: {body}");
            assert!(body["access_token"].is_string(), "round {round}: {body}");
        }
        // One forced refresh per 30 s across instances: drop the guard (shared store) so the
        // next round refreshes again.
        apps[0]
            .state
            .store
            .delete(&format!("force:{merchant}:access_token"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Quiet before stopping: a stop aborts a refresh-ahead in flight, and a refresh token
    // WeChat rotated for a call cut off like that is lost (as with any call whose answer never
    // arrives). One last forced refresh to a long-lived token, under the lease: nothing is due
    // after it.
    mock.set_token_ttl(7200);
    let (status, body) = apps[1]
        .post_json(&format!("{merchant}/access_token/refresh"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let rotations = mock.authorizer_token_calls(&merchant) - first;
    assert!(
        rotations >= rounds,
        "only {rotations} refresh-token rotations in {rounds} rounds"
    );
    let (_, list) = get_api(&component_api(&apps[0].base, "authorizers")).await;
    assert_eq!(list["authorizers"][0]["status"], "authorized", "{list}");
    stop_all(apps).await;

    // A new instance on the same database and a store of its own (nothing shared but the
    // refresh token): WeChat accepts only the newest one.
    let mut fresh = config.clone();
    fresh.storage_url = "memory://".into();
    let newcomer = spawn(&fresh).await;
    register(&mock, &newcomer.base).await;
    let (status, body) = newcomer.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(
        status, 200,
        "the stored refresh token is not the newest: {body}"
    );
    assert_eq!(
        mock.authorizer_token_calls(&merchant) - first,
        rotations + 1
    );
    newcomer.stop().await;
}

/// The status and error code of `GET /jssdk/{appid}/config` (no key needed).
async fn jssdk_config(base: &str, appid: &str) -> (u16, Value) {
    let url = format!(
        "{base}/jssdk/{appid}/config?url={}",
        urlencode("https://h5.example.com/page")
    );
    let resp = http_client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unauthorized_on_one_instance_stops_the_authorizer_on_the_other_within_2_s() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = platform_config(addr);
    config.storage_url = format!("sqlite://{}", dir.path().join("store.db").display());
    let apps = start_instances(&mock, &config, 2).await;
    let merchant = authorizer_appid(0x99);
    authorize_by_event(&mock, &apps[0].base, &merchant).await;
    served_everywhere(&apps, &merchant).await;
    for app in &apps {
        let (status, body) = app.get_json(&format!("{merchant}/access_token")).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = jssdk_config(&app.base, &merchant).await;
        assert_eq!(status, 200, "{body}");
    }

    let unauthorized = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{}</CreateTime>\
         <InfoType>unauthorized</InfoType><AuthorizerAppid>{merchant}</AuthorizerAppid></xml>",
        // WeChat's clock, after the authorization's second (a revocation wins only when later).
        unix_now() + 1
    );
    assert_eq!(
        send_event(&apps[0].base, &unauthorized).await,
        (200, "success".into())
    );
    let revoked = |app: &TestApp| {
        let (base, api) = (
            app.base.clone(),
            app.api(&format!("{merchant}/access_token")),
        );
        let merchant = merchant.clone();
        async move {
            let (token, token_body) = get_api(&api).await;
            let (jssdk, jssdk_body) = jssdk_config(&base, &merchant).await;
            token == 404
                && jssdk == 404
                && token_body["error"]["code"] == "unknown_account"
                && jssdk_body["error"]["code"] == "unknown_account"
        }
    };
    assert!(revoked(&apps[0]).await, "instance 1 still serves it");
    let everywhere = eventually(Duration::from_secs(2), || revoked(&apps[1])).await;
    let (status, body) = apps[1].get_json(&format!("{merchant}/access_token")).await;
    assert!(
        everywhere,
        "instance 2 still serves the revoked authorizer after 2 s: {status} {body}"
    );
    stop_all(apps).await;
}
