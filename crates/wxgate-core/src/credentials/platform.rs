//! Third-party platform tokens, fetched by this same manager: the component_access_token is the
//! access token of the platform's credential account (`component:<name>`), an authorizer's
//! token the access token of the account named by its appid. So they get everything account
//! tokens get — one fetch per validity window across instances (lease), single flight, failure
//! memory, refresh-ahead, the guarded forced refresh — and only the fetch itself differs:
//!
//! - the component token needs the newest `component_verify_ticket` WeChat pushed (kept in the
//!   store, newest wins, not used after 12 h). Without one the fetch fails with
//!   [`CredentialError::TicketMissing`] and WeChat is asked to push one
//!   (`api_start_push_ticket`), at most once per 10 minutes across instances;
//! - an authorizer token is fetched with the component token and the authorizer's refresh
//!   token, which lives in the database, sealed ([`RefreshTokens`]). A refresh token WeChat
//!   hands back is written there *before* the new access token is stored or answered; 61023
//!   marks the authorizer `refresh_token_invalid` and drops its stored credentials.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    AccountCreds, Again, Credential, CredentialError, CredentialManager, Fresh, NotRetried,
};
use crate::config::{Component, TokenSource};
use crate::domain::{unix_now, unix_now_ms, AuthorizerStatus, CredentialKind};
use crate::store::StoreError;
use crate::upstream::{IssuedCredential, UpstreamError};

/// A ticket older than this is not used (WeChat: valid for 12 hours).
pub const TICKET_MAX_AGE_S: i64 = 12 * 3600;
/// `api_start_push_ticket` at most this often per platform, across instances.
pub const TICKET_ASK_INTERVAL: Duration = Duration::from_secs(600);
/// The errcode WeChat answers for a refresh token it does not accept any more.
pub const REFRESH_TOKEN_INVALID: i64 = 61023;

/// An authorizer's refresh token as read from the database.
pub struct CurrentRefreshToken {
    pub token: SecretString,
    /// Its version: a replacement or an invalidation names the version it replaces.
    pub version: i64,
    pub status: AuthorizerStatus,
}

/// Where the authorizers' refresh tokens live: the database, sealed with `admin.master_key`
/// (implemented by `registry::refresh_tokens::SealedRefreshTokens`). Errors are messages for the log and
/// the caller (never a token).
#[async_trait]
pub trait RefreshTokens: Send + Sync {
    /// The authorizer's refresh token; `None` when the platform has no such authorizer.
    async fn current(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Option<CurrentRefreshToken>, String>;

    /// Replaces the token of `version` with `new` (WeChat handed back a new one); `false` when
    /// it had been replaced already (a new authorization).
    async fn replace(
        &self,
        component: &str,
        appid: &str,
        version: i64,
        new: &SecretString,
    ) -> Result<bool, String>;

    /// WeChat refused the token of `version` (61023): the authorizer is marked
    /// `refresh_token_invalid`.
    async fn refused(&self, component: &str, appid: &str, version: i64) -> Result<(), String>;
}

/// The newest component_verify_ticket as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredTicket {
    pub ticket: String,
    /// The push's CreateTime (WeChat's clock, unix seconds).
    pub create_time: i64,
    /// When this gateway received it (unix seconds).
    pub received_at: i64,
}

impl std::fmt::Debug for StoredTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTicket")
            .field("ticket", &crate::domain::redact(&self.ticket))
            .field("create_time", &self.create_time)
            .finish()
    }
}

impl StoredTicket {
    /// Usable at `now`: issued less than 12 h ago.
    pub fn is_usable_at(&self, now: i64) -> bool {
        now.saturating_sub(self.create_time.min(self.received_at)) < TICKET_MAX_AGE_S
    }
}

fn ticket_key(component: &str) -> String {
    format!("component:{component}:ticket")
}

fn ticket_asked_key(component: &str) -> String {
    format!("component:{component}:ticket_asked")
}

