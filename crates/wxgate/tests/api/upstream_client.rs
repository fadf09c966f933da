//! The WeChat client against a scripted HTTP server (wiremock): the request shapes WeChat
//! expects, the answer shapes it gives, which failures are retried and how often, and that
//! no secret leaks into an error.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};
use wxgate::domain::{TicketKind, TokenApi};
use wxgate::metrics::Metrics;
use wxgate::upstream::{ClientOptions, RetryPolicy, UpstreamError, WechatClient};

const APPID: &str = "wx1234567890abcdef";
const SECRET: &str = "s3cr3t-AppSecret-0123456789abcdef";

fn client_with(
    server: &MockServer,
    timeout: Duration,
    attempts: u32,
) -> (WechatClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let client = WechatClient::new(
        ClientOptions {
            api_base: format!("{}/", server.uri()),
            timeout,
            retry: RetryPolicy {
                attempts,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            },
            max_in_flight: 64,
        },
        metrics.clone(),
    )
    .unwrap();
    (client, metrics)
}

fn client(server: &MockServer) -> (WechatClient, Arc<Metrics>) {
    client_with(server, Duration::from_secs(2), 3)
}

fn secret() -> SecretString {
    SecretString::from(SECRET.to_owned())
}

fn wechat_error(code: i64, msg: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"errcode": code, "errmsg": msg}))
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn assert_no_secret(err: &UpstreamError) {
    for text in [err.to_string(), format!("{err:?}"), err.hint()] {
        assert!(!text.contains(SECRET), "secret leaked into {text}");
    }
}

#[test]
fn default_retry_policy() {
    let p = RetryPolicy::default();
    assert_eq!(p.attempts, 3);
    assert_eq!(p.base_delay, Duration::from_millis(200));
    assert_eq!(p.max_delay, Duration::from_secs(2));
}

#[tokio::test]
async fn classic_token_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/token"))
        .and(query_param("grant_type", "client_credential"))
        .and(query_param("appid", APPID))
        .and(query_param("secret", SECRET))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ACCESS_TOKEN_1", "expires_in": 7200})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    let cred = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap();
    assert_eq!(cred.value.expose_secret(), "ACCESS_TOKEN_1");
    assert_eq!(cred.expires_in, 7200);
    assert_eq!(metrics.upstream_counts("main")["cgi-bin/token"]["ok"], 1);
}

#[tokio::test]
async fn stable_token_request_body_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/stable_token"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": SECRET,
            "force_refresh": true
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "STABLE", "expires_in": 345})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let cred = c
        .access_token("main", APPID, &secret(), TokenApi::Stable, true)
        .await
        .unwrap();
    assert_eq!(cred.value.expose_secret(), "STABLE");
    assert_eq!(cred.expires_in, 345);
    let req = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        format!(
            r#"{{"grant_type":"client_credential","appid":"{APPID}","secret":"{SECRET}","force_refresh":true}}"#
        )
    );
    assert!(
        req.url.query().is_none(),
        "the secret must travel in the body only"
    );
}

#[tokio::test]
async fn ticket_success_with_errcode_zero() {
    let server = MockServer::start().await;
    for (ty, ticket) in [("jsapi", "JSAPI_T"), ("wx_card", "CARD_T")] {
        Mock::given(method("GET"))
            .and(path("/cgi-bin/ticket/getticket"))
            .and(query_param("access_token", "AT"))
            .and(query_param("type", ty))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": 7200}),
            ))
            .mount(&server)
            .await;
    }
    let (c, _) = client(&server);
    let at = SecretString::from("AT".to_owned());
    let t = c.ticket("main", &at, TicketKind::Jsapi).await.unwrap();
    assert_eq!(t.value.expose_secret(), "JSAPI_T");
    assert_eq!(t.expires_in, 7200);
    let t = c.ticket("main", &at, TicketKind::WxCard).await.unwrap();
    assert_eq!(t.value.expose_secret(), "CARD_T");
}

#[tokio::test]
async fn probe_reports_token_invalid() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/getcallbackip"))
        .and(query_param("access_token", "GOOD"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ip_list": ["1.1.1.1"]})))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/getcallbackip"))
        .and(query_param("access_token", "BAD"))
        .respond_with(wechat_error(
            40001,
            "invalid credential, access_token is invalid or not latest rid: 6523a1b2-3c4d5e6f-7a8b9c0d",
        ))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    c.probe_access_token("main", &SecretString::from("GOOD".to_owned()))
        .await
        .unwrap();
    let err = c
        .probe_access_token("main", &SecretString::from("BAD".to_owned()))
        .await
        .unwrap_err();
    assert!(err.is_token_invalid());
    assert_eq!(err.wechat_rid(), Some("6523a1b2-3c4d5e6f-7a8b9c0d"));
    assert_eq!(calls(&server).await, 2, "40001 is not retried");
}

