//! The built-in WeChat mock, driven over real HTTP (reqwest) and through the real
//! `WechatClient`: token rotation and idempotence rules, limits, tickets, OAuth, faults, outage
//! mode and the `/__mock/*` controls other processes use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use wxgate::domain::{TicketKind, TokenApi};
use wxgate::metrics::Metrics;
use wxgate::upstream::{ClientOptions, RetryPolicy, UpstreamError, WechatClient};
use wxgate_mock::{Fault, MockAccount, MockConfig, MockWechat};

const APPID: &str = "wx0000000000mock01";
const SECRET: &str = "mock-secret-0123456789abcdef0123";

struct Env {
    mock: MockWechat,
    base: String,
    http: reqwest::Client,
}

async fn env_with(config: MockConfig) -> Env {
    let (mock, addr): (MockWechat, SocketAddr) = MockWechat::start(config).await.unwrap();
    Env {
        mock,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

async fn env() -> Env {
    env_with(MockConfig::with_account(APPID, SECRET)).await
}

impl Env {
    async fn get(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path_and_query}");
        resp.json().await.unwrap()
    }

    async fn post(&self, path_and_query: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path_and_query}");
        resp.json().await.unwrap()
    }

    async fn classic(&self) -> Value {
        self.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .await
    }

    async fn stable(&self, force: bool) -> Value {
        self.post(
            "/cgi-bin/stable_token",
            &json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": force}),
        )
        .await
    }

    async fn probe(&self, token: &str) -> Value {
        self.get(&format!("/cgi-bin/getcallbackip?access_token={token}"))
            .await
    }

    fn client(&self, attempts: u32) -> WechatClient {
        WechatClient::new(
            ClientOptions {
                api_base: self.base.clone(),
                timeout: Duration::from_millis(500),
                retry: RetryPolicy {
                    attempts,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(20),
                },
                max_in_flight: 64,
            },
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }
}

fn token_of(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_owned()
}

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}

fn assert_wechat_error(v: &Value, code: i64) {
    assert_eq!(errcode(v), code, "{v}");
    let msg = v["errmsg"].as_str().unwrap();
    assert!(msg.contains(" rid: "), "{msg}");
}

fn secret() -> SecretString {
    SecretString::from(SECRET.to_owned())
}

#[tokio::test]
async fn classic_rotation_keeps_the_old_token_for_the_grace_period() {
    let e = env().await;
    let first = e.classic().await;
    let t1 = token_of(&first);
    assert!(t1.len() >= 64);
    assert_eq!(first["expires_in"], 7200);
    assert!(first.get("errcode").is_none());
    assert_eq!(errcode(&e.probe(&t1).await), 0);

    let t2 = token_of(&e.classic().await);
    assert_ne!(t1, t2);
    assert_eq!(
        errcode(&e.probe(&t1).await),
        0,
        "old token valid during grace"
    );
    assert_eq!(errcode(&e.probe(&t2).await), 0);

    e.mock.advance_clock(Duration::from_secs(299));
    assert_eq!(errcode(&e.probe(&t1).await), 0);
    e.mock.advance_clock(Duration::from_secs(2));
    let answer = e.probe(&t1).await;
    assert_wechat_error(&answer, 40001);
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid credential, access_token is invalid or not latest"));
    assert_eq!(errcode(&e.probe(&t2).await), 0);
    assert_eq!(e.mock.current_access_tokens(APPID), vec![t2]);
    assert_eq!(e.mock.calls("cgi-bin/token"), 2);
}

