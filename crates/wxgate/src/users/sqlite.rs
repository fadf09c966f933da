//! [`UserDb`] on an embedded SQLite file (`sqlite://PATH`), so a single-host deployment keeps its
//! user records without running a database server — possibly in the same file as the key-value
//! store (`wxgate_kv`), which this module never touches.
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

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

use super::{
    clamp_limit, now_secs, user_columns, user_from_row, LoginProfile, Migration, UserDb,
    UserDbError, UserRecord,
};
use crate::domain::sqlite_file_path;

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per process; SQLite serialises writers anyway, this mostly serves readers.
const MAX_CONNECTIONS: u32 = 8;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "users",
    sql: include_str!("../../migrations/sqlite/0001_users.sql"),
}];

const SQL_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS wxgate_schema_migrations (
    version INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)";

/// Applies a follow event only when it is strictly newer than the last one applied. Exactly one
/// of `subscribed_at` (?4) / `unsubscribed_at` (?5) is non-null, so `COALESCE` updates the one
/// this event is about and keeps the other.
const SQL_RECORD_FOLLOW: &str = "INSERT INTO wxgate_users
        (openid, subscribed, subscribe_scene, subscribed_at, unsubscribed_at, follow_event_at,
         created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
    ON CONFLICT (openid) DO UPDATE SET
        subscribed = excluded.subscribed,
        subscribe_scene = CASE WHEN excluded.subscribed
            THEN excluded.subscribe_scene ELSE wxgate_users.subscribe_scene END,
        subscribed_at = COALESCE(excluded.subscribed_at, wxgate_users.subscribed_at),
        unsubscribed_at = COALESCE(excluded.unsubscribed_at, wxgate_users.unsubscribed_at),
        follow_event_at = excluded.follow_event_at,
        updated_at = excluded.updated_at
    WHERE wxgate_users.follow_event_at IS NULL
        OR wxgate_users.follow_event_at < excluded.follow_event_at";

const SQL_GET: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users WHERE openid = ?1"
);

/// BINARY collation (the default for TEXT) compares the UTF-8 bytes.
const SQL_LIST_FIRST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users ORDER BY openid COLLATE BINARY LIMIT ?1"
);

const SQL_LIST_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users WHERE openid > ?1 ORDER BY openid COLLATE BINARY LIMIT ?2"
);

const SQL_RECORD_LOGIN: &str = "INSERT INTO wxgate_users
        (openid, unionid, nickname, headimgurl, last_login_at, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
    ON CONFLICT (openid) DO UPDATE SET
        unionid = COALESCE(excluded.unionid, wxgate_users.unionid),
        nickname = COALESCE(excluded.nickname, wxgate_users.nickname),
        headimgurl = COALESCE(excluded.headimgurl, wxgate_users.headimgurl),
        last_login_at = CASE
            WHEN wxgate_users.last_login_at IS NULL
                OR wxgate_users.last_login_at < excluded.last_login_at
            THEN excluded.last_login_at ELSE wxgate_users.last_login_at END,
        updated_at = excluded.updated_at";

/// SQLite-file user database; see the module documentation.
#[derive(Debug, Clone)]
pub struct SqliteUserDb {
    pool: SqlitePool,
}

impl SqliteUserDb {
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

        Ok(SqliteUserDb { pool })
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
        tx.execute(SQL_MIGRATIONS_TABLE)
            .await
            .map_err(|e| fail("creating wxgate_schema_migrations", e))?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM wxgate_schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| fail("reading applied migrations", e))?;
        for migration in MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            tx.execute(migration.sql)
                .await
                .map_err(|e| fail(&format!("applying {}", migration.version), e))?;
            sqlx::query(
                "INSERT INTO wxgate_schema_migrations (version, description, applied_at)
                VALUES (?1, ?2, ?3)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(now_secs())
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(&format!("recording {}", migration.version), e))?;
            tracing::info!(
                version = migration.version,
                description = migration.description,
                "sqlite user database: migration applied"
            );
        }
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(newer) = applied.iter().copied().filter(|v| *v > known).max() {
            tracing::warn!(
                schema_version = newer,
                known_version = known,
                "sqlite user database: the schema is newer than this wxgate knows; continuing"
            );
        }
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

/// The error for a failed query. sqlx errors carry SQLite's message, never bound parameters.
fn backend(what: &str, e: &sqlx::Error) -> UserDbError {
    UserDbError::Backend(format!("sqlite: {what}: {e}"))
}

#[async_trait]
impl UserDb for SqliteUserDb {
    async fn record_follow(
        &self,
        openid: &str,
        subscribed: bool,
        scene: Option<&str>,
        at: i64,
    ) -> Result<bool, UserDbError> {
        let (scene, subscribed_at, unsubscribed_at) = if subscribed {
            (scene, Some(at), None)
        } else {
            (None, None, Some(at))
        };
        let done = sqlx::query(SQL_RECORD_FOLLOW)
            .bind(openid)
            .bind(subscribed)
            .bind(scene)
            .bind(subscribed_at)
            .bind(unsubscribed_at)
            .bind(at)
            .bind(now_secs())
            .execute(&self.pool)
            .await
            .map_err(|e| backend("record_follow", &e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_login(&self, login: &LoginProfile, at: i64) -> Result<(), UserDbError> {
        sqlx::query(SQL_RECORD_LOGIN)
            .bind(&login.openid)
            .bind(&login.unionid)
            .bind(&login.nickname)
            .bind(&login.headimgurl)
            .bind(at)
            .bind(now_secs())
            .execute(&self.pool)
            .await
            .map_err(|e| backend("record_login", &e))?;
        Ok(())
    }

    async fn get(&self, openid: &str) -> Result<Option<UserRecord>, UserDbError> {
        let row = sqlx::query(SQL_GET)
            .bind(openid)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("get", &e))?;
        row.map(|row| user_from_row(&row))
            .transpose()
            .map_err(|e| backend("get", &e))
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, UserDbError> {
        let query = match after {
            Some(after) => sqlx::query(SQL_LIST_AFTER).bind(after),
            None => sqlx::query(SQL_LIST_FIRST),
        };
        let rows = query
            .bind(clamp_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("list", &e))?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| backend("list", &e))
    }

    async fn ping(&self) -> Result<(), UserDbError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| backend("ping", &e))?;
        Ok(())
    }
}
