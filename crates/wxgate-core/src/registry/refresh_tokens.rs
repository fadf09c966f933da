//! The authorizers' refresh tokens, kept in the database of `database.url` and sealed with
//! `admin.master_key` (bound to platform and appid, so a sealed value copied to another row
//! does not open): the [`RefreshTokens`] the credential manager fetches authorizer tokens with.
//! They are never kept in the store, so a flushed Redis loses none of them.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::AuthorizerDb;
use crate::credentials::{CurrentRefreshToken, RefreshTokens};
use crate::domain::{unix_now, AuthorizerStatus};
use crate::vault::{field_context, Vault};

/// See the module documentation.
pub struct SealedRefreshTokens {
    db: Arc<dyn AuthorizerDb>,
    vault: Arc<Vault>,
}

impl SealedRefreshTokens {
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

#[async_trait]
impl RefreshTokens for SealedRefreshTokens {
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
}