#[tokio::test]
async fn classic_grace_is_configurable_in_real_time() {
    let e = env_with(MockConfig {
        classic_grace_s: 1,
        ..MockConfig::with_account(APPID, SECRET)
    })
    .await;
    let t1 = token_of(&e.classic().await);
    let _t2 = token_of(&e.classic().await);
    assert_eq!(errcode(&e.probe(&t1).await), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_wechat_error(&e.probe(&t1).await, 40001);
}

#[tokio::test]
async fn token_endpoints_check_credentials() {
    let e = env().await;
    let v = e
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid=wxnope&secret={SECRET}"
        ))
        .await;
    assert_wechat_error(&v, 40013);
    assert!(v["errmsg"].as_str().unwrap().starts_with("invalid appid"));
    let v = e
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret=wrong"
        ))
        .await;
    assert_wechat_error(&v, 40125);
    assert!(v["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid appsecret"));
    let v = e
        .post(
            "/cgi-bin/stable_token",
            &json!({"grant_type": "client_credential", "appid": APPID, "secret": "wrong"}),
        )
        .await;
    assert_wechat_error(&v, 40125);

    // stable_token is JSON only.
    let resp = e
        .http
        .post(format!("{}/cgi-bin/stable_token", e.base))
        .form(&[
            ("grant_type", "client_credential"),
            ("appid", APPID),
            ("secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_wechat_error(&v, 47001);
    assert!(v["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("data format error"));

    // Through the client: a wrong secret is one call, with the errcode and a hint.
    let c = e.client(3);
    let before = e.mock.calls("cgi-bin/stable_token");
    let err = c
        .access_token(
            "main",
            APPID,
            &SecretString::from("wrong".to_owned()),
            TokenApi::Stable,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(40125));
    assert!(err.wechat_rid().is_some());
    assert_eq!(e.mock.calls("cgi-bin/stable_token"), before + 1);
}

#[tokio::test]
async fn stable_token_is_idempotent_and_separate_from_classic() {
    let e = env().await;
    let a = e.stable(false).await;
    let b = e.stable(false).await;
    assert_eq!(token_of(&a), token_of(&b));
    assert_eq!(a["expires_in"], 7200);
    assert!(b["expires_in"].as_u64().unwrap() <= 7200);

    e.mock.advance_clock(Duration::from_secs(1000));
    let c = e.stable(false).await;
    assert_eq!(token_of(&c), token_of(&a));
    let left = c["expires_in"].as_u64().unwrap();
    assert!((6199..=6200).contains(&left), "{left}");

    // A classic call does not disturb the stable token, and both are usable.
    let classic = token_of(&e.classic().await);
    assert_eq!(errcode(&e.probe(&classic).await), 0);
    assert_eq!(errcode(&e.probe(&token_of(&a)).await), 0);
    assert_eq!(token_of(&e.stable(false).await), token_of(&a));

    // Through the client.
    let client = e.client(3);
    let cred = client
        .access_token("main", APPID, &secret(), TokenApi::Stable, false)
        .await
        .unwrap();
    assert_eq!(cred.value.expose_secret(), token_of(&a));
    let classic2 = client
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap();
    assert_ne!(classic2.value.expose_secret(), classic);
}

#[tokio::test]
async fn stable_token_is_reissued_in_its_last_300_seconds() {
    let e = env_with(MockConfig {
        token_ttl_s: 305,
        ..MockConfig::with_account(APPID, SECRET)
    })
    .await;
    let t1 = token_of(&e.stable(false).await);
    assert_eq!(token_of(&e.stable(false).await), t1);
    e.mock.advance_clock(Duration::from_secs(5));
    let second = e.stable(false).await;
    let t2 = token_of(&second);
    assert_ne!(t1, t2, "a call with 300 s or less left gets a new token");
    assert_eq!(second["expires_in"], 305);
    assert_eq!(
        errcode(&e.probe(&t1).await),
        0,
        "the old one stays valid to its end"
    );
    e.mock.advance_clock(Duration::from_secs(300));
    assert_wechat_error(&e.probe(&t1).await, 42001);
    assert_eq!(errcode(&e.probe(&t2).await), 0);
}

#[tokio::test]
async fn stable_token_reissue_in_real_time() {
    let e = env_with(MockConfig {
        token_ttl_s: 301,
        ..MockConfig::with_account(APPID, SECRET)
    })
    .await;
    let t1 = token_of(&e.stable(false).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t2 = token_of(&e.stable(false).await);
    assert_ne!(t1, t2);
}

#[tokio::test]
async fn force_refresh_invalidates_and_is_limited() {
    let e = env_with(MockConfig {
        force_refresh_daily_limit: 3,
        ..MockConfig::with_account(APPID, SECRET)
    })
    .await;
    let t1 = token_of(&e.stable(false).await);
    let t2 = token_of(&e.stable(true).await);
    assert_ne!(t1, t2);
    assert_wechat_error(&e.probe(&t1).await, 40001);
    assert_eq!(errcode(&e.probe(&t2).await), 0);
    assert_eq!(token_of(&e.stable(false).await), t2);

    // A second force refresh within 30 s.
    e.mock.advance_clock(Duration::from_secs(29));
    assert_wechat_error(&e.stable(true).await, 45011);
    e.mock.advance_clock(Duration::from_secs(1));
    let t3 = token_of(&e.stable(true).await);
    assert_ne!(t3, t2);
    e.mock.advance_clock(Duration::from_secs(30));
    token_of(&e.stable(true).await);
    e.mock.advance_clock(Duration::from_secs(30));
    let quota = e.stable(true).await;
    assert_wechat_error(&quota, 45009);
    assert!(quota["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("reach max api daily quota limit"));

    // The client retries 45011 (rate limit) but not 45009.
    let c = e.client(3);
    let before = e.mock.calls("cgi-bin/stable_token");
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Stable, true)
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(45009));
    assert!(err.hint().contains("daily"));
    assert_eq!(e.mock.calls("cgi-bin/stable_token"), before + 1);
}

#[tokio::test]
async fn default_force_refresh_limit_is_20_a_day() {
    let e = env().await;
    for _ in 0..20 {
        assert!(e.stable(true).await.get("access_token").is_some());
        e.mock.advance_clock(Duration::from_secs(30));
    }
    assert_wechat_error(&e.stable(true).await, 45009);
    e.mock.advance_clock(Duration::from_secs(86_400));
    assert!(e.stable(true).await.get("access_token").is_some());
}

#[tokio::test]
async fn getticket_checks_the_token() {
    let e = env_with(MockConfig {
        token_ttl_s: 600,
        ticket_ttl_s: 1000,
        ..MockConfig::with_account(APPID, SECRET)
    })
    .await;
    let t = token_of(&e.classic().await);
    let a = e
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await;
    assert_eq!(errcode(&a), 0);
    assert_eq!(a["errmsg"], "ok");
    assert_eq!(a["expires_in"], 1000);
    let ticket = a["ticket"].as_str().unwrap().to_owned();
    assert!(ticket.len() >= 64);
    let card = e
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=wx_card"
        ))
        .await;
    assert_ne!(card["ticket"], a["ticket"]);

    e.mock.advance_clock(Duration::from_secs(100));
    let again = e
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await;
    assert_eq!(again["ticket"], a["ticket"], "the same ticket while valid");
    let left = again["expires_in"].as_u64().unwrap();
    assert!((899..=900).contains(&left), "{left}");

    assert_wechat_error(
        &e.get("/cgi-bin/ticket/getticket?access_token=nope&type=jsapi")
            .await,
        40001,
    );
    assert_wechat_error(&e.get("/cgi-bin/ticket/getticket?type=jsapi").await, 41001);
    assert_wechat_error(
        &e.get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=bogus"
        ))
        .await,
        40097,
    );

    // The access_token expires (600 s); a fresh token gets a new ticket after the old expired.
    e.mock.advance_clock(Duration::from_secs(500));
    let expired = e
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await;
    assert_wechat_error(&expired, 42001);
    let t2 = token_of(&e.classic().await);
    e.mock.advance_clock(Duration::from_secs(400));
    let fresh = e
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t2}&type=jsapi"
        ))
        .await;
    assert_ne!(fresh["ticket"].as_str().unwrap(), ticket);
    assert_eq!(fresh["expires_in"], 1000);

    // Through the client, with invalidation.
    let c = e.client(3);
    let at = SecretString::from(t2.clone());
    let cred = c.ticket("main", &at, TicketKind::Jsapi).await.unwrap();
    assert_eq!(
        cred.value.expose_secret(),
        fresh["ticket"].as_str().unwrap()
    );
    c.probe_access_token("main", &at).await.unwrap();
    e.mock.invalidate_access_tokens(APPID);
    let err = c.ticket("main", &at, TicketKind::Jsapi).await.unwrap_err();
    assert!(err.is_token_invalid());
    assert_eq!(err.wechat_errcode(), Some(40001));
    assert!(c
        .probe_access_token("main", &at)
        .await
        .unwrap_err()
        .is_token_invalid());
    assert!(e.mock.current_access_tokens(APPID).is_empty());
}

