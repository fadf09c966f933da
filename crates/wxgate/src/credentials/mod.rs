//! The central credential manager: one upstream fetch per validity window, however many
//! requests, processes and hosts ask.
//!
//! WeChat's own documentation tells every account to run a "central control server" because
//! each `cgi-bin/token` call retires the token every other server holds (errcode 40001) and the
//! daily quota is small. This module is that server's core. For each account and credential kind
//! (access_token, jsapi ticket, wx_card ticket):
//!
//! - **single flight in a process**: concurrent callers that find no valid credential queue on
//!   one async mutex; the first fetches, the rest read what it stored;
//! - **a lease across processes and hosts**: before fetching, an instance takes a lease in the
//!   shared [`Store`] (`put_if_absent` with a TTL longer than the worst-case fetch); others poll
//!   the store for the result, and a crashed holder's lease simply expires;
//! - **never older over newer**: credentials are written with `put_if_newer`, versioned by the
//!   time the fetch started, so a slow fetch cannot replace a fresher credential;
//! - **refresh ahead**: a background task refreshes a credential once 300 s or less of its
//!   WeChat lifetime remain (half its lifetime for credentials shorter than 600 s), with jitter,
//!   while the still-valid one keeps being served; a failed refresh is retried with backoff;
//! - **never expired**: a credential is handed out only while `now < expires_at`;
//! - **guarded forced refresh**: a caller reporting a token as invalid causes at most one
//!   upstream fetch per account per 30 s (a store-wide guard), and none at all when the token it
//!   reports is not the current one. With the stable-token API, normal mode is tried first and
//!   `force_refresh=true` only when WeChat hands back the very token reported invalid and a cheap
//!   probe confirms WeChat rejects it;
//! - **ticket history**: each ticket it stores is also put at the front of a short per-account
//!   history ([`history`]), which `diagnose` reads to recognise a replaced ticket.

mod history;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use self::status::{CredentialStatus, ErrorRecord};
use crate::config::AccountSettings;
use crate::domain::{lock, redact, unix_now, unix_now_ms, CredentialKind, TokenApi};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::upstream::{UpstreamError, WechatClient};

/// Refresh a credential once this many seconds of its lifetime remain (SPEC: 300 s).
pub const REFRESH_AHEAD_S: i64 = 300;
/// At most one forced refresh per account in this window, across all instances.
pub const FORCED_REFRESH_GUARD: Duration = Duration::from_secs(30);
/// How often store-polling waiters look for a credential another instance is fetching.
const WAIT_POLL: Duration = Duration::from_millis(25);

/// A credential as stored and handed out.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential {
    pub value: String,
    /// WeChat's own expiry: fetch start + the `expires_in` WeChat gave (unix seconds).
    pub expires_at: i64,
    /// When the fetch that produced it started (unix seconds).
    pub fetched_at: i64,
    /// Same, in milliseconds: the version that orders concurrent writers.
    pub fetched_at_ms: i64,
    /// Lifetime WeChat gave, seconds.
    pub lifetime_s: i64,
    /// Why it was fetched: `initial`, `ahead`, `forced`, `token_invalid`.
    pub reason: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("value", &redact(&self.value))
            .field("expires_at", &self.expires_at)
            .field("fetched_at", &self.fetched_at)
            .field("reason", &self.reason)
            .finish()
    }
}

impl Credential {
    /// Usable right now.
    pub fn is_valid_at(&self, now: i64) -> bool {
        now < self.expires_at
    }

    /// Seconds left at `now` (negative when expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.expires_at - now
    }

    /// Remaining seconds at which a refresh-ahead should start.
    pub fn refresh_threshold(&self) -> i64 {
        if self.lifetime_s >= 2 * REFRESH_AHEAD_S {
            REFRESH_AHEAD_S
        } else {
            (self.lifetime_s / 2).max(1)
        }
    }

    /// Due for a refresh-ahead at `now`.
    pub fn is_due_at(&self, now: i64) -> bool {
        self.expires_in(now) <= self.refresh_threshold()
    }
}

/// Why a credential could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("credential store failed: {0}")]
    Store(#[from] StoreError),
    #[error("timed out waiting for another instance to fetch the credential")]
    WaitTimeout,
}

