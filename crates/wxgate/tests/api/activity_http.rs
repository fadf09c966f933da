//! The activity recorder fed by a real gateway over HTTP, with the mock WeChat API: each
//! onboarding step turns "reached" when wxgate observes it (a verification GET, an encrypted
//! push, a JS-SDK signature, a web login, the token fetch behind them), failures are recorded
//! with WeChat's errcode and a hint, pushes are listed with who answered, upstream calls are
//! counted per hour, and the daily quota comes from `cgi-bin/openapi/quota/get` once per cache
//! window. Each test flushes the recorder and reads what the console would read.

use base64::Engine as _;
use serde_json::{json, Value};
use wxgate::activity::{quota, Answered, QuotaError, Step, StepState};
use wxgate::upstream::UpstreamError;
use wxgate_mock::Fault;
use wxgate_proto::crypto::{seal_reply, AesKey};
use wxgate_proto::signature::{msg_signature, signature};

use crate::helpers::{start_mock, GatewayConfig, TestApp, AES_KEY, APPID, TOKEN};
use crate::web_support::{authorize, hit, spawn_web_app, WebCalls};

const REDIRECT: &str = "https://h5.example.com/app/";

fn console_config(mock: std::net::SocketAddr) -> GatewayConfig {
    let mut c = GatewayConfig::new(mock);
    c.account_extra = format!(
        "encoding_aes_key = \"{AES_KEY}\"\njs_domains = [\"h5.example.com\"]\n\
         oauth_redirects = [\"{REDIRECT}\"]\n"
    );
    c
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn state_of(app: &TestApp, step: Step) -> StepState {
    app.state.activity.flush().await.unwrap();
    let steps = app.state.activity.steps("main").await.unwrap();
    steps.entries.into_iter().find(|e| e.step == step).unwrap()
}

async fn verify_get(app: &TestApp, token: &str) -> u16 {
    let ts = now().to_string();
    let sig = signature(token, &ts, "12345");
    let url = format!(
        "{}/wx/main?signature={sig}&timestamp={ts}&nonce=12345&echostr=e1",
        app.base
    );
    app.http.get(url).send().await.unwrap().status().as_u16()
}

/// A safe-mode push whose `Encrypt` is `encrypt`, correctly signed with the Token.
async fn encrypted_push(app: &TestApp, encrypt: &str) -> u16 {
    let ts = now().to_string();
    let sig = signature(TOKEN, &ts, "777");
    let msg_sig = msg_signature(TOKEN, &ts, "777", encrypt);
    let url = format!(
        "{}/wx/main?signature={sig}&timestamp={ts}&nonce=777&openid=oUser&encrypt_type=aes&msg_signature={msg_sig}",
        app.base
    );
    let body = format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    app.http
        .post(url)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn sealed_text(content: &str) -> String {
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{}</MsgId></xml>",
        now(),
        rand::random::<u32>()
    );
    let key = AesKey::from_encoding_aes_key(AES_KEY).unwrap();
    seal_reply(&key, TOKEN, APPID, &xml, Some(now()), Some("1")).encrypt
}

#[tokio::test]
async fn each_onboarding_step_turns_reached_as_the_gateway_observes_it() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&console_config(addr)).await;
    assert!(state_of(&app, Step::VerifyAnswered)
        .await
        .reached_at
        .is_none());

    assert_eq!(verify_get(&app, TOKEN).await, 200);
    assert!(state_of(&app, Step::VerifyAnswered)
        .await
        .reached_at
        .is_some());

    assert_eq!(encrypted_push(&app, &sealed_text("hi")).await, 200);
    let decrypted = state_of(&app, Step::EncryptedPushDecrypted).await;
    assert!(decrypted.reached_at.is_some(), "{decrypted:?}");
    let pushes = app.state.activity.pushes("main").await.unwrap();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].kind, "text");
    assert_eq!(pushes[0].answered_by, Answered::Nothing);
    assert!(pushes[0].encrypted);
    assert_eq!(pushes[0].content, None, "content is not kept by default");
    let newest = app.state.activity.last_pushes(&["main"]).await.unwrap();
    assert_eq!(newest, [Some(pushes[0].at)]);

    let page = "https%3A%2F%2Fh5.example.com%2Fpage";
    let (status, body) = app.get(&format!("/jssdk/main/config?url={page}")).await;
    assert_eq!(status, 200, "{body}");
    let signed = state_of(&app, Step::JssdkSigned).await;
    assert_eq!(signed.detail.as_deref(), Some("h5.example.com"));
    assert!(signed.reached_at.is_some());
    // The ticket fetch needed a token: fetched, and in the refresh history.
    assert!(state_of(&app, Step::TokenFetched)
        .await
        .reached_at
        .is_some());
    let refreshes = app.state.activity.refreshes("main").await.unwrap();
    let kinds: Vec<&str> = refreshes.iter().map(|r| r.kind.as_str()).collect();
    assert!(
        kinds.contains(&"access_token") && kinds.contains(&"jsapi_ticket"),
        "{kinds:?}"
    );
    assert!(refreshes.iter().all(|r| r.ok && !r.forced));

    let authorize_url = app.start_login("main", REDIRECT, None).await;
    let callback = authorize(&app.http, &authorize_url, "mock_openid=alice").await;
    let (status, location, body) = hit(&app.http, &callback).await;
    assert_eq!(status, 302, "{body}");
    assert!(location.unwrap().contains("wxgate_code="));
    assert!(state_of(&app, Step::LoginCompleted)
        .await
        .reached_at
        .is_some());

    // The upstream calls behind all this, counted for the current hour.
    let hours = app.state.activity.calls_24h("main").await.unwrap();
    let counted: Vec<(String, u64)> = hours
        .iter()
        .flat_map(|h| &h.endpoints)
        .map(|e| (e.endpoint.clone(), e.calls))
        .collect();
    for endpoint in [
        "cgi-bin/stable_token",
        "cgi-bin/ticket/getticket",
        "sns/oauth2/access_token",
    ] {
        assert!(
            counted.iter().any(|(e, n)| e == endpoint && *n >= 1),
            "{endpoint}: {counted:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn failing_steps_are_recorded_with_errcode_message_and_hint() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app(&console_config(addr)).await;

    assert_eq!(verify_get(&app, "not-the-token").await, 403);
    let verify = state_of(&app, Step::VerifyAnswered).await;
    assert!(verify.reached_at.is_none());
    assert!(verify.failed_at.is_some());
    assert!(verify
        .message
        .unwrap()
        .contains("Token in WeChat's console differs"));

    // A ciphertext the account's key cannot open (not whole AES blocks).
    let garbage = base64::engine::general_purpose::STANDARD.encode([7u8; 20]);
    assert_eq!(encrypted_push(&app, &garbage).await, 400);
    let decrypt = state_of(&app, Step::EncryptedPushDecrypted).await;
    assert!(decrypt.message.unwrap().contains("EncodingAESKey differs"));

    let (status, _) = app
        .get("/jssdk/main/config?url=https%3A%2F%2Fevil.example.org%2F")
        .await;
    assert_eq!(status, 403);
    let js = state_of(&app, Step::JssdkSigned).await;
    assert!(js.hint.unwrap().contains("js_domains"));

    // The token fetch refused for this server's IP: errcode, hint and the egress IP learned.
    mock.inject_fault("cgi-bin/stable_token", Fault::Errcode(40164));
    let (status, body) = app.get_json("main/access_token").await;
    assert_ne!(status, 200, "{body}");
    let token = state_of(&app, Step::TokenFetched).await;
    assert_eq!(token.errcode, Some(40164));
    assert!(token.hint.unwrap().contains("203.0.113.7"));
    let (ip, _) = app
        .state
        .activity
        .learned_egress_ip()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ip, "203.0.113.7");
    let refreshes = app.state.activity.refreshes("main").await.unwrap();
    assert_eq!(refreshes[0].errcode, Some(40164));
    assert!(!refreshes[0].ok);

    mock.inject_fault("sns/oauth2/access_token", Fault::Errcode(40029));
    let authorize_url = app.start_login("main", REDIRECT, None).await;
    let callback = authorize(&app.http, &authorize_url, "mock_openid=bob").await;
    let _ = hit(&app.http, &callback).await;
    let login = state_of(&app, Step::LoginCompleted).await;
    assert!(login.reached_at.is_none());
    assert_eq!(login.errcode, Some(40029));
    assert!(login.hint.is_some());
    app.stop().await;
}

