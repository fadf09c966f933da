//! [`AuthorizerDb`] over sqlx, for SQLite and PostgreSQL on the user database's pool (the
//! same statements for both), and the authorizer half of [`RegistryDb::changes_since`].
//!
//! Status and profile writes take the registry's next stamp in their transaction
//! (`begin_stamped`), exactly as account writes do; refresh-token replacements do not (they
//! are conditional on the token's own version instead).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::db::{
    AuthorizerDb, AuthorizerGrant, AuthorizerProfile, SealedRefreshToken, SealedTicket,
    StoredAuthorizer,
};
use super::sql::fail;
use crate::users::{Dialect, SqlUserDb, UserDbError};

const COLUMNS: &str =
    "component, appid, status, nick_name, principal_name, func_info, seq, authorized_at, updated_at";

fn authorizer_from_row<'r, R>(row: &'r R) -> Result<StoredAuthorizer, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredAuthorizer {
        component: row.try_get("component")?,
        appid: row.try_get("appid")?,
        status: row.try_get("status")?,
        nick_name: row.try_get("nick_name")?,
        principal_name: row.try_get("principal_name")?,
        func_info: row.try_get("func_info")?,
        seq: row.try_get("seq")?,
        authorized_at: row.try_get("authorized_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl<DB> SqlUserDb<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// The authorizer rows stamped in `(after, upto]`.
    pub(super) async fn changed_authorizers(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<StoredAuthorizer>, UserDbError> {
        let what = "reading changed authorizers";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM wxgate_authorizers WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        ))
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        rows.iter()
            .map(authorizer_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| fail::<DB>(what, &e))
    }

    /// Runs a stamped statement (`$1` the stamp, then `binds`); `false` when no row changed.
    async fn stamped_update(
        &self,
        what: &str,
        sql: &str,
        texts: &[&str],
        numbers: &[i64],
    ) -> Result<bool, UserDbError> {
        let (mut tx, seq) = self.begin_stamped(what).await?;
        let mut query = sqlx::query(sql).bind(seq);
        for t in texts {
            query = query.bind(*t);
        }
        for n in numbers {
            query = query.bind(*n);
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

#[async_trait]
impl<DB> AuthorizerDb for SqlUserDb<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn grant_authorizer(&self, g: AuthorizerGrant<'_>) -> Result<bool, UserDbError> {
        // `keep` = 1: the statement keeps the stored profile (none was given).
        let (nick, principal, keep) = match g.profile {
            Some(p) => (p.nick_name, p.principal_name, 0),
            None => ("", "", 1),
        };
        self.stamped_update(
            "recording an authorizer",
            "INSERT INTO wxgate_authorizers (component, appid, status, nick_name, principal_name,
                func_info, refresh_token, refresh_version, event_at, seq, authorized_at, updated_at)
             VALUES ($2, $3, 'authorized', $4, $5, $6, $7, 1, $8, $1, $9, $9)
             ON CONFLICT (component, appid) DO UPDATE SET
                status = 'authorized',
                nick_name = CASE WHEN $10 = 1 THEN wxgate_authorizers.nick_name
                                 ELSE excluded.nick_name END,
                principal_name = CASE WHEN $10 = 1 THEN wxgate_authorizers.principal_name
                                      ELSE excluded.principal_name END,
                func_info = excluded.func_info,
                refresh_token = excluded.refresh_token,
                refresh_version = wxgate_authorizers.refresh_version + 1,
                event_at = CASE WHEN wxgate_authorizers.event_at > excluded.event_at
                                THEN wxgate_authorizers.event_at
                                ELSE excluded.event_at END,
                seq = excluded.seq,
                authorized_at = CASE WHEN wxgate_authorizers.status = 'authorized'
                                     THEN wxgate_authorizers.authorized_at
                                     ELSE excluded.authorized_at END,
                updated_at = excluded.updated_at",
            &[
                g.component,
                g.appid,
                nick,
                principal,
                g.func_info,
                g.refresh_token,
            ],
            &[g.event_at, g.now, keep],
        )
        .await
    }

    async fn set_authorizer_profile(
        &self,
        component: &str,
        appid: &str,
        profile: AuthorizerProfile<'_>,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_update(
            "recording an authorizer's profile",
            "UPDATE wxgate_authorizers SET nick_name = $4, principal_name = $5, seq = $1,
                updated_at = $6
             WHERE component = $2 AND appid = $3
               AND (nick_name <> $4 OR principal_name <> $5)",
            &[component, appid, profile.nick_name, profile.principal_name],
            &[now],
        )
        .await
    }

    async fn revoke_authorizer(
        &self,
        component: &str,
        appid: &str,
        event_at: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_update(
            "revoking an authorizer",
            "UPDATE wxgate_authorizers SET status = 'revoked', refresh_token = '', seq = $1,
                event_at = $4, updated_at = $5
             WHERE component = $2 AND appid = $3 AND status <> 'revoked' AND event_at < $4",
            &[component, appid],
            &[event_at, now],
        )
        .await
    }

    async fn mark_refresh_token_invalid(
        &self,
        component: &str,
        appid: &str,
        version: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_update(
            "marking a refresh token invalid",
            "UPDATE wxgate_authorizers SET status = 'refresh_token_invalid', seq = $1,
                updated_at = $5
             WHERE component = $2 AND appid = $3 AND status = 'authorized'
               AND refresh_version = $4",
            &[component, appid],
            &[version, now],
        )
        .await
    }

    async fn refresh_token(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Option<SealedRefreshToken>, UserDbError> {
        let what = "reading a refresh token";
        let row = sqlx::query(
            "SELECT refresh_token, refresh_version, status FROM wxgate_authorizers
             WHERE component = $1 AND appid = $2",
        )
        .bind(component)
        .bind(appid)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        row.map(|row| {
            Ok(SealedRefreshToken {
                sealed: row.try_get("refresh_token")?,
                version: row.try_get("refresh_version")?,
                status: row.try_get("status")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| fail::<DB>(what, &e))
    }

    async fn replace_refresh_token(
        &self,
        component: &str,
        appid: &str,
        sealed: &str,
        expected: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        let what = "replacing a refresh token";
        let done = sqlx::query(
            "UPDATE wxgate_authorizers SET refresh_token = $3,
                refresh_version = refresh_version + 1, updated_at = $5
             WHERE component = $1 AND appid = $2 AND refresh_version = $4
               AND status = 'authorized'",
        )
        .bind(component)
        .bind(appid)
        .bind(sealed)
        .bind(expected)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn list_authorizers(
        &self,
        component: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredAuthorizer>, UserDbError> {
        let what = "listing authorizers";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM wxgate_authorizers WHERE component = $1 AND appid > $2
             ORDER BY appid LIMIT $3"
        ))
        .bind(component)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        rows.iter()
            .map(authorizer_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| fail::<DB>(what, &e))
    }

    async fn count_authorizers(&self, component: &str) -> Result<Vec<(String, i64)>, UserDbError> {
        let what = "counting authorizers";
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM wxgate_authorizers WHERE component = $1
             GROUP BY status ORDER BY status",
        )
        .bind(component)
        .fetch_all(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| fail::<DB>(what, &e))
    }

    async fn put_ticket(&self, t: &SealedTicket) -> Result<bool, UserDbError> {
        let what = "keeping a ticket";
        let done = sqlx::query(
            "INSERT INTO wxgate_component_tickets (component, ticket, create_time, received_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (component) DO UPDATE SET ticket = excluded.ticket,
                create_time = excluded.create_time, received_at = excluded.received_at
             WHERE wxgate_component_tickets.create_time < excluded.create_time",
        )
        .bind(t.component.as_str())
        .bind(t.sealed.as_str())
        .bind(t.create_time)
        .bind(t.received_at)
        .execute(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn ticket(&self, component: &str) -> Result<Option<SealedTicket>, UserDbError> {
        let what = "reading a ticket";
        let row = sqlx::query(
            "SELECT component, ticket, create_time, received_at FROM wxgate_component_tickets
             WHERE component = $1",
        )
        .bind(component)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| fail::<DB>(what, &e))?;
        row.map(|row| {
            Ok(SealedTicket {
                component: row.try_get("component")?,
                sealed: row.try_get("ticket")?,
                create_time: row.try_get("create_time")?,
                received_at: row.try_get("received_at")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| fail::<DB>(what, &e))
    }
}
