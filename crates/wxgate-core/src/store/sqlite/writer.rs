//! Group commit: the writes of a process that wait while a transaction runs are committed
//! together, as one transaction, by whichever of their callers finds the write connection free.
//!
//! Why: in WAL mode each commit appends every page it touched to the log and takes and releases
//! SQLite's file locks, and the callers of a one-statement-per-commit store queued on the
//! connection: under a push burst (one de-duplication record per message) the store capped at
//! about 16 000 writes/s. Batched, many rows share each page written to the log and the lock
//! round happens once per batch.
//!
//! Why no writer thread: on a small machine a dedicated thread has to wait for a core after
//! every wake-up, and the requests queued behind it form convoys that leave the cores idle.
//! Here a caller queues its write, first lets the other tasks that are ready on its worker run
//! (those about to write join the queue), and then, if no other caller is committing, commits
//! the whole queue itself on its own worker thread (the commit is microseconds per row, and
//! nothing in it sleeps); callers that find a commit running wait for their outcome, and the
//! one finishing a commit hands the connection to a waiting caller when more writes have queued
//! meanwhile. Nothing is sent twice and no outcome is reported before its batch has committed.
//!
//! Why it is still atomic across processes: a batch starts with `BEGIN IMMEDIATE`, which takes
//! the database's write lock before reading anything, so every statement of the batch sees the
//! latest committed state of every process, and no other process can write until the batch
//! commits. Each write is the same single conditional statement as before (an upsert whose
//! `DO UPDATE ... WHERE` encodes the condition, a `DELETE ... RETURNING`); within the batch
//! they run one after the other, so each sees the ones before it, exactly as if they had been
//! committed one by one.
//!
//! When a statement fails inside a batch, or the commit fails, the batch is rolled back (nothing
//! of it was committed) and its writes are run again one by one, so one failing write never
//! takes the others down with it.
//!
//! Waiting for the lock: the connection's busy timeout is zero, so SQLite never sleeps on a
//! worker thread. When another process (or the checkpoint task) holds the lock, the batch goes
//! back to the front of the queue and the committing caller retries after an asynchronous
//! back-off (an immediate yield, then 1 ms doubling up to 50 ms); a write still not committed
//! [`BUSY_TIMEOUT`] after it was queued fails. Waiting callers also try to commit every few
//! milliseconds, so the queue moves on even if the caller that was committing is cancelled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::{oneshot, Notify};

use super::{
    backend, expires_at, is_busy, notices, value_column, Shared, BUSY_TIMEOUT, RETRY_FIRST_DELAY,
    RETRY_MAX_DELAY, SQL_DELETE, SQL_DELETE_IF_EQUALS, SQL_EXTEND_IF_EQUALS, SQL_PUT,
    SQL_PUT_IF_ABSENT, SQL_PUT_IF_NEWER, SQL_SWEEP_SOME, SQL_TAKE, SWEEP_LIMIT,
};
use crate::domain::{lock, unix_now_ms as now_ms};
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
/// How often a caller waiting for its outcome checks whether the queue needs someone to commit
/// it (normally the caller finishing a commit hands over at once; this covers a committing
/// caller that was cancelled while backing off).
const WAITER_POLL: Duration = Duration::from_millis(2);

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
    ExtendIfEquals {
        key: String,
        expected: Vec<u8>,
        ttl: Duration,
    },
    Delete {
        key: String,
    },
    /// Appends a notice (and deletes those older than `notices::KEEP_NOTICES`).
    Notify {
        message: String,
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
            WriteOp::ExtendIfEquals { .. } => "extend_if_equals",
            WriteOp::Delete { .. } => "delete",
            WriteOp::Notify { .. } => "notify",
        }
    }

    /// Whether a change by this write adds a row (counted for sweeps and checkpoints) rather
    /// than only removing one.
    fn adds_rows(&self) -> bool {
        matches!(
            self,
            WriteOp::Put { .. }
                | WriteOp::PutIfAbsent { .. }
                | WriteOp::PutIfNewer { .. }
                | WriteOp::Notify { .. }
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
            WriteOp::ExtendIfEquals { key, expected, ttl } => conn
                .prepare_cached(SQL_EXTEND_IF_EQUALS)?
                .execute(params![key, expected, expires_at(now, Some(*ttl)), now])?,
            WriteOp::Delete { key } => conn.prepare_cached(SQL_DELETE)?.execute(params![key])?,
            WriteOp::Notify { message } => {
                let keep_ms = i64::try_from(notices::KEEP_NOTICES.as_millis()).unwrap_or(i64::MAX);
                conn.prepare_cached(notices::SQL_PRUNE)?
                    .execute(params![now.saturating_sub(keep_ms)])?;
                conn.prepare_cached(notices::SQL_NOTIFY)?
                    .execute(params![message, now])?
            }
        };
        Ok(WriteOutcome::Changed(changed > 0))
    }
}

