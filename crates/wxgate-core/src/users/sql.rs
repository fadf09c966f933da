//! The user queries and the migration runner, written once for every backend: [`SqlUserDb`]
//! implements [`UserDb`] over any sqlx database that is a [`Dialect`]; the backend modules only
//! open their database, take their migration lock, and say what differs ([`Dialect`]).
//!
//! What the shared statements guarantee (each backend module says why they are atomic there):
//! - every write is ONE `INSERT ... ON CONFLICT DO UPDATE` statement, conditional where the
//!   trait asks (a follow event only when strictly newer, compared inside the statement), and
//!   whether a conditional write happened comes from the statement's row count;
//! - a login keeps stored values for fields it does not carry and never moves
//!   `last_login_at` backwards (the `CASE` is `GREATEST` ignoring NULL, on both backends);
//! - [`UserDb::list`] pages in byte order of the openid, with the collation the dialect names;
//! - placeholders are `$N`, which PostgreSQL and SQLite both read by number;
//! - error messages carry the backend's name and message, never bound values.

use std::fmt;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Postgres, Row, Sqlite,
    Type,
};

use super::{
    clamp_limit, now_secs, AccountUser, LoginProfile, Migration, UserDb, UserDbError, UserRecord,
    MAX_LIST_LIMIT,
};

/// The columns [`user_from_row`] reads, as a literal for `concat!` in `SELECT` statements.
macro_rules! user_columns {
    () => {
        "openid, unionid, nickname, headimgurl, subscribed, subscribe_scene, subscribed_at, \
        unsubscribed_at, last_login_at, created_at, updated_at"
    };
}

