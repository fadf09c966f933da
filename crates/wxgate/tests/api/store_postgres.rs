//! The PostgreSQL [`Store`] against a real server (`WXGATE_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`): the same conformance suite and cross-handle races
//! as every backend, plus what only this one has — the table created by instances starting at
//! once, the key prefix, expiry by the database's clock, the background sweep and its end with
//! the store, notices across handles and after a lost connection. Each test works in a fresh schema (dropped afterwards), so tests running side by
//! side never see each other's rows or sweepers. Without the variable the tests say so and pass;
//! with it set but the server unreachable they fail. The tests of bad and unreachable URLs need
//! no server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::Connection as _;
use wxgate::store::{self, Notice, PostgresStore, PostgresStoreOptions, Store, StoreError};

use crate::helpers::in_fresh_pg_schema;
use crate::store::{conformance, ms, random_hex, two_handles};
use crate::store_notices::{next_message, notices_and_get_many};

async fn pg_store(url: &str, prefix: &str) -> Arc<dyn Store> {
    pg_store_with(url, prefix, PostgresStoreOptions::default()).await
}

async fn pg_store_with(url: &str, prefix: &str, options: PostgresStoreOptions) -> Arc<dyn Store> {
    match PostgresStore::connect_with(url, prefix, options).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("WXGATE_TEST_POSTGRES_URL is set but PostgreSQL is not usable: {e}"),
    }
}

/// A plain connection to look at the table behind the store's back.
async fn inspect(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap()
}

