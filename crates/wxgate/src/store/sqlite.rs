//! [`Store`] on an embedded SQLite file (`sqlite://PATH`), shared by every wxgate process of one
//! host without any extra server.
//!
//! Why this is safe across processes: the file is in WAL journal mode, where SQLite's own file
//! locks let any number of readers proceed alongside exactly one writer at a time, and every
//! connection has a busy timeout ([`BUSY_TIMEOUT`]) so a writer that finds the lock taken waits
//! for it instead of failing. Every primitive is ONE SQL statement in autocommit mode (an upsert
//! whose `DO UPDATE ... WHERE` encodes the condition, a `DELETE ... RETURNING`, ...), and a
//! writing statement holds the database write lock from before it reads the row until it has
//! committed, so the check and the write can never interleave with another process's — there is
//! no read-then-write window. Whether a conditional write happened comes from the statement's
//! own change count.
//!
//! Expiry is stored as an absolute wall-clock time in milliseconds (`expires_at_ms`; all processes
//! of a host share its clock). Every statement treats a row with `expires_at_ms <= now` exactly
//! like a missing row, and expired rows are deleted at open and every [`SWEEP_EVERY_WRITES`]
//! writes of a process. Errors never include stored values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};

use super::{Store, StoreError};

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes (per process) between two deletions of expired rows.
const SWEEP_EVERY_WRITES: u64 = 1000;
/// Connections per process; SQLite serialises writers anyway, this mostly serves readers.
const MAX_CONNECTIONS: u32 = 8;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS wxgate_kv (
        key TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires_at_ms INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS wxgate_kv_expires ON wxgate_kv (expires_at_ms)
        WHERE expires_at_ms IS NOT NULL",
];

const SQL_GET: &str = "SELECT value FROM wxgate_kv
    WHERE key = ?1 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)";

const SQL_PUT: &str = "INSERT INTO wxgate_kv (key, value, version, expires_at_ms)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key) DO UPDATE SET
        value = excluded.value, version = excluded.version, expires_at_ms = excluded.expires_at_ms";

/// Overwrites only an expired row; a live row makes the upsert a no-op (0 changes).
const SQL_PUT_IF_ABSENT: &str = "INSERT INTO wxgate_kv (key, value, version, expires_at_ms)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key) DO UPDATE SET
        value = excluded.value, version = excluded.version, expires_at_ms = excluded.expires_at_ms
    WHERE wxgate_kv.expires_at_ms IS NOT NULL AND wxgate_kv.expires_at_ms <= ?5";

/// Overwrites an expired row or a live row with a strictly lower version.
const SQL_PUT_IF_NEWER: &str = "INSERT INTO wxgate_kv (key, value, version, expires_at_ms)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key) DO UPDATE SET
        value = excluded.value, version = excluded.version, expires_at_ms = excluded.expires_at_ms
    WHERE (wxgate_kv.expires_at_ms IS NOT NULL AND wxgate_kv.expires_at_ms <= ?5)
        OR wxgate_kv.version < excluded.version";

const SQL_TAKE: &str = "DELETE FROM wxgate_kv
    WHERE key = ?1 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)
    RETURNING value";

const SQL_DELETE_IF_EQUALS: &str = "DELETE FROM wxgate_kv
    WHERE key = ?1 AND value = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3)";

const SQL_DELETE: &str = "DELETE FROM wxgate_kv WHERE key = ?1";

const SQL_SWEEP: &str =
    "DELETE FROM wxgate_kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1";

/// SQLite-file store; see the module documentation.
pub struct SqliteStore {
    pool: SqlitePool,
    writes: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `sqlite://PATH` or `sqlite:PATH`, switches
    /// it to WAL mode and creates the `wxgate_kv` table.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = parse_url(url)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);

        init_database(&options).await?;

