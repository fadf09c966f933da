//! [`Store`] on PostgreSQL (`postgres://…` / `postgresql://…`), for teams that already run
//! PostgreSQL and no Redis: any number of wxgate instances, on any number of hosts, share one
//! table, `wxgate_store`.
//!
//! Why it is atomic per key across processes: every primitive is ONE statement. Conditional
//! writes are `INSERT … ON CONFLICT (key) DO UPDATE … WHERE <condition>`: PostgreSQL either
//! inserts or locks the conflicting row and, under READ COMMITTED, evaluates the `WHERE` against
//! the latest committed version of that row, so the check and the write cannot interleave with
//! another writer's; concurrent first inserts of one key resolve through the primary key into
//! the same upsert. `take` is `DELETE … RETURNING` (a second taker waits for the row lock, then
//! finds the row gone). Whether a conditional write happened is the statement's row count.
//!
//! Expiry is measured by the database's clock, never the hosts': a row's `expires_at` is
//! `clock_timestamp() + ttl`, and every statement treats a row whose `expires_at` has passed
//! (by `clock_timestamp()` again) exactly like a missing row — `put_if_absent` and
//! `put_if_newer` overwrite it, `get`, `take`, `delete_if_equals` and `extend_if_equals` ignore
//! it. So the hosts' clocks may drift without changing who holds a lease. Expired rows are
//! deleted in the background: a task started at connect runs a round every
//! [`PostgresStoreOptions::sweep_every`] (60 s by default), deleting batches of
//! [`PostgresStore::SWEEP_BATCH`] rows (found through the index on `expires_at`, skipping rows
//! another instance is sweeping) until none is left or [`PostgresStore::SWEEP_MAX_BATCHES`]
//! batches have run; it stops, and closes the pool, when the store is dropped.
//!
//! Values are `BYTEA` (exactly the bytes written, NULs included); keys get `key_prefix`
//! prepended, so several deployments can share one table. `get_many` is one `SELECT … WHERE key
//! = ANY($1)`.
//!
//! Notices are `pg_notify` on a channel named after the table's schema and the key prefix
//! (`wxgate_notices_` and 16 hex digits of their SHA-256: channels are per database and at
//! most 63 bytes long). Each follower listens on a connection of its own (`sqlx`'s
//! `PgListener`, in a pool of one kept apart from the store's), which its task re-establishes
//! whenever it is lost — at once, then every [`RELISTEN_PAUSE`] while the server is away —
//! telling the follower [`Notice::Missed`] once it listens again.
//!
//! The table and its index are created at connect when missing, under a transaction-scoped
//! advisory lock, so instances starting at once create them exactly once. Connecting is bounded
//! by [`crate::pg::CONNECT_TIMEOUT`]; the pool holds at most
//! [`PostgresStoreOptions::max_connections`] connections (8 by default).
//! Errors never include stored values, nor the URL's password.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool};
use sqlx::{Connection as _, Row as _};
use tokio::sync::{mpsc, oneshot};

use super::notices::{self, Notice, NoticeSender};
use super::{Store, StoreError};
use crate::pg;

/// Longest TTL stored (about 100 years); longer ones are clamped.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Key of the advisory lock serialising the table's creation ("wxgate" in ASCII, then 2).
const SETUP_LOCK_KEY: i64 = 0x7778_6761_7465_0002;
/// Pause between two attempts to listen again while the server cannot be reached.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

const SCHEMA: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS wxgate_store (
        key TEXT COLLATE "C" PRIMARY KEY,
        value BYTEA NOT NULL,
        version BIGINT NOT NULL,
        expires_at TIMESTAMPTZ
    )"#,
    "CREATE INDEX IF NOT EXISTS wxgate_store_expires_at ON wxgate_store (expires_at)
        WHERE expires_at IS NOT NULL",
];

/// A row is live while this holds (`wxgate_store.` spelled out: inside an upsert `excluded`
/// has the same columns).
macro_rules! live {
    () => {
        "(wxgate_store.expires_at IS NULL OR wxgate_store.expires_at > clock_timestamp())"
    };
}

