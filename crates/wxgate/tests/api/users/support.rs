//! The fixtures of the conformance suite: one isolated database per case (a SQLite file, a
//! PostgreSQL schema or a MongoDB database, dropped at the end), the migrations each backend
//! records, and small helpers shared by the cases.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use sqlx::Connection as _;
use wxgate::users::{connect, LoginProfile, UserDb, UserRecord};

/// Every embedded migration, as recorded once applied (SQL).
const MIGRATIONS: &[i64] = &[1, 2, 3, 4, 5];
/// Every schema version recorded on MongoDB.
const MONGO_MIGRATIONS: &[i64] = &[1];
const POSTGRES_VAR: &str = "WXGATE_TEST_POSTGRES_URL";

/// One isolated database: a SQLite file in a temporary directory, or a PostgreSQL schema that
/// is dropped at the end.
pub(super) struct Fixture {
    pub(super) url: String,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, schema: String },
    Mongo { name: String },
}

impl Fixture {
    pub(super) fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wxgate.db").display());
        Fixture {
            url,
            kind: Kind::Sqlite { _dir: dir },
        }
    }

    /// `None` (after saying so) when the variable is unset; panics when the server cannot be
    /// reached, so a configured but broken PostgreSQL fails the suite.
    pub(super) async fn postgres() -> Option<Fixture> {
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
    pub(super) async fn mongo() -> Option<Fixture> {
        let (url, name) = crate::helpers::fresh_mongo_db("the MongoDB case").await?;
        Some(Fixture {
            url,
            kind: Kind::Mongo { name },
        })
    }

    pub(super) async fn cleanup(self) {
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

    pub(super) async fn db(&self) -> Arc<dyn UserDb> {
        connect(&self.url).await.unwrap()
    }

    /// Every version the backend records once migrated.
    pub(super) fn all_migrations(&self) -> &'static [i64] {
        match self.kind {
            Kind::Mongo { .. } => MONGO_MIGRATIONS,
            _ => MIGRATIONS,
        }
    }

    /// The versions recorded in `wxgate_schema_migrations`, read behind the module's back.
    pub(super) async fn migration_versions(&self) -> Vec<i64> {
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

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

pub(super) fn login(openid: &str) -> LoginProfile {
    LoginProfile {
        openid: openid.to_owned(),
        ..LoginProfile::default()
    }
}

pub(super) async fn get(db: &Arc<dyn UserDb>, openid: &str) -> UserRecord {
    db.get(openid).await.unwrap().expect("user should exist")
}
