//! User records per account: one account's users endpoints never show another's, and rows
//! written before users belonged to accounts are adopted by the only account.

use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::*;

use super::support::*;

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
        "../../../../wxgate-core/migrations/sqlite/0001_users.sql"
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
