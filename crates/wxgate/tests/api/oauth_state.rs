//! The web-login state against a real gateway and the mock WeChat API: starting a login writes
//! nothing to the store, redirects are bounded, the state is an authenticated token (forged,
//! altered, foreign and expired ones are refused) bound to the browser that started the login
//! by a cookie, and a `wxgate_code` planted in the redirect in encoded form never reaches the
//! page.

use crate::helpers::{http_client, start_mock, GatewayConfig, APPID};
use crate::web_support::{
    authorize, browser, hit, query_param, spawn_web_app, spawn_web_app_with, WebCalls,
};
use reqwest::header::{COOKIE, SET_COOKIE};
use secrecy::SecretString;
use wxgate::oauth::state_token::{self, Login, StateKey};
use wxgate_proto::oauth::Scope;

const REDIRECT: &str = "https://h5.example.com/app/";
const STATE_SECRET: &str = "test-state-secret-0123456789abcdef";

fn oauth_config(mock: std::net::SocketAddr) -> GatewayConfig {
    let mut c = GatewayConfig::new(mock);
    c.account_extra = format!("oauth_redirects = [\"{REDIRECT}\"]\n");
    c
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn count_rows(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM wxgate_kv")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn logins_write_nothing_to_the_store() {
    let (mock, addr) = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut config = oauth_config(addr);
    config.storage_url = format!("sqlite://{}", path.display());
    let app = spawn_web_app(&config).await;
    // The first login creates the shared state secret: one bounded write, once.
    app.start_login("main", REDIRECT, None).await;
    let secret = app
        .state
        .store
        .get(state_token::SECRET_STORE_KEY)
        .await
        .unwrap();
    assert_eq!(secret.map(|s| s.len()), Some(32));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let before = count_rows(&pool).await;
    let long = format!("{REDIRECT}?pad={}", "x".repeat(1900));
    for i in 0..200 {
        let redirect = if i % 2 == 0 { REDIRECT } else { long.as_str() };
        app.start_login("main", redirect, Some("snsapi_userinfo"))
            .await;
    }
    assert_eq!(count_rows(&pool).await, before, "anonymous logins wrote");
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_redirect_over_2048_bytes_is_refused() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let pad = |total: usize| {
        let head = format!("{REDIRECT}?pad=");
        format!("{head}{}", "a".repeat(total - head.len()))
    };
    let resp = app
        .http
        .get(app.url("/oauth/main/login"))
        .query(&[("redirect", pad(3000))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "redirect_too_long", "{body}");
    // 2048 bytes still go, and come back whole.
    let longest = pad(2048);
    let authorize_url = app.start_login("main", &longest, None).await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    let (status, location, body) = hit(&app.http, &callback).await;
    assert_eq!(status, 302, "{body}");
    assert!(
        location
            .unwrap()
            .starts_with(&format!("{longest}&wxgate_code=")),
        "the redirect came back altered"
    );
    app.stop().await;
}

/// A callback URL for `state` from the mock's authorize step (WeChat echoes the state).
async fn callback_for(app: &crate::web_support::WebApp, state: &str) -> String {
    let settings = &app.state.settings;
    let authorize_url = wxgate_proto::oauth::authorize_url(
        &settings.upstream.open_base,
        APPID,
        &format!("{}/oauth/main/callback", app.base),
        Scope::Base,
        state,
    );
    authorize(&http_client(), &authorize_url, "").await
}

/// Hits `url` with exactly `cookie` (a `name=value` pair) and no cookie jar.
async fn hit_with_cookie(url: &str, cookie: &str) -> (u16, serde_json::Value) {
    let resp = http_client()
        .get(url)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn forged_altered_foreign_and_expired_states_are_refused() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app_with(&oauth_config(addr), None, |s, _| {
        s.server.state_secret = Some(SecretString::from(STATE_SECRET));
    })
    .await;
    let key = StateKey::derive(STATE_SECRET.as_bytes());
    let login = |account: &str, expires_at: i64| Login {
        account: account.into(),
        redirect: REDIRECT.into(),
        scope: Scope::Base,
        expires_at,
    };
    let refused = |status: u16, body: &serde_json::Value, what: &str| {
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_state", "{what}");
    };

    // Expired: authentic (sealed with the gateway's key) but past its 10 minutes.
    let expired = state_token::issue(&key, &login("main", unix_now() - 1), false);
    let cookie = format!("{}={}", expired.cookie_name, expired.cookie_value);
    let (status, body) = hit_with_cookie(&callback_for(&app, &expired.state).await, &cookie).await;
    refused(status, &body, "expired");

    // Issued for another account.
    let foreign = state_token::issue(&key, &login("other", unix_now() + 600), false);
    let cookie = format!("{}={}", foreign.cookie_name, foreign.cookie_value);
    let (status, body) = hit_with_cookie(&callback_for(&app, &foreign.state).await, &cookie).await;
    refused(status, &body, "other account");

    // Sealed with another key (a forger's).
    let forger = StateKey::derive(b"not the gateway's secret, but long enough");
    let forged = state_token::issue(&forger, &login("main", unix_now() + 600), false);
    let cookie = format!("{}={}", forged.cookie_name, forged.cookie_value);
    let (status, body) = hit_with_cookie(&callback_for(&app, &forged.state).await, &cookie).await;
    refused(status, &body, "forged");

    // A valid state with one byte flipped (in the expiry, then in the MAC).
    let valid = state_token::issue(&key, &login("main", unix_now() + 600), false);
    let cookie = format!("{}={}", valid.cookie_name, valid.cookie_value);
    for at in [10, 80] {
        let mut bytes = valid.state.clone().into_bytes();
        bytes[at] = if bytes[at] == b'f' { b'e' } else { b'f' };
        let altered = String::from_utf8(bytes).unwrap();
        let (status, body) = hit_with_cookie(&callback_for(&app, &altered).await, &cookie).await;
        refused(status, &body, "altered");
    }
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);

    // The same state unaltered completes: the refusals above were the state's doing.
    let callback = callback_for(&app, &valid.state).await;
    let resp = http_client()
        .get(&callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_callback_must_come_from_the_browser_that_started_the_login() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;

    // The login cookie: HttpOnly, SameSite=Lax, 10 minutes, plain name on http.
    let resp = app
        .http
        .get(app.url("/oauth/main/login"))
        .query(&[("redirect", REDIRECT)])
        .send()
        .await
        .unwrap();
    let set_cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("wxgate_login_"), "{set_cookie}");
    for attribute in ["; Path=/", "; Max-Age=600", "; HttpOnly", "; SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");

    // An attacker starts a login in their browser and hands the callback URL to a victim.
    let attacker = app.http.clone();
    let authorize_url = app.start_login("main", REDIRECT, None).await;
    let attackers_callback = authorize(&attacker, &authorize_url, "mock_openid=mallory").await;
    let victim = browser();
    let (status, _, body) = hit(&victim, &attackers_callback).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_state");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("browser that started it"), "{message}");

    // The victim's own login cookie, presented under the attacker's login's name, does not
    // match either.
    let resp = victim
        .get(app.url("/oauth/main/login"))
        .query(&[("redirect", REDIRECT)])
        .send()
        .await
        .unwrap();
    let victims = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let victims_value = victims
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    let state = query_param(&attackers_callback, "state").unwrap();
    let nonce = &state[20..44];
    let (status, body) = hit_with_cookie(
        &attackers_callback,
        &format!("wxgate_login_{nonce}={victims_value}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_state");
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);

    // The browser that started it completes it, and only it gets the repeated answer.
    let (status, location, _) = hit(&attacker, &attackers_callback).await;
    assert_eq!(status, 302);
    let (status, again, _) = hit(&attacker, &attackers_callback).await;
    assert_eq!((status, again), (302, location));
    let (status, _, body) = hit(&victim, &attackers_callback).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_https_public_url_gets_a_host_prefixed_secure_cookie() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app_with(&oauth_config(addr), None, |s, _| {
        s.server.public_url = "https://wx.example.com".into();
    })
    .await;
    let resp = http_client()
        .get(app.url("/oauth/main/login"))
        .query(&[("redirect", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let set_cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("__Host-wxgate_login_"),
        "{set_cookie}"
    );
    for attribute in [
        "; Path=/",
        "; Max-Age=600",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Secure",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    let location = crate::web_support::location(&resp);
    assert!(
        location.contains(&wxgate_proto::oauth::encode_query_value(
            "https://wx.example.com/oauth/main/callback"
        )),
        "{location}"
    );
    // Brought back (by https in real life), the cookie completes the login.
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let callback = authorize(&http_client(), &location, "").await;
    let on_app = callback.replacen("https://wx.example.com", &app.base, 1);
    let resp = http_client()
        .get(&on_app)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    app.stop().await;
}

#[tokio::test]
async fn a_wxgate_code_planted_in_encoded_form_is_removed() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&oauth_config(addr)).await;
    let page =
        format!("{REDIRECT}?wxgate%5Fcode=planted1&wxgate_cod%65=planted2&WXGATE%5fcode=kept&x=1");
    let authorize_url = app.start_login("main", &page, None).await;
    let callback = authorize(&app.http, &authorize_url, "").await;
    let (status, location, body) = hit(&app.http, &callback).await;
    assert_eq!(status, 302, "{body}");
    let location = location.unwrap();
    assert!(!location.contains("planted"), "{location}");
    let codes: Vec<String> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| k == "wxgate_code")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(codes.len(), 1, "{location}");
    let (status, _) = app.api_get(&format!("main/logins/{}", codes[0])).await;
    assert_eq!(status, 200);
    app.stop().await;
}
