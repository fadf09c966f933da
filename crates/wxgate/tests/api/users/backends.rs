//! Backend-specific and backend-free cases: SQLite's file and URL forms, refused schemes and
//! unreachable servers reported without their password, PostgreSQL's openid collation and TLS.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use sqlx::Connection as _;
use wxgate::users::{connect, UserDbError};

use super::support::*;

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
