//! OAuth web login and the users API against a real gateway and the mock WeChat API, following
//! every redirect by hand: the SPEC flow for both scopes, snapshot users, repeated and
//! concurrent callbacks, forged / reused states, redirect tricks, one-time codes and
//! pagination. The state token, its browser binding and expiry are in `oauth_state.rs`.

use std::time::Duration;

use crate::helpers::{start_mock, start_mock_with, GatewayConfig, APPID};
use crate::web_support::{authorize, hit, query_param, spawn_web_app, WebApp, WebCalls};
use serde_json::Value;
use wxgate::users::LoginProfile;
use wxgate_mock::{MockAccount, MockWechat};

const REDIRECT: &str = "https://h5.example.com/app/";
const OTHER_APPID: &str = "wxabcdefabcdef0002";

fn oauth_config(mock: std::net::SocketAddr) -> GatewayConfig {
    let mut c = GatewayConfig::new(mock);
    c.account_extra = format!("oauth_redirects = [\"{REDIRECT}\", \"https://shop.example.com\"]\n");
    c
}

/// A whole login: start, WeChat's authorize step for `user`, the callback. Returns the final
/// Location (the page with `wxgate_code`).
async fn full_login(app: &WebApp, redirect: &str, scope: Option<&str>, extra: &str) -> String {
    let authorize_url = app.start_login("main", redirect, scope).await;
    let callback = authorize(&app.http, &authorize_url, extra).await;
    let (status, location, body) = hit(&app.http, &callback).await;
    assert_eq!(status, 302, "{body}");
    location.unwrap()
}

#[tokio::test]
async fn login_redirects_to_wechats_authorize_page() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let location = app
        .start_login("main", "https://h5.example.com/app/page?x=1", None)
        .await;
    let callback = format!("{}/oauth/main/callback", app.base);
    let prefix = format!(
        "http://{addr}/connect/oauth2/authorize?appid={APPID}&redirect_uri={}&response_type=code&scope=snsapi_base&state=",
        wxgate_proto::oauth::encode_query_value(&callback)
    );
    assert!(location.starts_with(&prefix), "{location}");
    assert!(location.ends_with("#wechat_redirect"), "{location}");
    let state = query_param(location.split('#').next().unwrap(), "state").unwrap();
    assert!(
        state.len() >= 22 && state.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{state}"
    );
    let again = app
        .start_login("main", "https://h5.example.com/app/", None)
        .await;
    assert_ne!(
        query_param(again.split('#').next().unwrap(), "state").unwrap(),
        state
    );

    let userinfo = app
        .start_login("main", REDIRECT, Some("snsapi_userinfo"))
        .await;
    assert!(userinfo.contains("&scope=snsapi_userinfo&"), "{userinfo}");
    app.stop().await;
}

#[tokio::test]
async fn login_refuses_bad_scopes_missing_redirects_and_unknown_accounts() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let (status, body) = app.get("/oauth/main/login").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_parameter"))
    );
    let (status, body) = app
        .get("/oauth/main/login?redirect=https%3A%2F%2Fh5.example.com%2Fapp%2F&scope=snsapi_login")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_scope");
    let (status, body) = app
        .get("/oauth/nope/login?redirect=https%3A%2F%2Fh5.example.com%2Fapp%2F")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_account"))
    );
    app.stop().await;
}

