//! A platform's durable secrets, kept in the database of `database.url` and sealed with
//! `admin.master_key` (bound to platform and appid, so a sealed value copied to another row
//! does not open): the authorizers' refresh tokens, which the credential manager fetches
//! authorizer tokens with and which are never kept in the store, so a flushed Redis loses none;
//! and each platform's newest ticket, whose store copy is the one read, this one what survives
//! a flush ([`PlatformSecrets`]).

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{AuthorizerDb, SealedTicket};
use crate::credentials::{CurrentRefreshToken, PlatformSecrets, StoredTicket};
use crate::domain::{unix_now, AuthorizerStatus};
use crate::vault::{field_context, Vault};

/// See the module documentation.
pub struct SealedPlatformSecrets {
    db: Arc<dyn AuthorizerDb>,
    vault: Arc<Vault>,
}

impl SealedPlatformSecrets {
    pub fn new(db: Arc<dyn AuthorizerDb>, vault: Arc<Vault>) -> Self {
        Self { db, vault }
    }

    /// `token` sealed for the authorizer `appid` of `component`.
    pub fn seal(vault: &Vault, component: &str, appid: &str, token: &SecretString) -> String {
        vault.seal(token.expose_secret(), &context(component, appid))
    }
}

fn context(component: &str, appid: &str) -> Vec<u8> {
    field_context(
        "authorizer",
        &format!("{component}/{appid}"),
        "refresh_token",
    )
}

fn ticket_context(component: &str) -> Vec<u8> {
    field_context("component", component, "ticket")
}

#[async_trait]
impl PlatformSecrets for SealedPlatformSecrets {
    async fn current(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Option<CurrentRefreshToken>, String> {
        let Some(row) = self
            .db
            .refresh_token(component, appid)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let status = AuthorizerStatus::parse(&row.status)
            .ok_or_else(|| format!("authorizer {appid:?} has an unknown status"))?;
        if status == AuthorizerStatus::Revoked {
            return Ok(Some(CurrentRefreshToken {
                token: SecretString::from(String::new()),
                version: row.version,
                status,
            }));
        }
        let opened = self
            .vault
            .open(&row.sealed, &context(component, appid))
            .map_err(|e| {
                format!("the refresh token of authorizer {appid:?} cannot be decrypted with admin.master_key: {e}")
            })?;
        let mut version = row.version;
        if opened.sealed_with_previous {
            let resealed = Self::seal(&self.vault, component, appid, &opened.value);
            if let Ok(true) = self
                .db
                .replace_refresh_token(component, appid, &resealed, version, unix_now())
                .await
            {
                version += 1;
            }
        }
        Ok(Some(CurrentRefreshToken {
            token: opened.value,
            version,
            status,
        }))
    }

    async fn replace(
        &self,
        component: &str,
        appid: &str,
        version: i64,
        new: &SecretString,
    ) -> Result<bool, String> {
        let sealed = Self::seal(&self.vault, component, appid, new);
        self.db
            .replace_refresh_token(component, appid, &sealed, version, unix_now())
            .await
            .map_err(|e| e.to_string())
    }

    async fn refused(&self, component: &str, appid: &str, version: i64) -> Result<(), String> {
        self.db
            .mark_refresh_token_invalid(component, appid, version, unix_now())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn keep_ticket(&self, component: &str, ticket: &StoredTicket) -> Result<(), String> {
        let sealed = SealedTicket {
            component: component.to_owned(),
            sealed: self.vault.seal(&ticket.ticket, &ticket_context(component)),
            create_time: ticket.create_time,
            received_at: ticket.received_at,
        };
        self.db
            .put_ticket(&sealed)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn ticket(&self, component: &str) -> Result<Option<StoredTicket>, String> {
        let Some(row) = self.db.ticket(component).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let opened = self
            .vault
            .open(&row.sealed, &ticket_context(component))
            .map_err(|e| {
                format!("the ticket of platform {component:?} cannot be decrypted: {e}")
            })?;
        Ok(Some(StoredTicket {
            ticket: opened.value.expose_secret().to_owned(),
            create_time: row.create_time,
            received_at: row.received_at,
        }))
    }
}
