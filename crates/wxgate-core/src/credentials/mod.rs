//! The central credential manager: one upstream fetch per validity window, however many
//! requests, processes and hosts ask.
//!
//! WeChat's own documentation tells every account to run a "central control server" because
//! each `cgi-bin/token` call retires the token every other server holds (errcode 40001) and the
//! daily quota is small. This module is that server's core. For each account and credential kind
//! (access_token, jsapi ticket, wx_card ticket):
//!
//! - **single flight in a process**: concurrent callers that find no valid credential queue on
//!   one async mutex, for at most [`ManagerOptions::wait_timeout`]; the first fetches, the rest
//!   take its outcome — the credential it stored, or its error ([`failures`]);
//! - **failures are remembered**: after a failed fetch, callers are answered
//!   [`CredentialError::Backoff`] at once for [`ManagerOptions::failure_backoff`] (monotonic
//!   clock), so an outage costs one fetch's attempts per window, not one fetch per caller;
//! - **a lease across processes and hosts**: before fetching, an instance takes a lease in the
//!   shared [`Store`] and renews it while it works ([`lease`]); others poll the store for the
//!   result, and a crashed holder's lease simply expires (its TTL is one attempt plus margin);
//! - **the credential WeChat issued last wins**: credentials are written with `put_if_newer`,
//!   versioned by the time the fetch *completed* (WeChat issued it at or before then), and a
//!   holder checks its lease is still its own before storing; so a slow fetch cannot replace a
//!   credential issued after its own, and a force-refreshed token beats the one it invalidated
//!   (versions are wall-clock milliseconds of the fetching host: hosts' clocks must agree to
//!   well under a fetch's duration, as NTP gives);
//! - **refresh ahead**: a background task ([`refresh`]) refreshes a credential once 300 s or
//!   less of its WeChat lifetime remain (half its lifetime for credentials shorter than 600 s),
//!   with jitter, while the still-valid one keeps being served; a failed refresh is retried with
//!   backoff. Credentials are queued by due time ([`schedule`]), never scanned;
//! - **changes reach every instance**: each credential written to the store is announced with a
//!   store notice, and the others re-read it at once; a slow background reconciliation repairs
//!   lost notices ([`follow`]);
//! - **never expired**: a credential is handed out only while `now < expires_at` (wall clock,
//!   since `expires_at` is shared with other instances through the store; a clock stepped back
//!   makes a credential look valid for longer than it is — WeChat then answers 40001/42001 and
//!   the guarded refresh below replaces it). WeChat's `expires_in` is capped at
//!   [`MAX_LIFETIME_S`];
//! - **guarded forced refresh** ([`fetch`]): a caller reporting a token as invalid causes at
//!   most one upstream fetch per account per 30 s (a store-wide guard), and none at all when the
//!   token it reports is not the current one. With the stable-token API, normal mode is tried
//!   first and `force_refresh=true` only when WeChat hands back the very token reported invalid
//!   and a cheap probe confirms WeChat rejects it;
//! - **ticket history**: each ticket it stores is also put at the front of a short per-account
//!   history ([`history`]), which `diagnose` reads to recognise a replaced ticket.

mod cache;
mod credential;
mod failures;
mod fetch;
mod follow;
mod history;
mod lease;
mod platform;
mod refresh;
mod retry;
mod schedule;
mod slots;
mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::Rng;

use self::credential::valid_stored;
pub use self::credential::{capped_lifetime, Credential};
use self::lease::Lease;
pub use self::platform::{
    CurrentRefreshToken, PlatformSecrets, StoredTicket, REFRESH_TOKEN_INVALID, TICKET_MAX_AGE_S,
};
pub use self::retry::{Again, Fresh, NotRetried};
use self::slots::{AccountCreds, Slot, Slots};
pub use self::status::{CredentialStatus, ErrorRecord, Health, HealthLine, EXPIRING_WITHIN_S};
use crate::config::{Accounts, Component};
use crate::domain::{lock, unix_now, CredentialKind};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::upstream::{UpstreamError, WechatClient};

/// Refresh a credential once this many seconds of its lifetime remain (SPEC: 300 s).
pub const REFRESH_AHEAD_S: i64 = 300;
/// At most one forced refresh per account in this window, across all instances.
pub const FORCED_REFRESH_GUARD: Duration = Duration::from_secs(30);
/// The longest lifetime believed from WeChat's `expires_in` (twice the 7200 s WeChat gives):
/// a larger (or absurd, e.g. 2^64-1) value is capped, so a bogus answer can make wxgate serve a
/// credential past its real expiry for at most this long, and never overflows.
pub const MAX_LIFETIME_S: i64 = 2 * 7200;
/// How long a failed fetch is remembered by default (see [`ManagerOptions::failure_backoff`]).
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// The default round of the background reconciliation (see [`follow`]).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How often store-polling waiters look for a credential another instance is fetching.
const WAIT_POLL: Duration = Duration::from_millis(25);

