//! [`Store`] on an embedded SQLite file (`sqlite://PATH`), shared by every wxgate process of one
//! host without any extra server.
//!
//! Why this is safe across processes: the file is in WAL journal mode, where SQLite's own file
//! locks let any number of readers proceed alongside exactly one writer at a time. Every
//! primitive is ONE SQL statement in autocommit mode (an upsert whose `DO UPDATE ... WHERE`
//! encodes the condition, a `DELETE ... RETURNING`, ...), and a writing statement holds the
//! database write lock from before it reads the row until it has committed, so the check and the
//! write can never interleave with another process's — there is no read-then-write window.
//! Whether a conditional write happened comes from the statement's own change count.
//!
//! Why it is fast: each process has ONE connection (behind a `std::sync::Mutex` held only for
//! the duration of one statement, never across an `.await`; a task that finds it taken first
//! yields to the runtime a few times rather than parking its worker thread) with cached prepared
//! statements, and runs every statement synchronously on the calling task's thread: with WAL and
//! `synchronous=NORMAL` a write is a few microseconds of work in the page cache, without an
//! fsync, so handing it to another thread would cost more than running it. One connection also
//! means the process's own writers never contend for SQLite's write lock. The connection's busy
//! timeout is zero, so SQLite never sleeps on a worker thread: when another process (or the
//! checkpointer below) holds the lock, the statement fails with `SQLITE_BUSY`/`SQLITE_LOCKED`,
//! the mutex is released, and the statement is retried after an asynchronous back-off (an
//! immediate yield, then 1 ms doubling up to 50 ms) for up to [`BUSY_TIMEOUT`] in total before
//! the call fails. Retrying is safe because a statement that failed this way changed nothing.
//!
//! WAL checkpoints: SQLite's automatic checkpoint would run inside the commit of whichever
//! request crosses the threshold and fsync twice on that worker thread. Instead, a background
//! task with its own connection runs `PRAGMA wal_checkpoint(RESTART)` on a blocking thread
//! every [`CHECKPOINT_EVERY_WRITES`] writes of the process (and [`CHECKPOINT_INTERVAL`] after
//! any write). RESTART takes the write lock for the duration (its connection polls for the lock
//! every 100 µs: SQLite's default busy handler sleeps ever longer and keeps missing the short
//! gaps between writes), so it cannot be starved by a steady stream of writes and the next write
//! starts the WAL over from the beginning, which keeps its size bounded; this process's writers
//! meanwhile just see `SQLITE_BUSY` and retry asynchronously. The automatic checkpoint stays enabled only as a backstop at a high
//! threshold ([`AUTOCHECKPOINT_BACKSTOP_PAGES`]), should the background task fall behind.
//!
//! Expiry is stored as an absolute wall-clock time in milliseconds (`expires_at_ms`; all processes
//! of a host share its clock). Every statement treats a row with `expires_at_ms <= now` exactly
//! like a missing row. Expired rows are all deleted at open, and every [`SWEEP_EVERY_WRITES`]
//! writes of a process at most [`SWEEP_LIMIT`] of them are deleted through the index on
//! `expires_at_ms`, so the sweep's cost on the request path is bounded. Errors never include
//! stored values.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension as _, Row};
use tokio::sync::{oneshot, Notify};

use super::{Store, StoreError};
use crate::domain::unix_now_ms as now_ms;

