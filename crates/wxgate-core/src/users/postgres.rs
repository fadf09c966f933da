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
//! [`CONNECT_TIMEOUT`] and fails with the server's own reason (refused, unknown host, bad
//! password...). No message ever contains the URL's password.

use std::str::FromStr as _;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Postgres};

use super::sql::{apply_migrations, SqlUserDb};
use super::{Migration, UserDbError};
use crate::scrub::{redact_url, scrub};

/// Bound on establishing one connection (TCP, TLS, authentication), at start and in the pool.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// `CONNECT_TIMEOUT`), then builds the pool.
    pub async fn connect(url: &str) -> Result<Self, UserDbError> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| UserDbError::InvalidUrl(scrub(format!("{shown:?}: {e}"), url)))?;
        // Statement logging would be at info level by default; keep queries out of the logs.
        let options = options.disable_statement_logging();

        let mut conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(UserDbError::Unavailable(scrub(
                        format!("postgres: connecting to {shown}: {e}"),
                        url,
                    )))
                }
                Err(_) => {
                    return Err(UserDbError::Unavailable(format!(
                        "postgres: connecting to {shown}: no answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )))
                }
            };
        migrate(&mut conn)
            .await
            .map_err(|e| UserDbError::Migration(scrub(format!("postgres: {e}"), url)))?;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "postgres user database: closing the setup connection failed");
        }

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(SqlUserDb::new(pool))
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
