//! Fetching under the store lease: the plain path ([`CredentialManager::obtain`]) every first
//! fetch and refresh-ahead takes, and the guarded forced refresh behind
//! `POST access_token/refresh` and the proxy's retry.
//!
//! Both take the one [`Lease`] guard (renewed while they work) and store what they fetched with
//! `put_if_newer`, versioned by when the fetch completed (a holder whose lease was taken over
//! says so in the log, and its write is still only kept if newer): so the credential WeChat issued last is the one every instance ends up serving, even
//! when a holder's work outlasted its lease.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{
    history, AccountCreds, Again, Credential, CredentialError, CredentialManager, Fresh, Lease,
    NotRetried, Slot, FORCED_REFRESH_GUARD, WAIT_POLL,
};
use crate::activity::{RefreshSeen, Step, StepOutcome};
use crate::config::TokenSource;
use crate::domain::{lock, redact, unix_now, unix_now_ms, CredentialKind, TokenApi};
use crate::store::StoreError;
use crate::upstream::{IssuedCredential, UpstreamError};

impl CredentialManager {
    /// With the flight lock held: returns a stored credential that `accept` likes, or fetches
    /// one under the store lease, waiting for another instance's lease until `deadline`.
    /// `accept` decides whether a stored credential is good enough (a refresh wants one newer
    /// than what it is replacing).
    pub(super) async fn obtain(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        replacing: Option<&Credential>,
        reason: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        let accept = |c: &Credential| match replacing {
            None => true,
            Some(old) => c.version_ms > old.version_ms && c.value != old.value,
        };
        loop {
            if let Some(c) = self.load_stored(account, slot).await? {
                if accept(&c) {
                    return Ok(c);
                }
            }
            if let Some(lease) = self.try_lease(account, slot.kind).await? {
                let result = async {
                    // The previous holder may have stored its result just before we got the lease.
                    if let Some(c) = self.load_stored(account, slot).await? {
                        if accept(&c) {
                            return Ok(c);
                        }
                    }
                    self.fetch_and_store(acct, slot, reason, None, &lease).await
                }
                .await;
                lease.release().await;
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                // Serve what is still valid rather than fail, when there is one.
                if let Some(c) = self.load_stored(account, slot).await? {
                    return Ok(c);
                }
                return Err(CredentialError::WaitTimeout);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Fetches from WeChat and stores. Called only while holding `lease`, which fences the
    /// write. `reported_invalid` is an access token a caller reported as rejected by WeChat.
    async fn fetch_and_store(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        reason: &str,
        reported_invalid: Option<&str>,
        lease: &Lease,
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        let started_ms = unix_now_ms();
        let issued = match slot.kind.ticket() {
            None => match &acct.settings.token_source {
                TokenSource::AppSecret => self.fetch_access_token(acct, reported_invalid).await,
                TokenSource::Component { component } => {
                    self.fetch_component_token(acct, component).await?
                }
                TokenSource::Authorizer { .. } => self.fetch_authorizer_token(acct).await?,
            },
            Some(ticket) => {
                let client = &self.client;
                let fetch = |token: SecretString| async move {
                    client.ticket(account, &token, ticket).await
                };
                let rejected = |r: &Result<_, UpstreamError>| {
                    r.as_ref().is_err_and(UpstreamError::is_token_invalid)
                };
                match self
                    .with_fresh_token(account, Again::Always, fetch, rejected)
                    .await?
                {
                    Fresh::First(issued) => issued,
                    Fresh::Retried { first, second } => {
                        // The token we used was rejected: one guarded token refresh, one retry.
                        tracing::warn!(account, credential = %slot.kind,
                            errcode = ?first.err().and_then(|e| e.wechat_errcode()),
                            "ticket fetch rejected the access_token; refreshed it and retried once");
                        second
                    }
                    Fresh::NotRetried {
                        why: NotRetried::RefreshFailed(e),
                        ..
                    } => return Err(e),
                    // `Again::Always` retries after every successful refresh.
                    Fresh::NotRetried { first, .. } => first,
                }
            }
        };
        let issued = match issued {
            Ok(i) => i,
            Err(e) => {
                lock(&slot.status).record_error(&e);
                self.observed(account, slot.kind, reason, Err(&e));
                tracing::warn!(account, credential = %slot.kind, error = %e, hint = %e.hint(), "credential fetch failed");
                return Err(e.into());
            }
        };
        let cred = Credential::issued(
            issued.value.expose_secret().to_owned(),
            issued.expires_in,
            started_ms,
            unix_now_ms(),
            reason,
        );
        self.metrics
            .credential_refresh(account, slot.kind.as_str(), reason);
        lock(&slot.status).record_refresh(&cred);
        self.observed(account, slot.kind, reason, Ok(()));
        tracing::info!(account, credential = %slot.kind, reason, expires_in = cred.lifetime_s,
            value = %redact(&cred.value), "fetched a credential from WeChat");
        if lease.is_lost() {
            tracing::warn!(account, credential = %slot.kind,
                "the refresh lease was lost during the fetch; storing the result only if it was issued after the stored one");
        }
        // Conditional either way: only a credential whose fetch completed later is replaced.
        let body = serde_json::to_vec(&cred).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl =
            Duration::from_secs(u64::try_from(cred.expires_in(unix_now()).max(1)).unwrap_or(1));
        let written = self
            .store
            .put_if_newer(
                &Self::store_key(account, slot.kind),
                &body,
                cred.version_ms,
                Some(ttl),
            )
            .await?;
        if !written {
            // A credential issued after ours was stored meanwhile: serve that one.
            if let Some(c) = self.load_stored(account, slot).await? {
                return Ok(c);
            }
        }
        if slot.kind.ticket().is_some() {
            history::record(self.store.as_ref(), account, slot.kind, &cred).await;
        }
        let cred = Arc::new(cred);
        self.adopt(account, slot, &cred);
        self.announce(account, slot.kind).await;
        Ok(cred)
    }

    /// Tells the activity recorder (admin console) about one fetch: its refresh history and,
    /// for an access_token, the onboarding step "token fetched" (reached, or failing with
    /// WeChat's errcode and the hint).
    fn observed(
        &self,
        account: &str,
        kind: CredentialKind,
        reason: &str,
        result: Result<(), &UpstreamError>,
    ) {
        let Some(activity) = self.metrics.activity() else {
            return;
        };
        let forced = matches!(reason, "forced" | "token_invalid");
        activity.refresh(
            account,
            RefreshSeen {
                at: unix_now_ms(),
                kind,
                ok: result.is_ok(),
                forced,
                errcode: result.err().and_then(UpstreamError::wechat_errcode),
                message: result.err().map(ToString::to_string),
            },
        );
        if kind != CredentialKind::AccessToken {
            return;
        }
        let outcome = match result {
            Ok(()) => StepOutcome::Reached { detail: None },
            Err(e) => StepOutcome::Failed {
                errcode: e.wechat_errcode(),
                message: e.to_string(),
                hint: Some(e.hint()),
            },
        };
        activity.step(account, Step::TokenFetched, outcome);
    }

    /// One access_token fetch. `reported_invalid` is the token a caller reported as rejected;
    /// with the stable API it may lead to a probe and a force-mode fetch.
    async fn fetch_access_token(
        &self,
        acct: &AccountCreds,
        reported_invalid: Option<&str>,
    ) -> Result<IssuedCredential, UpstreamError> {
        let a = &acct.settings;
        let issued = self
            .client
            .access_token(&a.name, &a.appid, &a.secret, a.token_api, false)
            .await?;
        if a.token_api != TokenApi::Stable {
            return Ok(issued);
        }
        let Some(bad) = reported_invalid else {
            return Ok(issued);
        };
        if issued.value.expose_secret() != bad {
            return Ok(issued);
        }
        // Normal mode handed back the very token reported invalid. Only when WeChat itself
        // rejects it do we spend one of the 20 daily force refreshes (which also invalidates the
        // token for every other holder).
        match self.client.probe_access_token(&a.name, &issued.value).await {
            Err(e) if e.is_token_invalid() => {
                tracing::warn!(account = %a.name, "stable token confirmed invalid by WeChat; using force_refresh");
                self.client
                    .access_token(&a.name, &a.appid, &a.secret, a.token_api, true)
                    .await
            }
            Ok(()) => {
                tracing::info!(account = %a.name, "reported token still works; not force-refreshing");
                Ok(issued)
            }
            Err(e) => {
                tracing::warn!(account = %a.name, error = %e, "probe of the reported token failed; keeping it");
                Ok(issued)
            }
        }
    }

    /// The guarded refresh behind `POST access_token/refresh` and the proxy's retry.
    ///
    /// - `invalid_token` given and not the current token → the current one, no fetch;
    /// - a forced refresh already happened for this account within 30 s (on any instance) →
    ///   the current credential;
    /// - otherwise one fetch (see [`Self::fetch_access_token`]).
    ///
    /// Everything happens under this process's flight lock and the account's store lease
    /// (renewed while the refresh runs, however long normal + probe + force take), and the 30 s
    /// guard is taken only while holding the lease: a caller that arrives while a refresh is in
    /// flight anywhere waits for it and answers its result, never the token that is being
    /// replaced.
    pub async fn refresh_access_token(
        &self,
        account: &str,
        invalid_token: Option<&str>,
    ) -> Result<Arc<Credential>, CredentialError> {
        let acct = self.account(account)?;
        Self::refuse_lost_authorization(&acct)?;
        let slot = acct.slot(CredentialKind::AccessToken);
        let deadline = self.wait_deadline();
        let queued_at = slot.failures.generation();
        let _flight = self.lock_flight(slot, deadline).await?;
        let Some(seen) = self.current_access_token(account, slot).await? else {
            // Nothing valid at all: an ordinary first fetch (not counted by the guard).
            return Box::pin(self.obtain_remembered(&acct, slot, queued_at, deadline)).await;
        };
        if invalid_token.is_some_and(|bad| bad != seen.value) {
            return Ok(seen);
        }
        let lease = loop {
            if let Some(lease) = self.try_lease(account, slot.kind).await? {
                break lease;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CredentialError::WaitTimeout);
            }
            tokio::time::sleep(WAIT_POLL).await;
        };
        let result = self
            .refresh_under_lease(&acct, slot, &seen, invalid_token, &lease)
            .await;
        lease.release().await;
        result
    }

    /// The stored access token when valid, else this instance's cached one when valid.
    async fn current_access_token(
        &self,
        account: &str,
        slot: &Slot,
    ) -> Result<Option<Arc<Credential>>, CredentialError> {
        Ok(match self.load_stored(account, slot).await? {
            Some(c) => Some(c),
            None => slot.cached.valid_at(unix_now()),
        })
    }

    /// The forced-refresh decision, with the lease held.
    async fn refresh_under_lease(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        seen: &Credential,
        invalid_token: Option<&str>,
        lease: &Lease,
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        // A refresh may have completed (here or elsewhere) while we waited for the lease.
        if let Some(c) = self.load_stored(account, slot).await? {
            if c.version_ms > seen.version_ms {
                return Ok(c);
            }
        }
        let guarded = self
            .store
            .put_if_absent(
                &Self::guard_key(account),
                self.instance_id.as_bytes(),
                Some(FORCED_REFRESH_GUARD),
            )
            .await?;
        if !guarded {
            tracing::info!(
                account,
                "forced refresh skipped: one already happened within 30 s"
            );
            return match self.current_access_token(account, slot).await? {
                Some(c) => Ok(c),
                None => {
                    self.fetch_and_store(acct, slot, "initial", None, lease)
                        .await
                }
            };
        }
        let reason = if invalid_token.is_some() {
            "token_invalid"
        } else {
            "forced"
        };
        self.fetch_and_store(acct, slot, reason, invalid_token, lease)
            .await
    }
}
