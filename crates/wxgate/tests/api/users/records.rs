//! Follower and login records: events applied newest-wins, repeated or older events changing
//! nothing, login profiles and unionids kept alongside follow state, unknown users absent.

use std::collections::HashSet;

use wxgate::users::LoginProfile;

use super::support::*;

pub(super) async fn follow_then_unfollow(fx: &Fixture) {
    let db = fx.db().await;
    let before = now();
    assert!(db
        .record_follow("o1", true, Some("ADD_SCENE_QR_CODE"), 1_700_000_100)
        .await
        .unwrap());
    let user = get(&db, "o1").await;
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene.as_deref(), Some("ADD_SCENE_QR_CODE"));
    assert_eq!(user.subscribed_at, Some(1_700_000_100));
    assert_eq!(user.unsubscribed_at, None);
    assert_eq!(user.last_login_at, None);
    assert_eq!(user.nickname, None);
    assert!(user.created_at >= before && user.created_at <= now() + 1);
    assert_eq!(user.updated_at, user.created_at);

    assert!(db
        .record_follow("o1", false, Some("ignored"), 1_700_000_200)
        .await
        .unwrap());
    let user = get(&db, "o1").await;
    assert_eq!(user.subscribed, Some(false));
    assert_eq!(user.subscribe_scene.as_deref(), Some("ADD_SCENE_QR_CODE"));
    assert_eq!(user.subscribed_at, Some(1_700_000_100));
    assert_eq!(user.unsubscribed_at, Some(1_700_000_200));

    // Re-subscribing replaces the scene (even with an unknown one) and keeps the last
    // unsubscribe time as history.
    assert!(db
        .record_follow("o1", true, None, 1_700_000_300)
        .await
        .unwrap());
    let user = get(&db, "o1").await;
    assert_eq!(user.subscribed, Some(true));
    assert_eq!(user.subscribe_scene, None);
    assert_eq!(user.subscribed_at, Some(1_700_000_300));
    assert_eq!(user.unsubscribed_at, Some(1_700_000_200));

    let json = serde_json::to_value(&user).unwrap();
    let keys: HashSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
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
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(json["subscribed"], serde_json::json!(true));
    assert_eq!(json["subscribe_scene"], serde_json::Value::Null);
    assert_eq!(json["subscribed_at"], serde_json::json!(1_700_000_300));
}

pub(super) async fn older_event_changes_nothing(fx: &Fixture) {
    let db = fx.db().await;
    assert!(db.record_follow("o2", false, None, 200).await.unwrap());
    let before = get(&db, "o2").await;
    // A subscribe stamped earlier than the recorded unsubscribe arrives late.
    assert!(!db
        .record_follow("o2", true, Some("ADD_SCENE_SEARCH"), 150)
        .await
        .unwrap());
    assert!(!db.record_follow("o2", false, None, 199).await.unwrap());
    assert_eq!(get(&db, "o2").await, before);
    assert_eq!(before.subscribed, Some(false));
    assert_eq!(before.subscribed_at, None);
    assert_eq!(before.unsubscribed_at, Some(200));

    // A newer one still applies.
    assert!(db
        .record_follow("o2", true, Some("ADD_SCENE_SEARCH"), 201)
        .await
        .unwrap());
    assert_eq!(get(&db, "o2").await.subscribed, Some(true));
}

pub(super) async fn same_event_twice_is_a_noop(fx: &Fixture) {
    let db = fx.db().await;
    assert!(db
        .record_follow("o3", true, Some("qrscene_42"), 500)
        .await
        .unwrap());
    let first = get(&db, "o3").await;
    assert!(!db
        .record_follow("o3", true, Some("qrscene_42"), 500)
        .await
        .unwrap());
    // Equal times are "not newer": even a different event of the same second is ignored.
    assert!(!db.record_follow("o3", false, None, 500).await.unwrap());
    assert_eq!(get(&db, "o3").await, first);
}