        // The journal mode is persistent in the file, so pool connections need not set it again
        // (setting it needs a lock the busy timeout does not cover; see `init_database`).
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options)
            .await
            .map_err(|e| backend("opening the database", &e))?;

        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .map_err(|e| backend("reading the journal mode", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "sqlite: the database is in journal mode {mode:?}, expected WAL"
            )));
        }

        Ok(SqliteStore {
            pool,
            writes: AtomicU64::new(0),
        })
    }

    /// Counts a write and every [`SWEEP_EVERY_WRITES`] writes deletes expired rows. A failed
    /// sweep is only logged: the write it follows has succeeded.
    async fn after_write(&self) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if n % SWEEP_EVERY_WRITES == 0 {
            if let Err(e) = sqlx::query(SQL_SWEEP)
                .bind(now_ms())
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "sqlite store: deleting expired rows failed");
            }
        }
    }

    /// Runs one of the upserts and reports whether it wrote.
    async fn upsert(
        &self,
        sql: &'static str,
        what: &str,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(sql)
            .bind(key)
            .bind(value)
            .bind(version)
            .bind(expires_at(now, ttl))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| backend(what, &e))?;
        let wrote = done.rows_affected() > 0;
        if wrote {
            self.after_write().await;
        }
        Ok(wrote)
    }
}

/// `sqlite://PATH` or `sqlite:PATH` → `PATH` (relative to the working directory unless absolute;
/// `sqlite:///abs/file.db` is absolute).
fn parse_url(url: &str) -> Result<&str, StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::InvalidUrl(format!("{url:?} does not start with sqlite:")))?;
    if path.is_empty() {
        return Err(StoreError::InvalidUrl(format!("{url:?} names no file")));
    }
    if path == ":memory:" || path.starts_with(":memory:?") {
        return Err(StoreError::InvalidUrl(
            "in-memory sqlite is not supported, use memory://".to_owned(),
        ));
    }
    if path.contains('?') {
        return Err(StoreError::InvalidUrl(format!(
            "{url:?}: query parameters are not supported in a sqlite url"
        )));
    }
    Ok(path)
}

/// Switches the file to WAL, creates the schema and deletes expired rows, on one dedicated
/// connection. Changing the journal mode takes a lock the busy timeout does not wait for, so when
/// several processes start at once on a new file it is retried for up to [`BUSY_TIMEOUT`].
async fn init_database(options: &SqliteConnectOptions) -> Result<(), StoreError> {
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
            Err(e) => return Err(backend("opening the database", &e)),
        }
    };
    for statement in SCHEMA {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .map_err(|e| backend("creating the schema", &e))?;
    }
    sqlx::query(SQL_SWEEP)
        .bind(now_ms())
        .execute(&mut conn)
        .await
        .map_err(|e| backend("deleting expired rows", &e))?;
    conn.close()
        .await
        .map_err(|e| backend("closing the setup connection", &e))
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

/// Builds the error for a failed operation. sqlx errors carry SQLite's message, never the bound
/// parameters, so values do not leak into logs.
fn backend(what: &str, e: &sqlx::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {what}: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Absolute expiry for a TTL, rounded up to the next millisecond; `None` (never) for no TTL or a
/// TTL too large to represent.
fn expires_at(now_ms: i64, ttl: Option<Duration>) -> Option<i64> {
    let ttl = ttl?;
    let mut ms = ttl.as_millis();
    if ttl.subsec_nanos() % 1_000_000 != 0 {
        ms += 1;
    }
    i64::try_from(ms).ok().and_then(|ms| now_ms.checked_add(ms))
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(SQL_GET)
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("get", &e))?;
        row.map(|row| row.try_get::<Vec<u8>, _>(0))
            .transpose()
            .map_err(|e| backend("get", &e))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(SQL_PUT)
            .bind(key)
            .bind(value)
            .bind(i64::MIN)
            .bind(expires_at(now, ttl))
            .execute(&self.pool)
            .await
            .map_err(|e| backend("put", &e))?;
        self.after_write().await;
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.upsert(
            SQL_PUT_IF_ABSENT,
            "put_if_absent",
            key,
            value,
            i64::MIN,
            ttl,
        )
        .await
    }

    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.upsert(SQL_PUT_IF_NEWER, "put_if_newer", key, value, version, ttl)
            .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(SQL_TAKE)
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("take", &e))?;
        row.map(|row| row.try_get::<Vec<u8>, _>(0))
            .transpose()
            .map_err(|e| backend("take", &e))
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query(SQL_DELETE_IF_EQUALS)
            .bind(key)
            .bind(expected)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| backend("delete_if_equals", &e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query(SQL_DELETE)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("delete", &e))?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| backend("ping", &e))?;
        Ok(())
    }
}