/// `$1` key, `$2` value, `$3` version, `$4` TTL in microseconds or NULL for none.
macro_rules! upsert {
    () => {
        "INSERT INTO wxgate_store (key, value, version, expires_at)
        VALUES ($1, $2, $3, clock_timestamp() + $4::float8 * interval '1 microsecond')
        ON CONFLICT (key) DO UPDATE SET
            value = excluded.value, version = excluded.version, expires_at = excluded.expires_at"
    };
}

const SQL_GET: &str = concat!(
    "SELECT value FROM wxgate_store WHERE key = $1 AND ",
    live!()
);
/// `$1` the keys, as an array.
const SQL_GET_MANY: &str = concat!(
    "SELECT key, value FROM wxgate_store WHERE key = ANY($1) AND ",
    live!()
);
const SQL_PUT: &str = upsert!();
/// Overwrites only an expired row; a live row makes the upsert a no-op (0 rows).
const SQL_PUT_IF_ABSENT: &str = concat!(upsert!(), " WHERE NOT ", live!());
/// Overwrites an expired row or a live row with a strictly lower version.
const SQL_PUT_IF_NEWER: &str = concat!(
    upsert!(),
    " WHERE NOT ",
    live!(),
    " OR wxgate_store.version < excluded.version"
);
const SQL_TAKE: &str = concat!(
    "DELETE FROM wxgate_store WHERE key = $1 AND ",
    live!(),
    " RETURNING value"
);
const SQL_DELETE_IF_EQUALS: &str = concat!(
    "DELETE FROM wxgate_store WHERE key = $1 AND value = $2 AND ",
    live!()
);
/// `$3` the new TTL in microseconds.
const SQL_EXTEND_IF_EQUALS: &str = concat!(
    "UPDATE wxgate_store
    SET expires_at = clock_timestamp() + $3::float8 * interval '1 microsecond'
    WHERE key = $1 AND value = $2 AND ",
    live!()
);
const SQL_DELETE: &str = "DELETE FROM wxgate_store WHERE key = $1";

/// At most `$1` expired rows. `now()` (stable, unlike `clock_timestamp()`) lets the planner use
/// the index; rows another sweeper holds are skipped; the outer condition is checked again on
/// the row's latest version, so a row revived meanwhile (`put_if_absent` over an expired row)
/// is never deleted.
const SQL_SWEEP: &str = "DELETE FROM wxgate_store WHERE key IN (
        SELECT key FROM wxgate_store
        WHERE expires_at IS NOT NULL AND expires_at <= now()
        LIMIT $1 FOR UPDATE SKIP LOCKED)
    AND expires_at IS NOT NULL AND expires_at <= now()";

/// How a [`PostgresStore`] is run.
#[derive(Debug, Clone)]
pub struct PostgresStoreOptions {
    /// Connections in the pool (default 8; each call holds one for one statement).
    pub max_connections: u32,
    /// Time between two rounds of deleting expired rows (default 60 s).
    pub sweep_every: Duration,
}

