//! Refresh ahead: credentials are replaced before they expire, while the still-valid ones keep
//! being served.
//!
//! Nothing is scanned: every credential this instance adopts is put in the [`RefreshQueue`] at
//! its due time, and the refresher sleeps until the earliest entry — an idle gateway with
//! 100 000 cached tokens does nothing until one falls due. Only credentials this instance has
//! cached are refreshed (nobody asked for the others). At most [`REFRESHES_AT_ONCE`] run at a
//! time, so credentials that fall due together (all fetched in one cold start) are spread out
//! over a time proportional to their number instead of being fetched all at once; and every
//! WeChat call also waits for the upstream client's own bound. A failed refresh is retried with
//! exponential backoff measured on the monotonic clock.
//!
//! [`RefreshQueue`]: super::schedule::RefreshQueue

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::schedule::{self, Due};
use super::{AccountCreds, CredentialError, CredentialManager, Slot};
use crate::domain::{lock, unix_now, unix_now_ms};

/// Refreshes running at once.
pub(super) const REFRESHES_AT_ONCE: usize = 16;

impl CredentialManager {
    /// Refreshes credentials as they fall due, forever (see the module documentation).
    pub(super) async fn run_refresh_ahead(self: Arc<Self>) {
        // Dropped with this task: stopping the refresher stops the refreshes it started.
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            match self.queue.pop_due(unix_now_ms()) {
                Ok(due) => {
                    if running.len() >= REFRESHES_AT_ONCE {
                        running.join_next().await;
                    }
                    let manager = Arc::clone(&self);
                    running.spawn(async move { manager.refresh_entry(due).await });
                }
                Err(wait) => self.queue.sleep(wait).await,
            }
        }
    }

    /// Looks at a credential whose due time came: refreshes it when the slot still holds a
    /// credential that is due, retries later after a failure, and otherwise does nothing (the
    /// account is gone, or its credential was replaced and scheduled anew).
    async fn refresh_entry(&self, due: Due) {
        let Some(acct) = self.accounts.load().get(&due.account.name).cloned() else {
            return;
        };
        let Some(slot) = acct.made_slot(due.kind) else {
            return;
        };
        let Some(cached) = slot.cached.get() else {
            return;
        };
        if !cached.is_due_at(unix_now()) {
            return;
        }
        let retry_in = {
            let status = lock(&slot.status);
            status.retry_in(Instant::now())
        };
        if let Some(wait) = retry_in {
            self.retry_later(due, wait);
            return;
        }
        match self.refresh_ahead(&acct, slot).await {
            Ok(true) => {}
            Ok(false) => {
                // WeChat handed back the same lifetime (stable API just outside its own
                // 5-minute window): try again shortly rather than in a tight loop.
                let wait = lock(&slot.status).backoff(Instant::now());
                self.retry_later(due, wait);
            }
            Err(e) => {
                tracing::warn!(account = %acct.settings.name, credential = %slot.kind, error = %e,
                    "refresh-ahead failed; the current credential stays in use until it expires");
                let wait = lock(&slot.status).backoff(Instant::now());
                self.retry_later(due, wait);
            }
        }
    }

    fn retry_later(&self, due: Due, wait: Duration) {
        let at_ms = unix_now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(0));
        self.queue.push(at_ms, due.account, due.kind);
    }

    /// Refreshes the slot's credential unless another instance already has. Returns false when
    /// WeChat answered with a credential that expires no later than the one it replaces.
    async fn refresh_ahead(
        &self,
        acct: &AccountCreds,
        slot: &Slot,
    ) -> Result<bool, CredentialError> {
        let account = acct.settings.name.as_str();
        let deadline = self.wait_deadline();
        let _flight = self.lock_flight(slot, deadline).await?;
        // Another instance may have refreshed it already.
        let current = match self.load_stored(account, slot).await? {
            Some(c) => c,
            None => {
                // Expired or gone: the next caller fetches; drop our view so it does.
                slot.cached.clear_if_invalid(unix_now());
                return Ok(true);
            }
        };
        if !current.is_due_at(unix_now()) {
            return Ok(true);
        }
        let fresh = self
            .obtain(acct, slot, Some(&current), "ahead", deadline)
            .await?;
        if fresh.expires_at <= current.expires_at {
            return Ok(false);
        }
        lock(&slot.status).clear_backoff();
        Ok(true)
    }

    /// Puts a credential this instance adopted in the refresh queue at its due time.
    pub(super) fn schedule(&self, account: &str, slot: &Slot, cred: &super::Credential) {
        if let Some(acct) = self.accounts.load().get(account) {
            let settings = Arc::clone(&acct.settings);
            self.queue
                .push(schedule::due_at_ms(cred), settings, slot.kind);
        }
    }
}