pub(super) async fn subscribed_is_null_until_an_event(fx: &Fixture) {
    let db = fx.db().await;
    db.record_login(&login("o4"), 1000).await.unwrap();
    let user = get(&db, "o4").await;
    assert_eq!(user.subscribed, None);
    assert_eq!(user.subscribe_scene, None);
    assert_eq!(user.subscribed_at, None);
    assert_eq!(user.unsubscribed_at, None);
    assert_eq!(user.last_login_at, Some(1000));
    let json = serde_json::to_value(&user).unwrap();
    assert_eq!(json["subscribed"], serde_json::Value::Null);

    assert!(db.record_follow("o4", false, None, 900).await.unwrap());
    let user = get(&db, "o4").await;
    assert_eq!(user.subscribed, Some(false));
    assert_eq!(user.unsubscribed_at, Some(900));
}

pub(super) async fn login_keeps_earlier_profile(fx: &Fixture) {
    let db = fx.db().await;
    let full = LoginProfile {
        openid: "o5".to_owned(),
        unionid: None,
        nickname: Some("小明".to_owned()),
        headimgurl: Some("https://thirdwx.qlogo.cn/mmopen/x/132".to_owned()),
    };
    db.record_login(&full, 100).await.unwrap();
    let first = get(&db, "o5").await;
    assert_eq!(first.nickname.as_deref(), Some("小明"));
    assert_eq!(first.last_login_at, Some(100));

    // A later snsapi_base login knows only the openid.
    db.record_login(&login("o5"), 200).await.unwrap();
    let user = get(&db, "o5").await;
    assert_eq!(user.nickname.as_deref(), Some("小明"));
    assert_eq!(
        user.headimgurl.as_deref(),
        Some("https://thirdwx.qlogo.cn/mmopen/x/132")
    );
    assert_eq!(user.unionid, None);
    assert_eq!(user.last_login_at, Some(200));
    assert_eq!(user.created_at, first.created_at);
    assert!(user.updated_at >= first.updated_at);

    // A new nickname replaces the old one; a login reported late does not move time back.
    let renamed = LoginProfile {
        nickname: Some("Xiao Ming".to_owned()),
        ..login("o5")
    };
    db.record_login(&renamed, 150).await.unwrap();
    let user = get(&db, "o5").await;
    assert_eq!(user.nickname.as_deref(), Some("Xiao Ming"));
    assert_eq!(user.last_login_at, Some(200));
}

pub(super) async fn unionid_set_later(fx: &Fixture) {
    let db = fx.db().await;
    db.record_login(&login("o6"), 100).await.unwrap();
    assert_eq!(get(&db, "o6").await.unionid, None);
    let with_unionid = LoginProfile {
        unionid: Some("u-o6".to_owned()),
        ..login("o6")
    };
    db.record_login(&with_unionid, 300).await.unwrap();
    assert_eq!(get(&db, "o6").await.unionid.as_deref(), Some("u-o6"));
    db.record_login(&login("o6"), 400).await.unwrap();
    let user = get(&db, "o6").await;
    assert_eq!(user.unionid.as_deref(), Some("u-o6"));
    assert_eq!(user.last_login_at, Some(400));
}

pub(super) async fn follow_and_login_keep_each_other(fx: &Fixture) {
    let db = fx.db().await;
    assert!(db
        .record_follow("o7", true, Some("ADD_SCENE_QR_CODE"), 100)
        .await
        .unwrap());
    let profile = LoginProfile {
        unionid: Some("u7".to_owned()),
        nickname: Some("n7".to_owned()),
        headimgurl: Some("h7".to_owned()),
        ..login("o7")
    };
    db.record_login(&profile, 200).await.unwrap();
    assert!(db.record_follow("o7", false, None, 300).await.unwrap());
    let user = get(&db, "o7").await;
    assert_eq!(
        (
            user.unionid.as_deref(),
            user.nickname.as_deref(),
            user.headimgurl.as_deref()
        ),
        (Some("u7"), Some("n7"), Some("h7"))
    );
    assert_eq!(user.last_login_at, Some(200));
    assert_eq!(user.subscribed, Some(false));
    assert_eq!(user.subscribed_at, Some(100));
    assert_eq!(user.unsubscribed_at, Some(300));
    assert_eq!(user.subscribe_scene.as_deref(), Some("ADD_SCENE_QR_CODE"));
}

pub(super) async fn get_unknown_is_none(fx: &Fixture) {
    let db = fx.db().await;
    assert_eq!(db.get("nobody").await.unwrap(), None);
    db.record_login(&login("somebody"), 1).await.unwrap();
    assert_eq!(db.get("nobody").await.unwrap(), None);
    assert_eq!(db.get("").await.unwrap(), None);
}
