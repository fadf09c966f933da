//! [`UserDb`] on PostgreSQL (`postgres://...`), for deployments with several wxgate hosts or an
//! existing database the operators already back up and query.
//!
//! Why it is correct across instances: each write is one `INSERT ... ON CONFLICT DO UPDATE ...
//! WHERE` statement. PostgreSQL locks the conflicting row and, under READ COMMITTED, evaluates
//! the `WHERE` against the latest committed version of that row, so the "is this event newer?"
//! check and the write are atomic with respect to every other writer; concurrent first inserts
//! of the same openid resolve through the primary key into the same upsert. Whether a
//! conditional write happened comes from the statement's row count.
//!
//! `openid` has the "C" collation, so [`UserDb::list`] pages in byte order, exactly like the
//! SQLite backend and Rust's `str` ordering, whatever the database's default collation.
//!
//! Migrations are embedded in the binary and applied at connect in one transaction that first
//! takes a transaction-scoped advisory lock, so instances starting at once apply each migration
//! exactly once and the others wait, then find nothing to do. Connecting is bounded by
//! [`CONNECT_TIMEOUT`] and fails with the server's own reason (refused, unknown host, bad
//! password...). No message ever contains the URL's password.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

use super::{
    clamp_limit, now_secs, redact_url, scrub, user_columns, user_from_row, LoginProfile, Migration,
    UserDb, UserDbError, UserRecord,
};

/// Bound on establishing one connection (TCP, TLS, authentication), at start and in the pool.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per process.
const MAX_CONNECTIONS: u32 = 10;
/// Key of the advisory lock serialising migrations ("wxgate" in ASCII, then 1).
const MIGRATION_LOCK_KEY: i64 = 0x7778_6761_7465_0001;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "users",
    sql: include_str!("../../migrations/postgres/0001_users.sql"),
}];

const SQL_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS wxgate_schema_migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// Applies a follow event only when it is strictly newer than the last one applied. Exactly one
/// of `subscribed_at` ($4) / `unsubscribed_at` ($5) is non-null, so `COALESCE` updates the one
/// this event is about and keeps the other.
const SQL_RECORD_FOLLOW: &str = "INSERT INTO wxgate_users
        (openid, subscribed, subscribe_scene, subscribed_at, unsubscribed_at, follow_event_at,
         created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
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

const SQL_RECORD_LOGIN: &str = "INSERT INTO wxgate_users
        (openid, unionid, nickname, headimgurl, last_login_at, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)
    ON CONFLICT (openid) DO UPDATE SET
        unionid = COALESCE(excluded.unionid, wxgate_users.unionid),
        nickname = COALESCE(excluded.nickname, wxgate_users.nickname),
        headimgurl = COALESCE(excluded.headimgurl, wxgate_users.headimgurl),
        last_login_at = GREATEST(wxgate_users.last_login_at, excluded.last_login_at),
        updated_at = excluded.updated_at";

const SQL_GET: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users WHERE openid = $1"
);

const SQL_LIST_FIRST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users ORDER BY openid COLLATE \"C\" LIMIT $1"
);

const SQL_LIST_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users WHERE openid > $1 ORDER BY openid COLLATE \"C\" LIMIT $2"
);

/// PostgreSQL user database; see the module documentation.
#[derive(Debug, Clone)]
pub struct PostgresUserDb {
    pool: PgPool,
}

impl PostgresUserDb {
    /// Connects to `postgres://...` / `postgresql://...`, applies pending migrations on a first
    /// connection (so an unreachable server or bad credentials fail here, within
    /// [`CONNECT_TIMEOUT`]), then builds the pool.
    pub async fn connect(url: &str) -> Result<Self, UserDbError> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| UserDbError::InvalidUrl(scrub(format!("{shown:?}: {e}"), url)))?;
        // Statement logging would be at info level by default; keep queries out of the logs.
        let options = options.disable_statement_logging();

        let mut conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(UserDbError::Unavailable(scrub(
                        format!("postgres: connecting to {shown}: {e}"),
                        url,
                    )))
                }
                Err(_) => {
                    return Err(UserDbError::Unavailable(format!(
                        "postgres: connecting to {shown}: no answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )))
                }
            };
        migrate(&mut conn)
            .await
            .map_err(|e| UserDbError::Migration(scrub(format!("postgres: {e}"), url)))?;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "postgres user database: closing the setup connection failed");
        }

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PostgresUserDb { pool })
    }
}

/// Applies every migration not yet recorded, in one transaction holding the migration advisory
/// lock (released at commit or rollback). Returns a description of what failed.
fn migrate(conn: &mut PgConnection) -> BoxFuture<'_, Result<(), String>> {
    // Boxed so the future is checked `Send` here, with concrete lifetimes; callers can spawn
    // `connect` (rustc cannot prove it through sqlx's higher-ranked executor bounds otherwise).
    Box::pin(async move {
        let mut tx = conn.begin().await.map_err(|e| fail("beginning", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail("taking the migration lock", e))?;
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
                VALUES ($1, $2, $3)",
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
                "postgres user database: migration applied"
            );
        }
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(newer) = applied.iter().copied().filter(|v| *v > known).max() {
            tracing::warn!(
                schema_version = newer,
                known_version = known,
                "postgres user database: the schema is newer than this wxgate knows; continuing"
            );
        }
        tx.commit().await.map_err(|e| fail("committing", e))
    })
}

/// The description of a failed migration step.
fn fail(what: &str, e: sqlx::Error) -> String {
    format!("{what}: {e}")
}

/// The error for a failed query. sqlx errors carry the server's message, never bound values.
fn backend(what: &str, e: &sqlx::Error) -> UserDbError {
    UserDbError::Backend(format!("postgres: {what}: {e}"))
}

#[async_trait]
impl UserDb for PostgresUserDb {
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
