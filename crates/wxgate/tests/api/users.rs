//! Conformance suite of the user-records database (`wxgate::users`), run against real databases:
//! every case runs on a fresh SQLite file, and on PostgreSQL in a fresh schema when
//! `WXGATE_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`). Without
//! the variable the PostgreSQL cases say why they skip and pass; with it set but the server
//! unreachable they fail. The same cases run on MongoDB, in a fresh database, when
//! `WXGATE_TEST_MONGODB_URL` is set (e.g. `mongodb://127.0.0.1:27018/wxgate_test`, a
//! MongoDB-wire server; `.ci/run` starts one), skipped or failing the same way.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt as _, StreamExt as _};
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use sqlx::Connection as _;
use wxgate::users::{connect, LoginProfile, UserDb, UserDbError, UserRecord, MAX_LIST_LIMIT};

/// Every embedded migration, as recorded once applied (SQL).
const MIGRATIONS: &[i64] = &[1, 2, 3, 4, 5];
/// Every schema version recorded on MongoDB.
const MONGO_MIGRATIONS: &[i64] = &[1];
const POSTGRES_VAR: &str = "WXGATE_TEST_POSTGRES_URL";

/// One isolated database: a SQLite file in a temporary directory, or a PostgreSQL schema that
/// is dropped at the end.
struct Fixture {
    url: String,
    kind: Kind,
}

enum Kind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, schema: String },
    Mongo { name: String },
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wxgate.db").display());
        Fixture {
            url,
            kind: Kind::Sqlite { _dir: dir },
        }
    }

    /// `None` (after saying so) when the variable is unset; panics when the server cannot be
    /// reached, so a configured but broken PostgreSQL fails the suite.
    async fn postgres() -> Option<Fixture> {
        let Ok(admin_url) = std::env::var(POSTGRES_VAR) else {
            eprintln!("skipping the PostgreSQL case: {POSTGRES_VAR} is not set");
            return None;
        };
        let schema = format!("wxgate_test_{:016x}", rand::thread_rng().gen::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR} is set but unreachable: {e}"));
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
        Some(Fixture {
            url,
            kind: Kind::Postgres { admin_url, schema },
        })
    }

    /// `None` (after saying so) without `WXGATE_TEST_MONGODB_URL`; panics when the server
    /// cannot be reached.
    async fn mongo() -> Option<Fixture> {
        let (url, name) = crate::helpers::fresh_mongo_db("the MongoDB case").await?;
        Some(Fixture {
            url,
            kind: Kind::Mongo { name },
        })
    }

    async fn cleanup(self) {
        if let Kind::Mongo { name } = &self.kind {
            crate::helpers::drop_mongo_db(&self.url, name).await;
        }
        if let Kind::Postgres { admin_url, schema } = &self.kind {
            let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
    }

    async fn db(&self) -> Arc<dyn UserDb> {
        connect(&self.url).await.unwrap()
    }

    /// Every version the backend records once migrated.
    fn all_migrations(&self) -> &'static [i64] {
        match self.kind {
            Kind::Mongo { .. } => MONGO_MIGRATIONS,
            _ => MIGRATIONS,
        }
    }

    /// The versions recorded in `wxgate_schema_migrations`, read behind the module's back.
    async fn migration_versions(&self) -> Vec<i64> {
        let sql = "SELECT version FROM wxgate_schema_migrations ORDER BY version";
        match &self.kind {
            Kind::Mongo { name } => {
                use futures::TryStreamExt as _;
                let docs: Vec<mongodb::bson::Document> = crate::helpers::mongo_client(&self.url)
                    .await
                    .database(name)
                    .collection("wxgate_schema_migrations")
                    .find(mongodb::bson::doc! {})
                    .sort(mongodb::bson::doc! { "_id": 1 })
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                docs.iter().map(|d| d.get_i64("_id").unwrap()).collect()
            }
            Kind::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Kind::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }
}