async fn mock_calls(http: &reqwest::Client, mock: std::net::SocketAddr, endpoint: &str) -> u64 {
    let calls: Value = http
        .get(format!("http://{mock}/__mock/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls[endpoint].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn the_daily_quota_comes_from_wechat_once_per_cache_window() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&console_config(addr)).await;
    let account = app.state.account("main").unwrap();
    // One real customer-service message, so `used` is 1.
    let token = app
        .state
        .creds
        .get("main", wxgate::domain::CredentialKind::AccessToken)
        .await
        .unwrap();
    app.state
        .client
        .send_custom_message(
            "main",
            &secrecy::SecretString::from(token.value.clone()),
            &json!({"touser": "oUser", "msgtype": "text", "text": {"content": "hi"}}),
        )
        .await
        .unwrap();
    let path = "/cgi-bin/message/custom/send";
    let first = quota(&app.state, &account, &[path]).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].cgi_path, path);
    assert_eq!(first[0].used, 1);
    assert_eq!(first[0].remain, first[0].daily_limit - 1);
    let endpoint = "cgi-bin/openapi/quota/get";
    assert_eq!(mock_calls(&app.http, addr, endpoint).await, 1);
    let second = quota(&app.state, &account, &[path]).await.unwrap();
    assert_eq!(second, first, "answered from the cache");
    assert_eq!(
        mock_calls(&app.http, addr, endpoint).await,
        1,
        "no second WeChat call"
    );

    // WeChat's refusal of a path that is no API.
    let Err(QuotaError::Upstream(UpstreamError::WeChat { errcode, .. })) =
        quota(&app.state, &account, &["/cgi-bin/no/such/api/x"])
            .await
            .map(|_| ())
    else {
        panic!("an unknown path must be refused");
    };
    assert_eq!(errcode, 76021);
    assert!(matches!(
        quota(&app.state, &account, &["no-slash"]).await,
        Err(QuotaError::InvalidPath(_))
    ));
    app.stop().await;
}

