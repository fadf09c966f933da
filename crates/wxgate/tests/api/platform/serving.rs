//! An authorizer served as an account: its pushes (the platform's key), a refresh token WeChat
//! refuses, refresh-token rotation, web login through the platform, keys, metrics, the admin
//! view.

use super::*;
use crate::helpers::http_client;
use crate::web_support::{authorize, browser, hit, WebCalls};

const ADMIN_KEY: &str = "platform-admin-key-0123456789";

/// A push of `content` from `openid` to the authorizer's message URL, sealed as WeChat seals
/// it for a platform; the status and the raw answer.
async fn push_text(base: &str, appid: &str, openid: &str, content: &str) -> (u16, String) {
    let now = unix_now();
    let inner = format!(
        "<xml><ToUserName><![CDATA[gh_merchant]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{}</MsgId></xml>",
        rand::random::<u32>()
    );
    let (query, body) = seal(&inner, COMPONENT_APPID, now);
    post_raw(
        &format!("{base}/wx/component/{COMPONENT}/{appid}?{query}&openid={openid}"),
        body,
    )
    .await
}

/// Opens an encrypted passive reply with the platform's key, as the merchant's WeChat would.
fn open_reply(answer: &str) -> String {
    use wxgate_mock::crypto;
    let field = |name: &str| -> String {
        let start = answer.find(&format!("<{name}>")).unwrap() + name.len() + 2;
        let end = answer.find(&format!("</{name}>")).unwrap();
        answer[start..end]
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .to_owned()
    };
    let encrypt = field("Encrypt");
    let expected = crypto::msg_signature(
        COMPONENT_TOKEN,
        &field("TimeStamp"),
        &field("Nonce"),
        &encrypt,
    );
    assert_eq!(
        field("MsgSignature"),
        expected,
        "the reply is signed with the platform's Token"
    );
    let key = crypto::aes_key(COMPONENT_KEY).unwrap();
    crypto::decrypt_for(&key, &encrypt, COMPONENT_APPID).unwrap()
}

