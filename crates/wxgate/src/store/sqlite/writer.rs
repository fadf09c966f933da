//! Group commit: every write of a process goes to ONE thread that owns the write connection and
//! commits whatever writes are waiting as a single transaction.
//!
//! Why: in WAL mode each commit appends every page it touched to the log and takes and releases
//! SQLite's file locks, so a commit costs tens of microseconds of system calls however small the
//! change. Under load (a push burst writes one de-duplication record per message) one commit per
//! write capped the store at about 16 000 writes/s and made the request threads queue on the
//! connection. Here the writes that arrive while a transaction runs are collected and committed
//! together: with many rows on the same few pages, the log grows by a few pages per batch instead
//! of two per write, and the lock dance happens once per batch.
//!
//! Why it is still atomic across processes: a batch starts with `BEGIN IMMEDIATE`, which takes
//! the database's write lock before reading anything, so every statement of the batch sees the
//! latest committed state of every process, and no other process can write until the batch
//! commits. Each write is the same single conditional statement as before (an upsert whose
//! `DO UPDATE ... WHERE` encodes the condition, a `DELETE ... RETURNING`); within the batch
//! they run one after the other, so each sees the ones before it, exactly as if they had been
//! committed one by one. No caller hears about its write before the batch has committed.
//!
//! When a statement fails inside a batch, or the commit fails, the batch is rolled back (nothing
//! of it was committed) and its writes are run again one by one, each on its own, so one
//! failing write never takes the others down with it.
//!
//! Waiting for the lock: this thread is the only one that ever waits inside SQLite, so its
//! connection has a busy handler that polls for the lock (every 100 µs at first, then every
//! millisecond: SQLite's default handler sleeps ever longer and keeps missing the short gaps
//! between another process's writes) for up to `BUSY_TIMEOUT`, then fails the writes waiting
//! for it. The request threads just await their answer; the runtime is never blocked.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use super::{
    backend, expires_at, is_busy, value_column, Shared, BUSY_TIMEOUT, SQL_DELETE,
    SQL_DELETE_IF_EQUALS, SQL_PUT, SQL_PUT_IF_ABSENT, SQL_PUT_IF_NEWER, SQL_SWEEP_SOME, SQL_TAKE,
    SWEEP_LIMIT,
};
use crate::domain::unix_now_ms as now_ms;
use crate::store::StoreError;

/// Most writes committed in one transaction; a longer queue is committed in several.
const MAX_BATCH: usize = 512;
/// Rows written (per process) between two sweeps of expired rows.
const SWEEP_EVERY_WRITES: u64 = 256;
/// The checkpoint task is woken after this many commits or this many rows written (per
/// process), whichever comes first: every commit appends at least a page or two to the log, and
/// a large batch one page per few rows.
const CHECKPOINT_EVERY_COMMITS: u64 = 1000;
const CHECKPOINT_EVERY_ROWS: u64 = 1_000;
/// When the last batch held more than one write, the writer waits this long for more before
/// committing the next one: under load a batch then holds dozens of writes instead of a few
/// (each commit has a fixed cost of file locks and log pages), for at most this much latency.
/// A lone write (the common case outside bursts) is committed at once.
const LINGER: Duration = Duration::from_micros(250);
/// The busy handler's polling: this often for the first [`FAST_POLLS`] attempts, then every
/// [`SLOW_POLL`], until [`BUSY_TIMEOUT`] has passed since the first attempt.
const FAST_POLL: Duration = Duration::from_micros(100);
const FAST_POLLS: i32 = 50;
const SLOW_POLL: Duration = Duration::from_millis(1);