/// Writes a refresh token WeChat handed back, trying again twice over a second when the
/// database fails: WeChat may have retired the previous token already, so this write is the
/// only copy of the authorization.
async fn replace_with_retries(
    keeper: &dyn RefreshTokens,
    component: &str,
    appid: &str,
    version: i64,
    new: &SecretString,
) -> Result<bool, CredentialError> {
    let mut attempt = 0u32;
    loop {
        match keeper.replace(component, appid, version, new).await {
            Ok(replaced) => return Ok(replaced),
            Err(e) if attempt < 2 => {
                attempt += 1;
                tracing::warn!(appid, component, error = %e, attempt,
                    "cannot store the new refresh token yet; trying again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt * attempt))).await;
            }
            Err(e) => {
                tracing::error!(appid, component, error = %e,
                    "the refresh token WeChat handed back could not be stored; if WeChat retired the previous one, the merchant must authorize again");
                return Err(CredentialError::Records(e));
            }
        }
    }
}

impl CredentialManager {
    /// Keeps a ticket WeChat pushed, unless a newer one (by CreateTime) is kept already;
    /// `true` when it was kept.
    pub async fn keep_ticket(
        &self,
        component: &str,
        ticket: &str,
        create_time: i64,
    ) -> Result<bool, StoreError> {
        let stored = StoredTicket {
            ticket: ticket.to_owned(),
            create_time,
            received_at: unix_now(),
        };
        let body = serde_json::to_vec(&stored).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl = Duration::from_secs(u64::try_from(TICKET_MAX_AGE_S).unwrap_or(0) + 3600);
        // Versioned by WeChat's CreateTime (ms), so a retried older push never replaces it.
        self.store
            .put_if_newer(
                &ticket_key(component),
                &body,
                create_time.saturating_mul(1000),
                Some(ttl),
            )
            .await
    }

    /// The newest ticket kept for `component`, usable or not.
    pub async fn stored_ticket(&self, component: &str) -> Result<Option<StoredTicket>, StoreError> {
        let raw = self.store.get(&ticket_key(component)).await?;
        Ok(raw.and_then(|raw| serde_json::from_slice(&raw).ok()))
    }

    /// Asks WeChat to push a ticket, unless an instance asked within 10 minutes.
    async fn ask_for_ticket(&self, acct: &AccountCreds, component: &str) {
        let first = self
            .store
            .put_if_absent(
                &ticket_asked_key(component),
                self.instance_id.as_bytes(),
                Some(TICKET_ASK_INTERVAL),
            )
            .await;
        match first {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(component, error = %e, "cannot record the ticket request; not asking WeChat now");
                return;
            }
        }
        let a = &acct.settings;
        match self
            .client
            .start_push_ticket(&a.name, &a.appid, &a.secret)
            .await
        {
            Ok(()) => tracing::info!(component, "asked WeChat to push a component_verify_ticket"),
            Err(e) => tracing::warn!(component, error = %e, hint = %e.hint(),
                "asking WeChat to push a component_verify_ticket failed"),
        }
    }

    /// The component_access_token fetch: `Err` when no usable ticket is kept (WeChat is asked
    /// for one), else WeChat's answer.
    pub(super) async fn fetch_component_token(
        &self,
        acct: &AccountCreds,
        component: &str,
    ) -> Result<Result<IssuedCredential, UpstreamError>, CredentialError> {
        let now = unix_now();
        let ticket = self
            .stored_ticket(component)
            .await?
            .filter(|t| t.is_usable_at(now));
        let Some(ticket) = ticket else {
            self.ask_for_ticket(acct, component).await;
            return Err(CredentialError::TicketMissing {
                component: component.to_owned(),
            });
        };
        let a = &acct.settings;
        let answer = self
            .client
            .component_token(
                &a.name,
                &a.appid,
                &a.secret,
                &SecretString::from(ticket.ticket),
            )
            .await;
        if let Err(e) = &answer {
            if matches!(e.wechat_errcode(), Some(61005 | 61006)) {
                self.ask_for_ticket(acct, component).await;
            }
        }
        Ok(answer)
    }

    /// An authorizer's access-token fetch (see the module documentation).
    pub(super) async fn fetch_authorizer_token(
        &self,
        acct: &AccountCreds,
    ) -> Result<Result<IssuedCredential, UpstreamError>, CredentialError> {
        let a = &acct.settings;
        let TokenSource::Authorizer {
            component,
            component_appid,
            ..
        } = &a.token_source
        else {
            return Err(CredentialError::UnknownAccount(a.name.clone()));
        };
        let lost = || CredentialError::AuthorizationLost {
            appid: a.appid.clone(),
            component: component.clone(),
        };
        let keeper = self
            .refresh_tokens
            .get()
            .ok_or_else(|| CredentialError::Records("no database for refresh tokens".into()))?;
        let current = keeper
            .current(component, &a.appid)
            .await
            .map_err(CredentialError::Records)?;
        let current = match current {
            Some(c) if c.status == AuthorizerStatus::Authorized => c,
            Some(c) if c.status == AuthorizerStatus::RefreshTokenInvalid => return Err(lost()),
            _ => return Err(CredentialError::UnknownAccount(a.name.clone())),
        };
        let client = &self.client;
        let refresh = &current.token;
        let fetch = |token: SecretString| async move {
            client
                .authorizer_token(&a.name, component_appid, &token, &a.appid, refresh)
                .await
        };
        let rejected =
            |r: &Result<_, UpstreamError>| r.as_ref().is_err_and(UpstreamError::is_token_invalid);
        let answer = match self
            .with_fresh_token(
                &Component::credential_name(component),
                Again::Always,
                fetch,
                rejected,
            )
            .await?
        {
            Fresh::First(answer) | Fresh::Retried { second: answer, .. } => answer,
            Fresh::NotRetried {
                why: NotRetried::RefreshFailed(e),
                ..
            } => return Err(e),
            Fresh::NotRetried { first, .. } => first,
        };
        match answer {
            Ok(issued) => {
                if let Some(new) = issued
                    .refresh_token
                    .filter(|new| new.expose_secret() != refresh.expose_secret())
                {
                    // Written before the new access token is used: it is never lost.
                    let replaced = replace_with_retries(
                        keeper.as_ref(),
                        component,
                        &a.appid,
                        current.version,
                        &new,
                    )
                    .await?;
                    if !replaced {
                        tracing::info!(appid = %a.appid, component,
                            "the refresh token changed meanwhile (a new authorization); keeping the newer one");
                    }
                }
                Ok(Ok(issued.access_token))
            }
            Err(e) if e.wechat_errcode() == Some(REFRESH_TOKEN_INVALID) => {
                self.metrics
                    .component_refresh_error(component, "refresh_token_invalid");
                tracing::warn!(appid = %a.appid, component, error = %e,
                    "WeChat refused the authorizer's refresh token: the merchant must authorize again");
                if let Err(why) = keeper.refused(component, &a.appid, current.version).await {
                    tracing::warn!(appid = %a.appid, error = %why, "cannot record the refused refresh token");
                }
                self.drop_cached(a.name.as_str()).await;
                Err(lost())
            }
            Err(e) => {
                self.metrics.component_refresh_error(component, "upstream");
                Ok(Err(e))
            }
        }
    }

    /// Drops an account's credentials from this instance's cache and the store (an
    /// authorization that is gone).
    pub async fn drop_cached(&self, account: &str) {
        if let Some(acct) = self.accounts.load().get(account) {
            for slot in acct.slots.iter() {
                slot.cached.clear();
            }
        }
        if let Err(e) = self.forget_stored(account).await {
            tracing::warn!(account, error = %e, "cannot drop the stored credentials");
        }
    }

    /// Stores an access token WeChat issued outside a fetch of this manager (the one
    /// `api_query_auth` answers with an authorization), so the authorizer's first request does
    /// not fetch another.
    pub async fn keep_issued_token(
        &self,
        account: &str,
        issued: &IssuedCredential,
        started_ms: i64,
    ) -> Result<(), CredentialError> {
        let cred = Credential::issued(
            issued.value.expose_secret().to_owned(),
            issued.expires_in,
            started_ms,
            unix_now_ms(),
            "authorized",
        );
        let body = serde_json::to_vec(&cred).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl =
            Duration::from_secs(u64::try_from(cred.expires_in(unix_now()).max(1)).unwrap_or(1));
        self.store
            .put_if_newer(
                &Self::store_key(account, CredentialKind::AccessToken),
                &body,
                cred.version_ms,
                Some(ttl),
            )
            .await?;
        if let Some(acct) = self.accounts.load().get(account) {
            acct.slot(CredentialKind::AccessToken)
                .cached
                .set_unless_newer(&Arc::new(cred));
        }
        Ok(())
    }

    /// Sets where authorizers' refresh tokens are kept (once, at start).
    pub fn set_refresh_tokens(&self, keeper: Arc<dyn RefreshTokens>) {
        if self.refresh_tokens.set(keeper).is_err() {
            tracing::warn!("the refresh-token keeper was set twice; keeping the first");
        }
    }
}