/// How long a call keeps retrying while another connection (or process) holds the write lock,
/// and how long opening waits for the lock while several processes set up a new file at once.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest pause between two attempts of a statement that found the database locked.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(1);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(50);
/// How many times a call yields to the runtime while another task holds the connection, before
/// blocking on its mutex.
const LOCK_YIELDS: usize = 8;
/// Writes (per process) between two sweeps of expired rows, and the most rows one sweep deletes.
const SWEEP_EVERY_WRITES: u64 = 256;
const SWEEP_LIMIT: i64 = 512;
/// Writes (per process) after which the background task checkpoints the WAL.
const CHECKPOINT_EVERY_WRITES: u64 = 1000;
/// The background task also checkpoints this long after a write, when the write count alone
/// would not trigger it.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often, and how many times, the checkpointer tries again to take the write lock (or to
/// find no reader on an older snapshot) before giving up until the next round (about 200 ms).
const CHECKPOINT_BUSY_POLL: Duration = Duration::from_micros(100);
const CHECKPOINT_BUSY_TRIES: i32 = 2000;
/// SQLite's own checkpoint threshold (pages; the default is 1000), kept only as a backstop.
const AUTOCHECKPOINT_BACKSTOP_PAGES: u32 = 20_000;

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

/// Every expired row (at open).
const SQL_SWEEP: &str =
    "DELETE FROM wxgate_kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1";

/// At most `?2` expired rows, found through the `expires_at_ms` index (on the request path).
const SQL_SWEEP_SOME: &str = "DELETE FROM wxgate_kv WHERE rowid IN (
    SELECT rowid FROM wxgate_kv
    WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1
    LIMIT ?2)";

/// SQLite-file store; see the module documentation.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    shared: Arc<Shared>,
    /// Dropping it stops the checkpoint task.
    _stop_checkpoints: oneshot::Sender<()>,
}