/// One write, as the store's caller asked for it.
pub(super) enum WriteOp {
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    PutIfAbsent {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    PutIfNewer {
        key: String,
        value: Vec<u8>,
        version: i64,
        ttl: Option<Duration>,
    },
    Take {
        key: String,
    },
    DeleteIfEquals {
        key: String,
        expected: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

/// What a write did.
pub(super) enum WriteOutcome {
    /// Whether the statement changed a row.
    Changed(bool),
    /// The value `Take` removed.
    Taken(Option<Vec<u8>>),
}

impl WriteOp {
    fn name(&self) -> &'static str {
        match self {
            WriteOp::Put { .. } => "put",
            WriteOp::PutIfAbsent { .. } => "put_if_absent",
            WriteOp::PutIfNewer { .. } => "put_if_newer",
            WriteOp::Take { .. } => "take",
            WriteOp::DeleteIfEquals { .. } => "delete_if_equals",
            WriteOp::Delete { .. } => "delete",
        }
    }

    /// Whether a change by this write adds a row (counted for sweeps and checkpoints) rather
    /// than only removing one.
    fn adds_rows(&self) -> bool {
        matches!(
            self,
            WriteOp::Put { .. } | WriteOp::PutIfAbsent { .. } | WriteOp::PutIfNewer { .. }
        )
    }

    /// Runs the write's one statement on `conn`.
    fn execute(&self, conn: &Connection) -> rusqlite::Result<WriteOutcome> {
        let now = now_ms();
        let changed = match self {
            WriteOp::Put { key, value, ttl } => conn.prepare_cached(SQL_PUT)?.execute(params![
                key,
                value,
                i64::MIN,
                expires_at(now, *ttl)
            ])?,
            WriteOp::PutIfAbsent { key, value, ttl } => conn
                .prepare_cached(SQL_PUT_IF_ABSENT)?
                .execute(params![key, value, i64::MIN, expires_at(now, *ttl), now])?,
            WriteOp::PutIfNewer {
                key,
                value,
                version,
                ttl,
            } => conn.prepare_cached(SQL_PUT_IF_NEWER)?.execute(params![
                key,
                value,
                version,
                expires_at(now, *ttl),
                now
            ])?,
            WriteOp::Take { key } => {
                let mut stmt = conn.prepare_cached(SQL_TAKE)?;
                let mut rows = stmt.query(params![key, now])?;
                let value = match rows.next()? {
                    Some(row) => Some(value_column(row)?),
                    None => None,
                };
                // Step to the end so the statement completes here, reporting any error, rather
                // than silently when it is reset. The key is unique: no more rows.
                while rows.next()?.is_some() {}
                return Ok(WriteOutcome::Taken(value));
            }
            WriteOp::DeleteIfEquals { key, expected } => conn
                .prepare_cached(SQL_DELETE_IF_EQUALS)?
                .execute(params![key, expected, now])?,
            WriteOp::Delete { key } => conn.prepare_cached(SQL_DELETE)?.execute(params![key])?,
        };
        Ok(WriteOutcome::Changed(changed > 0))
    }
}

/// A write and where its outcome goes.
pub(super) struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

thread_local! {
    /// When the busy handler of this thread's connection gives up on the current wait.
    static BUSY_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The write connection's busy handler (`attempt` counts from 0 for each wait).
fn poll_for_lock(attempt: i32) -> bool {
    let now = Instant::now();
    let deadline = BUSY_DEADLINE.with(|d| {
        if attempt == 0 {
            d.set(Some(now + BUSY_TIMEOUT));
        }
        d.get().unwrap_or(now)
    });
    if now >= deadline {
        return false;
    }
    let pause = if attempt < FAST_POLLS {
        FAST_POLL
    } else {
        SLOW_POLL
    };
    std::thread::sleep(pause.min(deadline - now));
    true
}

/// Prepares `conn` to be the write connection (installs the polling busy handler).
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(poll_for_lock))
}

/// The writer thread's loop: waits for a write, takes every write queued behind it (up to
/// [`MAX_BATCH`]), commits them as one transaction and answers each. Ends when the store is
/// dropped (every sender gone); dropping the connection then checkpoints the log.
pub(super) fn run(conn: Connection, requests: Receiver<WriteRequest>, shared: Arc<Shared>) {
    let mut counters = Counters::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut under_load = false;
    while let Ok(first) = requests.recv() {
        batch.push(first);
        if under_load {
            std::thread::sleep(LINGER);
        }
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        under_load = batch.len() > 1;
        let outcomes = commit(&conn, &batch);
        let mut added = 0;
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            if let Ok(WriteOutcome::Changed(true) | WriteOutcome::Taken(Some(_))) = &outcome {
                shared.dirty.store(true, Ordering::Relaxed);
                if request.op.adds_rows() {
                    added += 1;
                }
            }
            // The caller may have given up waiting; the write stands either way.
            let _ = request.reply.send(outcome);
        }
        counters.after_writes(added, &conn, &shared);
    }
}

