//! The runtime registry: accounts managed with the admin API and scoped API keys, kept in the
//! database of `database.url` and seen by every instance within 2 s.

pub mod db;
pub mod record;
mod sql;

pub use self::db::{AccountWrite, Changes, RegistryDb, StoredAccount, StoredKey, WriteOutcome};