#[tokio::test]
async fn login_refuses_redirects_outside_oauth_redirects_including_prefix_tricks() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    for bad in [
        "https://evil.com/",
        "https://h5.example.com/",
        "https://h5.example.com/application",
        "https://h5.example.com/app/../admin",
        "https://h5.example.com/app/%2e%2e/admin",
        "http://h5.example.com/app/",
        "https://h5.example.com:8443/app/",
        "https://shop.example.com.evil.com/",
        "https://shop.example.com@evil.com/",
        "https://user@shop.example.com/",
        "https://shop.example.com\\@evil.com/",
        "//evil.com/",
        "//shop.example.com/",
        "/app/",
        "javascript:alert(1)//https://h5.example.com/app/",
        "https://evil.com/https://h5.example.com/app/",
        "https://shop.example.com%2eevil.com/",
    ] {
        let resp = app
            .http
            .get(app.url("/oauth/main/login"))
            .query(&[("redirect", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "redirect_not_allowed", "{bad}");
    }
    // A prefix without a trailing slash allows every path of exactly that origin.
    app.start_login("main", "https://shop.example.com/cart?x=1", None)
        .await;
    app.start_login("main", "https://SHOP.example.com:443/", None)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_base_login_ends_on_the_page_with_a_one_time_code_for_the_backend() {
    base_login_case(None).await;
}

#[tokio::test]
async fn a_base_login_ends_on_the_page_with_a_one_time_code_for_the_backend_on_mongodb() {
    crate::helpers::in_fresh_mongo_db("oauth_base_mongo", |url| base_login_case(Some(url))).await;
}

/// The case on the database of `database_url` (the default SQLite file when `None`).
async fn base_login_case(database_url: Option<String>) {
    let (mock, addr) = start_mock().await;
    let mut config = oauth_config(addr);
    if let Some(url) = database_url {
        config.database_url = url;
    }
    let app = spawn_web_app(&config).await;
    let page = "https://h5.example.com/app/page?x=1&y=%20#/route?z=2";
    let location = full_login(&app, page, None, "mock_openid=alice").await;
    let (before, fragment) = location.split_once('#').unwrap();
    assert_eq!(fragment, "/route?z=2");
    assert!(
        before.starts_with("https://h5.example.com/app/page?x=1&y=%20&wxgate_code="),
        "{location}"
    );
    let code = query_param(before, "wxgate_code").unwrap();
    assert!(code.len() >= 22, "{code}");

    let (status, login) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 200, "{login}");
    let openid = MockWechat::openid_for(APPID, "alice");
    assert_eq!(login["openid"], openid);
    assert_eq!(login["unionid"], MockWechat::unionid_for("alice"));
    assert_eq!(login["scope"], "snsapi_base");
    assert_eq!(login["user"]["openid"], openid);
    assert!(login["user"]["nickname"].is_null());
    assert!(login["user"]["last_login_at"].is_i64());
    assert_eq!(mock.calls("sns/userinfo"), 0);

    // Single use.
    let (status, body) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );

    let (status, user) = app.api_get(&format!("main/users/{openid}")).await;
    assert_eq!(status, 200);
    assert_eq!(user["openid"], openid);
    assert_eq!(user["unionid"], MockWechat::unionid_for("alice"));
    app.stop().await;
}

#[tokio::test]
async fn a_userinfo_login_stores_the_profile() {
    userinfo_login_case(None).await;
}

#[tokio::test]
async fn a_userinfo_login_stores_the_profile_on_mongodb() {
    crate::helpers::in_fresh_mongo_db("oauth_userinfo_mongo", |url| userinfo_login_case(Some(url)))
        .await;
}