#[tokio::test]
async fn deleting_an_account_drops_what_was_observed_of_it() {
    use secrecy::ExposeSecret as _;
    let (mock, addr) = start_mock().await;
    mock.add_account("wx00000000000000a1", "shop-secret-0123456789");
    let mut config = GatewayConfig::new(addr);
    let master = wxgate::vault::MasterKey::random().to_base64();
    config.tail = format!(
        "[admin]\nkeys = [\"test-admin-key-0123456789\"]\nmaster_key = \"{}\"\n",
        master.expose_secret()
    );
    let app = crate::helpers::spawn_app(&config).await;
    let admin = |method: reqwest::Method, body: Option<Value>| {
        let mut req = app
            .http
            .request(method, format!("{}/admin/api/v1/accounts/shop", app.base))
            .bearer_auth("test-admin-key-0123456789");
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let body = json!({"appid": "wx00000000000000a1", "secret": "shop-secret-0123456789", "token": "shoptoken42"});
    assert_eq!(admin(reqwest::Method::PUT, Some(body)).await, 201);
    app.state.follow_registry().await.unwrap();
    let ts = now().to_string();
    let sig = signature("shoptoken42", &ts, "1");
    let url = format!(
        "{}/wx/shop?signature={sig}&timestamp={ts}&nonce=1&echostr=e",
        app.base
    );
    assert_eq!(
        app.http.get(url).send().await.unwrap().status().as_u16(),
        200
    );
    app.state.activity.flush().await.unwrap();
    let reached = |steps: wxgate::activity::Steps| steps.entries[1].reached_at.is_some();
    assert!(reached(app.state.activity.steps("shop").await.unwrap()));

    assert_eq!(admin(reqwest::Method::DELETE, None).await, 204);
    assert!(!reached(app.state.activity.steps("shop").await.unwrap()));
    app.stop().await;
}

#[tokio::test]
async fn the_background_task_writes_a_step_without_being_asked() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&console_config(addr)).await;
    assert_eq!(verify_get(&app, TOKEN).await, 200);
    // No flush here: the gateway's own background task writes it (about a second; the bound
    // below is generous for a loaded machine, it only proves the task runs).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let steps = app.state.activity.steps("main").await.unwrap();
        if steps.entries[1].reached_at.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = app.state.activity.instances().await.unwrap();
    assert!(
        seen.iter().any(|i| i.id == app.state.activity.instance()),
        "{seen:?}"
    );
    app.stop().await;
}
