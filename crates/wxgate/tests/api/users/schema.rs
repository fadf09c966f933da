//! Migrations applied once and idempotently, even by concurrent connects, and the health
//! check's ping.

use wxgate::users::connect;

use super::support::*;

pub(super) async fn migrations_are_idempotent(fx: &Fixture) {
    let db = fx.db().await;
    db.record_login(&login("kept"), 5).await.unwrap();
    drop(db);
    assert_eq!(fx.migration_versions().await, fx.all_migrations());
    let db = fx.db().await;
    assert_eq!(get(&db, "kept").await.last_login_at, Some(5));
    let again = fx.db().await;
    assert_eq!(get(&again, "kept").await.last_login_at, Some(5));
    assert_eq!(fx.migration_versions().await, fx.all_migrations());
}

pub(super) async fn concurrent_connects_migrate_once(fx: &Fixture) {
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = fx.url.clone();
            tokio::spawn(async move { connect(&url).await })
        })
        .collect();
    let mut dbs = Vec::new();
    for task in tasks {
        dbs.push(task.await.unwrap().unwrap());
    }
    for (i, db) in dbs.iter().enumerate() {
        db.record_login(&login(&format!("c{i}")), 1).await.unwrap();
    }
    assert_eq!(dbs[0].list(None, 100).await.unwrap().len(), dbs.len());
    assert_eq!(fx.migration_versions().await, fx.all_migrations());
}

pub(super) async fn ping_answers(fx: &Fixture) {
    let db = fx.db().await;
    db.ping().await.unwrap();
}
