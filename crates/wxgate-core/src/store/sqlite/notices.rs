//! Notices on SQLite: a table every process of the host appends to, and one read per second by
//! each follower.
//!
//! SQLite has no server to push anything, so a notice is a row of `wxgate_notices` (written by
//! the group-committing writer like any other write), numbered by an `AUTOINCREMENT` sequence
//! that never reuses a number. A follower remembers the last number it saw and, once a second,
//! reads the rows after it — the "change counter read" that is its whole idle cost. Rows older
//! than [`KEEP_NOTICES`] are deleted by the writes that add new ones; a follower that finds the
//! rows it had not read yet already deleted (it was stopped for longer than that) is told
//! [`Notice::Missed`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension as _};

use super::{backend, connect, is_busy};
use crate::store::notices::{Notice, NoticeSender};
use crate::store::StoreError;

/// How often a follower reads the table.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a notice stays in the table.
pub(super) const KEEP_NOTICES: Duration = Duration::from_secs(600);
/// The most notices one read hands over; a full page is followed by another read at once.
const PAGE: i64 = 1000;

pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS wxgate_notices (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS wxgate_notices_at ON wxgate_notices (at_ms)",
];

/// Appends a notice (?1 message, ?2 now).
pub(super) const SQL_NOTIFY: &str = "INSERT INTO wxgate_notices (message, at_ms) VALUES (?1, ?2)";
/// Deletes the notices written before ?1.
pub(super) const SQL_PRUNE: &str = "DELETE FROM wxgate_notices WHERE at_ms < ?1";

const SQL_LAST: &str = "SELECT seq FROM sqlite_sequence WHERE name = 'wxgate_notices'";
const SQL_AFTER: &str =
    "SELECT seq, message FROM wxgate_notices WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// A follower's own read connection, positioned after the newest notice.
pub(super) struct Follower {
    conn: Connection,
    last: i64,
}

impl Follower {
    /// Opens the follower's connection (blocking) and notes the newest number handed out so
    /// far (from `sqlite_sequence`, so notices already pruned count too).
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path).map_err(|e| backend("opening a notice connection", &e))?;
        // A read that finds the file busy is simply tried again at the next poll.
        conn.busy_timeout(Duration::ZERO)
            .map_err(|e| backend("opening a notice connection", &e))?;
        let last = conn
            .query_row(SQL_LAST, [], |row| row.get::<_, i64>(0))
            .optional()
            .map_err(|e| backend("reading the notices", &e))?
            .unwrap_or(0);
        Ok(Follower { conn, last })
    }

    /// The notices written since the last read, and whether there may be more. Numbers are
    /// handed out in commit order and never reused (a rolled-back insert rolls its number back
    /// too), so a gap before the first row read means rows were pruned unread.
    fn read(&mut self) -> rusqlite::Result<(Vec<Notice>, bool)> {
        let start = self.last;
        let mut stmt = self.conn.prepare_cached(SQL_AFTER)?;
        let rows = stmt
            .query_map(params![start, PAGE], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len() + 1);
        if rows.first().is_some_and(|(first, _)| *first > start + 1) {
            out.push(Notice::Missed);
        }
        let full = rows.len() as i64 >= PAGE;
        for (seq, message) in rows {
            self.last = seq;
            out.push(Notice::Message(message));
        }
        Ok((out, full))
    }
}

/// Reads the table every [`POLL_EVERY`] into `tx` until the follower is gone.
pub(super) async fn follow(mut follower: Follower, mut tx: NoticeSender) {
    loop {
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        loop {
            match follower.read() {
                Ok((notices, more)) => {
                    // The rows stay in the table: wait for the follower rather than drop one
                    // (a dropped notice makes it re-read everything it holds).
                    for notice in notices {
                        if !tx.send_waiting(notice).await {
                            return;
                        }
                    }
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    // Nothing is lost: the rows stay for the next read.
                    if !is_busy(&e) {
                        tracing::warn!(error = %backend("reading the notices", &e), "cannot read store notices; trying again");
                    }
                    break;
                }
            }
        }
    }
}

/// Where a follower of the database at `path` opens its connection.
pub(super) async fn open_follower(path: PathBuf) -> Result<Follower, StoreError> {
    tokio::task::spawn_blocking(move || Follower::open(&path))
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite: opening a notice connection: {e}")))?
}