#[tokio::test]
async fn oauth_authorize_code_exchange_userinfo() {
    let e = env().await;
    let redirect = "https://h5.example.com/cb?x=1";
    let resp = e
        .http
        .get(format!("{}/connect/oauth2/authorize", e.base))
        .query(&[
            ("appid", APPID),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "snsapi_userinfo"),
            ("state", "st4te"),
            ("mock_openid", "alice"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("h5.example.com"));
    assert_eq!(location.path(), "/cb");
    let q: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(q["x"], "1", "existing query preserved");
    assert_eq!(q["state"], "st4te");
    let code = q["code"].clone();

    let c = e.client(3);
    let tok = c
        .oauth_exchange_code("main", APPID, &secret(), &code)
        .await
        .unwrap();
    let openid = MockWechat::openid_for(APPID, "alice");
    assert_eq!(tok.openid, openid);
    assert_eq!(openid.len(), 28);
    assert!(openid.starts_with('o'));
    assert_eq!(tok.scope, "snsapi_userinfo");
    assert_eq!(tok.expires_in, 7200);
    assert_eq!(
        tok.unionid.as_deref(),
        Some(MockWechat::unionid_for("alice").as_str())
    );
    assert!(!tok.is_snapshotuser);

    let info = c
        .oauth_userinfo("main", &tok.access_token, &tok.openid)
        .await
        .unwrap();
    assert_eq!(info.openid, openid);
    assert!(!info.nickname.is_empty());
    assert!(info.headimgurl.starts_with("https://"));
    assert_eq!(info.unionid, tok.unionid);

    // A code works once.
    let err = c
        .oauth_exchange_code("main", APPID, &secret(), &code)
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(40163));
    let err = c
        .oauth_exchange_code("main", APPID, &secret(), "unknowncode")
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(40029));
    assert_eq!(e.mock.calls("sns/oauth2/access_token"), 3);
    assert_eq!(e.mock.calls("connect/oauth2/authorize"), 1);

    // The global token is not a web token, and a wrong openid is refused.
    let v = e
        .get(&format!(
            "/sns/userinfo?access_token={}&openid=oSomeoneElse&lang=zh_CN",
            tok.access_token.expose_secret()
        ))
        .await;
    assert_wechat_error(&v, 40003);
}

