//! Accounts and keys managed at runtime (SPEC.md "Accounts managed at runtime", "API keys with
//! scopes"): the admin API, a second instance following within 2 s, AES-key rotation, scoped
//! keys, secrets sealed in the database file. On SQLite always, on PostgreSQL too when
//! `WXGATE_TEST_POSTGRES_URL` is set.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection as _;
use wxgate::vault::MasterKey;
use wxgate_proto::crypto::seal_reply;
use wxgate_proto::signature::signature;
use wxgate_proto::AesKey;

use crate::helpers::*;

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const SHOP_APPID: &str = "wx00000000000000a1";
const SHOP_SECRET: &str = "shop-secret-0123456789";
const SHOP_TOKEN: &str = "shoptoken42";
const KEY_OLD: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const KEY_NEW: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
/// SPEC.md: a change is in force on every instance within 2 s.
const FOLLOW_WITHIN: Duration = Duration::from_secs(2);

fn admin_tail(master_key: &str) -> String {
    format!("[admin]\nkeys = [\"{ADMIN_KEY}\"]\nmaster_key = \"{master_key}\"\n")
}

/// A mock that knows the shop account too, and a config with the admin API on.
async fn setup() -> (wxgate_mock::MockWechat, GatewayConfig) {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts.push(wxgate_mock::MockAccount {
            appid: SHOP_APPID.into(),
            secret: SHOP_SECRET.into(),
        })
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    config.tail = admin_tail(MasterKey::random().to_base64().expose_secret());
    (mock, config)
}

