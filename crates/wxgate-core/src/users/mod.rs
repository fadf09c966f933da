//! The user-records database: one row per openid that wxgate has seen, fed by subscribe /
//! unsubscribe pushes and by web logins, read by `GET /api/v1/accounts/{account}/users...`.
//!
//! It exists apart from the key-value [`Store`](crate::store::Store) because user records are
//! durable business data that operators query and back up (`database.url`), while the store holds
//! short-lived coordination state. Atuin-style, there is one trait, [`UserDb`], and one
//! implementation written once over sqlx ([`SqlUserDb`], its queries and migration runner in
//! `sql.rs`), opened per backend ([`SqliteUserDb`], [`PostgresUserDb`]: what differs is a
//! [`Dialect`] plus how each opens its database and locks its migrations), picked from the URL
//! by [`connect`], which also brings the schema up to date (embedded migrations, idempotent,
//! safe when several processes start at once).
//!
//! What every backend guarantees:
//! - every write is ONE SQL statement (an `INSERT ... ON CONFLICT DO UPDATE`), so concurrent
//!   writers for the same openid, in this process or another, never lose an update and never see
//!   a half-written row;
//! - follow events are ordered by their own time: [`UserDb::record_follow`] applies an event only
//!   when it is strictly newer than the last one applied for that openid (compared inside the
//!   statement), so late, duplicated or retried deliveries change nothing;
//! - a login never erases profile data learned earlier (absent fields keep their stored value);
//! - [`UserDb::list`] pages in byte order of the openid on every backend;
//! - error messages never contain the password of a database URL.

mod page;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::page::{page, UserPage, DEFAULT_LIST_LIMIT};
pub use self::postgres::PostgresUserDb;
pub use self::sql::{Dialect, SqlUserDb};
pub use self::sqlite::SqliteUserDb;

/// The largest page [`UserDb::list`] returns; larger limits are clamped to it.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Why a user-database call failed: always an infrastructure problem. Unknown users are
/// `Ok(None)`, ignored events `Ok(false)`. Messages never contain a URL's password.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    /// `database.url` is not a URL this module can use.
    #[error("database url is not valid: {0}")]
    InvalidUrl(String),
    /// The database could not be reached or opened at start.
    #[error("database is unreachable: {0}")]
    Unavailable(String),
    /// Applying the embedded schema migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Backend(String),
}

/// What a web login learned about a user. `None` fields are unknown (a `snsapi_base` login
/// knows only the openid) and never overwrite stored values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginProfile {
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub headimgurl: Option<String>,
}

/// A stored user, serialized exactly as the SPEC's user record. Times are unix seconds; fields
/// not known yet are `None` (JSON `null`).
///
/// - `subscribed`, `subscribe_scene`, `subscribed_at`, `unsubscribed_at` come from the latest
///   subscribe/unsubscribe event (times are the events' `CreateTime`); `subscribed` is `None`
///   until such an event was seen; `subscribe_scene` and `subscribed_at` describe the latest
///   subscribe, `unsubscribed_at` the latest unsubscribe (kept after a re-subscribe).
/// - `last_login_at` is the latest login time given to [`UserDb::record_login`].
/// - `created_at` / `updated_at` are wxgate's own clock when the row was inserted / last changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub headimgurl: Option<String>,
    pub subscribed: Option<bool>,
    pub subscribe_scene: Option<String>,
    pub subscribed_at: Option<i64>,
    pub unsubscribed_at: Option<i64>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user record with the account it belongs to ([`UserDb::find_by_unionid`]); serialized
/// as the record with an `"account"` key added.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountUser {
    pub account: String,
    #[serde(flatten)]
    pub user: UserRecord,
}

