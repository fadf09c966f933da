//! Mini programs (SPEC.md "Mini programs"): login with a `wx.login` code minted by the mock,
//! the session_key kept sealed and never answered, WeChat's refusals mapped, the phone number
//! with the guarded token retry, checksession and open-data decryption with the kept
//! session_key, the areas a mini program has not (400 `not_supported`), JSON pushes, and one
//! person's records across account kinds by unionid. Against the mock over HTTP and the real
//! store and user database.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use wxgate_mock::{Fault, MockAccount, MockWechat};
use wxgate_proto::miniprogram::encrypt_open_data;
use wxgate_proto::{AesKey, KeyRing};

use crate::helpers::*;

const MINI_APPID: &str = "wx00000000000000b7";
const MINI_SECRET: &str = "mini-secret-0123456789";
const MINI_TOKEN: &str = "minitoken42";

/// The mini program `shop` beside the Official Account `main`, with `extra` lines on it.
async fn setup(extra: &str) -> (MockWechat, TestApp) {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts.push(MockAccount {
            appid: MINI_APPID.into(),
            secret: MINI_SECRET.into(),
        })
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    config.tail = format!(
        "[[accounts]]\nname = \"shop\"\nappid = \"{MINI_APPID}\"\nsecret = \"{MINI_SECRET}\"\n\
         kind = \"miniprogram\"\ntoken = \"{MINI_TOKEN}\"\n{extra}"
    );
    let app = spawn_app(&config).await;
    (mock, app)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn log_in(app: &TestApp, code: &str) -> (u16, Value) {
    app.post_json("shop/miniprogram/login", Some(json!({ "code": code })))
        .await
}

#[tokio::test]
async fn a_login_records_the_user_and_keeps_the_session_key_sealed_and_unanswered() {
    let (mock, app) = setup("").await;
    let code = mock.mint_login_code(MINI_APPID, "alice", false);
    let response = app
        .http
        .post(app.api("shop/miniprogram/login"))
        .bearer_auth(API_KEY)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let openid = MockWechat::openid_for(MINI_APPID, "alice");
    assert_eq!(body["openid"], openid.as_str());
    assert_eq!(body["unionid"], MockWechat::unionid_for("alice").as_str());
    assert_eq!(body["user"]["openid"], openid.as_str());
    assert!(body["user"]["last_login_at"].as_i64().is_some());

    let session_key = mock.session_key(MINI_APPID, &openid).unwrap();
    assert!(!text.contains(&session_key), "the session_key was answered");
    // Kept in the store, sealed: the stored bytes do not hold it.
    let stored = app
        .state
        .store
        .get(&format!("miniprogram:session:shop:{openid}"))
        .await
        .unwrap()
        .expect("the session is kept");
    assert!(!String::from_utf8_lossy(&stored).contains(&session_key));

    // The user is the account's, with the unionid.
    let (status, user) = app.get_json(&format!("shop/users/{openid}")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["unionid"], MockWechat::unionid_for("alice").as_str());
    let (status, _) = app.get_json(&format!("main/users/{openid}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wechats_refusals_of_a_login_say_what_happened() {
    let (mock, app) = setup("").await;
    let code = mock.mint_login_code(MINI_APPID, "bob", false);
    assert_eq!(log_in(&app, &code).await.0, 200);
    // Used twice: WeChat's 40163.
    let (status, body) = log_in(&app, &code).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_code"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("wx.login"));
    // Unknown: 40029.
    let (status, body) = log_in(&app, "nonsense-code").await;
    assert_eq!((status, error_code(&body)), (400, "invalid_code"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("40029"));
    // A code of another mini program is unknown here too.
    let (status, _) = log_in(&app, &mock.mint_login_code(APPID, "bob", false)).await;
    assert_eq!(status, 400);
    // A high-risk user: 40226.
    let risky = mock.mint_login_code(MINI_APPID, "mallory", true);
    let (status, body) = log_in(&app, &risky).await;
    assert_eq!((status, error_code(&body)), (403, "risky_user"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("high-risk"));
    // The frequency limit (45011), still there after the retries.
    for _ in 0..3 {
        mock.inject_fault("sns/jscode2session", Fault::Errcode(45011));
    }
    let code = mock.mint_login_code(MINI_APPID, "carol", false);
    let (status, body) = log_in(&app, &code).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"), "{body}");
    // A body without a code, or with a silly one, is the client's mistake.
    let (status, body) = app
        .post_json("shop/miniprogram/login", Some(json!({})))
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_body"), "{body}");
    let (status, body) = log_in(&app, &"x".repeat(300)).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_parameter"),
        "{body}"
    );
}

#[tokio::test]
async fn the_phone_number_comes_with_the_current_token_refreshed_once_when_rejected() {
    let (mock, app) = setup("").await;
    // A token first, then WeChat forgets it: the phone call meets 40001 once.
    assert_eq!(app.get_json("shop/access_token").await.0, 200);
    let fetches = mock.calls("cgi-bin/stable_token");
    mock.invalidate_access_tokens(MINI_APPID);
    let code = mock.mint_phone_code(MINI_APPID, "13800138000");
    let (status, body) = app
        .post_json("shop/miniprogram/phone", Some(json!({ "code": code })))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"phone_number": "13800138000", "pure_phone_number": "13800138000",
            "country_code": "86"})
    );
    assert_eq!(mock.calls("cgi-bin/stable_token"), fetches + 1);
    assert_eq!(mock.calls("wxa/business/getuserphonenumber"), 2);
    // A phone code works once.
    let (status, body) = app
        .post_json("shop/miniprogram/phone", Some(json!({ "code": code })))
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_code"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("getPhoneNumber"));
}

#[tokio::test]
async fn the_kept_session_is_checked_with_wechat_and_opens_open_data_for_this_appid_only() {
    let (mock, app) = setup("").await;
    let code = mock.mint_login_code(MINI_APPID, "dora", false);
    assert_eq!(log_in(&app, &code).await.0, 200);
    let openid = MockWechat::openid_for(MINI_APPID, "dora");
    let check = |openid: String| {
        let app = &app;
        async move {
            app.post_json(
                "shop/miniprogram/check-session",
                Some(json!({ "openid": openid })),
            )
            .await
        }
    };
    assert_eq!(check(openid.clone()).await, (200, json!({"valid": true})));

    // Open data made with the session_key for this mini program.
    let session_key = mock.session_key(MINI_APPID, &openid).unwrap();
    let iv = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
    let seal = |appid: &str| {
        let plain = json!({"openId": openid, "nickName": "Dora",
            "watermark": {"appid": appid, "timestamp": 1_700_000_000}});
        encrypt_open_data(&session_key, &iv, plain.to_string().as_bytes()).unwrap()
    };
    let (status, body) = app
        .post_json(
            "shop/miniprogram/decrypt",
            Some(json!({"openid": openid, "encryptedData": seal(MINI_APPID), "iv": iv})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["nickName"], "Dora");
    let (status, body) = app
        .post_json(
            "shop/miniprogram/decrypt",
            Some(json!({"openid": openid, "encrypted_data": seal(APPID), "iv": iv})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_data"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("watermark"));

    // A wx.login elsewhere replaces the session_key at WeChat: the kept one is no longer valid.
    assert!(mock.renew_session(MINI_APPID, &openid));
    assert_eq!(check(openid.clone()).await, (200, json!({"valid": false})));
    // Nobody logged in under this openid.
    let (status, body) = check("o-nobody".into()).await;
    assert_eq!((status, error_code(&body)), (404, "no_session"), "{body}");
}

#[tokio::test]
async fn a_mini_program_has_no_jssdk_web_login_or_tickets_and_an_official_account_no_mini_login() {
    let (mock, app) = setup("").await;
    // What a mini program shares: its access token.
    assert_eq!(app.get_json("shop/access_token").await.0, 200);
    for path in ["shop/tickets/wx_card", "shop/tickets/jsapi"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "not_supported"),
            "{path}: {body}"
        );
    }
    let (status, body) = app.get_json("shop/logins/some-code").await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "not_supported"),
        "{body}"
    );
    for url in [
        format!(
            "{}/jssdk/shop/config?url=https%3A%2F%2Fa.example%2F",
            app.base
        ),
        format!(
            "{}/oauth/shop/login?redirect=https%3A%2F%2Fa.example%2F",
            app.base
        ),
    ] {
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "not_supported", "{url}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mini program"));
    }
    // The Official Account is not a mini program.
    let code = mock.mint_login_code(APPID, "erin", false);
    let (status, body) = app
        .post_json("main/miniprogram/login", Some(json!({ "code": code })))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "not_supported"),
        "{body}"
    );
    assert_eq!(mock.calls("sns/jscode2session"), 0);
}