/// Tunables, derived from the upstream settings.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Lease TTL: longer than the worst-case fetch (all attempts + backoff).
    pub lease_ttl: Duration,
    /// How long a caller waits for another instance's fetch before giving up.
    pub wait_timeout: Duration,
    /// Refresh-ahead scan period (randomised ±50 %).
    pub scan_every: Duration,
}

impl ManagerOptions {
    /// Derived from the per-attempt upstream timeout and the number of attempts.
    pub fn for_upstream(timeout: Duration, attempts: u32) -> Self {
        let worst = timeout * attempts.max(1) + Duration::from_secs(3);
        Self {
            lease_ttl: worst + Duration::from_secs(2),
            wait_timeout: worst * 2 + Duration::from_secs(2),
            scan_every: Duration::from_secs(2),
        }
    }
}

struct Slot {
    kind: CredentialKind,
    /// This instance's last view of the stored credential (saves a store read per request).
    cached: CachedCredential,
    /// Single flight inside the process.
    flight: tokio::sync::Mutex<()>,
    status: Mutex<status::SlotStatus>,
}

/// This instance's last view of one stored credential. Every request reads it, from every worker
/// thread at once: readers take no lock and write nothing another thread reads (`arc_swap`), so
/// a cache hit costs no cache-line transfer between cores. Writers (fetches, store re-reads, the
/// refresh scan) are rare; `write` keeps their compare-then-replace steps whole.
#[derive(Default)]
struct CachedCredential {
    current: ArcSwapOption<Credential>,
    write: Mutex<()>,
}

impl CachedCredential {
    fn get(&self) -> Option<Arc<Credential>> {
        self.current.load_full()
    }

    /// The credential when valid at `now`.
    fn valid_at(&self, now: i64) -> Option<Arc<Credential>> {
        self.get().filter(|c| c.is_valid_at(now))
    }

    /// The credential when valid at `now`, lent to `f` (no reference count is touched).
    fn with_valid<R>(&self, now: i64, f: impl FnOnce(&Credential) -> R) -> Option<R> {
        let current = self.current.load();
        current.as_deref().filter(|c| c.is_valid_at(now)).map(f)
    }

    fn is_empty(&self) -> bool {
        self.current.load().is_none()
    }

    fn set(&self, cred: Arc<Credential>) {
        let _write = lock(&self.write);
        self.current.store(Some(cred));
    }

    /// Replaces the view unless it is newer than `cred` (concurrent writers: newest wins).
    fn set_unless_newer(&self, cred: &Arc<Credential>) {
        let _write = lock(&self.write);
        let newer = self
            .current
            .load()
            .as_ref()
            .is_none_or(|c| c.fetched_at_ms <= cred.fetched_at_ms);
        if newer {
            self.current.store(Some(Arc::clone(cred)));
        }
    }

    /// Forgets the view when it is no longer valid at `now`.
    fn clear_if_invalid(&self, now: i64) {
        let _write = lock(&self.write);
        if self
            .current
            .load()
            .as_ref()
            .is_some_and(|c| !c.is_valid_at(now))
        {
            self.current.store(None);
        }
    }
}

struct AccountCreds {
    settings: AccountSettings,
    slots: Vec<Slot>,
}

impl AccountCreds {
    fn slot(&self, kind: CredentialKind) -> &Slot {
        // `slots` holds one entry per `CredentialKind::ALL`, in that order.
        let idx = CredentialKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        &self.slots[idx]
    }
}

/// See the module documentation.
pub struct CredentialManager {
    accounts: HashMap<String, AccountCreds>,
    store: Arc<dyn Store>,
    client: WechatClient,
    metrics: Arc<Metrics>,
    options: ManagerOptions,
    /// Identifies this instance's leases.
    instance_id: String,
}

