//! Where the registry lives: the tables of migration 0002 in the database of `database.url`,
//! behind [`RegistryDb`], written once over sqlx for SQLite and PostgreSQL (`registry/sql.rs`,
//! on the same pool as the user records).
//!
//! Every change takes the next number of one counter row in its own transaction and stamps the
//! changed row with it; the counter's row lock (PostgreSQL) or the write lock (SQLite) is held
//! until commit, so when an instance reads counter value N, every row stamped N or lower is
//! committed. That makes [`RegistryDb::changes_since`] exact: an instance that has applied N
//! reads what is stamped above N, and one cheap read of the counter tells whether there is any.
//! Deletions are tombstones (secrets emptied), so the other instances learn of them the same
//! way. Accounts are written with optimistic concurrency (the stamp read with the old row must
//! still be there), so two admins replacing one account at once cannot lose a secret.

use async_trait::async_trait;

use crate::users::UserDbError;

/// An account row as stored: its settings without secrets (JSON), its sealed secrets (JSON
/// object field → sealed value) and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub name: String,
    pub settings: String,
    pub secrets: String,
    pub deleted: bool,
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A scoped API key as stored: its SHA-256 digest (hex), never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub name: String,
    pub digest: String,
    /// JSON list of account names, or `["*"]`.
    pub accounts: String,
    /// JSON list of scope names.
    pub scopes: String,
    pub deleted: bool,
    pub seq: i64,
    pub created_at: i64,
}

/// What changed after a counter value.
#[derive(Debug, Default)]
pub struct Changes {
    /// The counter value these changes bring the reader to.
    pub seq: i64,
    pub accounts: Vec<StoredAccount>,
    pub keys: Vec<StoredKey>,
}

/// An account write: the row's new content.
#[derive(Debug, Clone)]
pub struct AccountWrite<'a> {
    pub name: &'a str,
    pub settings: &'a str,
    pub secrets: &'a str,
    /// The stamp of the row the write was computed from (`None`: there was no row); the write
    /// fails with [`WriteOutcome::Conflict`] when the row changed since.
    pub expected_seq: Option<i64>,
    pub now: i64,
}

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written with this stamp.
    Written { seq: i64 },
    /// The row changed since it was read: read again and retry.
    Conflict,
}

/// The registry's tables. Implementations are shared (`Arc<dyn RegistryDb>`) and safe from many
/// tasks and processes at once.
#[async_trait]
pub trait RegistryDb: Send + Sync + 'static {
    /// The counter: the stamp of the latest change (0 before the first).
    async fn seq(&self) -> Result<i64, UserDbError>;

    /// Every row stamped above `after` (tombstones included), and the counter value they bring
    /// the reader to.
    async fn changes_since(&self, after: i64) -> Result<Changes, UserDbError>;

    /// The account row called `name` (a tombstone too), if any.
    async fn account(&self, name: &str) -> Result<Option<StoredAccount>, UserDbError>;

    /// Inserts or replaces an account row (a tombstone is replaced), conditionally.
    async fn write_account(&self, write: AccountWrite<'_>) -> Result<WriteOutcome, UserDbError>;

    /// Turns the live account row `name` into a tombstone; `false` when there was none.
    async fn delete_account(&self, name: &str, now: i64) -> Result<bool, UserDbError>;

    /// Inserts a new key (its `seq` is assigned here); returns the stamp.
    async fn insert_key(&self, key: &StoredKey) -> Result<i64, UserDbError>;

    /// Turns the live key `id` into a tombstone; `false` when there was none.
    async fn delete_key(&self, id: &str) -> Result<bool, UserDbError>;
}