#[tokio::test]
async fn one_person_is_found_across_the_official_account_and_the_mini_program() {
    let (mock, app) = setup("").await;
    let code = mock.mint_login_code(MINI_APPID, "frank", false);
    assert_eq!(log_in(&app, &code).await.0, 200);
    // Frank follows the Official Account and logged in there on the web (unionid known).
    let unionid = MockWechat::unionid_for("frank");
    let main = app.state.users.for_account("main");
    let follower = MockWechat::openid_for(APPID, "frank");
    main.record_follow(&follower, true, None, 1_700_000_000)
        .await
        .unwrap();
    main.record_login(
        &wxgate::users::LoginProfile {
            openid: follower.clone(),
            unionid: Some(unionid.clone()),
            ..Default::default()
        },
        1_700_000_100,
    )
    .await
    .unwrap();
    let url = format!("{}/api/v1/users?unionid={unionid}", app.base);
    let (status, body) = get_json(&app.http, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unionid"], unionid.as_str());
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{body}");
    assert_eq!(users[0]["account"], "main");
    assert_eq!(users[0]["kind"], "official");
    assert_eq!(users[0]["openid"], follower.as_str());
    assert_eq!(users[0]["subscribed"], true);
    assert_eq!(users[1]["account"], "shop");
    assert_eq!(users[1]["kind"], "miniprogram");
    assert_eq!(
        users[1]["openid"],
        MockWechat::openid_for(MINI_APPID, "frank").as_str()
    );
    // No unionid given: the client's mistake; an unknown one: nobody.
    let (status, _) = get_json(&app.http, &format!("{}/api/v1/users", app.base)).await;
    assert_eq!(status, 400);
    let (status, body) = get_json(
        &app.http,
        &format!("{}/api/v1/users?unionid=o-none", app.base),
    )
    .await;
    assert_eq!((status, body["users"].clone()), (200, json!([])));
}

/// A JSON push signed (and, with a key, encrypted) as WeChat sends it to `shop`.
async fn send_json_push(
    app: &TestApp,
    key: Option<&str>,
    message: &Value,
) -> (u16, String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let push = wxgate_mock::json_push(MINI_TOKEN, key, MINI_APPID, message, now, "4242").unwrap();
    let response = app
        .http
        .post(format!("{}/wx/shop?{}", app.base, push.query))
        .header("content-type", "application/json")
        .body(push.body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

fn customer_service_text(openid: &str, content: &str, msg_id: u64) -> Value {
    json!({"ToUserName": "gh_shop", "FromUserName": openid,
        "CreateTime": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "MsgType": "text", "Content": content, "MsgId": msg_id})
}

#[tokio::test]
async fn encrypted_json_pushes_reach_the_webhook_once_and_transfer_to_customer_service_in_json() {
    let (hook, calls) = start_webhook(
        Duration::ZERO,
        json!({"reply": {"type": "transfer_customer_service"}}),
    )
    .await;
    let extra = format!(
        "data_format = \"json\"\nencoding_aes_key = \"{AES_KEY}\"\n{}",
        webhook_account_extra(&hook, 3000)
    );
    let (_mock, app) = setup(&extra).await;
    let message = customer_service_text("o-gina", "I need a human", 77);
    let (status, content_type, first) = send_json_push(&app, Some(AES_KEY), &message).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let envelope: Value = serde_json::from_str(&first).unwrap();
    let ring = KeyRing::new(AesKey::from_encoding_aes_key(AES_KEY).unwrap(), None);
    let (opened, _) = ring
        .decrypt(envelope["Encrypt"].as_str().unwrap(), Some(MINI_APPID))
        .unwrap();
    let reply: Value = serde_json::from_str(&opened.into_message_string().unwrap()).unwrap();
    assert_eq!(reply["MsgType"], "transfer_customer_service");
    assert_eq!(reply["ToUserName"], "o-gina");
    assert_eq!(reply["FromUserName"], "gh_shop");
    assert!(envelope["MsgSignature"].as_str().unwrap().len() == 40);
    // WeChat's retry gets the same bytes; the webhook ran once.
    let (status, _, again) = send_json_push(&app, Some(AES_KEY), &message).await;
    assert_eq!((status, again), (200, first));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A customer-service event (the user entered the chat) reaches the webhook too.
    let event = json!({"ToUserName": "gh_shop", "FromUserName": "o-gina",
        "CreateTime": message["CreateTime"], "MsgType": "event",
        "Event": "user_enter_tempsession", "SessionFrom": "sessionFrom"});
    let (status, _, _) = send_json_push(&app, Some(AES_KEY), &event).await;
    assert_eq!(status, 200);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A plaintext JSON push to an account with a key is refused, as for XML.
    let (status, _, body) = send_json_push(&app, None, &message).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("encryption_required"), "{body}");
}

#[tokio::test]
async fn plaintext_json_pushes_go_through_the_rules_and_are_answered_in_json() {
    let extra = "data_format = \"json\"\n[[accounts.rules]]\nkeyword = \"human\"\n\
                 reply = { type = \"transfer_customer_service\" }\n";
    let (_mock, app) = setup(extra).await;
    let (status, content_type, body) =
        send_json_push(&app, None, &customer_service_text("o-hal", "human", 5)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["MsgType"], "transfer_customer_service");
    assert_eq!(reply["ToUserName"], "o-hal");
    assert!(reply["CreateTime"].is_u64());
    // Anything else: success. XML to a JSON account is not a valid push.
    let (status, _, body) =
        send_json_push(&app, None, &customer_service_text("o-hal", "hello", 6)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = wxgate_proto::signature::signature(MINI_TOKEN, &now, "1");
    let response = app
        .http
        .post(format!(
            "{}/wx/shop?signature={sig}&timestamp={now}&nonce=1",
            app.base
        ))
        .body("<xml><ToUserName>a</ToUserName></xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn a_mini_program_added_at_runtime_is_one_and_says_so() {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts.push(MockAccount {
            appid: MINI_APPID.into(),
            secret: MINI_SECRET.into(),
        })
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    let master_key = wxgate::vault::MasterKey::random().to_base64();
    config.tail = format!(
        "[admin]\nkeys = [\"admin-key-0123456789\"]\nmaster_key = \"{}\"\n",
        secrecy::ExposeSecret::expose_secret(&master_key)
    );
    let app = spawn_app(&config).await;
    let put = app
        .http
        .put(format!("{}/admin/api/v1/accounts/shop", app.base))
        .bearer_auth("admin-key-0123456789")
        .json(&json!({"appid": MINI_APPID, "secret": MINI_SECRET, "kind": "miniprogram"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let view: Value = put.json().await.unwrap();
    assert_eq!(view["kind"], "miniprogram");
    let main = app
        .http
        .get(format!("{}/admin/api/v1/accounts/main", app.base))
        .bearer_auth("admin-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(main.json::<Value>().await.unwrap()["kind"], "official");
    let code = mock.mint_login_code(MINI_APPID, "ivy", false);
    let (status, body) = log_in(&app, &code).await;
    assert_eq!(status, 200, "{body}");
}