async fn authorize_code(e: &Env, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut query = vec![
        ("appid", APPID),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("response_type", "code"),
        ("scope", scope),
        ("state", "s"),
    ];
    query.extend_from_slice(extra);
    let resp = e
        .http
        .get(format!("{}/connect/oauth2/authorize", e.base))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned());
    code.unwrap_or_default()
}

#[tokio::test]
async fn oauth_base_scope_snapshot_expiry_and_errors() {
    let e = env().await;
    let c = e.client(3);

    // snsapi_base: openid only, userinfo refused.
    let code = authorize_code(&e, "snsapi_base", &[("mock_openid", "bob")]).await;
    let tok = c
        .oauth_exchange_code("main", APPID, &secret(), &code)
        .await
        .unwrap();
    assert_eq!(tok.scope, "snsapi_base");
    let err = c
        .oauth_userinfo("main", &tok.access_token, &tok.openid)
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(48001));

    // Snapshot-page user.
    let code = authorize_code(
        &e,
        "snsapi_userinfo",
        &[("mock_openid", "bob"), ("mock_snapshot", "1")],
    )
    .await;
    let raw = e
        .get(&format!(
            "/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"
        ))
        .await;
    assert_eq!(raw["is_snapshotuser"], 1);
    assert!(raw.get("unionid").is_none());
    assert_ne!(
        raw["openid"].as_str().unwrap(),
        MockWechat::openid_for(APPID, "bob")
    );

    // Deterministic openids; a refusing user gets no code.
    let code = authorize_code(&e, "snsapi_base", &[("mock_openid", "bob")]).await;
    let again = c
        .oauth_exchange_code("main", APPID, &secret(), &code)
        .await
        .unwrap();
    assert_eq!(again.openid, tok.openid);
    assert!(authorize_code(&e, "snsapi_base", &[("mock_deny", "1")])
        .await
        .is_empty());

    // Codes expire after 5 minutes.
    let code = authorize_code(&e, "snsapi_base", &[]).await;
    e.mock.advance_clock(Duration::from_secs(301));
    let err = c
        .oauth_exchange_code("main", APPID, &secret(), &code)
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(42003));

    // Unknown appid: WeChat's error page, HTTP 200 text.
    let resp = e
        .http
        .get(format!(
            "{}/connect/oauth2/authorize?appid=wxnope&redirect_uri=https%3A%2F%2Fa.example%2F&response_type=code&scope=snsapi_base",
            e.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("appid"));
}