#[tokio::test]
async fn a_push_to_an_authorizer_is_answered_with_the_platform_key() {
    let (mock, app) = start_platform().await;
    let merchant = authorizer_appid(10);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let (status, answer) = push_text(&app.base, &merchant, "o-user-1", "ping").await;
    assert_eq!(status, 200, "{answer}");
    let reply = open_reply(&answer);
    assert!(reply.contains("pong from the platform"), "{reply}");
    assert!(
        reply.contains("<ToUserName><![CDATA[o-user-1]]></ToUserName>"),
        "{reply}"
    );
    // Not an authorizer of this platform: 404 unknown_account.
    let (status, body) = push_text(&app.base, &authorizer_appid(11), "o-user-1", "ping").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown_account"));
    // A plaintext push is refused: a platform's messages are always encrypted.
    let ts = unix_now().to_string();
    let sig = wxgate_proto::signature::signature(COMPONENT_TOKEN, &ts, "n1");
    let (status, body) = post_raw(
        &format!(
            "{}/wx/component/{COMPONENT}/{merchant}?signature={sig}&timestamp={ts}&nonce=n1",
            app.base
        ),
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>\
         <MsgType>text</MsgType><Content>ping</Content><MsgId>1</MsgId></xml>"
            .into(),
    )
    .await;
    assert!(body.contains("encryption_required"), "{body}");
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_refresh_token_stops_the_authorizer_until_it_authorizes_again() {
    let (mock, app) = start_platform().await;
    let merchant = authorizer_appid(20);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let (status, _) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200);
    mock.invalidate_refresh_token(&merchant);
    // A forced refresh meets 61023.
    let (status, body) = app
        .post_json(&format!("{merchant}/access_token/refresh"), None)
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!(body["error"]["wechat_errcode"], 61023);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authorize"),
        "{body}"
    );
    // From then on, although the token fetched before has not expired.
    for path in ["access_token", "tickets/jsapi"] {
        let (status, body) = app.get_json(&format!("{merchant}/{path}")).await;
        assert_eq!(status, 502, "{path}: {body}");
        assert_eq!(body["error"]["wechat_errcode"], 61023);
    }
    let calls = mock.calls("cgi-bin/component/api_authorizer_token");
    let (_, _) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(
        mock.calls("cgi-bin/component/api_authorizer_token"),
        calls,
        "a refused authorization asks WeChat nothing more"
    );
    let (_, list) = get_api(&component_api(&app.base, "authorizers")).await;
    assert_eq!(list["authorizers"][0]["status"], "refresh_token_invalid");
    let page = app.metrics_text().await;
    assert!(page.contains(r#"wxgate_component_refresh_errors_total{component="platform",cause="refresh_token_invalid"} 1"#), "{page}");
    // The merchant authorizes again.
    let landed = authorize_through_pages(&mock, &app.base, &merchant).await;
    assert!(landed.ends_with(&merchant));
    let (status, body) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_it_is_needed() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let config = platform_config(addr);
    let app = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &app.base).await;
    mock.set_refresh_token_rotation(COMPONENT_APPID, true);
    let merchant = authorizer_appid(30);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, body) = app
            .post_json(&format!("{merchant}/access_token/refresh"), None)
            .await;
        assert_eq!(
            status, 200,
            "each rotation's new refresh token works: {body}"
        );
        seen.push(body["access_token"].as_str().unwrap().to_owned());
        // The forced-refresh guard allows one per 30 s; drop it to refresh again.
        app.state
            .store
            .delete(&format!("force:{merchant}:access_token"))
            .await
            .unwrap();
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    assert_eq!(mock.calls("cgi-bin/component/api_authorizer_token"), 3);
    // Another instance on the same database (a fresh store) fetches with the newest one.
    let other = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &other.base).await;
    let (status, body) = other.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn web_login_of_an_authorizer_goes_through_the_platform() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let mut app = crate::helpers::spawn_app_full(&platform_config(addr), None, |_, _| {}).await;
    app.http = browser();
    register(&mock, &app.base).await;
    let merchant = authorizer_appid(40);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let authorize_url = app
        .start_login(&merchant, "https://h5.example.com/shop", None)
        .await;
    assert!(
        authorize_url.contains(&format!(
            "&component_appid={COMPONENT_APPID}#wechat_redirect"
        )),
        "{authorize_url}"
    );
    let callback = authorize(&app.http, &authorize_url, "mock_openid=alice").await;
    let (status, location, body) = hit(&app.http, &callback).await;
    assert_eq!(status, 302, "{body}");
    assert!(location.unwrap().contains("wxgate_code="));
    assert_eq!(mock.calls("sns/oauth2/component/access_token"), 1);
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);
    let (status, users) = app.get_json(&format!("{merchant}/users")).await;
    assert_eq!(status, 200);
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn keys_metrics_and_the_admin_view() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let mut config = platform_config(addr);
    config.tail = config
        .tail
        .replace("[admin]\n", &format!("[admin]\nkeys = [\"{ADMIN_KEY}\"]\n"));
    let app = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &app.base).await;
    let merchant = authorizer_appid(50);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let http = http_client();
    let new_key = |accounts: Value, scopes: Value| {
        let http = http.clone();
        let url = format!("{}/admin/api/v1/keys", app.base);
        async move {
            let resp = http
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .json(&serde_json::json!({"name": "k", "accounts": accounts, "scopes": scopes}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let with = |key: String, path: &str| {
        let http = http.clone();
        let url = component_api(&app.base, path);
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let platform_key = new_key(
        serde_json::json!(["platform"]),
        serde_json::json!(["credentials"]),
    )
    .await;
    let star_key = new_key(serde_json::json!(["*"]), serde_json::json!(["credentials"])).await;
    let other_key = new_key(
        serde_json::json!(["main"]),
        serde_json::json!(["credentials"]),
    )
    .await;
    let proxy_key = new_key(serde_json::json!(["*"]), serde_json::json!(["proxy"])).await;
    for path in ["access_token", "authorizers", "status"] {
        assert_eq!(with(platform_key.clone(), path).await, 200, "{path}");
        assert_eq!(with(star_key.clone(), path).await, 200, "{path}");
        assert_eq!(with(other_key.clone(), path).await, 403, "{path}");
        assert_eq!(with(proxy_key.clone(), path).await, 403, "{path}");
    }
    let anonymous = http
        .get(component_api(&app.base, "status"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let page = app.metrics_text().await;
    assert!(
        page.contains(r#"wxgate_component_ticket_age_seconds{component="platform"}"#),
        "{page}"
    );
    assert!(
        page.contains(
            r#"wxgate_component_authorizers{component="platform",status="authorized"} 1"#
        ),
        "{page}"
    );

    let (status, view) = get_json_admin(
        &http,
        &format!("{}/admin/api/v1/accounts/{merchant}", app.base),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["source"], "component:platform");
    assert_eq!(view["has_secret"], false);
    let put = http
        .put(format!("{}/admin/api/v1/accounts/{merchant}", app.base))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({"appid": merchant, "secret": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        409,
        "an authorizer is read-only in the admin API"
    );
    app.stop().await;
}

async fn get_json_admin(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = http.get(url).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_authorizers_pushes_reach_the_platform_webhook_and_late_replies_use_its_token() {
    use std::sync::{Arc, Mutex};
    // A webhook that notes the account header and answers after the push's deadline.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let noted = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let noted = noted.clone();
            async move {
                let account = headers
                    .get("x-wxgate-account")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                noted.lock().unwrap().push(account);
                tokio::time::sleep(Duration::from_millis(600)).await;
                axum::Json(serde_json::json!({"reply": {"type": "text", "content": "late hello"}}))
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let (mock, addr) = crate::helpers::start_mock().await;
    let mut config = platform_config(addr);
    config.tail = config.tail.replace(
        "oauth_redirects = [\"https://h5.example.com/\"]\n",
        &format!(
            "oauth_redirects = [\"https://h5.example.com/\"]\nwebhook = {{ url = \"{hook}\", secret = \"hook-secret-123\", timeout_ms = 200 }}\n"
        ),
    );
    let app = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &app.base).await;
    let merchant = authorizer_appid(60);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let (status, answer) = push_text(&app.base, &merchant, "o-user-9", "anything").await;
    assert_eq!(
        (status, answer.as_str()),
        (200, "success"),
        "answered before the webhook"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            !mock.custom_messages().is_empty()
        })
        .await,
        "the late answer is sent as a customer-service message"
    );
    assert_eq!(seen.lock().unwrap().clone(), vec![merchant.clone()]);
    assert_eq!(
        mock.custom_message_senders(),
        vec![merchant.clone()],
        "with the authorizer's token"
    );
    assert_eq!(mock.custom_messages()[0]["touser"], "o-user-9");
    app.stop().await;
}