/// Maps a row selected with [`user_columns!`], on any backend.
fn user_from_row<'r, R>(row: &'r R) -> Result<UserRecord, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(UserRecord {
        openid: row.try_get("openid")?,
        unionid: row.try_get("unionid")?,
        nickname: row.try_get("nickname")?,
        headimgurl: row.try_get("headimgurl")?,
        subscribed: row.try_get("subscribed")?,
        subscribe_scene: row.try_get("subscribe_scene")?,
        subscribed_at: row.try_get("subscribed_at")?,
        unsubscribed_at: row.try_get("unsubscribed_at")?,
        last_login_at: row.try_get("last_login_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What differs between the backends' SQL.
pub trait Dialect: Database {
    /// The backend's short name, first word of its error messages.
    const LABEL: &'static str;
    /// The collation that orders `openid` by its bytes.
    const BYTE_ORDER: &'static str;
    /// The backend's 64-bit integer column type.
    const INTEGER: &'static str;
    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

impl Dialect for Sqlite {
    const LABEL: &'static str = "sqlite";
    /// BINARY (the default for TEXT) compares the UTF-8 bytes.
    const BYTE_ORDER: &'static str = "BINARY";
    const INTEGER: &'static str = "INTEGER";
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Dialect for Postgres {
    const LABEL: &'static str = "postgres";
    /// `openid` has this collation already (see the migration); naming it keeps the order
    /// whatever the database's default.
    const BYTE_ORDER: &'static str = "\"C\"";
    const INTEGER: &'static str = "BIGINT";
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Applies a follow event only when it is strictly newer than the last one applied. Exactly one
/// of `subscribed_at` ($4) / `unsubscribed_at` ($5) is non-null, so `COALESCE` updates the one
/// this event is about and keeps the other.
const SQL_RECORD_FOLLOW: &str = "INSERT INTO wxgate_users
        (account, openid, subscribed, subscribe_scene, subscribed_at, unsubscribed_at,
         follow_event_at, created_at, updated_at)
    VALUES ($8, $1, $2, $3, $4, $5, $6, $7, $7)
    ON CONFLICT (account, openid) DO UPDATE SET
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
        (account, openid, unionid, nickname, headimgurl, last_login_at, created_at, updated_at)
    VALUES ($7, $1, $2, $3, $4, $5, $6, $6)
    ON CONFLICT (account, openid) DO UPDATE SET
        unionid = COALESCE(excluded.unionid, wxgate_users.unionid),
        nickname = COALESCE(excluded.nickname, wxgate_users.nickname),
        headimgurl = COALESCE(excluded.headimgurl, wxgate_users.headimgurl),
        last_login_at = CASE
            WHEN wxgate_users.last_login_at IS NULL
                OR wxgate_users.last_login_at < excluded.last_login_at
            THEN excluded.last_login_at ELSE wxgate_users.last_login_at END,
        updated_at = excluded.updated_at";

const SQL_RESTORE: &str = "INSERT INTO wxgate_users
        (account, openid, unionid, nickname, headimgurl, subscribed, subscribe_scene,
         subscribed_at, unsubscribed_at, follow_event_at, last_login_at, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (account, openid) DO NOTHING";

const SQL_GET: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM wxgate_users WHERE openid = $1 AND account = $2"
);

const SQL_RECORD_MIGRATION: &str =
    "INSERT INTO wxgate_schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)";

/// A user database on one sqlx backend, seen as the users of one account (see
/// [`UserDb::for_account`]); see the module documentation.
pub struct SqlUserDb<DB: Database> {
    pool: Pool<DB>,
    /// The account whose users this handle reads and writes (`""`: rows from before users
    /// belonged to accounts).
    account: String,
    /// The first page, in byte order.
    list_first: String,
    /// A page after an openid, in byte order.
    list_after: String,
    /// Every account's record of a unionid, by account in byte order.
    by_unionid: String,
}

impl<DB: Dialect> SqlUserDb<DB> {
    /// Serves the (already migrated) database behind `pool`.
    pub(super) fn new(pool: Pool<DB>) -> Self {
        let list = |filter: &str, limit: &str| {
            format!(
                "SELECT {} FROM wxgate_users WHERE account = $1 {filter}ORDER BY openid COLLATE {} LIMIT {limit}",
                user_columns!(),
                DB::BYTE_ORDER
            )
        };
        SqlUserDb {
            pool,
            account: String::new(),
            list_first: list("", "$2"),
            list_after: list("AND openid > $2 ", "$3"),
            by_unionid: format!(
                "SELECT account, {} FROM wxgate_users WHERE unionid = $1 AND account <> '' \
                 ORDER BY account COLLATE {} LIMIT {MAX_LIST_LIMIT}",
                user_columns!(),
                DB::BYTE_ORDER
            ),
        }
    }
}

impl<DB: Database> SqlUserDb<DB> {
    /// The pool, for the registry's queries on the same database.
    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: Database> Clone for SqlUserDb<DB> {
    fn clone(&self) -> Self {
        SqlUserDb {
            pool: self.pool.clone(),
            account: self.account.clone(),
            list_first: self.list_first.clone(),
            list_after: self.list_after.clone(),
            by_unionid: self.by_unionid.clone(),
        }
    }
}

impl<DB: Dialect> fmt::Debug for SqlUserDb<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUserDb")
            .field("backend", &DB::LABEL)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// The error for a failed query.
fn backend<DB: Dialect>(what: &str, e: &sqlx::Error) -> UserDbError {
    UserDbError::Backend(format!("{}: {what}: {e}", DB::LABEL))
}

#[async_trait]
impl<DB> UserDb for SqlUserDb<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<bool>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    fn for_account(&self, account: &str) -> std::sync::Arc<dyn UserDb> {
        std::sync::Arc::new(SqlUserDb {
            account: account.to_owned(),
            ..self.clone()
        })
    }

    async fn adopt_legacy(&self, owner: &str) -> Result<u64, UserDbError> {
        let done = sqlx::query(
            "UPDATE wxgate_users SET account = $1 WHERE account = '' AND NOT EXISTS
                (SELECT 1 FROM wxgate_users AS owned
                 WHERE owned.account = $1 AND owned.openid = wxgate_users.openid)",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| backend::<DB>("adopt_legacy", &e))?;
        Ok(DB::rows_affected(&done))
    }

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
            .bind(self.account.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| backend::<DB>("record_follow", &e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn record_login(&self, login: &LoginProfile, at: i64) -> Result<(), UserDbError> {
        sqlx::query(SQL_RECORD_LOGIN)
            .bind(login.openid.as_str())
            .bind(login.unionid.as_deref())
            .bind(login.nickname.as_deref())
            .bind(login.headimgurl.as_deref())
            .bind(at)
            .bind(now_secs())
            .bind(self.account.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| backend::<DB>("record_login", &e))?;
        Ok(())
    }

    async fn get(&self, openid: &str) -> Result<Option<UserRecord>, UserDbError> {
        let row = sqlx::query(SQL_GET)
            .bind(openid)
            .bind(self.account.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend::<DB>("get", &e))?;
        row.map(|row| user_from_row(&row))
            .transpose()
            .map_err(|e| backend::<DB>("get", &e))
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, UserDbError> {
        let query = match after {
            Some(after) => sqlx::query(&self.list_after)
                .bind(self.account.as_str())
                .bind(after),
            None => sqlx::query(&self.list_first).bind(self.account.as_str()),
        };
        let rows = query
            .bind(clamp_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend::<DB>("list", &e))?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| backend::<DB>("list", &e))
    }

    async fn find_by_unionid(&self, unionid: &str) -> Result<Vec<AccountUser>, UserDbError> {
        let rows = sqlx::query(&self.by_unionid)
            .bind(unionid)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend::<DB>("find_by_unionid", &e))?;
        rows.iter()
            .map(|row| {
                Ok(AccountUser {
                    account: row.try_get("account")?,
                    user: user_from_row(row)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| backend::<DB>("find_by_unionid", &e))
    }

    async fn restore(&self, user: &UserRecord) -> Result<bool, UserDbError> {
        let done = sqlx::query(SQL_RESTORE)
            .bind(self.account.as_str())
            .bind(user.openid.as_str())
            .bind(user.unionid.as_deref())
            .bind(user.nickname.as_deref())
            .bind(user.headimgurl.as_deref())
            .bind(user.subscribed)
            .bind(user.subscribe_scene.as_deref())
            .bind(user.subscribed_at)
            .bind(user.unsubscribed_at)
            .bind(super::follow_event_at(user))
            .bind(user.last_login_at)
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| backend::<DB>("restore", &e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn ping(&self) -> Result<(), UserDbError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| backend::<DB>("ping", &e))?;
        Ok(())
    }
}

/// Applies every migration of `migrations` not yet recorded in `wxgate_schema_migrations`, on
/// `conn`: a transaction in which the caller already holds its backend's migration lock, and
/// which it commits. Returns a description of the step that failed.
pub(super) async fn apply_migrations<DB>(
    conn: &mut DB::Connection,
    migrations: &[Migration],
) -> Result<(), String>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let fail = |what: &str, e: sqlx::Error| format!("{what}: {e}");
    let table = format!(
        "CREATE TABLE IF NOT EXISTS wxgate_schema_migrations (
            version {int} PRIMARY KEY NOT NULL,
            description TEXT NOT NULL,
            applied_at {int} NOT NULL
        )",
        int = DB::INTEGER
    );
    conn.execute(table.as_str())
        .await
        .map_err(|e| fail("creating wxgate_schema_migrations", e))?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM wxgate_schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| fail("reading applied migrations", e))?;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        conn.execute(migration.sql)
            .await
            .map_err(|e| fail(&format!("applying {}", migration.version), e))?;
        sqlx::query(SQL_RECORD_MIGRATION)
            .bind(migration.version)
            .bind(migration.description)
            .bind(now_secs())
            .execute(&mut *conn)
            .await
            .map_err(|e| fail(&format!("recording {}", migration.version), e))?;
        tracing::info!(
            backend = DB::LABEL,
            version = migration.version,
            description = migration.description,
            "user database: migration applied"
        );
    }
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newer) = applied.iter().copied().filter(|v| *v > known).max() {
        tracing::warn!(
            backend = DB::LABEL,
            schema_version = newer,
            known_version = known,
            "user database: the schema is newer than this wxgate knows; continuing"
        );
    }
    Ok(())
}