impl CredentialManager {
    pub fn new(
        accounts: &[AccountSettings],
        store: Arc<dyn Store>,
        client: WechatClient,
        metrics: Arc<Metrics>,
        options: ManagerOptions,
    ) -> Self {
        let accounts = accounts
            .iter()
            .map(|a| {
                let slots = CredentialKind::ALL
                    .iter()
                    .map(|k| Slot {
                        kind: *k,
                        cached: CachedCredential::default(),
                        flight: tokio::sync::Mutex::new(()),
                        status: Mutex::new(status::SlotStatus::default()),
                    })
                    .collect();
                (
                    a.name.clone(),
                    AccountCreds {
                        settings: a.clone(),
                        slots,
                    },
                )
            })
            .collect();
        let instance_id: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        Self {
            accounts,
            store,
            client,
            metrics,
            options,
            instance_id,
        }
    }

    fn account(&self, name: &str) -> Result<&AccountCreds, CredentialError> {
        self.accounts
            .get(name)
            .ok_or_else(|| CredentialError::UnknownAccount(name.to_owned()))
    }

    /// Whether `name` is a configured account.
    pub fn has_account(&self, name: &str) -> bool {
        self.accounts.contains_key(name)
    }

    fn store_key(account: &str, kind: CredentialKind) -> String {
        format!("cred:{account}:{}", kind.as_str())
    }

    fn lease_key(account: &str, kind: CredentialKind) -> String {
        format!("lease:{account}:{}", kind.as_str())
    }

    fn guard_key(account: &str) -> String {
        format!("force:{account}:access_token")
    }

    /// A valid credential: from this instance's cache, else the store, else WeChat.
    ///
    /// The cache hit is the whole of almost every call, so the rest is a separate, boxed
    /// future: the fetch path's state (the HTTP client's futures among it) is kilobytes, and
    /// a caller's future would otherwise carry — allocate and move — all of it on every
    /// request.
    pub async fn get(
        &self,
        account: &str,
        kind: CredentialKind,
    ) -> Result<Arc<Credential>, CredentialError> {
        let acct = self.account(account)?;
        let slot = acct.slot(kind);
        if let Some(c) = slot.cached.valid_at(unix_now()) {
            return Ok(c);
        }
        Box::pin(self.get_uncached(acct, slot)).await
    }

    /// The credential this instance holds, when valid at `now`, lent to `f`: for a caller that
    /// needs it only for a moment (JS-SDK signing, on every page view). Unlike [`Self::get`] it
    /// takes no lock and touches no reference count that other threads share. `None` (unknown
    /// account, or nothing valid cached) means: ask [`Self::get`].
    pub fn with_cached<R>(
        &self,
        account: &str,
        kind: CredentialKind,
        now: i64,
        f: impl FnOnce(&Credential) -> R,
    ) -> Option<R> {
        self.accounts
            .get(account)?
            .slot(kind)
            .cached
            .with_valid(now, f)
    }

    /// [`Self::get`] when this instance's cache has nothing valid: one caller at a time per
    /// credential looks in the store or fetches; the others wait and take its result.
    async fn get_uncached(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
    ) -> Result<Arc<Credential>, CredentialError> {
        let _flight = slot.flight.lock().await;
        // Someone in this process may have fetched while we queued.
        if let Some(c) = slot.cached.valid_at(unix_now()) {
            return Ok(c);
        }
        self.obtain(acct, slot, None, "initial").await
    }

    /// Reads the stored credential into the local cache; returns it when valid.
    async fn load_stored(
        &self,
        account: &str,
        slot: &Slot,
    ) -> Result<Option<Arc<Credential>>, CredentialError> {
        let raw = self.store.get(&Self::store_key(account, slot.kind)).await?;
        let Some(raw) = raw else { return Ok(None) };
        let Ok(cred) = serde_json::from_slice::<Credential>(&raw) else {
            tracing::warn!(account, credential = %slot.kind, "ignoring an unreadable stored credential");
            return Ok(None);
        };
        if !cred.is_valid_at(unix_now()) {
            return Ok(None);
        }
        let cred = Arc::new(cred);
        slot.cached.set_unless_newer(&cred);
        Ok(Some(cred))
    }