/// A queued write and where its outcome goes.
struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
    /// When the write gives up waiting for the database lock.
    deadline: Instant,
}

/// The write connection and its bookkeeping; only the caller committing holds it.
struct WriteConn {
    conn: Connection,
    counters: Counters,
}

/// The write side of the store: the queue of writes and the connection that commits them.
pub(super) struct Writer {
    conn: Mutex<WriteConn>,
    queue: Mutex<VecDeque<WriteRequest>>,
    /// Woken when a commit ends with writes still queued, so one waiting caller commits them.
    next_committer: Notify,
    shared: Arc<Shared>,
}

/// How one attempt to commit the queue went.
enum Attempt {
    /// The queue was committed (or was empty).
    Done,
    /// Another connection held the database lock; the writes are back in the queue.
    Locked,
}

impl Writer {
    /// `conn` must have a zero busy timeout: it is used on async worker threads.
    pub(super) fn new(conn: Connection, shared: Arc<Shared>) -> Writer {
        Writer {
            conn: Mutex::new(WriteConn {
                conn,
                counters: Counters::default(),
            }),
            queue: Mutex::new(VecDeque::new()),
            next_committer: Notify::new(),
            shared,
        }
    }

    /// Queues `op` and returns its outcome once the batch holding it has committed. A caller
    /// that stops waiting does not take its write back: it is committed with the batch it is
    /// in — or, if every caller waiting on the queue gave up while another process held the
    /// lock, with the next write of this process.
    pub(super) async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, mut outcome) = oneshot::channel();
        lock(&self.queue).push_back(WriteRequest {
            op,
            reply,
            deadline: Instant::now() + BUSY_TIMEOUT,
        });
        // Let the other tasks that are ready on this worker run first: those about to write
        // join the queue, and one commit takes them all.
        tokio::task::yield_now().await;
        let mut delay = None::<Duration>;
        loop {
            let attempt = self.try_commit();
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if let Some(Attempt::Locked) = attempt {
                // Another connection holds the lock, usually for microseconds: first just let
                // other tasks run, then sleep, doubling, and try again.
                match delay {
                    None => {
                        tokio::task::yield_now().await;
                        delay = Some(RETRY_FIRST_DELAY);
                    }
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        delay = Some((d * 2).min(RETRY_MAX_DELAY));
                    }
                }
                continue;
            }
            delay = None;
            tokio::select! {
                result = &mut outcome => return result.unwrap_or_else(|_| Err(lost())),
                () = self.next_committer.notified() => {}
                () = tokio::time::sleep(WAITER_POLL) => {}
            }
        }
    }

    /// Commits the queue unless another caller is committing (`None`). Synchronous: the
    /// connection is never held across an `.await`.
    fn try_commit(&self) -> Option<Attempt> {
        let mut guard = match self.conn.try_lock() {
            Ok(guard) => guard,
            // A panic while committing cannot leave the connection half-used: statements are
            // reset when dropped, and an open transaction is rolled back below.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let wc = &mut *guard;
        if !wc.conn.is_autocommit() {
            let _ = wc.conn.execute_batch("ROLLBACK");
        }
        let batch: Vec<WriteRequest> = {
            let mut queue = lock(&self.queue);
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect()
        };
        if batch.is_empty() {
            return Some(Attempt::Done);
        }
        let (done, locked) = commit(&wc.conn, batch);
        let mut added = 0;
        for (request, outcome) in done {
            if let Ok(WriteOutcome::Changed(true) | WriteOutcome::Taken(Some(_))) = &outcome {
                self.shared
                    .dirty
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if request.op.adds_rows() {
                    added += 1;
                }
            }
            // The caller may have stopped waiting; the write stands either way.
            let _ = request.reply.send(outcome);
        }
        wc.counters.after_writes(added, &wc.conn, &self.shared);
        let attempt = if locked.is_empty() {
            Attempt::Done
        } else {
            self.requeue(locked);
            Attempt::Locked
        };
        drop(guard);
        if !lock(&self.queue).is_empty() {
            self.next_committer.notify_one();
        }
        Some(attempt)
    }

    /// Puts writes that found the database locked back at the front of the queue, in their
    /// order, failing those that have waited [`BUSY_TIMEOUT`].
    fn requeue(&self, locked: Vec<WriteRequest>) {
        let now = Instant::now();
        let mut queue = lock(&self.queue);
        for request in locked.into_iter().rev() {
            if now >= request.deadline {
                let name = request.op.name();
                let _ = request.reply.send(Err(StoreError::Backend(format!(
                    "sqlite: {name}: the database stayed locked for {BUSY_TIMEOUT:?}"
                ))));
            } else {
                queue.push_front(request);
            }
        }
    }
}