#[tokio::test]
async fn faults_are_consumed_fifo() {
    let e = env().await;
    e.mock.inject_fault("cgi-bin/token", Fault::Errcode(-1));
    e.mock
        .inject_fault("/cgi-bin/token", Fault::HttpStatus(502));
    e.mock.inject_fault("cgi-bin/token", Fault::Garbage);
    e.mock
        .inject_fault("cgi-bin/token", Fault::Delay(Duration::from_millis(50)));
    let url = format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}",
        e.base
    );
    let r1: Value = e.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_wechat_error(&r1, -1);
    assert_eq!(e.http.get(&url).send().await.unwrap().status(), 502);
    let r3 = e.http.get(&url).send().await.unwrap();
    assert_eq!(r3.status(), 200);
    assert!(serde_json::from_str::<Value>(&r3.text().await.unwrap()).is_err());
    let started = std::time::Instant::now();
    let r4: Value = e.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(r4.get("access_token").is_some());
    assert!(e.classic().await.get("access_token").is_some());
    assert_eq!(e.mock.calls("cgi-bin/token"), 5);

    // Through the client: two transient faults are retried away.
    e.mock
        .inject_fault("cgi-bin/stable_token", Fault::Errcode(-1));
    e.mock
        .inject_fault("cgi-bin/stable_token", Fault::HttpStatus(503));
    let c = e.client(3);
    c.access_token("main", APPID, &secret(), TokenApi::Stable, false)
        .await
        .unwrap();
    assert_eq!(e.mock.calls("cgi-bin/stable_token"), 3);
    assert_eq!(e.mock.total_calls(), 8);

    // A delay longer than the client's timeout is a Timeout, then retried.
    e.mock.inject_fault(
        "cgi-bin/stable_token",
        Fault::Delay(Duration::from_millis(800)),
    );
    c.access_token("main", APPID, &secret(), TokenApi::Stable, false)
        .await
        .unwrap();
    assert_eq!(e.mock.calls("cgi-bin/stable_token"), 5);
}

#[tokio::test]
async fn down_mode_and_latency() {
    let e = env().await;
    e.mock.set_down(true);
    let resp = e
        .http
        .get(format!("{}/cgi-bin/getcallbackip", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let c = e.client(2);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::HttpStatus(503)), "{err:?}");
    assert_eq!(e.mock.calls("cgi-bin/token"), 2);
    e.mock.set_down(false);
    c.access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap();

    e.mock.set_latency(Duration::from_millis(120));
    let started = std::time::Instant::now();
    e.classic().await;
    assert!(started.elapsed() >= Duration::from_millis(120));
    // Controls are never slowed down.
    let started = std::time::Instant::now();
    e.get("/__mock/calls").await;
    assert!(started.elapsed() < Duration::from_millis(120));
}

