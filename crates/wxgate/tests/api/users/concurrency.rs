//! Concurrent writers (two handles, as two instances would be): events delivered at once in
//! random order end with the newest, and concurrent logins keep the latest time.

use rand::seq::SliceRandom as _;
use wxgate::users::LoginProfile;

use super::support::*;

pub(super) async fn concurrent_follow_ends_with_newest_event(fx: &Fixture) {
    // Two independent connections ("two instances"), 40 events per openid, delivered at once in
    // random order. Event i has time 1000 + i and is a subscribe when i is odd: the newest (39)
    // is a subscribe with scene "scene39".
    let instances = [fx.db().await, fx.db().await];
    for openid in ["race-a", "race-b", "race-c"] {
        let mut events: Vec<i64> = (0..40).collect();
        events.shuffle(&mut rand::thread_rng());
        let tasks: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(n, i)| {
                let db = instances[n % 2].clone();
                tokio::spawn(async move {
                    let scene = format!("scene{i}");
                    db.record_follow(openid, i % 2 == 1, Some(&scene), 1000 + i)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut applied = 0;
        for task in tasks {
            applied += usize::from(task.await.unwrap());
        }
        assert!(applied >= 1);
        let user = get(&instances[0], openid).await;
        assert_eq!(user.subscribed, Some(true), "{openid}");
        assert_eq!(user.subscribed_at, Some(1039), "{openid}");
        assert_eq!(user.subscribe_scene.as_deref(), Some("scene39"), "{openid}");
        // Whatever order they came in, every event is now older or equal: all are no-ops.
        for i in 0..40 {
            assert!(!instances[1]
                .record_follow(openid, i % 2 == 1, None, 1000 + i)
                .await
                .unwrap());
        }
        assert_eq!(get(&instances[1], openid).await, user);
    }
}

pub(super) async fn concurrent_logins_keep_latest_time(fx: &Fixture) {
    let instances = [fx.db().await, fx.db().await];
    let tasks: Vec<_> = (0..30i64)
        .map(|i| {
            let db = instances[usize::try_from(i % 2).unwrap()].clone();
            tokio::spawn(async move {
                let profile = LoginProfile {
                    nickname: (i == 7).then(|| "seven".to_owned()),
                    ..login("same")
                };
                db.record_login(&profile, 100 + i).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let user = get(&instances[0], "same").await;
    assert_eq!(user.last_login_at, Some(129));
    assert_eq!(user.nickname.as_deref(), Some("seven"));
    assert_eq!(instances[0].list(None, 10).await.unwrap().len(), 1);
}
