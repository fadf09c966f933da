//! Accounts and keys managed at runtime (SPEC.md "Accounts managed at runtime", "API keys with
//! scopes"): the admin API, a second instance following within 2 s, AES-key rotation, scoped
//! keys, secrets sealed in the database file. On SQLite always, on PostgreSQL too when
//! `WXGATE_TEST_POSTGRES_URL` is set.
//!
//! By topic: runtime accounts, scoped keys and the admin API's checks, secrets at rest, user
//! records per account, and the `wxgate accounts` command; [`support`] holds the shared setup.

mod accounts;
mod accounts_command;
mod keys;
mod secrets;
mod support;
mod user_rows;
