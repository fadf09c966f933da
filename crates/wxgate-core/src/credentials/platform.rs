//! Third-party platform tokens, fetched by this same manager: the component_access_token is the
//! access token of the platform's credential account (`component:<name>`), an authorizer's
//! token the access token of the account named by its appid. So they get everything account
//! tokens get — one fetch per validity window across instances (lease), single flight, failure
//! memory, refresh-ahead, the guarded forced refresh — and only the fetch itself differs:
//!
//! - the component token needs the newest `component_verify_ticket` WeChat pushed (kept in the
//!   store and, sealed, in the database; newest wins; not used after 12 h). Without one the fetch fails with
//!   [`CredentialError::TicketMissing`] and WeChat is asked to push one
//!   (`api_start_push_ticket`), at most once per 10 minutes across instances;
//! - an authorizer token is fetched with the component token and the authorizer's refresh
//!   token, which lives in the database, sealed ([`PlatformSecrets`]). A refresh token WeChat
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

/// Where a platform's durable secrets live — the authorizers' refresh tokens and the newest
/// ticket: the database, sealed with `admin.master_key` (implemented by
/// `registry::platform_secrets::SealedPlatformSecrets`). Errors are messages for the log and the
/// caller (never a token).
#[async_trait]
pub trait PlatformSecrets: Send + Sync {
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

    /// Keeps the platform's newest ticket (unless a later one is kept): the copy that survives
    /// a flushed store.
    async fn keep_ticket(&self, component: &str, ticket: &StoredTicket) -> Result<(), String>;

    /// The platform's newest ticket kept by [`Self::keep_ticket`].
    async fn ticket(&self, component: &str) -> Result<Option<StoredTicket>, String>;
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
    keeper: &dyn PlatformSecrets,
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

/// One `api_authorizer_token` call and the write of the refresh token it hands back, run as a
/// task of its own: once the call is sent, neither a caller that goes away nor a refresh-ahead
/// stopped at shutdown can cut off the write (WeChat may have retired the old token already).
#[derive(Clone)]
struct Exchange {
    client: crate::upstream::WechatClient,
    keeper: Arc<dyn PlatformSecrets>,
    account: String,
    component: String,
    component_appid: String,
    appid: String,
    refresh: SecretString,
    version: i64,
}

impl Exchange {
    /// WeChat's answer (`Err`: the call failed), and when it succeeded the access token once
    /// a new refresh token is stored (`Err` inside: it could not be).
    async fn run(
        self,
        component_token: SecretString,
    ) -> Result<Result<IssuedCredential, CredentialError>, UpstreamError> {
        let task = tokio::spawn(async move {
            let issued = self
                .client
                .authorizer_token(
                    &self.account,
                    &self.component_appid,
                    &component_token,
                    &self.appid,
                    &self.refresh,
                )
                .await?;
            let Some(new) = issued
                .refresh_token
                .filter(|new| new.expose_secret() != self.refresh.expose_secret())
            else {
                return Ok(Ok(issued.access_token));
            };
            // Written before the new access token is used: it is never lost.
            let written = replace_with_retries(
                self.keeper.as_ref(),
                &self.component,
                &self.appid,
                self.version,
                &new,
            )
            .await;
            Ok(written.map(|replaced| {
                if !replaced {
                    tracing::info!(appid = %self.appid, component = %self.component,
                        "the refresh token changed meanwhile (a new authorization); keeping the newer one");
                }
                issued.access_token
            }))
        });
        task.await.unwrap_or_else(|e| {
            Ok(Err(CredentialError::Records(format!(
                "the refresh-token task failed: {e}"
            ))))
        })
    }
}

impl CredentialManager {
    /// Keeps a ticket WeChat pushed — in the store (read by every fetch) and in the database
    /// (survives a flushed store) — unless a newer one (by CreateTime) is kept already; `true`
    /// when the store took it.
    pub async fn keep_ticket(
        &self,
        component: &str,
        ticket: &str,
        create_time: i64,
    ) -> Result<bool, CredentialError> {
        let stored = StoredTicket {
            ticket: ticket.to_owned(),
            create_time,
            received_at: unix_now(),
        };
        if let Some(keeper) = self.platform_secrets.get() {
            keeper
                .keep_ticket(component, &stored)
                .await
                .map_err(CredentialError::Records)?;
        }
        Ok(self.store_ticket(component, &stored).await?)
    }

    async fn store_ticket(
        &self,
        component: &str,
        stored: &StoredTicket,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_vec(stored).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl = Duration::from_secs(u64::try_from(TICKET_MAX_AGE_S).unwrap_or(0) + 3600);
        // Versioned by WeChat's CreateTime (ms), so a retried older push never replaces it.
        self.store
            .put_if_newer(
                &ticket_key(component),
                &body,
                stored.create_time.saturating_mul(1000),
                Some(ttl),
            )
            .await
    }

    /// The newest ticket kept for `component`, usable or not: from the store, else from the
    /// database (then put back in the store).
    pub async fn stored_ticket(
        &self,
        component: &str,
    ) -> Result<Option<StoredTicket>, CredentialError> {
        let raw = self.store.get(&ticket_key(component)).await?;
        if let Some(ticket) = raw.and_then(|raw| serde_json::from_slice(&raw).ok()) {
            return Ok(Some(ticket));
        }
        let Some(keeper) = self.platform_secrets.get() else {
            return Ok(None);
        };
        let kept = keeper
            .ticket(component)
            .await
            .map_err(CredentialError::Records)?;
        if let Some(ticket) = &kept {
            self.store_ticket(component, ticket).await?;
        }
        Ok(kept)
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
            .platform_secrets
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
        let refresh = &current.token;
        let exchange = Exchange {
            client: self.client.clone(),
            keeper: Arc::clone(keeper),
            account: a.name.clone(),
            component: component.clone(),
            component_appid: component_appid.clone(),
            appid: a.appid.clone(),
            refresh: refresh.clone(),
            version: current.version,
        };
        let fetch = |token: SecretString| exchange.clone().run(token);
        let rejected = |r: &Result<Result<IssuedCredential, CredentialError>, UpstreamError>| {
            r.as_ref().is_err_and(UpstreamError::is_token_invalid)
        };
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
            Ok(written) => Ok(Ok(written?)),
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

    /// An authorizer whose refresh token WeChat refused gets no token, not even one fetched
    /// before (the authorization is gone; that token does not work any more).
    pub(super) fn refuse_lost_authorization(acct: &AccountCreds) -> Result<(), CredentialError> {
        match &acct.settings.token_source {
            TokenSource::Authorizer {
                component,
                status: AuthorizerStatus::RefreshTokenInvalid,
                ..
            } => Err(CredentialError::AuthorizationLost {
                appid: acct.settings.appid.clone(),
                component: component.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Drops an account's credentials from this instance's cache and the store (an
    /// authorization that is gone).
    pub async fn drop_cached(&self, account: &str) {
        if let Some(acct) = self.accounts.load().get(account) {
            for slot in acct.slots.made() {
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
            self.adopt(
                account,
                acct.slot(CredentialKind::AccessToken),
                &Arc::new(cred),
            );
        }
        self.announce(account, CredentialKind::AccessToken).await;
        Ok(())
    }

    /// Sets where authorizers' refresh tokens are kept (once, at start).
    pub fn set_platform_secrets(&self, keeper: Arc<dyn PlatformSecrets>) {
        if self.platform_secrets.set(keeper).is_err() {
            tracing::warn!("the refresh-token keeper was set twice; keeping the first");
        }
    }
}