/// The user-records database. Implementations are cheap to share (`Arc<dyn UserDb>`) and safe
/// to use from many tasks and many processes at once.
#[async_trait]
pub trait UserDb: Send + Sync + 'static {
    /// The same database seen as the users of `account`: every call on the handle reads and
    /// writes that account's users only (SPEC.md: user records belong to one account). The
    /// handle [`connect`] returns sees the rows written before users belonged to accounts.
    fn for_account(&self, account: &str) -> Arc<dyn UserDb>;

    /// Gives the rows from before users belonged to accounts to `owner` (an openid `owner`
    /// already has keeps `owner`'s row); returns how many moved.
    async fn adopt_legacy(&self, owner: &str) -> Result<u64, UserDbError>;

    /// Records a subscribe (`subscribed = true`, `scene` e.g. `ADD_SCENE_QR_CODE` or the
    /// `qrscene_...` key) or unsubscribe (`scene` ignored) event that WeChat stamped with unix
    /// time `at` (its `CreateTime`). Creates the user when unknown.
    ///
    /// The event is applied only when `at` is strictly greater than the time of the latest event
    /// already applied for this openid; an older event, or one with an EQUAL time (typically a
    /// retry of the same event), changes nothing. Consequence: of two different events with the
    /// same second, the first one recorded wins. Returns whether the record changed.
    async fn record_follow(
        &self,
        openid: &str,
        subscribed: bool,
        scene: Option<&str>,
        at: i64,
    ) -> Result<bool, UserDbError>;

    /// Records a web login at unix time `at`: creates the user when unknown, sets
    /// `last_login_at` (never moving it backwards), and overwrites `unionid`, `nickname`,
    /// `headimgurl` only with the values `login` actually carries.
    async fn record_login(&self, login: &LoginProfile, at: i64) -> Result<(), UserDbError>;

    /// The stored user, or `None` when unknown.
    async fn get(&self, openid: &str) -> Result<Option<UserRecord>, UserDbError>;

    /// Up to `limit` users (clamped to `1..=`[`MAX_LIST_LIMIT`]) whose openid is strictly
    /// greater than `after` (all when `None`), ordered by openid in byte order.
    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, UserDbError>;

    /// Every account's record whose `unionid` is `unionid` — one person across the Official
    /// Accounts and mini programs bound to one WeChat Open Platform account (the follower, the
    /// mini-program user, …). Unlike every other call it is NOT limited to the handle's
    /// account: any handle finds the records of all accounts. Rows from before users belonged
    /// to accounts (account `""`) are left out. At most [`MAX_LIST_LIMIT`] records (one per
    /// account at most, so in practice all), ordered by account name in byte order.
    async fn find_by_unionid(&self, unionid: &str) -> Result<Vec<AccountUser>, UserDbError>;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), UserDbError>;

    /// Writes `user` exactly as given (its times included) when its openid is unknown to the
    /// account — `wxgate db import`, moving records between databases; a known user is left as
    /// it is. Later follow events are compared with the newer of its subscribe and unsubscribe
    /// times. Returns whether it was written.
    async fn restore(&self, user: &UserRecord) -> Result<bool, UserDbError>;
}

/// The time of the latest follow event a restored record reflects.
pub(crate) fn follow_event_at(user: &UserRecord) -> Option<i64> {
    user.subscribed_at.max(user.unsubscribed_at)
}

/// Opens the database named by `url` and applies pending migrations:
/// - `sqlite://PATH` or `sqlite:PATH`: the file is created when missing and put in WAL mode
///   (it may be the same file as the key-value store; the tables do not collide);
/// - `postgres://...` or `postgresql://...`: a pool with a bounded connect timeout; an
///   unreachable server fails here, promptly, with [`UserDbError::Unavailable`]. The usual libpq
///   URL parameters work, e.g. `?options=-csearch_path%3Dmyschema` to use another schema;
/// - `mongodb://HOST:PORT/DB` (see [`crate::mongo`]): the database name is required; an
///   unreachable server fails here within seconds, with [`UserDbError::Unavailable`].
pub async fn connect(url: &str) -> Result<Arc<dyn UserDb>, UserDbError> {
    Ok(match open(url).await? {
        Opened::Sqlite(db) => Arc::new(db),
        Opened::Postgres(db) => Arc::new(db),
        Opened::Mongo(db) => Arc::new(db),
    })
}

/// A database opened from its URL, by backend ([`connect`]; `crate::database` shares it with
/// the registry).
pub(crate) enum Opened {
    Sqlite(SqliteUserDb),
    Postgres(PostgresUserDb),
    Mongo(crate::mongo::MongoDb),
}

/// Picks the backend from the URL, opens it and applies pending migrations.
pub(crate) async fn open(url: &str) -> Result<Opened, UserDbError> {
    if url.starts_with("sqlite:") {
        Ok(Opened::Sqlite(SqliteUserDb::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Opened::Postgres(PostgresUserDb::connect(url).await?))
    } else if url.starts_with("mongodb://") {
        Ok(Opened::Mongo(crate::mongo::MongoDb::connect(url).await?))
    } else {
        Err(UserDbError::InvalidUrl(format!(
            "{:?}: expected sqlite://PATH, postgres://USER@HOST/DB or mongodb://HOST:PORT/DB",
            crate::scrub::redact_url(url)
        )))
    }
}

/// Clamps a requested page size to `1..=MAX_LIST_LIMIT`.
pub(crate) fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_LIST_LIMIT))
}

/// The embedded migrations of one backend, from `migrations/<backend>/`: every backend has the
/// same versions, so the list is written once.
macro_rules! migrations {
    ($backend:literal) => {
        [
            Migration {
                version: 1,
                description: "users",
                sql: include_str!(concat!("../../migrations/", $backend, "/0001_users.sql")),
            },
            Migration {
                version: 2,
                description: "registry",
                sql: include_str!(concat!("../../migrations/", $backend, "/0002_registry.sql")),
            },
            Migration {
                version: 3,
                description: "users per account",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0003_users_per_account.sql"
                )),
            },
            Migration {
                version: 4,
                description: "authorizers",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0004_authorizers.sql"
                )),
            },
            Migration {
                version: 5,
                description: "users by unionid",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0005_users_unionid.sql"
                )),
            },
        ]
    };
}
pub(crate) use migrations;

/// One embedded schema migration. Versions are applied in ascending order, each exactly once per
/// database, recorded in `wxgate_schema_migrations`.
pub(crate) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// wxgate's own clock in unix seconds (for `created_at` / `updated_at`).
pub(crate) use crate::domain::unix_now as now_secs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_limits() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(10), 10);
        assert_eq!(clamp_limit(u32::MAX), 1000);
    }
}