/// Runs `batch` as one transaction and returns each write's outcome, in order. Nothing is
/// returned as done unless it was committed.
fn commit(conn: &Connection, batch: &[WriteRequest]) -> Vec<Result<WriteOutcome, StoreError>> {
    if batch.len() == 1 {
        return batch.iter().map(|r| run_alone(conn, &r.op)).collect();
    }
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {}
        // The lock stayed taken for the whole busy timeout: every write waited as long as it
        // would have on its own.
        Err(e) if is_busy(&e) => {
            return batch.iter().map(|r| Err(locked(&r.op, &e))).collect();
        }
        Err(_) => return batch.iter().map(|r| run_alone(conn, &r.op)).collect(),
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        match request.op.execute(conn) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                tracing::debug!(error = %e, "sqlite store: a write failed inside a batch; running the batch's writes one by one");
                return retry_alone(conn, batch);
            }
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "sqlite store: committing a batch failed; running its writes one by one");
            retry_alone(conn, batch)
        }
    }
}

/// Rolls back the open batch (none of it was committed) and runs each write on its own.
fn retry_alone(conn: &Connection, batch: &[WriteRequest]) -> Vec<Result<WriteOutcome, StoreError>> {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "sqlite store: rolling back a failed batch failed");
        }
    }
    batch.iter().map(|r| run_alone(conn, &r.op)).collect()
}

/// One write as its own (autocommit) statement.
fn run_alone(conn: &Connection, op: &WriteOp) -> Result<WriteOutcome, StoreError> {
    op.execute(conn).map_err(|e| {
        if is_busy(&e) {
            locked(op, &e)
        } else {
            backend(op.name(), &e)
        }
    })
}

fn locked(op: &WriteOp, e: &rusqlite::Error) -> StoreError {
    StoreError::Backend(format!(
        "sqlite: {}: the database stayed locked for {BUSY_TIMEOUT:?}: {e}",
        op.name()
    ))
}

/// Counts commits and rows written, to sweep expired rows every [`SWEEP_EVERY_WRITES`] rows
/// and wake the checkpoint task (see [`CHECKPOINT_EVERY_COMMITS`]).
#[derive(Default)]
struct Counters {
    since_sweep: u64,
    commits_since_checkpoint: u64,
    rows_since_checkpoint: u64,
}

impl Counters {
    fn after_writes(&mut self, added: u64, conn: &Connection, shared: &Shared) {
        self.since_sweep += added;
        if added > 0 {
            self.commits_since_checkpoint += 1;
            self.rows_since_checkpoint += added;
        }
        if self.commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS
            || self.rows_since_checkpoint >= CHECKPOINT_EVERY_ROWS
        {
            self.commits_since_checkpoint = 0;
            self.rows_since_checkpoint = 0;
            shared.checkpoint_now.notify_one();
        }
        if self.since_sweep >= SWEEP_EVERY_WRITES {
            self.since_sweep = 0;
            // A failed sweep is only logged: the writes it follows have been committed.
            match conn
                .prepare_cached(SQL_SWEEP_SOME)
                .and_then(|mut stmt| stmt.execute(params![now_ms(), SWEEP_LIMIT]))
            {
                Ok(_) => {}
                Err(e) if is_busy(&e) => {}
                Err(e) => tracing::warn!(error = %e, "sqlite store: deleting expired rows failed"),
            }
        }
    }
}
