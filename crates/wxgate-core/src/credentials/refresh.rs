//! Refresh ahead: a background scan that replaces credentials before they expire, while the
//! still-valid ones keep being served, and carries refreshes made by other instances into this
//! one's cache.
//!
//! Only credentials this instance has cached are looked at (nobody asked for the others). A
//! failed refresh is retried with exponential backoff measured on the monotonic clock.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::{AccountCreds, CredentialError, CredentialManager, Slot};
use crate::domain::{lock, unix_now};

impl CredentialManager {
    /// One pass of the refresh-ahead scheduler: re-reads every credential this instance has
    /// cached from the shared store (so a refresh made by another instance — a forced one in
    /// particular, which retires the old token — reaches this instance within one scan), then
    /// refreshes those that are due. Credentials nobody asked for are never fetched.
    pub async fn refresh_due(&self) {
        let accounts = self.accounts.load_full();
        for acct in accounts.values() {
            for slot in acct.slots.iter() {
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
                if !cached.is_due_at(unix_now()) || !lock(&slot.status).may_retry_at(Instant::now())
                {
                    continue;
                }
                if let Err(e) = self.refresh_ahead(acct, slot).await {
                    tracing::warn!(account = %acct.settings.name, credential = %slot.kind, error = %e,
                        "refresh-ahead failed; the current credential stays in use until it expires");
                    lock(&slot.status).backoff(Instant::now());
                }
            }
        }
    }

    async fn refresh_ahead(&self, acct: &AccountCreds, slot: &Slot) -> Result<(), CredentialError> {
        let account = acct.settings.name.as_str();
        let deadline = self.wait_deadline();
        let _flight = self.lock_flight(slot, deadline).await?;
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
        let fresh = self
            .obtain(acct, slot, Some(&current), "ahead", deadline)
            .await?;
        if fresh.expires_at <= current.expires_at {
            // WeChat handed back the same lifetime (stable API just outside its own 5-minute
            // window): try again shortly rather than in a tight loop.
            lock(&slot.status).backoff(Instant::now());
        } else {
            lock(&slot.status).clear_backoff();
        }
        Ok(())
    }

    /// Runs [`Self::refresh_due`] forever, every `scan_every` ± 50 %.
    pub async fn run_refresh_ahead(self: std::sync::Arc<Self>) {
        loop {
            let base = self.options.scan_every.as_millis() as u64;
            let jitter = rand::thread_rng().gen_range(base / 2..=base + base / 2);
            tokio::time::sleep(Duration::from_millis(jitter.max(10))).await;
            self.refresh_due().await;
        }
    }
}
