//! [`UserDb`](super::UserDb) on PostgreSQL (`postgres://...`), for deployments with several
//! wxgate hosts or an existing database the operators already back up and query. This module
//! connects and locks the migrations; the queries are the shared ones ([`SqlUserDb`]).
//!
//! Why it is correct across instances: each write is one `INSERT ... ON CONFLICT DO UPDATE ...
//! WHERE` statement. PostgreSQL locks the conflicting row and, under READ COMMITTED, evaluates
//! the `WHERE` against the latest committed version of that row, so the "is this event newer?"
//! check and the write are atomic with respect to every other writer; concurrent first inserts
//! of the same openid resolve through the primary key into the same upsert. Whether a
//! conditional write happened comes from the statement's row count.
//!
//! `openid` has the "C" collation, so [`UserDb::list`](super::UserDb::list) pages in byte order, exactly like the
//! SQLite backend and Rust's `str` ordering, whatever the database's default collation.
//!
//! Migrations are embedded in the binary and applied at connect in one transaction that first
//! takes a transaction-scoped advisory lock, so instances starting at once apply each migration
//! exactly once and the others wait, then find nothing to do. Connecting is bounded by
//! [`pg::CONNECT_TIMEOUT`](crate::pg::CONNECT_TIMEOUT) and fails with the server's own reason
//! (refused, unknown host, bad password...). No message ever contains the URL's password.

use futures::future::BoxFuture;
use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, Postgres};

use super::sql::{apply_migrations, SqlUserDb};
use super::{Migration, UserDbError};
use crate::pg;
use crate::scrub::scrub;

/// Connections per process.
const MAX_CONNECTIONS: u32 = 10;
/// Key of the advisory lock serialising migrations ("wxgate" in ASCII, then 1).
const MIGRATION_LOCK_KEY: i64 = 0x7778_6761_7465_0001;

const MIGRATIONS: &[Migration] = &crate::users::migrations!("postgres");

/// PostgreSQL user database; see the module documentation.
pub type PostgresUserDb = SqlUserDb<Postgres>;

impl SqlUserDb<Postgres> {
    /// Connects to `postgres://...` / `postgresql://...`, applies pending migrations on a first
    /// connection (so an unreachable server or bad credentials fail here, within
    /// `pg::CONNECT_TIMEOUT`), then builds the pool.
    pub async fn connect(url: &str) -> Result<Self, UserDbError> {
        let options = pg::options(url).map_err(UserDbError::InvalidUrl)?;
        let mut conn = pg::connect_once(&options, url)
            .await
            .map_err(UserDbError::Unavailable)?;
        migrate(&mut conn)
            .await
            .map_err(|e| UserDbError::Migration(scrub(format!("postgres: {e}"), url)))?;
        pg::close(conn, "postgres user database").await;
        Ok(SqlUserDb::new(pg::pool(options, MAX_CONNECTIONS)))
    }
}

/// Applies every migration not yet recorded, in one transaction holding the migration advisory
/// lock (released at commit or rollback). Returns a description of what failed.
fn migrate(conn: &mut PgConnection) -> BoxFuture<'_, Result<(), String>> {
    // Boxed so the future is checked `Send` here, with concrete lifetimes; callers can spawn
    // `connect` (rustc cannot prove it through sqlx's higher-ranked executor bounds otherwise).
    Box::pin(async move {
        let mut tx = conn.begin().await.map_err(|e| fail("beginning", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail("taking the migration lock", e))?;
        apply_migrations::<Postgres>(&mut tx, MIGRATIONS).await?;
        tx.commit().await.map_err(|e| fail("committing", e))
    })
}

/// The description of a failed migration step.
fn fail(what: &str, e: sqlx::Error) -> String {
    format!("{what}: {e}")
}
