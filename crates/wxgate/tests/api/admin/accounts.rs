//! Accounts created, replaced and deleted at runtime: in force on a second instance within 2 s
//! (on SQLite, PostgreSQL and MongoDB), a rotated AES key still opening pushes sealed with the
//! old one, and a replace racing requests without mixing old and new settings.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

use super::support::*;

/// Created on one instance, the account is served by a second one sharing the database within
/// 2 s — tokens, JS-SDK signatures, pushes — and gone there within 2 s of its deletion.
async fn a_runtime_account_reaches_a_second_instance(config: GatewayConfig) {
    let first = spawn_app(&config).await;
    let second = spawn_app(&config).await;
    assert_eq!(
        status_of(&second, second.api("shop/access_token"), API_KEY).await,
        404
    );

    let (status, created) = admin(
        &first,
        reqwest::Method::PUT,
        "accounts/shop",
        Some(shop_body(json!({}))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "database");
    assert_eq!(created["has_secret"], true);
    assert!(created.get("secret").is_none(), "{created}");
    // In force on the instance that wrote it at once.
    assert_eq!(
        status_of(&first, first.api("shop/access_token"), API_KEY).await,
        200
    );

    eventually(FOLLOW_WITHIN, || async {
        status_of(&second, second.api("shop/access_token"), API_KEY).await == 200
    })
    .await;
    let (status, token) = second.get_json("shop/access_token").await;
    assert_eq!(status, 200);
    assert!(token["access_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let config_page = second
        .http
        .get(format!(
            "{}/jssdk/shop/config?url={}",
            second.base,
            urlencode("https://h5.shop.example/page")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(config_page.status().as_u16(), 200);
    let signed: Value = config_page.json().await.unwrap();
    assert_eq!(signed["appId"], SHOP_APPID);
    assert_eq!(plain_push(&second, "shop", SHOP_TOKEN).await.0, 200);

    let (status, _) = admin(&first, reqwest::Method::DELETE, "accounts/shop", None).await;
    assert_eq!(status, 204);
    eventually(FOLLOW_WITHIN, || async {
        status_of(&second, second.api("shop/access_token"), API_KEY).await == 404
    })
    .await;
    assert_eq!(plain_push(&second, "shop", SHOP_TOKEN).await.0, 404);
    let (status, _) = admin(&first, reqwest::Method::GET, "accounts/shop", None).await;
    assert_eq!(status, 404);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_runtime_account_reaches_a_second_instance_on_sqlite() {
    let (_mock, config) = setup().await;
    a_runtime_account_reaches_a_second_instance(config).await;
}

#[tokio::test]
async fn a_runtime_account_reaches_a_second_instance_on_postgresql() {
    let (_mock, mut config) = setup().await;
    in_fresh_pg_schema("admin_follow", |url| async move {
        config.database_url = url;
        a_runtime_account_reaches_a_second_instance(config).await;
    })
    .await;
}

#[tokio::test]
async fn a_runtime_account_reaches_a_second_instance_on_mongodb() {
    let (_mock, mut config) = setup().await;
    in_fresh_mongo_db("admin_follow_mongo", |url| async move {
        config.database_url = url;
        a_runtime_account_reaches_a_second_instance(config).await;
    })
    .await;
}

#[tokio::test]
async fn a_rotated_aes_key_still_opens_pushes_sealed_with_the_old_one() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let body = shop_body(json!({ "encoding_aes_key": KEY_OLD }));
    assert_eq!(
        admin(&app, reqwest::Method::PUT, "accounts/shop", Some(body))
            .await
            .0,
        201
    );
    assert_eq!(sealed_push(&app, "shop", KEY_OLD).await, 200);
    // Rotate: only the new key is given; the old one becomes the previous one.
    let (status, view) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/shop",
        Some(json!({ "appid": SHOP_APPID, "encoding_aes_key": KEY_NEW })),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["has_encoding_aes_key_previous"], true);
    assert_eq!(view["has_token"], true, "the omitted token is kept");
    assert_eq!(sealed_push(&app, "shop", KEY_NEW).await, 200);
    assert_eq!(
        sealed_push(&app, "shop", KEY_OLD).await,
        200,
        "the old key still opens"
    );
    // A plaintext push is refused: the account has a key.
    assert_eq!(plain_push(&app, "shop", SHOP_TOKEN).await.0, 400);
    app.stop().await;
}

/// A replace races requests: every answer is consistent with one version of the account
/// (version 1 signs pages of a.example for appid 1; version 2 pages of b.example for appid 2).
#[tokio::test]
async fn a_request_racing_a_replace_never_mixes_old_and_new_settings() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let v1 = json!({"appid": APPID, "secret": SECRET, "js_domains": ["a.example"]});
    let v2 = json!({"appid": SHOP_APPID, "secret": SHOP_SECRET, "js_domains": ["b.example"]});
    assert_eq!(
        admin(
            &app,
            reqwest::Method::PUT,
            "accounts/flip",
            Some(v1.clone())
        )
        .await
        .0,
        201
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for (host, appid) in [("a.example", APPID), ("b.example", SHOP_APPID)] {
        let (http, base, stop) = (app.http.clone(), app.base.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut signed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = format!(
                    "{base}/jssdk/flip/config?url={}",
                    urlencode(&format!("https://{host}/p"))
                );
                let resp = http.get(url).send().await.unwrap();
                if resp.status().as_u16() == 200 {
                    let v: Value = resp.json().await.unwrap();
                    assert_eq!(
                        v["appId"], appid,
                        "a page of {host} was signed for the other version"
                    );
                    signed += 1;
                }
            }
            signed
        }));
    }
    for i in 0..10 {
        let body = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        assert_eq!(
            admin(&app, reqwest::Method::PUT, "accounts/flip", Some(body))
                .await
                .0,
            200
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "both versions were served");
    }
    app.stop().await;
}
