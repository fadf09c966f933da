//! Who may call what: scoped API keys reaching their accounts and scopes only and dying on
//! every instance when revoked, and the admin API checking its key first and refusing what it
//! must.

use serde_json::{json, Value};

use crate::helpers::*;

use super::support::*;

#[tokio::test]
async fn scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere_on_sqlite() {
    let (_mock, config) = setup().await;
    scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere(config).await;
}

#[tokio::test]
async fn scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere_on_postgresql() {
    let (_mock, mut config) = setup().await;
    in_fresh_pg_schema("admin_keys", |url| async move {
        config.database_url = url;
        scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere(config).await;
    })
    .await;
}

#[tokio::test]
async fn scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere_on_mongodb() {
    let (_mock, mut config) = setup().await;
    in_fresh_mongo_db("admin_keys_mongo", |url| async move {
        config.database_url = url;
        scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere(config).await;
    })
    .await;
}

async fn scoped_keys_reach_their_accounts_and_scopes_only_and_die_everywhere(
    config: GatewayConfig,
) {
    let first = spawn_app(&config).await;
    let second = spawn_app(&config).await;
    assert_eq!(
        admin(
            &first,
            reqwest::Method::PUT,
            "accounts/shop",
            Some(shop_body(json!({})))
        )
        .await
        .0,
        201
    );
    let (status, created) = admin(
        &first,
        reqwest::Method::POST,
        "keys",
        Some(json!({"name": "billing", "accounts": ["main"], "scopes": ["credentials", "proxy"]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        status_of(&first, first.api("main/access_token"), &key).await,
        200
    );
    assert_eq!(
        status_of(&first, first.api("main/tickets/jsapi"), &key).await,
        200
    );
    assert_eq!(
        status_of(&first, first.api("main/wechat/cgi-bin/getcallbackip"), &key).await,
        200
    );
    // Another account, another scope: 403 forbidden.
    let forbidden = first
        .http
        .get(first.api("shop/access_token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status().as_u16(), 403);
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        status_of(&first, first.api("shop/wechat/cgi-bin/getcallbackip"), &key).await,
        403
    );
    assert_eq!(
        status_of(&first, first.api("nosuch/access_token"), &key).await,
        403
    );
    assert_eq!(status_of(&first, first.api("main/status"), &key).await, 403);
    assert_eq!(status_of(&first, first.api("main/users"), &key).await, 403);
    // The config file's key still opens everything.
    assert_eq!(
        status_of(&first, first.api("shop/status"), API_KEY).await,
        200
    );
    // Listed without the key; the database holds only its digest.
    let (_, listed) = admin(&first, reqwest::Method::GET, "keys", None).await;
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    assert!(listed["keys"][0].get("key").is_none());
    assert!(!listed.to_string().contains(&key));
    // The second instance learns of it, then of its deletion, within 2 s.
    eventually(FOLLOW_WITHIN, || async {
        status_of(&second, second.api("main/access_token"), &key).await == 200
    })
    .await;
    assert_eq!(
        admin(&first, reqwest::Method::DELETE, &format!("keys/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        status_of(&first, first.api("main/access_token"), &key).await,
        401
    );
    eventually(FOLLOW_WITHIN, || async {
        status_of(&second, second.api("main/access_token"), &key).await == 401
    })
    .await;
    assert_eq!(
        admin(&first, reqwest::Method::DELETE, &format!("keys/{id}"), None)
            .await
            .0,
        404
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_admin_api_checks_its_key_first_and_refuses_what_it_must() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let url = format!("{}/admin/api/v1/accounts", app.base);
    assert_eq!(
        app.http.get(&url).send().await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/main",
        Some(shop_body(json!({}))),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("read_only_account"))
    );
    let (status, body) = admin(&app, reqwest::Method::DELETE, "accounts/main", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("read_only_account"))
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/shop",
        Some(json!({"appid": "nope", "secret": "s"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_account"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("appid"),
        "{body}"
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/shop",
        Some(json!({"appid": SHOP_APPID})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret"),
        "{body}"
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/Bad%20Name",
        Some(shop_body(json!({}))),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_account"))
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "keys",
        Some(json!({"name": "x", "accounts": ["*"], "scopes": ["teleport"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_key"))
    );
    let (status, listed) = admin(&app, reqwest::Method::GET, "accounts", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["accounts"][0]["name"], "main");
    assert_eq!(listed["accounts"][0]["source"], "config");
    assert!(!listed.to_string().contains(SECRET));
    app.stop().await;

    // Without admin keys the admin API is off; without a master key nothing is stored.
    let mut off = config.clone();
    off.tail = String::new();
    let app = spawn_app(&off).await;
    let resp = app
        .http
        .get(format!("{}/admin/api/v1/accounts", app.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_disabled");
    app.stop().await;
    let mut no_master = config.clone();
    no_master.tail = format!("[admin]\nkeys = [\"{ADMIN_KEY}\"]\n");
    let app = spawn_app(&no_master).await;
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "accounts/shop",
        Some(shop_body(json!({}))),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("master_key_missing"))
    );
    app.stop().await;
}
