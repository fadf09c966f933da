//! Follower records kept from subscribe and unsubscribe events (SQLite, PostgreSQL, MongoDB),
//! and a 503 while the user database fails so that WeChat's retry is handled afresh.

use wxgate_proto::Reply;

use crate::helpers::{in_fresh_mongo_db, in_fresh_pg_schema, spawn_app, start_mock, GatewayConfig};

use super::support::*;

async fn follower_records_follow_subscribe_and_unsubscribe_events(database_url: String) {
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.database_url = database_url.clone();
    config.tail = "[[accounts.rules]]\nevent = \"subscribe\"\nreply = { type = \"text\", content = \"hi\" }\n".into();
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);
    let t = now() - 50;
    let (s, _, body) = wx
        .send(&wx.plain(&event_xml("oLiam", "subscribe", Some("qrscene_42"), t)))
        .await;
    assert_eq!(s, 200);
    assert_eq!(plain_reply(&body).reply, Reply::text("hi"));
    let db = wxgate::users::connect(&database_url)
        .await
        .unwrap()
        .for_account("main");
    let user = db
        .get("oLiam")
        .await
        .unwrap()
        .expect("recorded before the answer");
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene.as_deref(), Some("qrscene_42"));
    assert_eq!(user.subscribed_at, Some(t));

    wx.send(&wx.plain(&event_xml("oLiam", "unsubscribe", None, t + 10)))
        .await;
    let user = db.get("oLiam").await.unwrap().unwrap();
    assert_eq!(user.subscribed, Some(false));
    assert_eq!(user.unsubscribed_at, Some(t + 10));
    // An older subscribe arriving late changes nothing.
    wx.send(&wx.plain(&event_xml("oLiam", "subscribe", None, t + 5)))
        .await;
    assert_eq!(
        db.get("oLiam").await.unwrap().unwrap().subscribed,
        Some(false)
    );
    // A plain follow has no scene.
    wx.send(&wx.plain(&event_xml("oMia", "subscribe", None, t)))
        .await;
    let mia = db.get("oMia").await.unwrap().unwrap();
    assert_eq!((mia.subscribed, mia.subscribe_scene), (Some(true), None));
    app.stop().await;
}

/// When the follower record cannot be written, the push is answered 503 (so WeChat retries) and
/// nothing is kept for it: once the database works again, the retry is handled afresh — the
/// record is written and the rule reply sent.
#[tokio::test]
async fn a_follow_event_gets_503_while_the_user_database_fails_and_its_retry_is_handled_afresh() {
    use sqlx::Connection as _;

    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("users.db").display());
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.database_url = database_url.clone();
    config.tail = "[[accounts.rules]]\nevent = \"subscribe\"\nreply = { type = \"text\", content = \"hi\" }\n".into();
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);

    // Break the user database under the running gateway.
    let mut admin = sqlx::SqliteConnection::connect(&database_url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE wxgate_users RENAME TO wxgate_users_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let push = wx.plain(&event_xml("oNoah", "subscribe", Some("qrscene_7"), now()));
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "unavailable", "{body}");

    // Repaired: WeChat's retry (the very same request) is handled as a first delivery.
    sqlx::query("ALTER TABLE wxgate_users_away RENAME TO wxgate_users")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("hi"));
    let db = wxgate::users::connect(&database_url)
        .await
        .unwrap()
        .for_account("main");
    let user = db
        .get("oNoah")
        .await
        .unwrap()
        .expect("recorded by the retry");
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene.as_deref(), Some("qrscene_7"));
    app.stop().await;
}

#[tokio::test]
async fn follower_records_are_kept_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    follower_records_follow_subscribe_and_unsubscribe_events(format!(
        "sqlite://{}",
        dir.path().join("users.db").display()
    ))
    .await;
}

#[tokio::test]
async fn follower_records_are_kept_in_postgresql() {
    in_fresh_pg_schema(
        "push_follower_records",
        follower_records_follow_subscribe_and_unsubscribe_events,
    )
    .await;
}

#[tokio::test]
async fn follower_records_are_kept_in_mongodb() {
    in_fresh_mongo_db(
        "push_follower_records_mongo",
        follower_records_follow_subscribe_and_unsubscribe_events,
    )
    .await;
}