/// Why a credential could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A fetch failed moments ago and is remembered: no new attempt before `retry_in` passes.
    #[error("a fetch from WeChat failed moments ago ({error}); the next attempt is allowed in {} s", retry_in.as_secs_f64().ceil())]
    Backoff {
        error: UpstreamError,
        retry_in: Duration,
    },
    #[error("credential store failed: {0}")]
    Store(#[from] StoreError),
    #[error("timed out waiting for another caller or instance to fetch the credential")]
    WaitTimeout,
    /// A platform's token cannot be fetched: no component_verify_ticket younger than 12 h.
    #[error("no component_verify_ticket younger than 12 h has reached wxgate for platform {component:?}: check that the platform's authorization event URL in the WeChat Open Platform console is <public_url>/wx/component/{component} with this platform's Token and key (WeChat pushes a ticket every 10 minutes; wxgate has asked WeChat to push one now)")]
    TicketMissing { component: String },
    /// WeChat refused the authorizer's refresh token (61023): its tokens are gone until the
    /// merchant authorizes again.
    #[error("WeChat refused the refresh token of authorizer {appid:?} (61023): the authorization is gone; the merchant must authorize platform {component:?} again")]
    AuthorizationLost { appid: String, component: String },
    /// The database of refresh tokens failed.
    #[error("refresh tokens: {0}")]
    Records(String),
}

/// Tunables, derived from the upstream settings.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Lease TTL: one attempt plus margin. The holder renews it every third of it while it
    /// works, so it bounds only how long a crashed holder blocks the others.
    pub lease_ttl: Duration,
    /// How long a caller waits for another caller's or instance's fetch before giving up: the
    /// worst-case fetch (all attempts + backoff), twice, plus margin.
    pub wait_timeout: Duration,
    /// How long a failed fetch is remembered and answered without a new attempt.
    pub failure_backoff: Duration,
    /// How long one round of the background reconciliation takes: every credential this
    /// instance holds is re-read from the store once per round, spread evenly.
    pub reconcile_every: Duration,
}

impl ManagerOptions {
    /// Derived from the per-attempt upstream timeout and the number of attempts.
    pub fn for_upstream(timeout: Duration, attempts: u32) -> Self {
        let worst = timeout * attempts.max(1) + Duration::from_secs(3);
        Self {
            lease_ttl: timeout + Duration::from_secs(2),
            wait_timeout: worst * 2 + Duration::from_secs(2),
            failure_backoff: FAILURE_BACKOFF,
            reconcile_every: RECONCILE_EVERY,
        }
    }
}

/// Every account's credential slots by name, swapped whole when the registry changes.
type AccountMap = HashMap<String, Arc<AccountCreds>>;

/// See the module documentation.
pub struct CredentialManager {
    accounts: ArcSwap<AccountMap>,
    store: Arc<dyn Store>,
    client: WechatClient,
    metrics: Arc<Metrics>,
    options: ManagerOptions,
    /// Identifies this instance's leases.
    instance_id: String,
    /// Makes each lease owner string unique.
    leases_taken: AtomicU64,
    /// Where authorizers' refresh tokens are kept ([`PlatformSecrets`]); set once at start.
    platform_secrets: std::sync::OnceLock<Arc<dyn PlatformSecrets>>,
    /// When each held credential is due for its refresh-ahead.
    queue: schedule::RefreshQueue,
    /// Woken when a store notice was missed: the reconciliation runs a round at once.
    reconcile_now: tokio::sync::Notify,
}