fn lost() -> StoreError {
    StoreError::Backend("sqlite: the write was dropped before it was committed".to_owned())
}

/// Outcomes of the writes that ran, and the writes that found the database locked (nothing of
/// them happened).
type Committed = (
    Vec<(WriteRequest, Result<WriteOutcome, StoreError>)>,
    Vec<WriteRequest>,
);

/// Runs `batch` as one transaction. Nothing is reported done unless it was committed.
fn commit(conn: &Connection, batch: Vec<WriteRequest>) -> Committed {
    if batch.len() == 1 {
        return run_alone(conn, batch);
    }
    match run_cached(conn, "BEGIN IMMEDIATE") {
        Ok(()) => {}
        Err(e) if is_busy(&e) => return (Vec::new(), batch),
        Err(_) => return run_alone(conn, batch),
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in &batch {
        match request.op.execute(conn) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                tracing::debug!(error = %e, "sqlite store: a write failed inside a batch; running the batch's writes one by one");
                return retry_alone(conn, batch);
            }
        }
    }
    match run_cached(conn, "COMMIT") {
        Ok(()) => (
            batch
                .into_iter()
                .zip(outcomes)
                .map(|(r, o)| (r, Ok(o)))
                .collect(),
            Vec::new(),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "sqlite store: committing a batch failed; running its writes one by one");
            retry_alone(conn, batch)
        }
    }
}

/// Runs a statement without parameters from the connection's statement cache: a batch's
/// `BEGIN IMMEDIATE` and `COMMIT` are then parsed once per connection, not once per batch.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls back the open batch (none of it was committed) and runs each write on its own.
fn retry_alone(conn: &Connection, batch: Vec<WriteRequest>) -> Committed {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "sqlite store: rolling back a failed batch failed");
        }
    }
    run_alone(conn, batch)
}

/// Each write as its own (autocommit) statement.
fn run_alone(conn: &Connection, batch: Vec<WriteRequest>) -> Committed {
    let mut done = Vec::with_capacity(batch.len());
    let mut locked = Vec::new();
    for request in batch {
        match request.op.execute(conn) {
            Ok(outcome) => done.push((request, Ok(outcome))),
            Err(e) if is_busy(&e) => locked.push(request),
            Err(e) => {
                let error = backend(request.op.name(), &e);
                done.push((request, Err(error)));
            }
        }
    }
    (done, locked)
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
