//! [`UserDb`](super::UserDb) on an embedded SQLite file (`sqlite://PATH`), so a single-host
//! deployment keeps its user records without running a database server — possibly in the same
//! file as the key-value store (`wxgate_kv`), which this module never touches. This module
//! opens the file and locks the migrations; the queries are the shared ones ([`SqlUserDb`]).
//!
//! Why it is correct across tasks and processes: the file is in WAL mode and every connection
//! has a 5 s busy timeout, so a writer waits for the single write lock instead of failing. Each
//! write is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement in autocommit mode, which
//! holds the write lock from reading the existing row until it commits, so the "is this event
//! newer?" check and the write cannot interleave with another writer's. Whether a conditional
//! write happened comes from the statement's change count.
//!
//! Migrations are embedded in the binary and applied at open inside one `BEGIN IMMEDIATE`
//! transaction, which takes the write lock before reading `wxgate_schema_migrations`: two
//! processes opening the same new file at once apply each migration exactly once. Error messages
//! carry SQLite's message, never bound values.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Sqlite};

use super::sql::{apply_migrations, SqlUserDb};
use super::{Migration, UserDbError};
use crate::domain::sqlite_file_path;

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per process; SQLite serialises writers anyway, this mostly serves readers.
const MAX_CONNECTIONS: u32 = 8;

const MIGRATIONS: &[Migration] = &crate::users::migrations!("sqlite");

/// SQLite-file user database; see the module documentation.
pub type SqliteUserDb = SqlUserDb<Sqlite>;

impl SqlUserDb<Sqlite> {
    /// Opens (creating when missing) the database at `sqlite://PATH` or `sqlite:PATH`, switches
    /// it to WAL mode and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, UserDbError> {
        let path = parse_url(url)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);

        init_database(&options).await?;

        // The journal mode is persistent in the file, so pool connections need not set it again.
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options)
            .await
            .map_err(|e| UserDbError::Unavailable(format!("sqlite: opening {path:?}: {e}")))?;

        Ok(SqlUserDb::new(pool))
    }
}

fn parse_url(url: &str) -> Result<&str, UserDbError> {
    sqlite_file_path(
        url,
        "in-memory sqlite is not supported for user records, name a file",
    )
    .map_err(UserDbError::InvalidUrl)
}

/// Switches the file to WAL and applies pending migrations, on one dedicated connection.
/// Changing the journal mode takes a lock the busy timeout does not wait for, so when several
/// processes open a new file at once it is retried for up to [`BUSY_TIMEOUT`].
async fn init_database(options: &SqliteConnectOptions) -> Result<(), UserDbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut conn = loop {
        match options
            .clone()
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
        {
            Ok(conn) => break conn,
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(UserDbError::Unavailable(format!(
                    "sqlite: opening {:?}: {e}",
                    options.get_filename()
                )))
            }
        }
    };

    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| UserDbError::Unavailable(format!("sqlite: reading the journal mode: {e}")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(UserDbError::Unavailable(format!(
            "sqlite: the database is in journal mode {mode:?}, expected WAL"
        )));
    }

    migrate(&mut conn).await?;

    conn.close()
        .await
        .map_err(|e| UserDbError::Unavailable(format!("sqlite: closing the setup connection: {e}")))
}

/// Applies every migration not yet recorded, all in one `BEGIN IMMEDIATE` transaction: the write
/// lock is taken (waiting up to the busy timeout) before the applied versions are read, so
/// concurrent openers serialise and the later ones find nothing to do.
fn migrate(conn: &mut sqlx::SqliteConnection) -> BoxFuture<'_, Result<(), UserDbError>> {
    // Boxed so the future is checked `Send` here, with concrete lifetimes; callers can spawn
    // `connect` (rustc cannot prove it through sqlx's higher-ranked executor bounds otherwise).
    Box::pin(async move {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| fail("taking the write lock", e))?;
        apply_migrations::<Sqlite>(&mut tx, MIGRATIONS)
            .await
            .map_err(|e| UserDbError::Migration(format!("sqlite: {e}")))?;
        tx.commit().await.map_err(|e| fail("committing", e))
    })
}

/// The error for a failed migration step.
fn fail(what: &str, e: sqlx::Error) -> UserDbError {
    UserDbError::Migration(format!("sqlite: {what}: {e}"))
}

/// SQLITE_BUSY or SQLITE_LOCKED, including their extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}