#[tokio::test]
async fn system_busy_twice_then_success() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(wechat_error(-1, "system error rid: aaa"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "T", "expires_in": 7200})),
        )
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    let cred = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap();
    assert_eq!(cred.value.expose_secret(), "T");
    assert_eq!(calls(&server).await, 3);
    let counts = &metrics.upstream_counts("main")["cgi-bin/token"];
    assert_eq!(counts["errcode_-1"], 2);
    assert_eq!(counts["ok"], 1);
}

#[tokio::test]
async fn wrong_secret_is_not_retried_and_not_leaked() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/stable_token"))
        .respond_with(wechat_error(
            40125,
            "invalid appsecret rid: 64f7f8b6-27a5f0a1-3b2c5e1d",
        ))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Stable, false)
        .await
        .unwrap_err();
    assert_eq!(calls(&server).await, 1);
    assert_eq!(err.wechat_errcode(), Some(40125));
    assert_eq!(err.wechat_rid(), Some("64f7f8b6-27a5f0a1-3b2c5e1d"));
    assert!(err.hint().contains("AppSecret"), "{}", err.hint());
    assert!(err.is_config_error());
    assert!(!err.is_transient());
    assert_no_secret(&err);
}

#[tokio::test]
async fn whitelist_error_names_the_ip() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(wechat_error(
            40164,
            "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: 65a1b2c3-0d1e2f3a-4b5c6d7e",
        ))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert_eq!(calls(&server).await, 1);
    assert!(
        err.hint()
            .contains("add 1.2.3.4 to the account's IP whitelist"),
        "{}",
        err.hint()
    );
    assert_no_secret(&err);
}

#[test]
fn hints_per_errcode() {
    let hint = |code, msg: &str| UpstreamError::wechat(code, msg).hint();
    assert!(hint(40013, "invalid appid").contains("appid"));
    assert!(hint(40243, "frozen").contains("frozen"));
    let quota = hint(45009, "reach max api daily quota limit");
    assert!(quota.contains("midnight Beijing time") && quota.contains("clear_quota"));
    assert!(hint(45011, "api minute-quota reach limit").contains("rate-limited"));
    assert!(hint(42001, "access_token expired").contains("invalid or expired"));
    assert!(hint(48001, "api unauthorized").contains("not authorized"));
    assert!(hint(-1, "system error").contains("busy"));
    assert!(hint(61004, "access clientip is not registered").contains("IP whitelist"));
    assert!(hint(12345, "something odd").contains("something odd"));
    assert!(!UpstreamError::wechat(40001, "x").is_config_error());
    assert!(UpstreamError::wechat(45009, "x").is_config_error());
}

#[tokio::test]
async fn http_502_is_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/ticket/getticket"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/ticket/getticket"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"errcode": 0, "errmsg": "ok", "ticket": "TK", "expires_in": 7200}),
        ))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let t = c
        .ticket(
            "main",
            &SecretString::from("AT".to_owned()),
            TicketKind::Jsapi,
        )
        .await
        .unwrap();
    assert_eq!(t.value.expose_secret(), "TK");
    assert_eq!(calls(&server).await, 2);
}

#[tokio::test]
async fn http_502_everywhere_gives_http_status() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::HttpStatus(502)), "{err:?}");
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test]
async fn garbage_is_retried_then_unparseable() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("<html>login {SECRET}</html>")),
        )
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unparseable(_)), "{err:?}");
    assert_eq!(calls(&server).await, 3);
    assert_eq!(
        metrics.upstream_counts("main")["cgi-bin/token"]["unparseable"],
        3
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn missing_token_field_is_unparseable() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"expires_in": 7200})))
        .mount(&server)
        .await;
    let (c, _) = client_with(&server, Duration::from_secs(2), 1);
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unparseable(_)), "{err:?}");
}

#[tokio::test]
async fn timeout_after_all_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/stable_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "T", "expires_in": 7200}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&server)
        .await;
    let (c, metrics) = client_with(&server, Duration::from_millis(200), 3);
    let started = std::time::Instant::now();
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Stable, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert_eq!(calls(&server).await, 3);
    assert_eq!(
        metrics.upstream_counts("main")["cgi-bin/stable_token"]["timeout"],
        3
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn transport_error_hides_the_url() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = WechatClient::new(
        ClientOptions {
            api_base: format!("http://{addr}"),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
            max_in_flight: 64,
        },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let err = c
        .access_token("main", APPID, &secret(), TokenApi::Classic, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Transport(_)), "{err:?}");
    assert_no_secret(&err);
    assert!(!err.to_string().contains("appid="), "{err}");
    eprintln!("transport error reads: {err}");
}

