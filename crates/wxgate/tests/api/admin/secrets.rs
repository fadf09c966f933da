//! Secrets at rest: sealed in the database file under the master key, refused (without being
//! shown) under another key, and re-sealed by a master-key rotation.

use secrecy::ExposeSecret as _;
use serde_json::json;
use wxgate::vault::MasterKey;

use crate::helpers::*;

use super::support::*;

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
