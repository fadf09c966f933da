//! [`Store`] on an embedded SQLite file (`sqlite://PATH`), shared by every wxgate process of one
//! host without any extra server.
//!
//! Why this is safe across processes: the file is in WAL journal mode, where SQLite's own file
//! locks let any number of readers proceed alongside exactly one writer at a time. Every
//! primitive is ONE SQL statement (an upsert whose `DO UPDATE ... WHERE` encodes the condition,
//! a `DELETE ... RETURNING`, ...), run while this process holds the database write lock, so the
//! check and the write can never interleave with another process's — there is no
//! read-then-write window. Whether a conditional write happened comes from the statement's own
//! change count.
//!
//! How it is fast: writes are group-committed ([`writer`]): the writes waiting while a
//! transaction runs are committed together in the next one, so a burst costs a few log pages and
//! one round of file locking per batch instead of per write. Reads run on the calling task's
//! thread on a second connection (WAL readers never wait for the writer), with cached prepared
//! statements, behind a `std::sync::Mutex` held only for one statement, never across an
//! `.await` (a task that finds it taken first yields to the runtime a few times rather than
//! parking its worker thread). Both connections have a zero busy timeout, so SQLite never sleeps
//! on a worker thread: a read that finds the database busy (another process recovering the log)
//! releases the mutex and is retried after an asynchronous back-off (an immediate yield, then
//! 1 ms doubling up to 50 ms) for up to [`BUSY_TIMEOUT`] in total; writes back off the same way.
//! Checkpoints run off the request path ([`checkpoint`]).
//!
//! Expiry is stored as an absolute wall-clock time in milliseconds (`expires_at_ms`; all processes
//! of a host share its clock). Every statement treats a row with `expires_at_ms <= now` exactly
//! like a missing row. Expired rows are all deleted at open, and the writer deletes at most
//! [`SWEEP_LIMIT`] of them through the index on `expires_at_ms` every few hundred writes, so a
//! sweep's cost is bounded. Errors never include stored values. Notices are rows of a table of
//! their own, read once a second by each follower ([`notices`]).

mod checkpoint;
mod notices;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension as _, Row};
use tokio::sync::{oneshot, Notify};

use self::writer::{WriteOp, WriteOutcome, Writer};
use super::notices::{self as queue, Notice};
use super::{Store, StoreError};
use crate::domain::{sqlite_file_path, unix_now_ms as now_ms};

/// How long a call keeps retrying while another connection (or process) holds the lock it
/// needs, and how long opening waits for the lock while several processes set up a new file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest pause between two attempts of a read or a batch that found the database
/// busy.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(1);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(50);
/// How many times a read yields to the runtime while another task holds the read connection,
/// before blocking on its mutex.
const LOCK_YIELDS: usize = 8;
/// The most expired rows one sweep deletes.
const SWEEP_LIMIT: i64 = 512;
/// Keys per statement of `get_many` (well under SQLite's limit on bound parameters).
const GET_MANY_CHUNK: usize = 500;
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

/// Resets a live row's expiry when its value is the expected one (a lease renewal).
const SQL_EXTEND_IF_EQUALS: &str = "UPDATE wxgate_kv SET expires_at_ms = ?3
    WHERE key = ?1 AND value = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?4)";

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
    /// The read connection.
    reader: Mutex<Connection>,
    /// The write connection and its queue.
    writer: Writer,
    /// Dropping it stops the checkpoint task.
    _stop_checkpoints: oneshot::Sender<()>,
    /// The database file (followers of notices open their own connection to it).
    path: PathBuf,
}

