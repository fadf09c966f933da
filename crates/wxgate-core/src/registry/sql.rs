//! [`RegistryDb`] over sqlx, written once for SQLite and PostgreSQL on the user database's pool
//! ([`SqlUserDb`]); see `registry/db.rs` for why the counter makes change reads exact.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::db::{AccountWrite, Changes, RegistryDb, StoredAccount, StoredKey, WriteOutcome};
use crate::users::{Dialect, SqlUserDb, UserDbError};

const BUMP: &str = "UPDATE wxgate_registry_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq";
const ACCOUNT_COLUMNS: &str = "name, settings, secrets, deleted, seq, created_at, updated_at";
const KEY_COLUMNS: &str = "id, name, digest, accounts, scopes, deleted, seq, created_at";

pub(super) fn fail<DB: Dialect>(what: &str, e: &sqlx::Error) -> UserDbError {
    UserDbError::Backend(format!("{}: registry {what}: {e}", DB::LABEL))
}

fn account_from_row<'r, R>(row: &'r R) -> Result<StoredAccount, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredAccount {
        name: row.try_get("name")?,
        settings: row.try_get("settings")?,
        secrets: row.try_get("secrets")?,
        deleted: row.try_get("deleted")?,
        seq: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn key_from_row<'r, R>(row: &'r R) -> Result<StoredKey, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        digest: row.try_get("digest")?,
        accounts: row.try_get("accounts")?,
        scopes: row.try_get("scopes")?,
        deleted: row.try_get("deleted")?,
        seq: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl<DB> RegistryDb for SqlUserDb<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn seq(&self) -> Result<i64, UserDbError> {
        sqlx::query("SELECT seq FROM wxgate_registry_seq WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .and_then(|row| row.try_get::<i64, _>(0usize))
            .map_err(|e| fail::<DB>("reading the counter", &e))
    }

    async fn changes_since(&self, after: i64) -> Result<Changes, UserDbError> {
        let seq = self.seq().await?;
        if seq <= after {
            return Ok(Changes {
                seq,
                ..Changes::default()
            });
        }
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM wxgate_accounts WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        ))
        .bind(after)
        .bind(seq)
        .fetch_all(self.pool())
        .await
        .map_err(|e| fail::<DB>("reading changed accounts", &e))?;
        let accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| fail::<DB>("reading changed accounts", &e))?;
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM wxgate_api_keys WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        ))
        .bind(after)
        .bind(seq)
        .fetch_all(self.pool())
        .await
        .map_err(|e| fail::<DB>("reading changed keys", &e))?;
        let keys = rows
            .iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| fail::<DB>("reading changed keys", &e))?;
        let authorizers = self.changed_authorizers(after, seq).await?;
        Ok(Changes {
            seq,
            accounts,
            keys,
            authorizers,
        })
    }

    async fn account(&self, name: &str) -> Result<Option<StoredAccount>, UserDbError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM wxgate_accounts WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| fail::<DB>("reading an account", &e))?;
        row.map(|row| account_from_row(&row))
            .transpose()
            .map_err(|e| fail::<DB>("reading an account", &e))
    }

    async fn write_account(&self, w: AccountWrite<'_>) -> Result<WriteOutcome, UserDbError> {
        let what = "writing an account";
        let (mut tx, seq) = self.begin_stamped(what).await?;
        let done = match w.expected_seq {
            None => sqlx::query(
                "INSERT INTO wxgate_accounts
                    (name, settings, secrets, deleted, seq, created_at, updated_at)
                 VALUES ($1, $2, $3, FALSE, $4, $5, $5)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(w.name)
            .bind(w.settings)
            .bind(w.secrets)
            .bind(seq)
            .bind(w.now),
            Some(expected) => sqlx::query(
                "UPDATE wxgate_accounts SET settings = $2, secrets = $3, seq = $4,
                    created_at = CASE WHEN deleted THEN $5 ELSE created_at END,
                    updated_at = $5, deleted = FALSE
                 WHERE name = $1 AND seq = $6",
            )
            .bind(w.name)
            .bind(w.settings)
            .bind(w.secrets)
            .bind(seq)
            .bind(w.now)
            .bind(expected),
        }
        .execute(&mut *tx)
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        if DB::rows_affected(&done) == 0 {
            tx.rollback().await.map_err(|e| fail::<DB>(what, &e))?;
            return Ok(WriteOutcome::Conflict);
        }
        tx.commit().await.map_err(|e| fail::<DB>(what, &e))?;
        Ok(WriteOutcome::Written { seq })
    }

    async fn delete_account(&self, name: &str, now: i64) -> Result<bool, UserDbError> {
        self.stamped(
            "deleting an account",
            "UPDATE wxgate_accounts SET deleted = TRUE, secrets = '{}', seq = $1, updated_at = $3
             WHERE name = $2 AND deleted = FALSE",
            name,
            Some(now),
        )
        .await
    }

    async fn insert_key(&self, key: &StoredKey) -> Result<i64, UserDbError> {
        let what = "creating a key";
        let (mut tx, seq) = self.begin_stamped(what).await?;
        sqlx::query(&format!(
            "INSERT INTO wxgate_api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7)"
        ))
        .bind(key.id.as_str())
        .bind(key.name.as_str())
        .bind(key.digest.as_str())
        .bind(key.accounts.as_str())
        .bind(key.scopes.as_str())
        .bind(seq)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        tx.commit().await.map_err(|e| fail::<DB>(what, &e))?;
        Ok(seq)
    }

    async fn delete_key(&self, id: &str) -> Result<bool, UserDbError> {
        self.stamped(
            "deleting a key",
            "UPDATE wxgate_api_keys SET deleted = TRUE, seq = $1 WHERE id = $2 AND deleted = FALSE",
            id,
            None,
        )
        .await
    }
}

impl<DB> SqlUserDb<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A transaction holding the counter's next stamp: every registry write starts here, and
    /// the counter's lock is held until the transaction ends (see `registry/db.rs`).
    pub(super) async fn begin_stamped(
        &self,
        what: &str,
    ) -> Result<(sqlx::Transaction<'static, DB>, i64), UserDbError> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(|e| fail::<DB>(what, &e))?;
        let seq: i64 = sqlx::query(BUMP)
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get::<i64, _>(0usize))
            .map_err(|e| fail::<DB>(what, &e))?;
        Ok((tx, seq))
    }

    /// Runs `sql` (binding the new stamp as `$1`, `name` as `$2` and `now`, when given, as
    /// `$3`) in a transaction that takes the next stamp; rolls back when it changed no row.
    async fn stamped(
        &self,
        what: &str,
        sql: &str,
        name: &str,
        now: Option<i64>,
    ) -> Result<bool, UserDbError> {
        let (mut tx, seq) = self.begin_stamped(what).await?;
        let mut query = sqlx::query(sql).bind(seq).bind(name);
        if let Some(now) = now {
            query = query.bind(now);
        }
        let done = query
            .execute(&mut *tx)
            .await
            .map_err(|e| fail::<DB>(what, &e))?;
        if DB::rows_affected(&done) == 0 {
            tx.rollback().await.map_err(|e| fail::<DB>(what, &e))?;
            return Ok(false);
        }
        tx.commit().await.map_err(|e| fail::<DB>(what, &e))?;
        Ok(true)
    }
}
