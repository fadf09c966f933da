//! Shared state that must survive restarts and be seen by every wxgate instance: cached
//! credentials, refresh leases, push de-duplication records, OAuth states and one-time login
//! codes.
//!
//! Everything wxgate coordinates across processes is expressed with the few atomic primitives
//! of [`Store`], so each backend (in-process memory, an embedded SQLite file shared by the
//! processes of one host, Redis or PostgreSQL shared by many hosts) only has to get those right. The backend is
//! chosen once at start from `storage.url`.
//!
//! Semantics every backend guarantees:
//! - an entry whose TTL has passed is invisible to every call, as if it had never been written;
//! - every call is atomic with respect to every other call on the same key, across processes.
//!
//! Beside the entries, a store carries *notices*: short messages one instance sends to every
//! instance following the store ([`Store::notify`], [`Store::subscribe`]), so that a change
//! (a credential refreshed by another instance) reaches the others without their re-reading
//! everything. Notices are hints, not state: one can be lost, and whoever relies on them also
//! re-reads slowly in the background.

mod counted;
mod memory;
mod notices;
mod postgres;
mod redis;
mod redis_sentinel;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::counted::CountedStore;
pub use self::memory::MemoryStore;
pub use self::notices::{Notice, MAX_NOTICE_LEN, NOTICE_QUEUE};
pub use self::postgres::{PostgresStore, PostgresStoreOptions};
pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// Why a store call failed. Always an infrastructure problem (the store is unreachable or
/// broken), never a "not found": absent keys are `Ok(None)` / `Ok(false)`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage url is not valid: {0}")]
    InvalidUrl(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// Atomic key-value primitives with per-entry expiry. Keys are plain strings chosen by the
/// callers (e.g. `cred:main:access_token`); backends may add their own prefix.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes unconditionally. `ttl = None` keeps it until deleted.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Writes only when no live entry exists. Returns whether it wrote. The basis of leases,
    /// de-duplication claims and rate guards.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Writes only when no live entry exists or the live entry's `version` is strictly lower.
    /// Returns whether it wrote. Used so a slow writer never replaces a newer credential with an
    /// older one. Entries written by `put`/`put_if_absent` have version `i64::MIN`.
    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Atomically reads and deletes (single-use codes). `None` when absent or expired.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes only when the live value equals `expected` (owner-checked lease release,
    /// compare-and-invalidate). Returns whether it deleted.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Sets the live entry's TTL to `ttl` from now, only when its value equals `expected`.
    /// Returns whether it did (false when absent, expired or holding another value). Renews a
    /// lease only while it is still the caller's: a holder whose lease already expired (and was
    /// perhaps taken by another instance) can never extend someone else's.
    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes unconditionally (no error when absent).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Cheap liveness check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The current values of `keys`, in order (`None` for absent or expired), in one round trip
    /// where the backend can: the background reconciliation reads thousands of credentials
    /// this way.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Sends `message` (at most [`MAX_NOTICE_LEN`] bytes) to every instance that follows this
    /// store with [`Store::subscribe`], this one included. Best effort: a notice can be lost,
    /// and a follower is then sent [`Notice::Missed`] when the backend can tell.
    async fn notify(&self, message: &str) -> Result<(), StoreError>;

    /// Follows every instance's notices from now on. The backend feeds the receiver (at most
    /// [`NOTICE_QUEUE`] waiting; beyond that they are dropped and [`Notice::Missed`] follows)
    /// from a task of its own, reconnecting as needed (each reconnection sends
    /// [`Notice::Missed`]), until the receiver is dropped.
    async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Notice>, StoreError>;
}

/// Opens the backend named by `url`: `memory://`, `sqlite://PATH` (relative or absolute,
/// created when missing; `sqlite::memory:` not supported — use `memory://`),
/// `redis://HOST:PORT/DB`, Redis behind Sentinel
/// (`redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`) or
/// `postgres://USER@HOST/DB` (`postgresql://` too; the table `wxgate_store` is created when
/// missing). `key_prefix` is prepended to every key by Redis and PostgreSQL (memory and SQLite
/// are not shared between deployments).
pub async fn connect(url: &str, key_prefix: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("memory://") {
        Ok(Arc::new(MemoryStore::new()))
    } else if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with(redis_sentinel::SCHEME)
        || url.starts_with(redis_sentinel::TLS_SCHEME)
    {
        Ok(Arc::new(RedisStore::connect(url, key_prefix).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url, key_prefix).await?))
    } else {
        Err(StoreError::InvalidUrl(format!(
            "unsupported scheme in {:?}: expected memory://, sqlite://PATH, redis://HOST:PORT/DB, \
             redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[/DB] or postgres://USER@HOST/DB",
            crate::scrub::redact_url(url)
        )))
    }
}