/// What the writer shares with the checkpoint task.
struct Shared {
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
        let opened = path.clone();
        let (write_conn, reader, checkpointer) = tokio::task::spawn_blocking(move || {
            let write_conn = init_database(&path)?;
            let reader = open_reader(&path)?;
            let checkpointer = checkpoint::open(&path)?;
            Ok::<_, StoreError>((write_conn, reader, checkpointer))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite: opening the database: {e}")))??;

        let shared = Arc::new(Shared {
            dirty: AtomicBool::new(false),
            checkpoint_now: Notify::new(),
        });
        let writer = Writer::new(write_conn, Arc::clone(&shared));
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(checkpoint::run(checkpointer, shared, stop_rx));

        Ok(SqliteStore {
            reader: Mutex::new(reader),
            writer,
            _stop_checkpoints: stop_tx,
            path: opened,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-used: every statement
        // is reset when its handle is dropped.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the read connection. When another task holds it, yields to the runtime a
    /// few times before blocking on the mutex: parking a worker thread on a futex costs two
    /// context switches, while the holder needs only microseconds.
    async fn with_reader<T>(
        &self,
        f: &mut impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        for _ in 0..LOCK_YIELDS {
            match self.reader.try_lock() {
                Ok(conn) => return f(&conn),
                Err(TryLockError::Poisoned(poisoned)) => return f(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            tokio::task::yield_now().await;
        }
        let conn = self.lock();
        f(&conn)
    }

    /// Runs the read `f`; when it finds the database busy, releases the connection and retries
    /// after an asynchronous back-off, for up to [`BUSY_TIMEOUT`].
    async fn read<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut delay = None::<Duration>;
        loop {
            let result = self.with_reader(&mut f).await;
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

    /// A write that reports whether it changed a row.
    async fn write_changed(&self, op: WriteOp) -> Result<bool, StoreError> {
        match self.writer.write(op).await? {
            WriteOutcome::Changed(changed) => Ok(changed),
            WriteOutcome::Taken(value) => Ok(value.is_some()),
        }
    }
}

fn parse_url(url: &str) -> Result<&str, StoreError> {
    sqlite_file_path(url, "in-memory sqlite is not supported, use memory://")
        .map_err(StoreError::InvalidUrl)
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
    for statement in SCHEMA.iter().chain(notices::SCHEMA) {
        conn.execute(statement, [])
            .map_err(|e| backend("creating the schema", &e))?;
    }
    conn.execute(SQL_SWEEP, params![now_ms()])
        .map_err(|e| backend("deleting expired rows", &e))?;

    // From here on this is the write connection, used on async worker threads: SQLite must
    // never sleep there (the writer retries asynchronously), and checkpoints are left to the
    // checkpoint task.
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| backend("setting the busy timeout", &e))?;
    conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_BACKSTOP_PAGES)
        .map_err(|e| backend("setting wal_autocheckpoint", &e))?;
    Ok(conn)
}

/// Opens the read connection. Blocking. Its busy timeout is zero: it runs on async worker
/// threads, where SQLite must never sleep (see [`SqliteStore::read`]).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path).map_err(|e| backend("opening the read connection", &e))?;
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| backend("setting the busy timeout", &e))?;
    Ok(conn)
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
    value_column_at(row, 0)
}

/// Column `idx` as bytes.
fn value_column_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<u8>> {
    match row.get_ref(idx)? {
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => Ok(b.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(
            idx,
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
        self.read("get", |conn| {
            conn.prepare_cached(SQL_GET)?
                .query_row(params![key, now_ms()], value_column)
                .optional()
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.writer
            .write(WriteOp::Put {
                key: key.to_owned(),
                value: value.to_vec(),
                ttl,
            })
            .await?;
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.write_changed(WriteOp::PutIfAbsent {
            key: key.to_owned(),
            value: value.to_vec(),
            ttl,
        })
        .await
    }

    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.write_changed(WriteOp::PutIfNewer {
            key: key.to_owned(),
            value: value.to_vec(),
            version,
            ttl,
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .writer
            .write(WriteOp::Take {
                key: key.to_owned(),
            })
            .await?
        {
            WriteOutcome::Taken(value) => Ok(value),
            WriteOutcome::Changed(_) => Ok(None),
        }
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.write_changed(WriteOp::DeleteIfEquals {
            key: key.to_owned(),
            expected: expected.to_vec(),
        })
        .await
    }

    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.write_changed(WriteOp::ExtendIfEquals {
            key: key.to_owned(),
            expected: expected.to_vec(),
            ttl,
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.writer
            .write(WriteOp::Delete {
                key: key.to_owned(),
            })
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |row| row.get::<_, i64>(0))
        })
        .await?;
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_MANY_CHUNK) {
            let found = self
                .read("get_many", |conn| {
                    let marks = vec!["?"; chunk.len()].join(",");
                    let sql = format!(
                        "SELECT key, value FROM wxgate_kv WHERE key IN ({marks})
                            AND (expires_at_ms IS NULL OR expires_at_ms > {})",
                        now_ms()
                    );
                    let mut stmt = conn.prepare(&sql)?;
                    let rows = stmt.query_map(rusqlite::params_from_iter(chunk), |row| {
                        Ok((row.get::<_, String>(0)?, value_column_at(row, 1)?))
                    })?;
                    rows.collect::<rusqlite::Result<HashMap<String, Vec<u8>>>>()
                })
                .await?;
            let mut found = found;
            out.extend(chunk.iter().map(|k| found.remove(k)));
        }
        Ok(out)
    }

    async fn notify(&self, message: &str) -> Result<(), StoreError> {
        queue::check_len(message)?;
        self.writer
            .write(WriteOp::Notify {
                message: message.to_owned(),
            })
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Notice>, StoreError> {
        let follower = notices::open_follower(self.path.clone()).await?;
        let (tx, rx) = queue::queue();
        tokio::spawn(notices::follow(follower, tx));
        Ok(rx)
    }
}