/// Runs `$case(&fixture)` and drops the fixture's database even when the case panics, then
/// re-raises the panic.
macro_rules! run_case {
    ($fixture:expr, $case:expr) => {{
        let fixture = $fixture;
        let outcome = AssertUnwindSafe($case(&fixture)).catch_unwind().await;
        fixture.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }};
}

/// Generates, for each case, one test on SQLite, one on PostgreSQL and one on MongoDB.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    run_case!(Fixture::sqlite(), $case);
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    let Some(fixture) = Fixture::postgres().await else { return };
                    run_case!(fixture, $case);
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    let Some(fixture) = Fixture::mongo().await else { return };
                    run_case!(fixture, $case);
                }
            )*
        }
    };
}

conformance!(
    follow_then_unfollow,
    older_event_changes_nothing,
    same_event_twice_is_a_noop,
    subscribed_is_null_until_an_event,
    login_keeps_earlier_profile,
    unionid_set_later,
    follow_and_login_keep_each_other,
    get_unknown_is_none,
    list_pages_in_byte_order,
    list_limit_is_clamped,
    concurrent_follow_ends_with_newest_event,
    concurrent_logins_keep_latest_time,
    migrations_are_idempotent,
    concurrent_connects_migrate_once,
    ping_answers,
    one_unionid_across_accounts,
);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn login(openid: &str) -> LoginProfile {
    LoginProfile {
        openid: openid.to_owned(),
        ..LoginProfile::default()
    }
}

async fn get(db: &Arc<dyn UserDb>, openid: &str) -> UserRecord {
    db.get(openid).await.unwrap().expect("user should exist")
}