async fn rows(conn: &mut sqlx::PgConnection, like: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wxgate_store WHERE key LIKE $1")
        .bind(like)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Connections the server has open for `application_name`.
async fn connections(conn: &mut sqlx::PgConnection, app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Polls until `like` matches `expected` rows, failing after `within`.
async fn wait_for_rows(conn: &mut sqlx::PgConnection, like: &str, expected: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let found = rows(conn, like).await;
        if found == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{found} rows like {like:?}, not {expected}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance() {
    in_fresh_pg_schema("pg_store_conformance", |url| async move {
        let prefix = "p1:";
        conformance(pg_store(&url, prefix).await).await;

        // Every key really carries the prefix, and another prefix is another namespace.
        let mut conn = inspect(&url).await;
        assert_eq!(rows(&mut conn, "p1:ttl:forever").await, 1);
        assert_eq!(rows(&mut conn, "ttl:forever").await, 0);
        let other = pg_store(&url, "p2:").await;
        assert_eq!(other.get("ttl:forever").await.unwrap(), None);
        assert!(other
            .put_if_absent("ttl:forever", b"mine", None)
            .await
            .unwrap());
        assert_eq!(rows(&mut conn, "p2:ttl:forever").await, 1);

        // The TTL is kept as a time of the database's clock.
        other.put("ttl5", b"v", ms(5000)).await.unwrap();
        let left_ms: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM expires_at - clock_timestamp())::float8 * 1000
             FROM wxgate_store WHERE key = 'p2:ttl5'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(left_ms > 0.0 && left_ms <= 5000.0, "{left_ms}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_pools_race() {
    in_fresh_pg_schema("pg_store_two_pools", |url| async move {
        let a = pg_store(&url, "shared:").await;
        let b = pg_store(&url, "shared:").await;
        two_handles(a, b).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_starting_at_once_create_the_table_once() {
    in_fresh_pg_schema("pg_store_setup_race", |url| async move {
        let opened = join_all((0..6).map(|_| PostgresStore::connect(&url, "p:"))).await;
        let stores: Vec<PostgresStore> = opened
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("a concurrent start failed: {e}")))
            .collect();
        assert!(stores[0].put_if_absent("k", b"0", None).await.unwrap());
        for s in &stores[1..] {
            assert!(!s.put_if_absent("k", b"x", None).await.unwrap());
            assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"0"[..]));
        }
    })
    .await;
}

/// Rows whose time has passed by the database's clock are absent for every call, whatever the
/// sweeper did or did not do yet (here it never runs: one round an hour, the first an hour in).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_expired_rows_are_invisible_before_any_sweep() {
    in_fresh_pg_schema("pg_store_expired_invisible", |url| async move {
        let options = PostgresStoreOptions {
            sweep_every: Duration::from_secs(3600),
            ..PostgresStoreOptions::default()
        };
        let s = pg_store_with(&url, "p:", options).await;
        let mut conn = inspect(&url).await;
        sqlx::query(
            "INSERT INTO wxgate_store (key, value, version, expires_at)
             SELECT 'p:' || k, 'old', 100, clock_timestamp() - interval '1 millisecond'
             FROM unnest(ARRAY['get', 'pia', 'pin', 'take', 'die', 'ext']) AS k",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(s.get("get").await.unwrap(), None);
        assert_eq!(s.take("take").await.unwrap(), None);
        assert!(!s.delete_if_equals("die", b"old").await.unwrap());
        assert!(!s
            .extend_if_equals("ext", b"old", ms(60_000).unwrap())
            .await
            .unwrap());
        assert_eq!(s.get("ext").await.unwrap(), None);
        assert!(s.put_if_absent("pia", b"new", None).await.unwrap());
        assert_eq!(s.get("pia").await.unwrap().as_deref(), Some(&b"new"[..]));
        // A lower version than the expired row's still wins over it.
        assert!(s.put_if_newer("pin", b"new", 1, None).await.unwrap());
        assert_eq!(s.get("pin").await.unwrap().as_deref(), Some(&b"new"[..]));
        // The rows nobody revived are still there: only the sweeper deletes them.
        assert_eq!(rows(&mut conn, "p:%").await, 6);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_expired_rows_are_swept_in_the_background() {
    in_fresh_pg_schema("pg_store_sweep", |url| async move {
        let options = PostgresStoreOptions {
            sweep_every: Duration::from_millis(200),
            ..PostgresStoreOptions::default()
        };
        let s = pg_store_with(&url, "p:", options).await;
        let mut conn = inspect(&url).await;
        // More expired rows than one batch deletes, planted directly.
        let planted = 2 * PostgresStore::SWEEP_BATCH + 17;
        sqlx::query(
            "INSERT INTO wxgate_store (key, value, version, expires_at)
             SELECT 'p:old:' || g, '\\x00'::bytea, 0, clock_timestamp() - interval '1 second'
             FROM generate_series(1, $1) AS g",
        )
        .bind(planted)
        .execute(&mut conn)
        .await
        .unwrap();
        // Rows written through the store with short TTLs, and rows that must stay.
        for i in 0..20 {
            s.put(&format!("short:{i}"), b"v", ms(100)).await.unwrap();
        }
        s.put("forever", b"v", None).await.unwrap();
        s.put("long", b"v", Some(Duration::from_secs(3600)))
            .await
            .unwrap();

        wait_for_rows(&mut conn, "p:%", 2, Duration::from_secs(20)).await;
        assert_eq!(rows(&mut conn, "p:forever").await, 1);
        assert_eq!(rows(&mut conn, "p:long").await, 1);
        assert_eq!(s.get("forever").await.unwrap().as_deref(), Some(&b"v"[..]));
    })
    .await;
}

/// The sweeper ends with its store, closing the store's connections: no task or connection is
/// left behind (observed by the server, through the connections' application name).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_dropping_the_store_stops_its_sweeper() {
    in_fresh_pg_schema("pg_store_drop", |url| async move {
        let app = format!("wxgate_test_{}", random_hex());
        let tagged = format!("{url}&application_name={app}");
        let options = PostgresStoreOptions {
            sweep_every: Duration::from_millis(50),
            ..PostgresStoreOptions::default()
        };
        let s = pg_store_with(&tagged, "p:", options).await;
        s.put("k", b"v", ms(10)).await.unwrap();
        let mut conn = inspect(&url).await;
        // Sweeps ran (the expired row is gone) on the store's own connections.
        wait_for_rows(&mut conn, "p:k", 0, Duration::from_secs(10)).await;
        assert!(connections(&mut conn, &app).await >= 1);

        drop(s);
        let deadline = Instant::now() + Duration::from_secs(10);
        while connections(&mut conn, &app).await > 0 {
            assert!(
                Instant::now() < deadline,
                "the store's connections stay open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Needs no server: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_unreachable_fails_fast() {
    crate::store::unreachable_fails_fast("postgres://u:hunter2@127.0.0.1:1/db").await;
}

/// Needs no server: each URL is refused before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_bad_urls_are_invalid() {
    for url in [
        "postgres://u:hunter2@127.0.0.1:notaport/db",
        "postgresql://u:hunter2@127.0.0.1/db?sslmode=sometimes",
    ] {
        match store::connect(url, "").await {
            Err(StoreError::InvalidUrl(msg)) => {
                assert!(!msg.contains("hunter2"), "password leaked: {msg}")
            }
            Err(other) => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: expected InvalidUrl, got a store"),
        }
    }
}

/// Both schemes reach the same table through `store::connect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_url_forms() {
    in_fresh_pg_schema("pg_store_url_forms", |url| async move {
        let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        else {
            panic!("WXGATE_TEST_POSTGRES_URL must start with postgres:// or postgresql://");
        };
        let short = store::connect(&format!("postgres://{rest}"), "x:")
            .await
            .unwrap();
        let long = store::connect(&format!("postgresql://{rest}"), "x:")
            .await
            .unwrap();
        short.ping().await.unwrap();
        short.put("k", b"v", None).await.unwrap();
        assert_eq!(long.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_notices_and_get_many() {
    in_fresh_pg_schema("pg_store_notices", |url| async move {
        let a = pg_store(&url, "n:").await;
        let b = pg_store(&url, "n:").await;
        notices_and_get_many(Arc::clone(&a), b).await;
        // Another prefix is another channel.
        let other = pg_store(&url, "n:other:").await;
        let mut on_other = other.subscribe().await.unwrap();
        a.notify("not for other").await.unwrap();
        other.notify("for other").await.unwrap();
        assert_eq!(next_message(&mut on_other).await, "for other");
    })
    .await;
}

/// The server ends the follower's connection (as a restart or a failover would): the follower
/// is told it may have missed notices, and receives the ones sent after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_follower_reconnects_and_is_told_it_missed_notices() {
    in_fresh_pg_schema("pg_store_relisten", |url| async move {
        let app = format!("wxgate_test_{}", random_hex());
        let s = pg_store(&format!("{url}&application_name={app}"), "r:").await;
        let mut follower = s.subscribe().await.unwrap();
        s.notify("before").await.unwrap();
        assert_eq!(next_message(&mut follower).await, "before");

        let mut conn = inspect(&url).await;
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&app)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(ended, vec![true], "one listening connection");

        match tokio::time::timeout(Duration::from_secs(10), follower.recv()).await {
            Ok(Some(Notice::Missed)) => {}
            other => panic!("expected Missed after the connection was ended, got {other:?}"),
        }
        s.notify("after").await.unwrap();
        assert_eq!(next_message(&mut follower).await, "after");
    })
    .await;
}