/// What the store shares with its checkpoint task.
struct Shared {
    writes: AtomicU64,
    /// Whether anything was written since the last checkpoint.
    dirty: AtomicBool,
    checkpoint_now: Notify,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `sqlite://PATH` or `sqlite:PATH`, switches
    /// it to WAL mode, creates the `wxgate_kv` table and deletes expired rows, then starts the
    /// checkpoint task (so it must be called within a Tokio runtime).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = PathBuf::from(parse_url(url)?);
        let (conn, checkpointer) = tokio::task::spawn_blocking(move || {
            let conn = init_database(&path)?;
            let checkpointer = open_checkpointer(&path)?;
            Ok::<_, StoreError>((conn, checkpointer))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite: opening the database: {e}")))??;

        let shared = Arc::new(Shared {
            writes: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            checkpoint_now: Notify::new(),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(checkpoint_task(checkpointer, Arc::clone(&shared), stop_rx));

        Ok(SqliteStore {
            conn: Mutex::new(conn),
            shared,
            _stop_checkpoints: stop_tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-used: every statement
        // is reset when its handle is dropped.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the connection. When another task holds it, yields to the runtime a few
    /// times before blocking on the mutex: parking a worker thread on a futex costs two context
    /// switches, while the holder needs only microseconds.
    async fn with_conn<T>(
        &self,
        f: &mut impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        for _ in 0..LOCK_YIELDS {
            match self.conn.try_lock() {
                Ok(conn) => return f(&conn),
                Err(TryLockError::Poisoned(poisoned)) => return f(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            tokio::task::yield_now().await;
        }
        let conn = self.lock();
        f(&conn)
    }

    /// Runs `f` on the connection; when it finds the database locked by someone else, releases
    /// the connection and retries after an asynchronous back-off, for up to [`BUSY_TIMEOUT`].
    async fn run<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut delay = None::<Duration>;
        loop {
            let result = self.with_conn(&mut f).await;
            match result {
                Ok(value) => return Ok(value),
                Err(e) if is_busy(&e) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(StoreError::Backend(format!(
                            "sqlite: {what}: the database stayed locked for {BUSY_TIMEOUT:?}: {e}"
                        )));
                    }
                    match delay {
                        // The lock is usually held for microseconds: first just let other tasks
                        // run, then sleep.
                        None => {
                            tokio::task::yield_now().await;
                            delay = Some(RETRY_FIRST_DELAY);
                        }
                        Some(d) => {
                            tokio::time::sleep(d.min(deadline - now)).await;
                            delay = Some((d * 2).min(RETRY_MAX_DELAY));
                        }
                    }
                }
                Err(e) => return Err(backend(what, &e)),
            }
        }
    }

    /// Counts a write, wakes the checkpoint task every [`CHECKPOINT_EVERY_WRITES`] writes and
    /// every [`SWEEP_EVERY_WRITES`] writes deletes some expired rows. A failed sweep is only
    /// logged (and a locked database just skips it): the write it follows has succeeded.
    fn after_write(&self) {
        self.shared.dirty.store(true, Ordering::Relaxed);
        let n = self.shared.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if n % CHECKPOINT_EVERY_WRITES == 0 {
            self.shared.checkpoint_now.notify_one();
        }
        if n % SWEEP_EVERY_WRITES == 0 {
            let swept = {
                let conn = self.lock();
                conn.prepare_cached(SQL_SWEEP_SOME)
                    .and_then(|mut stmt| stmt.execute(params![now_ms(), SWEEP_LIMIT]))
            };
            match swept {
                Ok(_) => {}
                Err(e) if is_busy(&e) => {}
                Err(e) => tracing::warn!(error = %e, "sqlite store: deleting expired rows failed"),
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
        let changed = self
            .run(what, |conn| {
                let now = now_ms();
                conn.prepare_cached(sql)?.execute(params![
                    key,
                    value,
                    version,
                    expires_at(now, ttl),
                    now
                ])
            })
            .await?;
        let wrote = changed > 0;
        if wrote {
            self.after_write();
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

/// Opens a connection to `path` (created when missing; the name is a plain path, never a URI).
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Opens the request connection: switches the file to WAL, creates the schema and deletes
/// expired rows, then configures the connection for the request path. Blocking. Changing the
/// journal mode takes a lock the busy timeout does not wait for, so when several processes start
/// at once on a new file it is retried for up to [`BUSY_TIMEOUT`].
fn init_database(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path).map_err(|e| backend("opening the database", &e))?;
    // Setup runs on a blocking thread, where waiting for the lock is fine.
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| backend("opening the database", &e))?;

    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mode = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        }) {
            Ok(mode) => break mode,
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(backend("switching to WAL mode", &e)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "sqlite: the database is in journal mode {mode:?}, expected WAL"
        )));
    }
    // With WAL, NORMAL survives a process crash and can lose only the last writes on a power
    // loss — fine for what this store holds (credentials WeChat re-issues, leases, short-lived
    // de-duplication records and login codes) — and it spares an fsync per write, which on a
    // slow disk capped push throughput at the disk's fsync rate.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| backend("setting synchronous=NORMAL", &e))?;
    for statement in SCHEMA {
        conn.execute(statement, [])
            .map_err(|e| backend("creating the schema", &e))?;
    }
    conn.execute(SQL_SWEEP, params![now_ms()])
        .map_err(|e| backend("deleting expired rows", &e))?;

    // From here on, statements run on async worker threads: never sleep inside SQLite (see
    // `SqliteStore::run`), and leave checkpoints to the checkpoint task.
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| backend("setting the busy timeout", &e))?;
    conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_BACKSTOP_PAGES)
        .map_err(|e| backend("setting wal_autocheckpoint", &e))?;
    Ok(conn)
}

/// Opens the checkpoint task's connection. Blocking.
fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path).map_err(|e| backend("opening the checkpoint connection", &e))?;
    // SQLite's own busy handler sleeps ever longer (up to 100 ms) between attempts, and under a
    // steady stream of short writes it can keep missing the moments the lock is free; polling
    // often takes the lock within a few writes. This runs on a blocking thread.
    conn.busy_handler(Some(checkpoint_busy))
        .map_err(|e| backend("opening the checkpoint connection", &e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| backend("setting synchronous=NORMAL", &e))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| backend("setting wal_autocheckpoint", &e))?;
    Ok(conn)
}

