//! WAL checkpoints off the request path. SQLite's automatic checkpoint would run inside the
//! commit of whichever write crosses the threshold and fsync twice there, stalling every write
//! queued behind it. Instead a task with its own connection runs `PRAGMA
//! wal_checkpoint(RESTART)` on a blocking thread whenever the writer has committed enough to
//! the log (see `writer::CHECKPOINT_EVERY_COMMITS`), and [`CHECKPOINT_INTERVAL`] after any
//! write. RESTART takes the
//! write lock for its duration (its connection polls for the lock every 100 µs: SQLite's default
//! busy handler sleeps ever longer and keeps missing the short gaps between batches), so a
//! steady stream of writes cannot starve it, and the next write starts the log over from the
//! beginning, which keeps its size bounded; the writer meanwhile just waits for the lock. The
//! automatic checkpoint stays enabled on the write connection only as a backstop at a high
//! threshold (`AUTOCHECKPOINT_BACKSTOP_PAGES`), should this task fall behind.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{backend, connect, is_busy, Shared};
use crate::store::StoreError;

/// The task also checkpoints this long after a write, when the write count alone would not
/// trigger it.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often, and how many times, the checkpointer tries again to take the write lock (or to
/// find no reader on an older snapshot) before giving up until the next round (about 200 ms).
const CHECKPOINT_BUSY_POLL: Duration = Duration::from_micros(100);
const CHECKPOINT_BUSY_TRIES: i32 = 2000;

/// Opens the checkpoint task's connection. Blocking.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = connect(path).map_err(|e| backend("opening the checkpoint connection", &e))?;
    conn.busy_handler(Some(checkpoint_busy))
        .map_err(|e| backend("opening the checkpoint connection", &e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| backend("setting synchronous=NORMAL", &e))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| backend("setting wal_autocheckpoint", &e))?;
    Ok(conn)
}

/// Checkpoints the WAL on a blocking thread whenever the writer asks for it or
/// [`CHECKPOINT_INTERVAL`] has passed after a write; ends when the store is dropped.
pub(super) async fn run(
    mut conn: Connection,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Closing a connection to the file may checkpoint it (with fsyncs): not on a
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