/// The case on the database of `database_url` (the default SQLite file when `None`).
async fn userinfo_login_case(database_url: Option<String>) {
    let (mock, addr) = start_mock().await;
    let mut config = oauth_config(addr);
    if let Some(url) = database_url {
        config.database_url = url;
    }
    let app = spawn_web_app(&config).await;
    let location = full_login(&app, REDIRECT, Some("snsapi_userinfo"), "mock_openid=bob").await;
    assert!(
        location.starts_with("https://h5.example.com/app/?wxgate_code="),
        "{location}"
    );
    let code = query_param(&location, "wxgate_code").unwrap();
    let (status, login) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["scope"], "snsapi_userinfo");
    assert_eq!(login["snapshot"], false);
    assert_eq!(login["user"]["nickname"], "测试用户bob");
    assert!(login["user"]["headimgurl"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(login["user"]["unionid"], MockWechat::unionid_for("bob"));
    let keys = [
        "openid",
        "unionid",
        "nickname",
        "headimgurl",
        "subscribed",
        "subscribe_scene",
        "subscribed_at",
        "unsubscribed_at",
        "last_login_at",
        "created_at",
        "updated_at",
    ];
    for k in keys {
        assert!(login["user"].get(k).is_some(), "user record lacks {k}");
    }
    assert_eq!(mock.calls("sns/userinfo"), 1);
    app.stop().await;
}

#[tokio::test]
async fn snapshot_page_users_are_marked_and_not_stored() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let location = full_login(
        &app,
        REDIRECT,
        Some("snsapi_userinfo"),
        "mock_openid=carol&mock_snapshot=1",
    )
    .await;
    let code = query_param(&location, "wxgate_code").unwrap();
    let (status, login) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["snapshot"], true);
    assert!(login["user"].is_null());
    let openid = login["openid"].as_str().unwrap();
    let (status, body) = app.api_get(&format!("main/users/{openid}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
    let (_, page) = app.api_get("main/users").await;
    assert_eq!(page["users"], serde_json::json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_callback_gets_the_same_redirect_without_a_second_exchange() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let authorize_url = app.start_login("main", REDIRECT, None).await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    let (s1, first, _) = hit(&app.http, &callback).await;
    let (s2, second, _) = hit(&app.http, &callback).await;
    assert_eq!((s1, s2), (302, 302));
    assert_eq!(first, second);
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_callbacks_all_get_the_same_redirect_and_one_exchange() {
    let (mock, addr) = start_mock().await;
    mock.set_latency(Duration::from_millis(150));
    let app = spawn_web_app(&oauth_config(addr)).await;
    let authorize_url = app
        .start_login("main", REDIRECT, Some("snsapi_userinfo"))
        .await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    let hits = (0..20).map(|_| hit(&app.http, &callback));
    let answers = futures::future::join_all(hits).await;
    let first = answers[0].1.clone().unwrap();
    for (status, location, body) in &answers {
        assert_eq!(*status, 302, "{body}");
        assert_eq!(location.as_deref(), Some(first.as_str()));
    }
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    assert_eq!(mock.calls("sns/userinfo"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_used_state_with_another_code_is_refused() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let authorize_url = app.start_login("main", REDIRECT, None).await;
    let first = authorize(&app.http, &authorize_url, "").await;
    // The same authorize URL again: WeChat issues a new code with the same state.
    let second = authorize(&app.http, &authorize_url, "").await;
    assert_ne!(query_param(&first, "code"), query_param(&second, "code"));
    let (status, _, _) = hit(&app.http, &first).await;
    assert_eq!(status, 302);
    let (status, _, body) = hit(&app.http, &second).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_state");
    app.stop().await;
}

#[tokio::test]
async fn forged_missing_and_foreign_states_are_refused() {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts
            .push(MockAccount::new(OTHER_APPID, "other-secret"));
    })
    .await;
    let mut config = oauth_config(addr);
    config.tail = format!(
        "[[accounts]]\nname = \"other\"\nappid = \"{OTHER_APPID}\"\nsecret = \"other-secret\"\noauth_redirects = [\"{REDIRECT}\"]\n"
    );
    let app = spawn_web_app(&config).await;
    let base = format!("{}/oauth/main/callback", app.base);
    for query in [
        "?code=abc&state=forgedstate0123456789012345678901",
        "?code=abc",
        "?code=abc&state=",
        "?code=abc&state=has%20space",
        "",
    ] {
        let (status, _, body) = hit(&app.http, &format!("{base}{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_state", "{query}");
    }
    // A state issued for `other` does not complete a login of `main`.
    let authorize_url = app.start_login("other", REDIRECT, None).await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    let state = query_param(&callback, "state").unwrap();
    let code = query_param(&callback, "code").unwrap();
    let (status, _, body) = hit(&app.http, &format!("{base}?code={code}&state={state}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_state"))
    );
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);
    // ... and is still good for its own account.
    let (status, _, _) = hit(&app.http, &callback).await;
    assert_eq!(status, 302);
    app.stop().await;
}

#[tokio::test]
async fn a_refusing_user_is_sent_back_with_access_denied() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let authorize_url = app
        .start_login(
            "main",
            "https://h5.example.com/app/p?x=1#f",
            Some("snsapi_userinfo"),
        )
        .await;
    let callback = authorize(&app.http, &authorize_url, "mock_deny=1").await;
    assert!(query_param(&callback, "code").is_none());
    let (status, location, _) = hit(&app.http, &callback).await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://h5.example.com/app/p?x=1&wxgate_error=access_denied#f")
    );
    let (_, again, _) = hit(&app.http, &callback).await;
    assert_eq!(again, location);
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);
    app.stop().await;
}