/// Checkpoints the WAL on a blocking thread whenever the store asks for it (every
/// [`CHECKPOINT_EVERY_WRITES`] writes) or [`CHECKPOINT_INTERVAL`] has passed after a write; ends
/// when the store is dropped.
async fn checkpoint_task(
    mut conn: Connection,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Closing the last connection to the file checkpoints it (with fsyncs): not on a
                // worker thread.
                drop(tokio::task::spawn_blocking(move || drop(conn)));
                return;
            }
            () = shared.checkpoint_now.notified() => {}
            () = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
        }
        if !shared.dirty.swap(false, Ordering::Relaxed) {
            continue;
        }
        let done = tokio::task::spawn_blocking(move || {
            let result = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
                row.get::<_, i64>(0)
            });
            (conn, result)
        })
        .await;
        match done {
            Ok((returned, result)) => {
                conn = returned;
                match result {
                    // 1: readers or another process's writer kept it from completing; the next
                    // round tries again.
                    Ok(busy) => {
                        if busy != 0 {
                            shared.dirty.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) if is_busy(&e) => shared.dirty.store(true, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %e, "sqlite store: checkpointing the WAL failed");
                    }
                }
            }
            // The runtime is shutting down (or the checkpoint panicked): nothing left to do.
            Err(_) => return,
        }
    }
}

/// The checkpoint connection's busy handler: `attempt` counts from 0.
fn checkpoint_busy(attempt: i32) -> bool {
    if attempt >= CHECKPOINT_BUSY_TRIES {
        return false;
    }
    std::thread::sleep(CHECKPOINT_BUSY_POLL);
    true
}

/// SQLITE_BUSY or SQLITE_LOCKED, including their extended codes.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Builds the error for a failed operation. rusqlite errors carry SQLite's message, never the
/// bound parameters, so values do not leak into logs.
fn backend(what: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {what}: {e}"))
}

/// Column 0 as bytes (a BLOB as written by every wxgate version; TEXT accepted too).
fn value_column(row: &Row<'_>) -> rusqlite::Result<Vec<u8>> {
    match row.get_ref(0)? {
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => Ok(b.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            "value".to_owned(),
            other.data_type(),
        )),
    }
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
        self.run("get", |conn| {
            conn.prepare_cached(SQL_GET)?
                .query_row(params![key, now_ms()], value_column)
                .optional()
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.run("put", |conn| {
            let now = now_ms();
            conn.prepare_cached(SQL_PUT)?.execute(params![
                key,
                value,
                i64::MIN,
                expires_at(now, ttl)
            ])
        })
        .await?;
        self.after_write();
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
        let taken = self
            .run("take", |conn| {
                let mut stmt = conn.prepare_cached(SQL_TAKE)?;
                let mut rows = stmt.query(params![key, now_ms()])?;
                let value = match rows.next()? {
                    Some(row) => Some(value_column(row)?),
                    None => None,
                };
                // Step to the end so the statement completes (and commits) here, reporting any
                // error, rather than silently when it is reset. The key is unique: no more rows.
                while rows.next()?.is_some() {}
                Ok(value)
            })
            .await?;
        if taken.is_some() {
            self.shared.dirty.store(true, Ordering::Relaxed);
        }
        Ok(taken)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let changed = self
            .run("delete_if_equals", |conn| {
                conn.prepare_cached(SQL_DELETE_IF_EQUALS)?
                    .execute(params![key, expected, now_ms()])
            })
            .await?;
        if changed > 0 {
            self.shared.dirty.store(true, Ordering::Relaxed);
        }
        Ok(changed > 0)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let changed = self
            .run("delete", |conn| {
                conn.prepare_cached(SQL_DELETE)?.execute(params![key])
            })
            .await?;
        if changed > 0 {
            self.shared.dirty.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |row| row.get::<_, i64>(0))
        })
        .await?;
        Ok(())
    }
}