impl Default for PostgresStoreOptions {
    fn default() -> Self {
        PostgresStoreOptions {
            max_connections: 8,
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// PostgreSQL-backed store; see the module documentation.
pub struct PostgresStore {
    pool: PgPool,
    /// For the followers' own connections.
    connect: PgConnectOptions,
    key_prefix: String,
    /// The notice channel (see the module documentation).
    channel: String,
    /// Dropping it stops the sweeping task.
    _stop_sweeping: oneshot::Sender<()>,
}

impl PostgresStore {
    /// The most expired rows one sweep statement deletes.
    pub const SWEEP_BATCH: i64 = 1000;
    /// The most sweep statements in one round; what is left waits for the next round.
    pub const SWEEP_MAX_BATCHES: usize = 100;

    /// Connects with the default [`PostgresStoreOptions`]; see [`PostgresStore::connect_with`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, key_prefix, PostgresStoreOptions::default()).await
    }

    /// Connects to `url` (checking the server on a first connection, within
    /// [`crate::pg::CONNECT_TIMEOUT`]), creates the table when missing, then starts the
    /// sweeping task (so it must be called within a Tokio runtime).
    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        options: PostgresStoreOptions,
    ) -> Result<Self, StoreError> {
        let connect = pg::options(url).map_err(StoreError::InvalidUrl)?;
        let mut conn = pg::connect_once(&connect, url)
            .await
            .map_err(StoreError::Backend)?;
        let schema = set_up(&mut conn).await.map_err(|e| {
            StoreError::Backend(crate::scrub::scrub(
                format!("postgres: creating the store's table: {e}"),
                url,
            ))
        })?;
        pg::close(conn, "postgres store").await;

        let pool = pg::pool(connect.clone(), options.max_connections.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(sweep_until_stopped(
            pool.clone(),
            options.sweep_every,
            stop_rx,
        ));
        Ok(PostgresStore {
            pool,
            connect,
            key_prefix: key_prefix.to_owned(),
            channel: notice_channel(&schema, key_prefix),
            _stop_sweeping: stop_tx,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Runs one of the upserts; returns whether it wrote.
    async fn upsert(
        &self,
        what: &str,
        sql: &'static str,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(self.key(key))
            .bind(value)
            .bind(version)
            .bind(ttl.map(ttl_us))
            .execute(&self.pool)
            .await
            .map_err(|e| backend(what, &e))?;
        Ok(done.rows_affected() > 0)
    }
}

/// Creates the table and its index when missing, and returns the name of the table's schema. A
/// table already there is left alone without taking the lock (nor needing the right to
/// create); otherwise the creation runs in one transaction holding the setup advisory lock, so
/// concurrent instances never collide.
fn set_up(conn: &mut PgConnection) -> BoxFuture<'_, Result<String, sqlx::Error>> {
    // Boxed so the future is checked `Send` here, with concrete lifetimes (rustc cannot prove it
    // through sqlx's higher-ranked executor bounds otherwise).
    Box::pin(async move {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('wxgate_store') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SETUP_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            for statement in SCHEMA {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = 'wxgate_store'::regclass",
        )
        .fetch_one(&mut *conn)
        .await
    })
}

/// The notice channel of the table in `schema` under `key_prefix`.
fn notice_channel(schema: &str, key_prefix: &str) -> String {
    let digest = Sha256::digest(format!("{schema}\0{key_prefix}"));
    format!("wxgate_notices_{}", hex::encode(&digest[..8]))
}

/// A connection listening on `channel`, in a pool of one of its own (which `PgListener` uses to
/// reconnect), within [`crate::pg::CONNECT_TIMEOUT`].
async fn listening(connect: &PgConnectOptions, channel: &str) -> Result<PgListener, StoreError> {
    let opening = async {
        let mut listener = PgListener::connect_with(&pg::pool(connect.clone(), 1)).await?;
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(pg::CONNECT_TIMEOUT, opening).await {
        Ok(Ok(listener)) => Ok(listener),
        Ok(Err(e)) => Err(backend("subscribe", &e)),
        Err(_) => Err(StoreError::Backend(format!(
            "postgres: subscribe: no connection within {} s",
            pg::CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Feeds `tx` from `listener` until the follower is gone. A lost connection is re-established
/// (by `PgListener` itself, or here with a new listener after any other failure); once it
/// listens again, the follower is told that notices may have been missed.
async fn follow(
    mut listener: PgListener,
    connect: PgConnectOptions,
    channel: String,
    mut tx: NoticeSender,
) {
    loop {
        let received = tokio::select! {
            () = tx.closed() => return,
            received = listener.try_recv() => received,
        };
        let notice = match received {
            Ok(Some(notification)) => Notice::Message(notification.payload().to_owned()),
            // Lost, and already listening again on a new connection.
            Ok(None) => Notice::Missed,
            Err(e) => {
                tracing::warn!(error = %e, "the store's notice connection failed; reconnecting");
                drop(listener);
                listener = loop {
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(RELISTEN_PAUSE) => {}
                    }
                    match listening(&connect, &channel).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot follow store notices; retrying")
                        }
                    }
                };
                Notice::Missed
            }
        };
        if !tx.send(notice) {
            return;
        }
    }
}

/// Deletes expired rows every `every` (the first round one period after connecting) until `stop`
/// fires or its sender is dropped with the store; then closes the pool's connections.
async fn sweep_until_stopped(pool: PgPool, every: Duration, mut stop: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = &mut stop => break,
            outcome = sweep(&pool) => match outcome {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "postgres store: expired rows deleted"),
                Err(e) => tracing::warn!(error = %e, "postgres store: deleting expired rows failed"),
            },
        }
    }
    pool.close().await;
}

/// One round: batches of at most [`PostgresStore::SWEEP_BATCH`] rows until a batch finds fewer,
/// at most [`PostgresStore::SWEEP_MAX_BATCHES`] batches. Returns how many rows it deleted.
async fn sweep(pool: &PgPool) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for _ in 0..PostgresStore::SWEEP_MAX_BATCHES {
        let batch = sqlx::query(SQL_SWEEP)
            .bind(PostgresStore::SWEEP_BATCH)
            .execute(pool)
            .await
            .map_err(|e| backend("sweep", &e))?
            .rows_affected();
        deleted += batch;
        if batch < PostgresStore::SWEEP_BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(deleted)
}

/// TTL in whole microseconds, rounded up, at most [`MAX_TTL`].
fn ttl_us(ttl: Duration) -> i64 {
    let ttl = ttl.min(MAX_TTL);
    let mut us = ttl.as_micros();
    if ttl.subsec_nanos() % 1000 != 0 {
        us += 1;
    }
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// Builds the error for a failed statement. sqlx's errors describe the failure (connection
/// lost, pool timed out, the server's message), never the bound values.
fn backend(what: &str, e: &sqlx::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {what}: {e}"))
}

#[async_trait]
impl Store for PostgresStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(SQL_GET)
            .bind(self.key(key))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("get", &e))?;
        row.map(|r| r.try_get(0).map_err(|e| backend("get", &e)))
            .transpose()
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.upsert("put", SQL_PUT, key, value, i64::MIN, ttl)
            .await
            .map(drop)
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.upsert(
            "put_if_absent",
            SQL_PUT_IF_ABSENT,
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
        self.upsert("put_if_newer", SQL_PUT_IF_NEWER, key, value, version, ttl)
            .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(SQL_TAKE)
            .bind(self.key(key))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("take", &e))?;
        row.map(|r| r.try_get(0).map_err(|e| backend("take", &e)))
            .transpose()
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query(SQL_DELETE_IF_EQUALS)
            .bind(self.key(key))
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("delete_if_equals", &e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(SQL_EXTEND_IF_EQUALS)
            .bind(self.key(key))
            .bind(expected)
            .bind(ttl_us(ttl))
            .execute(&self.pool)
            .await
            .map_err(|e| backend("extend_if_equals", &e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query(SQL_DELETE)
            .bind(self.key(key))
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| backend("delete", &e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| backend("ping", &e))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let prefixed: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let rows = sqlx::query(SQL_GET_MANY)
            .bind(&prefixed)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("get_many", &e))?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0).map_err(|e| backend("get_many", &e))?;
            let value: Vec<u8> = row.try_get(1).map_err(|e| backend("get_many", &e))?;
            found.insert(key, value);
        }
        Ok(prefixed.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn notify(&self, message: &str) -> Result<(), StoreError> {
        notices::check_len(message)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(message)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| backend("notify", &e))
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Notice>, StoreError> {
        // Listening starts here, so the follower receives every notice sent after this
        // returns, and an unreachable server is reported to the caller.
        let listener = listening(&self.connect, &self.channel).await?;
        let (tx, rx) = notices::queue();
        tokio::spawn(follow(
            listener,
            self.connect.clone(),
            self.channel.clone(),
            tx,
        ));
        Ok(rx)
    }
}