#[tokio::test]
async fn http_controls_for_other_processes() {
    let e = env_with(MockConfig::default()).await;
    let ok = e
        .post(
            "/__mock/accounts",
            &json!({"appid": APPID, "secret": SECRET}),
        )
        .await;
    assert_eq!(ok["ok"], true);
    let t = token_of(&e.classic().await);
    let calls = e.get("/__mock/calls").await;
    assert_eq!(calls["cgi-bin/token"], 1);

    e.post(
        "/__mock/fault",
        &json!({"endpoint": "cgi-bin/getcallbackip", "errcode": 45011}),
    )
    .await;
    e.post(
        "/__mock/fault",
        &json!({"endpoint": "cgi-bin/getcallbackip", "http_status": 500}),
    )
    .await;
    e.post(
        "/__mock/fault",
        &json!({"endpoint": "cgi-bin/getcallbackip", "garbage": true}),
    )
    .await;
    e.post(
        "/__mock/fault",
        &json!({"endpoint": "cgi-bin/getcallbackip", "delay_ms": 10}),
    )
    .await;
    assert_wechat_error(&e.probe(&t).await, 45011);
    let url = format!("{}/cgi-bin/getcallbackip?access_token={t}", e.base);
    assert_eq!(e.http.get(&url).send().await.unwrap().status(), 500);
    assert!(e
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .is_err());
    assert_eq!(e.probe(&t).await["ip_list"][0], "127.0.0.1");
    assert_eq!(errcode(&e.probe(&t).await), 0);

    let bad = e
        .http
        .post(format!("{}/__mock/fault", e.base))
        .json(&json!({"endpoint": "cgi-bin/token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    e.post("/__mock/down", &json!({"down": true})).await;
    assert_eq!(e.http.get(&url).send().await.unwrap().status(), 503);
    e.post("/__mock/down", &json!({"down": false})).await;
    assert_eq!(e.http.get(&url).send().await.unwrap().status(), 200);

    e.post("/__mock/latency", &json!({"ms": 100})).await;
    let started = std::time::Instant::now();
    e.probe(&t).await;
    assert!(started.elapsed() >= Duration::from_millis(100));

    let tokens = e.get(&format!("/__mock/tokens?appid={APPID}")).await;
    assert_eq!(tokens["access_tokens"], json!([t]));
    e.post("/__mock/invalidate", &json!({"appid": APPID})).await;
    assert_wechat_error(&e.probe(&t).await, 40001);
    let t2 = token_of(&e.classic().await);
    e.post("/__mock/advance", &json!({"secs": 7200})).await;
    assert_wechat_error(&e.probe(&t2).await, 42001);

    let info = e.get("/__mock/info").await;
    assert_eq!(info["appids"], json!([APPID]));
    assert!(!info.to_string().contains(SECRET));

    e.post("/__mock/reset", &json!({})).await;
    let calls = e.get("/__mock/calls").await;
    assert_eq!(
        calls,
        json!({}),
        "controls are not counted and reset clears the counters"
    );
    assert_eq!(e.mock.total_calls(), 0);
    let started = std::time::Instant::now();
    e.classic().await;
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "reset restores latency"
    );
}

#[tokio::test]
async fn custom_messages_are_recorded_and_other_apis_echo() {
    let e = env().await;
    let c = e.client(3);
    let t = token_of(&e.stable(false).await);
    let at = SecretString::from(t.clone());
    let msg = json!({"touser": MockWechat::openid_for(APPID, "alice"), "msgtype": "text", "text": {"content": "你好"}});
    c.send_custom_message("main", &at, &msg).await.unwrap();
    assert_eq!(e.mock.custom_messages(), vec![msg.clone()]);
    assert_eq!(e.get("/__mock/custom_messages").await, json!([msg]));
    assert_eq!(e.mock.calls("cgi-bin/message/custom/send"), 1);
    let err = c
        .send_custom_message("main", &SecretString::from("bad".to_owned()), &msg)
        .await
        .unwrap_err();
    assert!(err.is_token_invalid());
    assert_eq!(e.mock.custom_messages().len(), 1);

    let echo = e
        .post(
            &format!("/cgi-bin/menu/create?access_token={t}&x=1"),
            &json!({"button": [{"name": "菜单"}]}),
        )
        .await;
    assert_eq!(echo["errcode"], 0);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/cgi-bin/menu/create");
    assert_eq!(echo["query"], json!({"x": "1"}));
    assert_eq!(echo["body"]["button"][0]["name"], "菜单");
    assert_eq!(echo["content_type"], "application/json");
    assert_eq!(e.mock.calls("cgi-bin/menu/create"), 1);
    assert_wechat_error(&e.get("/cgi-bin/menu/get?access_token=nope").await, 40001);
    assert_wechat_error(&e.get("/cgi-bin/menu/get").await, 41001);
    let resp = e
        .http
        .get(format!("{}/nothing/here", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn serve_with_shutdown_and_multiple_accounts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = MockWechat::new(MockConfig {
        accounts: vec![MockAccount::new("wxA", "sA"), MockAccount::new("wxB", "sB")],
        ..MockConfig::default()
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mock.clone().serve(listener, async {
        let _ = rx.await;
    }));
    let e = Env {
        mock,
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };
    let a = e
        .get("/cgi-bin/token?grant_type=client_credential&appid=wxA&secret=sA")
        .await;
    let b = e
        .get("/cgi-bin/token?grant_type=client_credential&appid=wxB&secret=sB")
        .await;
    assert!(a.get("access_token").is_some() && b.get("access_token").is_some());
    assert_wechat_error(
        &e.get("/cgi-bin/token?grant_type=client_credential&appid=wxA&secret=sB")
            .await,
        40125,
    );
    e.mock.invalidate_access_tokens("wxA");
    assert!(e.mock.current_access_tokens("wxA").is_empty());
    assert_eq!(e.mock.current_access_tokens("wxB").len(), 1);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