use secrecy::ExposeSecret as _;

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}/admin/api/v1/{path}", app.base))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn shop_body(extra: Value) -> Value {
    let mut body = json!({
        "appid": SHOP_APPID,
        "secret": SHOP_SECRET,
        "token": SHOP_TOKEN,
        "js_domains": ["h5.shop.example"],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Polls `check` until it holds or `within` passes; the elapsed time when it held.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not in force within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_of(app: &TestApp, url: String, key: &str) -> u16 {
    app.http
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A plaintext text push to `/wx/{account}` signed with `token`.
async fn plain_push(app: &TestApp, account: &str, token: &str) -> (u16, String) {
    send_plain_push_to(&app.base, account, token, "oUser", "hi").await
}

/// A safe-mode push sealed with `key`.
async fn sealed_push(app: &TestApp, account: &str, key: &str) -> u16 {
    let ts = wxgate::domain::unix_now();
    let nonce = rand::random::<u32>().to_string();
    let sig = signature(SHOP_TOKEN, &ts.to_string(), &nonce);
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
         <CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>\
         <MsgId>{}</MsgId></xml>",
        rand::random::<u32>()
    );
    let aes = AesKey::from_encoding_aes_key(key).unwrap();
    let sealed = seal_reply(
        &aes,
        SHOP_TOKEN,
        SHOP_APPID,
        &xml,
        Some(ts as u64),
        Some(&nonce),
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        sealed.encrypt
    );
    app.http
        .post(format!(
            "{}/wx/{account}?signature={sig}&timestamp={ts}&nonce={nonce}&openid=oUser&encrypt_type=aes&msg_signature={}",
            app.base, sealed.msg_signature
        ))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

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

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
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

/// No secret reaches the database file in plain text; another master key cannot start on it,
/// and says which account it could not open without showing a secret.
#[tokio::test]
async fn secrets_are_sealed_in_the_database_file() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let body = shop_body(json!({
        "encoding_aes_key": KEY_OLD,
        "webhook": {"url": "http://127.0.0.1:9/hook", "secret": "hook-secret-xyz"},
    }));
    assert_eq!(
        admin(&app, reqwest::Method::PUT, "accounts/shop", Some(body))
            .await
            .0,
        201
    );
    app.stop().await;
    let path = config
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(SHOP_APPID), "the row is in the file");
    for secret in [SHOP_SECRET, SHOP_TOKEN, KEY_OLD, "hook-secret-xyz"] {
        assert!(!text.contains(secret), "{secret} is in the database file");
    }

    let mut other = config.clone();
    other.tail = admin_tail(MasterKey::random().to_base64().expose_secret());
    let err = match wxgate::startup::Application::build(other.settings()).await {
        Ok(_) => panic!("a gateway must not start on secrets it cannot open"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("\"shop\""), "{err}");
    for secret in [SHOP_SECRET, SHOP_TOKEN, KEY_OLD] {
        assert!(!err.contains(secret));
    }
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

/// User records belong to one account: the users endpoints of one account never show another
/// account's users.
#[tokio::test]
async fn users_belong_to_one_account() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    assert_eq!(
        admin(
            &app,
            reqwest::Method::PUT,
            "accounts/shop",
            Some(shop_body(json!({})))
        )
        .await
        .0,
        201
    );
    let profile = wxgate::users::LoginProfile {
        openid: "oOnlyMain".into(),
        ..Default::default()
    };
    app.state
        .users
        .for_account("main")
        .record_login(&profile, 1_700_000_000)
        .await
        .unwrap();
    assert_eq!(app.get_json("main/users/oOnlyMain").await.0, 200);
    let (status, body) = app.get_json("shop/users/oOnlyMain").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
    let (_, page) = app.get_json("shop/users").await;
    assert_eq!(page["users"], json!([]));
    let (_, page) = app.get_json("main/users").await;
    assert_eq!(page["users"][0]["openid"], "oOnlyMain");
    app.stop().await;
}

/// A database written before users belonged to accounts keeps its rows readable: with one
/// account in the config file, that account takes them at start.
#[tokio::test]
async fn user_rows_from_before_accounts_are_adopted_by_the_only_account() {
    let (_mock, config) = setup().await;
    let path = config
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::raw_sql(include_str!(
        "../../../wxgate-core/migrations/sqlite/0001_users.sql"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE wxgate_schema_migrations (version INTEGER PRIMARY KEY NOT NULL,
            description TEXT NOT NULL, applied_at INTEGER NOT NULL);
         INSERT INTO wxgate_schema_migrations VALUES (1, 'users', 1);
         INSERT INTO wxgate_users (openid, nickname, created_at, updated_at)
            VALUES ('oOld', 'from v1', 1, 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let app = spawn_app(&config).await;
    let (status, user) = app.get_json("main/users/oOld").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["nickname"], "from v1");
    app.stop().await;
}

/// `wxgate accounts put --from FILE` / `list` / `delete` drive the admin API of a running
/// gateway.
#[tokio::test]
async fn the_accounts_command_drives_the_admin_api() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    std::fs::write(
        &file,
        format!("appid = \"{SHOP_APPID}\"\nsecret = \"{SHOP_SECRET}\"\njs_domains = [\"h5.shop.example\"]\n"),
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let base = app.base.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
                .arg("accounts")
                .args(["--url", &base])
                .env("WXGATE_ADMIN_KEY", ADMIN_KEY)
                .args(args)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(vec![
        "put".into(),
        "shop".into(),
        "--from".into(),
        file.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        200
    );
    let out = run(vec!["list".into()]).await;
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["accounts"][1]["name"], "shop");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SHOP_SECRET));
    let out = run(vec!["delete".into(), "main".into()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read_only_account"));
    let out = run(vec!["delete".into(), "shop".into()]).await;
    assert!(out.status.success());
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        404
    );
    app.stop().await;
}

/// Rotating `admin.master_key`: with the old key as `master_key_previous` the stored accounts
/// still open and are re-sealed with the new key, so the old key can then be dropped.
#[tokio::test]
async fn a_master_key_rotation_reseals_the_stored_secrets() {
    let (_mock, mut config) = setup().await;
    let old = MasterKey::random().to_base64();
    let new = MasterKey::random().to_base64();
    config.tail = admin_tail(old.expose_secret());
    let app = spawn_app(&config).await;
    assert_eq!(
        admin(
            &app,
            reqwest::Method::PUT,
            "accounts/shop",
            Some(shop_body(json!({})))
        )
        .await
        .0,
        201
    );
    app.stop().await;

    config.tail = format!(
        "{}master_key_previous = \"{}\"\n",
        admin_tail(new.expose_secret()),
        old.expose_secret()
    );
    let app = spawn_app(&config).await;
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        200
    );
    app.stop().await;

    // The previous key is no longer needed: the row was re-sealed with the new one.
    config.tail = admin_tail(new.expose_secret());
    let app = spawn_app(&config).await;
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        200
    );
    let (status, view) = admin(&app, reqwest::Method::GET, "accounts/shop", None).await;
    assert_eq!((status, view["has_token"].as_bool()), (200, Some(true)));
    app.stop().await;
}