async fn follow_then_unfollow(fx: &Fixture) {
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

async fn older_event_changes_nothing(fx: &Fixture) {
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

async fn same_event_twice_is_a_noop(fx: &Fixture) {
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

async fn subscribed_is_null_until_an_event(fx: &Fixture) {
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

async fn login_keeps_earlier_profile(fx: &Fixture) {
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

async fn unionid_set_later(fx: &Fixture) {
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

async fn follow_and_login_keep_each_other(fx: &Fixture) {
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

async fn get_unknown_is_none(fx: &Fixture) {
    let db = fx.db().await;
    assert_eq!(db.get("nobody").await.unwrap(), None);
    db.record_login(&login("somebody"), 1).await.unwrap();
    assert_eq!(db.get("nobody").await.unwrap(), None);
    assert_eq!(db.get("").await.unwrap(), None);
}

async fn list_pages_in_byte_order(fx: &Fixture) {
    let db = fx.db().await;
    assert!(db.list(None, 10).await.unwrap().is_empty());

    // Mixed case, digits, '-' and '_' (whose byte order differs from most locales' order),
    // plus one non-ASCII id, in random order.
    let mut rng = rand::thread_rng();
    let alphabet: Vec<char> = "AZaz09_-bB".chars().collect();
    let mut openids: HashSet<String> = ["oé", "o_", "o-", "oA", "oa", "oZ", "oz", "o0"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    while openids.len() < 25 {
        let len = rng.gen_range(2..8);
        let tail: String = (0..len)
            .map(|_| *alphabet.choose(&mut rng).unwrap())
            .collect();
        openids.insert(format!("o{tail}"));
    }
    let mut shuffled: Vec<String> = openids.into_iter().collect();
    shuffled.shuffle(&mut rng);
    for (i, openid) in shuffled.iter().enumerate() {
        if i % 2 == 0 {
            db.record_login(&login(openid), 10).await.unwrap();
        } else {
            assert!(db.record_follow(openid, true, None, 10).await.unwrap());
        }
    }
    let mut expected = shuffled.clone();
    expected.sort();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = db.list(after.as_deref(), 10).await.unwrap();
        pages.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.openid.clone());
        seen.extend(page.into_iter().map(|u| u.openid));
    }
    assert_eq!(pages, vec![10, 10, 5, 0]);
    assert_eq!(seen, expected, "all users, once each, in byte order");

    // `after` need not be an existing openid.
    let after_o = db.list(Some("o0"), 1000).await.unwrap();
    let expected_after: Vec<&String> = expected.iter().filter(|o| o.as_str() > "o0").collect();
    assert_eq!(
        after_o.iter().map(|u| &u.openid).collect::<Vec<_>>(),
        expected_after
    );
}

async fn list_limit_is_clamped(fx: &Fixture) {
    let db = fx.db().await;
    let total = usize::try_from(MAX_LIST_LIMIT).unwrap() + 5;
    futures::stream::iter(0..total)
        .map(|i| {
            let db = db.clone();
            async move { db.record_login(&login(&format!("o{i:05}")), 1).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, UserDbError>>()
        .unwrap();
    let zero = db.list(None, 0).await.unwrap();
    assert_eq!(zero.len(), 1);
    assert_eq!(zero[0].openid, "o00000");
    assert_eq!(db.list(None, u32::MAX).await.unwrap().len(), 1000);
    assert_eq!(db.list(None, 1001).await.unwrap().len(), 1000);
    assert_eq!(db.list(Some("o00999"), u32::MAX).await.unwrap().len(), 5);
}

async fn concurrent_follow_ends_with_newest_event(fx: &Fixture) {
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

async fn concurrent_logins_keep_latest_time(fx: &Fixture) {
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

/// `find_by_unionid`: every account's record of the unionid, by account, whatever handle
/// asks; other unionids and legacy rows left out.
async fn one_unionid_across_accounts(fx: &Fixture) {
    let db = fx.db().await;
    let person = |openid: &str, unionid: &str| LoginProfile {
        unionid: Some(unionid.to_owned()),
        ..login(openid)
    };
    db.record_login(&person("legacy-o", "u-1"), 1)
        .await
        .unwrap();
    let shop = db.for_account("shop");
    shop.record_login(&person("o-shop", "u-1"), 10)
        .await
        .unwrap();
    let main = db.for_account("main");
    main.record_follow("o-main", true, None, 20).await.unwrap();
    main.record_login(&person("o-main", "u-1"), 21)
        .await
        .unwrap();
    main.record_login(&person("o-other", "u-2"), 22)
        .await
        .unwrap();
    let found = shop.find_by_unionid("u-1").await.unwrap();
    let accounts: Vec<(&str, &str)> = found
        .iter()
        .map(|r| (r.account.as_str(), r.user.openid.as_str()))
        .collect();
    assert_eq!(accounts, [("main", "o-main"), ("shop", "o-shop")]);
    assert_eq!(found[0].user.subscribed, Some(true));
    assert_eq!(found[1].user.last_login_at, Some(10));
    assert_eq!(db.find_by_unionid("u-1").await.unwrap(), found);
    assert!(db.find_by_unionid("u-3").await.unwrap().is_empty());
}

async fn migrations_are_idempotent(fx: &Fixture) {
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

async fn concurrent_connects_migrate_once(fx: &Fixture) {
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

async fn ping_answers(fx: &Fixture) {
    let db = fx.db().await;
    db.ping().await.unwrap();
}

// Backend-specific and backend-free cases.

#[tokio::test]
async fn sqlite_file_is_shared_with_the_kv_store() {
    let fx = Fixture::sqlite();
    let store = wxgate::store::SqliteStore::open(&fx.url).await.unwrap();
    let db = fx.db().await;
    use wxgate::store::Store as _;
    store.put("k", b"v", None).await.unwrap();
    db.record_login(&login("o"), 1).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(db.get("o").await.unwrap().is_some());
    // Reopening both in the other order works too.
    let db = fx.db().await;
    let store = wxgate::store::SqliteStore::open(&fx.url).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    db.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_url_forms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.db");
    let db = connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    db.ping().await.unwrap();
    assert!(path.exists());
    for bad in ["sqlite://", "sqlite::memory:", "sqlite://x.db?mode=ro"] {
        assert!(
            matches!(connect(bad).await, Err(UserDbError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unknown_scheme_is_rejected_without_secrets() {
    let Err(err) = connect("mysql://root:hunter2@db/wx").await else {
        panic!("mysql accepted")
    };
    assert!(matches!(err, UserDbError::InvalidUrl(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unreachable_mongodb_fails_without_the_password() {
    let Err(err) = connect("mongodb://wx:s3cr%3Dt-pass@127.0.0.1:1/wx").await else {
        panic!("connected to port 1")
    };
    assert!(matches!(err, UserDbError::Unavailable(_)), "{err}");
    let message = err.to_string();
    assert!(!message.contains("s3cr"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn a_mongodb_url_without_a_database_is_rejected() {
    for bad in [
        "mongodb://127.0.0.1:1",
        "mongodb://127.0.0.1:1/",
        "mongodb://",
    ] {
        assert!(
            matches!(connect(bad).await, Err(UserDbError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_without_the_password() {
    let started = Instant::now();
    let Err(err) = connect("postgres://wx:s3cr%3Dt-pass@127.0.0.1:1/wx").await else {
        panic!("connected to port 1")
    };
    assert!(matches!(err, UserDbError::Unavailable(_)), "{err}");
    let message = err.to_string();
    assert!(!message.contains("s3cr"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn postgres_openid_orders_bytewise_whatever_the_database_collation() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    run_case!(fixture, openid_collation_case);
}

/// The suite's database may well have a "C" default collation already; check the column itself
/// so a locale-collated database also pages in byte order.
async fn openid_collation_case(fx: &Fixture) {
    let _db = fx.db().await;
    let mut conn = sqlx::PgConnection::connect(&fx.url).await.unwrap();
    let collation: Option<String> = sqlx::query_scalar(
        "SELECT collation_name::text FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'wxgate_users'
            AND column_name = 'openid'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(collation.as_deref(), Some("C"));
}

#[tokio::test]
async fn postgres_wrong_password_is_reported_without_it() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    run_case!(fixture, wrong_password_case);
}

async fn wrong_password_case(fx: &Fixture) {
    let mut parsed = url::Url::parse(&fx.url).unwrap();
    parsed.set_password(Some("wrong-pass-xyz")).unwrap();
    // With trust authentication any password is accepted, and then there is nothing to check
    // beyond "it works". Otherwise the error must not quote the password.
    match connect(parsed.as_str()).await {
        Ok(db) => db.ping().await.unwrap(),
        Err(err) => assert!(!err.to_string().contains("wrong-pass-xyz"), "{err}"),
    }
}

/// Managed PostgreSQL services require TLS: `sslmode=require` encrypts (rustls), and
/// `verify-full` checks the server's certificate and name, so a certificate for another host
/// is refused.
#[tokio::test]
async fn postgres_connects_over_tls_and_verifies_the_certificate_when_asked() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    run_case!(fixture, tls_case);
}

async fn tls_case(fx: &Fixture) {
    let Kind::Postgres { admin_url, .. } = &fx.kind else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    let ssl: (String,) = sqlx::query_as("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    if ssl.0 != "on" {
        eprintln!(
            "skipping the TLS case: the PostgreSQL server has ssl = {}",
            ssl.0
        );
        return;
    }
    let db = connect(&format!("{}&sslmode=require", fx.url))
        .await
        .unwrap_or_else(|e| panic!("sslmode=require must connect: {e}"));
    db.ping().await.unwrap();
    // The server's certificate (Debian's self-signed snakeoil one) is trusted by no default
    // root and names another host than 127.0.0.1: verify-full must refuse it.
    let refused = connect(&format!("{}&sslmode=verify-full", fx.url)).await;
    assert!(
        refused.is_err(),
        "verify-full accepted an unverifiable certificate"
    );
}