    /// With the flight lock held: returns a stored credential that `accept` likes, or fetches
    /// one under the store lease. `accept` decides whether a stored credential is good enough
    /// (a refresh wants one newer than what it is replacing).
    async fn obtain(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        replacing: Option<&Credential>,
        reason: &str,
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        let accept = |c: &Credential| match replacing {
            None => true,
            Some(old) => c.fetched_at_ms > old.fetched_at_ms && c.value != old.value,
        };
        let lease_key = Self::lease_key(account, slot.kind);
        let deadline = tokio::time::Instant::now() + self.options.wait_timeout;
        loop {
            if let Some(c) = self.load_stored(account, slot).await? {
                if accept(&c) {
                    return Ok(c);
                }
            }
            let owner = format!("{}:{}", self.instance_id, unix_now_ms());
            if self
                .store
                .put_if_absent(&lease_key, owner.as_bytes(), Some(self.options.lease_ttl))
                .await?
            {
                let result = async {
                    // The previous holder may have stored its result just before we got the lease.
                    if let Some(c) = self.load_stored(account, slot).await? {
                        if accept(&c) {
                            return Ok(c);
                        }
                    }
                    self.fetch_and_store(acct, slot, reason, None).await
                }
                .await;
                if let Err(e) = self
                    .store
                    .delete_if_equals(&lease_key, owner.as_bytes())
                    .await
                {
                    tracing::warn!(account, error = %e, "could not release a refresh lease; it will expire");
                }
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

    /// Fetches from WeChat and stores. Called only while holding the store lease.
    /// `reported_invalid` is an access token a caller reported as rejected by WeChat.
    async fn fetch_and_store(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        reason: &str,
        reported_invalid: Option<&str>,
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        let started_ms = unix_now_ms();
        let issued = match slot.kind.ticket() {
            None => self.fetch_access_token(acct, reported_invalid).await,
            Some(ticket) => {
                let token = Box::pin(self.get(account, CredentialKind::AccessToken)).await?;
                let secret = SecretString::from(token.value.clone());
                match self.client.ticket(account, &secret, ticket).await {
                    Err(e) if e.is_token_invalid() => {
                        // The token we used was rejected: one guarded token refresh, one retry.
                        tracing::warn!(account, credential = %slot.kind, errcode = ?e.wechat_errcode(),
                            "ticket fetch rejected the access_token; refreshing it once");
                        let fresh =
                            Box::pin(self.refresh_access_token(account, Some(&token.value)))
                                .await?;
                        let secret = SecretString::from(fresh.value.clone());
                        self.client.ticket(account, &secret, ticket).await
                    }
                    other => other,
                }
            }
        };
        let issued = match issued {
            Ok(i) => i,
            Err(e) => {
                lock(&slot.status).record_error(&e);
                tracing::warn!(account, credential = %slot.kind, error = %e, hint = %e.hint(), "credential fetch failed");
                return Err(e.into());
            }
        };
        let lifetime = i64::try_from(issued.expires_in).unwrap_or(i64::MAX).max(1);
        let cred = Credential {
            value: issued.value.expose_secret().to_owned(),
            expires_at: started_ms / 1000 + lifetime,
            fetched_at: started_ms / 1000,
            fetched_at_ms: started_ms,
            lifetime_s: lifetime,
            reason: reason.to_owned(),
        };
        let body = serde_json::to_vec(&cred).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl =
            Duration::from_secs(u64::try_from(cred.expires_in(unix_now()).max(1)).unwrap_or(1));
        let written = self
            .store
            .put_if_newer(
                &Self::store_key(account, slot.kind),
                &body,
                cred.fetched_at_ms,
                Some(ttl),
            )
            .await?;
        self.metrics
            .credential_refresh(account, slot.kind.as_str(), reason);
        lock(&slot.status).record_refresh(&cred);
        tracing::info!(account, credential = %slot.kind, reason, expires_in = cred.lifetime_s,
            value = %redact(&cred.value), "fetched a credential from WeChat");
        if !written {
            // A newer credential was stored meanwhile (a slower fetch of ours): serve that one.
            if let Some(c) = self.load_stored(account, slot).await? {
                return Ok(c);
            }
        }
        if slot.kind.ticket().is_some() {
            history::record(self.store.as_ref(), account, slot.kind, &cred).await;
        }
        let cred = Arc::new(cred);
        slot.cached.set(Arc::clone(&cred));
        Ok(cred)
    }

    /// The account's last few tickets of `kind` (the current one included), newest first, as
    /// recorded when they were fetched; empty for access tokens and unknown accounts.
    pub async fn history(&self, account: &str, kind: CredentialKind) -> Vec<Credential> {
        if kind.ticket().is_none() || !self.has_account(account) {
            return Vec::new();
        }
        history::read(self.store.as_ref(), account, kind).await
    }

    /// One access_token fetch. `reported_invalid` is the token a caller reported as rejected;
    /// with the stable API it may lead to a probe and a force-mode fetch.
    async fn fetch_access_token(
        &self,
        acct: &AccountCreds,
        reported_invalid: Option<&str>,
    ) -> Result<crate::upstream::IssuedCredential, UpstreamError> {
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
    /// Everything happens under this process's flight lock and the account's store lease, and
    /// the 30 s guard is taken only while holding the lease: a caller that arrives while a
    /// refresh is in flight anywhere waits for it and answers its result, never the token that
    /// is being replaced.
    pub async fn refresh_access_token(
        &self,
        account: &str,
        invalid_token: Option<&str>,
    ) -> Result<Arc<Credential>, CredentialError> {
        let acct = self.account(account)?;
        let slot = acct.slot(CredentialKind::AccessToken);
        let _flight = slot.flight.lock().await;
        let Some(seen) = self.current_access_token(account, slot).await? else {
            // Nothing valid at all: an ordinary first fetch (not counted by the guard).
            return Box::pin(self.obtain(acct, slot, None, "initial")).await;
        };
        if invalid_token.is_some_and(|bad| bad != seen.value) {
            return Ok(seen);
        }
        let lease_key = Self::lease_key(account, slot.kind);
        let deadline = tokio::time::Instant::now() + self.options.wait_timeout;
        let owner = format!("{}:{}", self.instance_id, unix_now_ms());
        loop {
            if self
                .store
                .put_if_absent(&lease_key, owner.as_bytes(), Some(self.options.lease_ttl))
                .await?
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CredentialError::WaitTimeout);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
        let result = self
            .refresh_under_lease(acct, slot, &seen, invalid_token)
            .await;
        if let Err(e) = self
            .store
            .delete_if_equals(&lease_key, owner.as_bytes())
            .await
        {
            tracing::warn!(account, error = %e, "could not release a refresh lease; it will expire");
        }
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
    ) -> Result<Arc<Credential>, CredentialError> {
        let account = acct.settings.name.as_str();
        // A refresh may have completed (here or elsewhere) while we waited for the lease.
        if let Some(c) = self.load_stored(account, slot).await? {
            if c.fetched_at_ms > seen.fetched_at_ms {
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
                None => self.fetch_and_store(acct, slot, "initial", None).await,
            };
        }
        let reason = if invalid_token.is_some() {
            "token_invalid"
        } else {
            "forced"
        };
        self.fetch_and_store(acct, slot, reason, invalid_token)
            .await
    }

    /// One pass of the refresh-ahead scheduler: re-reads every credential this instance has
    /// cached from the shared store (so a refresh made by another instance — a forced one in
    /// particular, which retires the old token — reaches this instance within one scan), then
    /// refreshes those that are due. Credentials nobody asked for are never fetched.
    pub async fn refresh_due(&self) {
        for acct in self.accounts.values() {
            for slot in &acct.slots {
                if slot.cached.is_empty() {
                    continue;
                }
                if let Err(e) = self.load_stored(&acct.settings.name, slot).await {
                    tracing::warn!(account = %acct.settings.name, credential = %slot.kind, error = %e,
                        "cannot re-read the stored credential");
                }
                let Some(cached) = slot.cached.get() else {
                    continue;
                };
                let now = unix_now();
                if !cached.is_due_at(now) || !lock(&slot.status).may_retry_at(now) {
                    continue;
                }
                if let Err(e) = self.refresh_ahead(acct, slot).await {
                    tracing::warn!(account = %acct.settings.name, credential = %slot.kind, error = %e,
                        "refresh-ahead failed; the current credential stays in use until it expires");
                    lock(&slot.status).backoff(unix_now());
                }
            }
        }
    }

    async fn refresh_ahead(&self, acct: &AccountCreds, slot: &Slot) -> Result<(), CredentialError> {
        let account = acct.settings.name.as_str();
        let _flight = slot.flight.lock().await;
        // Another instance may have refreshed it already.
        let current = match self.load_stored(account, slot).await? {
            Some(c) => c,
            None => {
                // Expired or gone: the next caller fetches; drop our view so it does.
                slot.cached.clear_if_invalid(unix_now());
                return Ok(());
            }
        };
        if !current.is_due_at(unix_now()) {
            return Ok(());
        }
        let fresh = self.obtain(acct, slot, Some(&current), "ahead").await?;
        if fresh.expires_at <= current.expires_at {
            // WeChat handed back the same lifetime (stable API just outside its own 5-minute
            // window): try again shortly rather than in a tight loop.
            lock(&slot.status).backoff(unix_now());
        } else {
            lock(&slot.status).clear_backoff();
        }
        Ok(())
    }

    /// Runs [`Self::refresh_due`] forever, every `scan_every` ± 50 %.
    pub async fn run_refresh_ahead(self: Arc<Self>) {
        loop {
            let base = self.options.scan_every.as_millis() as u64;
            let jitter = rand::thread_rng().gen_range(base / 2..=base + base / 2);
            tokio::time::sleep(Duration::from_millis(jitter.max(10))).await;
            self.refresh_due().await;
        }
    }

    /// What an operator looks at first: per credential, this instance's view.
    pub async fn status(&self, account: &str) -> Result<Vec<CredentialStatus>, CredentialError> {
        let acct = self.account(account)?;
        let now = unix_now();
        let mut out = Vec::new();
        for slot in &acct.slots {
            let stored = self.load_stored(account, slot).await.ok().flatten();
            let st = lock(&slot.status).clone();
            out.push(CredentialStatus::build(
                slot.kind,
                stored.as_deref(),
                &st,
                now,
            ));
        }
        Ok(out)
    }

    /// Cached credentials of every account, for the expiry gauges of `/metrics`.
    pub fn cached_expiries(&self) -> Vec<(String, CredentialKind, i64)> {
        let now = unix_now();
        let mut out = Vec::new();
        for (name, acct) in &self.accounts {
            for slot in &acct.slots {
                if let Some(c) = slot.cached.get() {
                    out.push((name.clone(), slot.kind, c.expires_in(now)));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(value: &str, fetched_at_ms: i64, expires_at: i64) -> Arc<Credential> {
        Arc::new(Credential {
            value: value.to_owned(),
            expires_at,
            fetched_at: fetched_at_ms / 1000,
            fetched_at_ms,
            lifetime_s: 7200,
            reason: "initial".to_owned(),
        })
    }

    #[test]
    fn the_cached_view_lends_only_a_valid_credential() {
        let cached = CachedCredential::default();
        assert!(cached.is_empty());
        assert_eq!(cached.with_valid(100, |c| c.value.clone()), None);
        cached.set(cred("t1", 1_000, 200));
        assert_eq!(
            cached.with_valid(199, |c| c.value.clone()).as_deref(),
            Some("t1")
        );
        assert_eq!(
            cached.with_valid(200, |c| c.value.clone()),
            None,
            "expired at expires_at"
        );
        // Forgetting an invalid view leaves a valid one alone.
        cached.clear_if_invalid(150);
        assert_eq!(cached.get().map(|c| c.value.clone()).as_deref(), Some("t1"));
        cached.clear_if_invalid(200);
        assert!(cached.is_empty());
    }

    #[test]
    fn an_older_credential_never_replaces_a_newer_view() {
        let cached = CachedCredential::default();
        cached.set_unless_newer(&cred("new", 2_000, 9_000));
        cached.set_unless_newer(&cred("old", 1_000, 9_000));
        assert_eq!(
            cached.get().map(|c| c.value.clone()).as_deref(),
            Some("new")
        );
        cached.set_unless_newer(&cred("newer", 3_000, 9_000));
        assert_eq!(
            cached.get().map(|c| c.value.clone()).as_deref(),
            Some("newer")
        );
    }
}
