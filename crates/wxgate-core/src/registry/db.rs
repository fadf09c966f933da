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

/// An authorizer of a third-party platform as stored (without its sealed refresh token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuthorizer {
    pub component: String,
    pub appid: String,
    /// `authorized`, `revoked` or `refresh_token_invalid`.
    pub status: String,
    pub nick_name: String,
    pub principal_name: String,
    /// WeChat's `func_info` list, JSON.
    pub func_info: String,
    pub seq: i64,
    pub authorized_at: i64,
    pub updated_at: i64,
}

/// What changed after a counter value.
#[derive(Debug, Default)]
pub struct Changes {
    /// The counter value these changes bring the reader to.
    pub seq: i64,
    pub accounts: Vec<StoredAccount>,
    pub keys: Vec<StoredKey>,
    pub authorizers: Vec<StoredAuthorizer>,
}

/// An authorization to record: the authorizer becomes `authorized` with this refresh token.
#[derive(Debug, Clone)]
pub struct AuthorizerGrant<'a> {
    pub component: &'a str,
    pub appid: &'a str,
    /// The profile, when known (`None` keeps what is stored).
    pub profile: Option<AuthorizerProfile<'a>>,
    /// WeChat's `func_info` list, JSON.
    pub func_info: &'a str,
    /// The refresh token sealed with `admin.master_key`.
    pub refresh_token: &'a str,
    /// When WeChat says the authorization happened: the `authorized` event's CreateTime, or 0
    /// when the callback records it (WeChat's time is not known there, and the gateway's clock
    /// must not be compared with WeChat's).
    pub event_at: i64,
    pub now: i64,
}

/// What `api_get_authorizer_info` says of an authorizer.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizerProfile<'a> {
    pub nick_name: &'a str,
    pub principal_name: &'a str,
}

/// The sealed refresh token of an authorizer and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRefreshToken {
    pub sealed: String,
    pub version: i64,
    pub status: String,
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

/// The authorizers of third-party platforms (migration 0004), beside the registry's tables:
/// status and profile changes are stamped like accounts, so [`RegistryDb::changes_since`]
/// carries them to every instance; refresh tokens are versioned on their own.
#[async_trait]
pub trait AuthorizerDb: Send + Sync + 'static {
    /// Records an authorization: a new row, or any earlier status replaced. A grant always
    /// applies — it follows a code exchange WeChat allowed, which it does only for a live
    /// authorization — and keeps the latest WeChat time seen (`event_at`, 0 when unknown).
    async fn grant_authorizer(&self, grant: AuthorizerGrant<'_>) -> Result<bool, UserDbError>;

    /// Replaces the profile of an existing authorizer; `false` when there is none.
    async fn set_authorizer_profile(
        &self,
        component: &str,
        appid: &str,
        profile: AuthorizerProfile<'_>,
        now: i64,
    ) -> Result<bool, UserDbError>;

    /// Marks an authorizer `revoked` (its refresh token is erased), unless it was granted by an
    /// event of `event_at` or later (a retried `unauthorized` arriving after a new
    /// authorization changes nothing); `true` when the row changed.
    async fn revoke_authorizer(
        &self,
        component: &str,
        appid: &str,
        event_at: i64,
        now: i64,
    ) -> Result<bool, UserDbError>;

    /// Marks an authorizer `refresh_token_invalid` when its refresh token is still the one of
    /// `version` (the one WeChat refused); `true` when the row changed.
    async fn mark_refresh_token_invalid(
        &self,
        component: &str,
        appid: &str,
        version: i64,
        now: i64,
    ) -> Result<bool, UserDbError>;

    /// The sealed refresh token of an authorizer, with its version and status.
    async fn refresh_token(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Option<SealedRefreshToken>, UserDbError>;

    /// Replaces the refresh token when its version is still `expected` and the authorizer is
    /// still authorized; `false` otherwise.
    async fn replace_refresh_token(
        &self,
        component: &str,
        appid: &str,
        sealed: &str,
        expected: i64,
        now: i64,
    ) -> Result<bool, UserDbError>;

    /// One page of a platform's authorizers, every status, ordered by appid, after `after`.
    async fn list_authorizers(
        &self,
        component: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredAuthorizer>, UserDbError>;

    /// How many authorizers a platform has, by status.
    async fn count_authorizers(&self, component: &str) -> Result<Vec<(String, i64)>, UserDbError>;

    /// Keeps a platform's newest ticket (sealed) unless one with a later `create_time` is
    /// kept; `true` when written.
    async fn put_ticket(&self, ticket: &SealedTicket) -> Result<bool, UserDbError>;

    /// The platform's newest ticket, sealed.
    async fn ticket(&self, component: &str) -> Result<Option<SealedTicket>, UserDbError>;
}

/// A platform's newest component_verify_ticket as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTicket {
    pub component: String,
    /// Sealed with `admin.master_key`.
    pub sealed: String,
    pub create_time: i64,
    pub received_at: i64,
}