#[tokio::test]
async fn login_codes_are_single_use_per_account_and_expire() {
    let (_mock, addr) = start_mock_with(|c| {
        c.accounts
            .push(MockAccount::new(OTHER_APPID, "other-secret"));
    })
    .await;
    let mut config = oauth_config(addr);
    config.tail = format!(
        "[[accounts]]\nname = \"other\"\nappid = \"{OTHER_APPID}\"\nsecret = \"other-secret\"\n"
    );
    let app = spawn_web_app(&config).await;
    let (status, body) = app.api_get("main/logins/neverissued0123456789").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );

    let location = full_login(&app, REDIRECT, None, "").await;
    let code = query_param(&location, "wxgate_code").unwrap();
    // Another account cannot redeem it, and trying does not burn it.
    let (status, _) = app.api_get(&format!("other/logins/{code}")).await;
    assert_eq!(status, 404);
    // The business API needs the key.
    let resp = app
        .http
        .get(app.api(&format!("main/logins/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, _) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 200);
    let (status, _) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 404);

    // Expiry: age a fresh code past its TTL in the store.
    let location = full_login(&app, REDIRECT, None, "").await;
    let code = query_param(&location, "wxgate_code").unwrap();
    let key = wxgate::oauth::flow::login_store_key("main", &code);
    let value = app
        .state
        .store
        .get(&key)
        .await
        .unwrap()
        .expect("login stored");
    app.state
        .store
        .put(&key, &value, Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = app.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );
    app.stop().await;
}

#[tokio::test]
async fn users_are_listed_by_openid_page_by_page() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let openids: Vec<String> = (0..7).map(|i| format!("o-user-{i:02}")).collect();
    for (i, openid) in openids.iter().enumerate().rev() {
        let profile = LoginProfile {
            openid: openid.clone(),
            ..LoginProfile::default()
        };
        app.state
            .users
            .for_account("main")
            .record_login(&profile, 1_700_000_000 + i as i64)
            .await
            .unwrap();
    }
    let ids = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["openid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = app.api_get("main/users?limit=3").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), openids[0..3]);
    assert_eq!(page["next"], "o-user-02");
    let (_, page) = app.api_get("main/users?limit=3&after=o-user-02").await;
    assert_eq!(ids(&page), openids[3..6]);
    assert_eq!(page["next"], "o-user-05");
    let (_, page) = app.api_get("main/users?limit=3&after=o-user-05").await;
    assert_eq!(ids(&page), openids[6..7]);
    assert!(page["next"].is_null());
    // A page that ends exactly at the last user has no next.
    let (_, page) = app.api_get("main/users?limit=7").await;
    assert_eq!(ids(&page), openids);
    assert!(page["next"].is_null());
    let (_, page) = app.api_get("main/users?after=o-user-06").await;
    assert_eq!(page, serde_json::json!({"users": [], "next": null}));
    // Default and capped limits.
    let (_, page) = app.api_get("main/users").await;
    assert_eq!(ids(&page), openids);
    let (status, page) = app.api_get("main/users?limit=5000").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page).len(), 7);
    for bad in ["0", "-1", "abc", "1.5"] {
        let (status, body) = app.api_get(&format!("main/users?limit={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
    }
    let (status, body) = app.api_get("nope/users").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_account"))
    );
    let (status, body) = app.api_get("main/users/o-nobody").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
    let resp = app.http.get(app.api("main/users")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_login_started_on_one_instance_completes_on_another_sharing_the_store() {
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = oauth_config(addr);
    config.storage_url = format!("sqlite://{}/store.db", dir.path().display());
    let a = spawn_web_app(&config).await;
    let b = spawn_web_app(&config).await;
    let authorize_url = a.start_login("main", REDIRECT, None).await;
    // WeChat sends the browser to a's public_url; a load balancer may hand it to b instead.
    // The same browser (a's client, holding the login cookie) goes on to b.
    let callback = authorize(&a.http, &authorize_url, "").await;
    let on_b = callback.replacen(&a.base, &b.base, 1);
    let (status, location, body) = hit(&a.http, &on_b).await;
    assert_eq!(status, 302, "{body}");
    let (again_status, again, _) = hit(&a.http, &callback).await;
    assert_eq!((again_status, again.as_deref()), (302, location.as_deref()));
    let code = query_param(&location.unwrap(), "wxgate_code").unwrap();
    let (status, _) = a.api_get(&format!("main/logins/{code}")).await;
    assert_eq!(status, 200);
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    a.stop().await;
    b.stop().await;
}