impl CredentialManager {
    /// A manager for `accounts` and the platforms `components` (whose tokens it fetches as
    /// the accounts `component:<name>`).
    pub fn new(
        accounts: &Accounts,
        components: &[Arc<Component>],
        store: Arc<dyn Store>,
        client: WechatClient,
        metrics: Arc<Metrics>,
        options: ManagerOptions,
    ) -> Self {
        let accounts =
            ArcSwap::from_pointee(Self::account_map(accounts, components, &AccountMap::new()));
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
            leases_taken: AtomicU64::new(0),
            platform_secrets: std::sync::OnceLock::new(),
            queue: schedule::RefreshQueue::default(),
            reconcile_now: tokio::sync::Notify::new(),
        }
    }

    /// The manager's background work, until dropped: refresh-ahead, following other instances'
    /// changes, and the slow reconciliation.
    pub async fn run_background(self: Arc<Self>) {
        tokio::join!(
            Arc::clone(&self).run_refresh_ahead(),
            Arc::clone(&self).run_follow_notices(),
            self.run_reconcile(),
        );
    }

    /// Makes `cred` this instance's view of `slot` unless it holds a newer one; a credential
    /// new to it is queued for its refresh-ahead.
    fn adopt(&self, account: &str, slot: &Slot, cred: &Arc<Credential>) {
        if slot.cached.set_unless_newer(cred) {
            self.schedule(account, slot, cred);
        }
    }

    /// The slots of `accounts` and of the platforms' credential accounts, keeping those of `old`
    /// for every account whose AppID, token API and token source are unchanged (its cached
    /// credentials stay valid); the others start empty.
    fn account_map(
        accounts: &Accounts,
        components: &[Arc<Component>],
        old: &AccountMap,
    ) -> AccountMap {
        accounts
            .iter()
            .chain(components.iter().map(|c| &c.credentials))
            .map(|a| {
                let slots = match old.get(&a.name) {
                    Some(o)
                        if o.settings.appid == a.appid
                            && o.settings.token_api == a.token_api
                            && o.settings.token_source == a.token_source =>
                    {
                        Arc::clone(&o.slots)
                    }
                    _ => Arc::new(Slots::default()),
                };
                let creds = AccountCreds {
                    settings: Arc::clone(a),
                    slots,
                };
                (a.name.clone(), Arc::new(creds))
            })
            .collect()
    }

    /// Follows a change of the registry: accounts added get empty slots, removed ones are
    /// dropped, replaced ones keep their credentials unless their AppID or token API changed.
    /// Requests already holding an account's slots finish with them.
    pub fn sync(&self, accounts: &Accounts, components: &[Arc<Component>]) {
        let old = self.accounts.load_full();
        self.accounts
            .store(Arc::new(Self::account_map(accounts, components, &old)));
    }

    /// Forgets the stored credentials of `account` (deleted, or its AppID changed), so no
    /// instance hands out a credential of the account it was before.
    pub async fn forget_stored(&self, account: &str) -> Result<(), StoreError> {
        for kind in CredentialKind::ALL {
            self.store.delete(&Self::store_key(account, kind)).await?;
            self.announce(account, kind).await;
        }
        Ok(())
    }

    fn account(&self, name: &str) -> Result<Arc<AccountCreds>, CredentialError> {
        self.accounts
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| CredentialError::UnknownAccount(name.to_owned()))
    }

    /// Whether `name` is a configured account.
    pub fn has_account(&self, name: &str) -> bool {
        self.accounts.load().contains_key(name)
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

    /// A valid credential: from this instance's cache, else the store, else WeChat — unless a
    /// fetch failed within [`ManagerOptions::failure_backoff`], which is answered at once.
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
        let acct = {
            let map = self.accounts.load();
            let acct = map
                .get(account)
                .ok_or_else(|| CredentialError::UnknownAccount(account.to_owned()))?;
            if let Some(c) = acct.slot(kind).cached.valid_at(unix_now()) {
                return Ok(c);
            }
            Arc::clone(acct)
        };
        Box::pin(self.get_uncached(&acct, acct.slot(kind))).await
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
            .load()
            .get(account)?
            .slot(kind)
            .cached
            .with_valid(now, f)
    }

    /// [`Self::get`] when this instance's cache has nothing valid: one caller at a time per
    /// credential looks in the store or fetches; the others wait and take its outcome.
    async fn get_uncached(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
    ) -> Result<Arc<Credential>, CredentialError> {
        if let Some(e) = slot.failures.in_backoff(tokio::time::Instant::now()) {
            return Err(e);
        }
        Self::refuse_lost_authorization(acct)?;
        let deadline = self.wait_deadline();
        let queued_at = slot.failures.generation();
        let _flight = self.lock_flight(slot, deadline).await?;
        // Someone in this process may have fetched while we queued.
        if let Some(c) = slot.cached.valid_at(unix_now()) {
            return Ok(c);
        }
        self.obtain_remembered(acct, slot, queued_at, deadline)
            .await
    }

    /// Until when a caller arriving now may wait for others' fetches, all waiting included
    /// (the flight lock, another instance's lease): [`ManagerOptions::wait_timeout`].
    fn wait_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.options.wait_timeout
    }

    /// The slot's flight lock, waited for until `deadline` at most.
    async fn lock_flight<'a>(
        &self,
        slot: &'a Slot,
        deadline: tokio::time::Instant,
    ) -> Result<tokio::sync::MutexGuard<'a, ()>, CredentialError> {
        tokio::time::timeout_at(deadline, slot.flight.lock())
            .await
            .map_err(|_| CredentialError::WaitTimeout)
    }

    /// With the flight lock held (taken after noting `queued_at`): the outcome of a fetch that
    /// failed while we queued, or the remembered failure, or a fresh [`Self::obtain`] whose
    /// failure is remembered in turn.
    async fn obtain_remembered(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
        queued_at: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Credential>, CredentialError> {
        if let Some(e) = slot
            .failures
            .after_queueing(queued_at, tokio::time::Instant::now())
        {
            return Err(e);
        }
        let result = self.obtain(acct, slot, None, "initial", deadline).await;
        match &result {
            Ok(_) => slot.failures.succeeded(),
            // Only WeChat's own failure starts a window: a ticket fetch refused because the
            // token is in its backoff must not stack a second window on the ticket.
            Err(e) => {
                if let CredentialError::Upstream(upstream) = e {
                    slot.failures.failed(
                        upstream,
                        tokio::time::Instant::now(),
                        self.options.failure_backoff,
                    );
                }
            }
        }
        result
    }

    /// Takes the credential's store lease if nobody holds it.
    async fn try_lease(
        &self,
        account: &str,
        kind: CredentialKind,
    ) -> Result<Option<Lease>, CredentialError> {
        let n = self.leases_taken.fetch_add(1, Ordering::Relaxed);
        let owner = format!("{}:{}:{n}", self.instance_id, crate::domain::unix_now_ms());
        Ok(Lease::try_take(
            &self.store,
            &Self::lease_key(account, kind),
            owner,
            self.options.lease_ttl,
        )
        .await?)
    }

    /// Reads the stored credential into the local cache; returns it when valid.
    async fn load_stored(
        &self,
        account: &str,
        slot: &Slot,
    ) -> Result<Option<Arc<Credential>>, CredentialError> {
        let Some(cred) = self.read_stored(account, slot.kind).await? else {
            return Ok(None);
        };
        let cred = Arc::new(cred);
        self.adopt(account, slot, &cred);
        Ok(Some(cred))
    }

    /// The stored credential when valid, without touching this instance's view.
    async fn read_stored(
        &self,
        account: &str,
        kind: CredentialKind,
    ) -> Result<Option<Credential>, CredentialError> {
        let raw = self.store.get(&Self::store_key(account, kind)).await?;
        Ok(valid_stored(account, kind, raw.as_deref(), unix_now()))
    }

    /// The account's last few tickets of `kind` (the current one included), newest first, as
    /// recorded when they were fetched; empty for access tokens and unknown accounts.
    pub async fn history(&self, account: &str, kind: CredentialKind) -> Vec<Credential> {
        if kind.ticket().is_none() || !self.has_account(account) {
            return Vec::new();
        }
        history::read(self.store.as_ref(), account, kind).await
    }

    /// What an operator looks at first: per credential, this instance's view.
    pub async fn status(&self, account: &str) -> Result<Vec<CredentialStatus>, CredentialError> {
        let acct = self.account(account)?;
        let now = unix_now();
        let mut out = Vec::new();
        for kind in CredentialKind::ALL {
            // A credential never asked for here has no slot, and looking does not make one.
            let (stored, st) = match acct.made_slot(kind) {
                Some(slot) => (
                    self.load_stored(account, slot).await.ok().flatten(),
                    lock(&slot.status).clone(),
                ),
                None => (
                    self.read_stored(account, kind)
                        .await
                        .ok()
                        .flatten()
                        .map(Arc::new),
                    status::SlotStatus::default(),
                ),
            };
            out.push(CredentialStatus::build(kind, stored.as_deref(), &st, now));
        }
        Ok(out)
    }

    /// The account's credentials in one word, from this instance's memory (the console's
    /// overview judges every account with it); `None` for an unknown account.
    pub fn health(&self, account: &str) -> Option<HealthLine> {
        let acct = self.accounts.load().get(account).cloned()?;
        let now = unix_now();
        Some(HealthLine::judge(acct.slots.made().map(|slot| {
            HealthLine::slot_part(
                slot.cached.get().map(|c| c.expires_in(now)),
                &lock(&slot.status),
            )
        })))
    }

    /// Cached credentials of every account, for the expiry gauges of `/metrics`.
    pub fn cached_expiries(&self) -> Vec<(String, CredentialKind, i64)> {
        let now = unix_now();
        let mut out = Vec::new();
        for (name, acct) in self.accounts.load().iter() {
            for slot in acct.slots.made() {
                if let Some(c) = slot.cached.get() {
                    out.push((name.clone(), slot.kind, c.expires_in(now)));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}