#[tokio::test]
async fn custom_message_is_raw_utf8_and_not_retried_on_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/custom/send"))
        .and(query_param("access_token", "AT"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/message/custom/send"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 0, "errmsg": "ok"}))
                .set_delay(Duration::from_millis(1000)),
        )
        .mount(&server)
        .await;
    let (c, _) = client_with(&server, Duration::from_millis(200), 3);
    let at = SecretString::from("AT".to_owned());
    let body = json!({"touser": "oABC", "msgtype": "text", "text": {"content": "你好，世界"}});
    c.send_custom_message("main", &at, &body).await.unwrap();
    let sent = server.received_requests().await.unwrap();
    let raw = std::str::from_utf8(&sent[0].body).unwrap();
    assert!(raw.contains("你好，世界"), "{raw}");
    assert!(!raw.contains("\\u"), "{raw}");

    let err = c.send_custom_message("main", &at, &body).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout), "{err:?}");
    assert_eq!(
        calls(&server).await,
        2,
        "a timed-out send is never repeated"
    );
}

#[tokio::test]
async fn custom_message_busy_is_not_retried_but_rate_limit_is() {
    let server = MockServer::start().await;
    Mock::given(path("/cgi-bin/message/custom/send"))
        .respond_with(wechat_error(45011, "api minute-quota reach limit"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/message/custom/send"))
        .respond_with(wechat_error(-1, "system error"))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let err = c
        .send_custom_message("main", &SecretString::from("AT".to_owned()), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(-1));
    assert_eq!(calls(&server).await, 2);
}

#[tokio::test]
async fn oauth_exchange_and_userinfo() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sns/oauth2/access_token"))
        .and(query_param("appid", APPID))
        .and(query_param("secret", SECRET))
        .and(query_param("code", "CODE1"))
        .and(query_param("grant_type", "authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "WEB", "expires_in": 7200, "refresh_token": "REFRESH",
            "openid": "oLVPpjqs2BhvzwPj5A-vTYAX3GLc", "scope": "snsapi_userinfo",
            "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL", "is_snapshotuser": 1
        })))
        .mount(&server)
        .await;
    Mock::given(path("/sns/oauth2/access_token"))
        .and(query_param("code", "USED"))
        .respond_with(wechat_error(40163, "code been used, rid: 1-2-3"))
        .mount(&server)
        .await;
    Mock::given(path("/sns/userinfo"))
        .and(query_param("access_token", "WEB"))
        .and(query_param("openid", "oLVPpjqs2BhvzwPj5A-vTYAX3GLc"))
        .and(query_param("lang", "zh_CN"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "openid": "oLVPpjqs2BhvzwPj5A-vTYAX3GLc", "nickname": "张三", "sex": 0,
            "province": "", "city": "", "country": "", "headimgurl": "https://thirdwx.qlogo.cn/x/132",
            "privilege": [], "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL"
        })))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let tok = c
        .oauth_exchange_code("main", APPID, &secret(), "CODE1")
        .await
        .unwrap();
    assert_eq!(tok.access_token.expose_secret(), "WEB");
    assert_eq!(tok.refresh_token.expose_secret(), "REFRESH");
    assert_eq!(tok.openid, "oLVPpjqs2BhvzwPj5A-vTYAX3GLc");
    assert_eq!(tok.scope, "snsapi_userinfo");
    assert_eq!(
        tok.unionid.as_deref(),
        Some("o6_bmasdasdsad6_2sgVt7hMZOPfL")
    );
    assert!(tok.is_snapshotuser);
    assert_eq!(tok.expires_in, 7200);

    let info = c
        .oauth_userinfo("main", &tok.access_token, &tok.openid)
        .await
        .unwrap();
    assert_eq!(info.nickname, "张三");
    assert_eq!(
        info.unionid.as_deref(),
        Some("o6_bmasdasdsad6_2sgVt7hMZOPfL")
    );

    let err = c
        .oauth_exchange_code("main", APPID, &secret(), "USED")
        .await
        .unwrap_err();
    assert_eq!(err.wechat_errcode(), Some(40163));
    assert_no_secret(&err);
}

#[tokio::test]
async fn oauth_exchange_is_not_retried_after_reaching_wechat() {
    let server = MockServer::start().await;
    Mock::given(path("/sns/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let err = c
        .oauth_exchange_code("main", APPID, &secret(), "CODE")
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::HttpStatus(502)));
    assert_eq!(calls(&server).await, 1);
}

#[test]
fn client_and_mock_handles_are_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<WechatClient>();
    assert_shareable::<wxgate_mock::MockWechat>();
}
