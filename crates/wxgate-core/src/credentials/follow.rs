//! How a credential changed by another instance reaches this one: by a notice, at once, and by
//! a slow reconciliation that repairs a lost notice.
//!
//! Every credential an instance writes to the store (fetched, force-refreshed, dropped) is
//! announced with [`Store::notify`]: `cred <instance> <kind> <account>`. Each instance follows
//! the notices; one from another instance makes it re-read that credential — a forced refresh
//! on one instance (which retires the old token at WeChat) is in use on all of them within
//! the store's notice delay (Redis and PostgreSQL push at once; SQLite is read once a second).
//! Notices that arrive together are read together (`get_many`).
//!
//! A notice can be lost (a reconnection, a follower that fell behind). So, in the background,
//! every credential this instance holds is re-read once per [`ManagerOptions::reconcile_every`]
//! (five minutes by default), spread evenly in batches of one `get_many` a second: 100 000
//! cached tokens cost about one store call a second. After a notice the backend says was
//! missed, a whole round is run at once.
//!
//! Only newer credentials are adopted from a re-read (versions decide, as everywhere); a
//! credential gone from the store is dropped from this instance's view only when a notice says
//! so — a flushed or failed-over store does not take valid tokens away from the instances that
//! hold them.
//!
//! [`Store::notify`]: crate::store::Store::notify
//! [`ManagerOptions::reconcile_every`]: super::ManagerOptions

use std::sync::Arc;
use std::time::Duration;

use super::{valid_stored, AccountCreds, CredentialManager};
use crate::domain::{unix_now, CredentialKind};
use crate::store::Notice;

/// Notices read together, at most.
const NOTICE_BATCH: usize = 500;
/// Credentials re-read by one call of a reconciliation.
const RECONCILE_BATCH: usize = 500;
/// Pause between two calls of a reconciliation run at once (after a missed notice).
const CATCH_UP_PAUSE: Duration = Duration::from_millis(20);
/// Pause before following the store again after `subscribe` failed.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(5);

/// A credential another instance announced.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Announced<'a> {
    pub(super) instance: &'a str,
    pub(super) kind: CredentialKind,
    pub(super) account: &'a str,
}

/// The notice announcing a change of `kind` of `account` by `instance`.
pub(super) fn announcement(instance: &str, kind: CredentialKind, account: &str) -> String {
    format!("cred {instance} {} {account}", kind.as_str())
}

/// Reads a notice written by [`announcement`]; `None` for anything else.
pub(super) fn parse_announcement(message: &str) -> Option<Announced<'_>> {
    let rest = message.strip_prefix("cred ")?;
    let (instance, rest) = rest.split_once(' ')?;
    let (kind, account) = rest.split_once(' ')?;
    let kind = CredentialKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)?;
    Some(Announced {
        instance,
        kind,
        account,
    })
}

impl CredentialManager {
    /// Tells the other instances that `kind` of `account` changed in the store (best effort:
    /// a lost notice is repaired by the reconciliation).
    pub(super) async fn announce(&self, account: &str, kind: CredentialKind) {
        let message = announcement(&self.instance_id, kind, account);
        if message.len() > crate::store::MAX_NOTICE_LEN {
            return;
        }
        if let Err(e) = self.store.notify(&message).await {
            tracing::warn!(account, credential = %kind, error = %e,
                "cannot announce a credential change; other instances pick it up within the reconciliation period");
        }
    }

    /// Follows other instances' announcements, forever.
    pub(super) async fn run_follow_notices(self: Arc<Self>) {
        loop {
            let mut notices = match self.store.subscribe().await {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the store's notices; credentials changed by other instances arrive by reconciliation until this works");
                    tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                    continue;
                }
            };
            let mut batch = Vec::with_capacity(NOTICE_BATCH);
            while notices.recv_many(&mut batch, NOTICE_BATCH).await > 0 {
                let mut changed = Vec::new();
                for notice in batch.drain(..) {
                    match notice {
                        Notice::Missed => self.reconcile_now.notify_one(),
                        Notice::Message(m) => {
                            if let Some(a) = parse_announcement(&m) {
                                if a.instance != self.instance_id {
                                    changed.push((a.account.to_owned(), a.kind));
                                }
                            }
                        }
                    }
                }
                changed.sort_unstable();
                changed.dedup();
                // Only what this instance holds: the others it reads when first asked.
                changed.retain(|(account, kind)| self.holds(account, *kind));
                self.reread(&changed, true).await;
            }
            // The backend's task ended (it should not): follow again.
            self.reconcile_now.notify_one();
        }
    }

    /// Re-reads `changed` credentials from the store and adopts the newer ones. `announced`:
    /// another instance said they changed, so one gone from the store is dropped here too.
    async fn reread(&self, changed: &[(String, CredentialKind)], announced: bool) {
        if changed.is_empty() {
            return;
        }
        let keys: Vec<String> = changed
            .iter()
            .map(|(account, kind)| Self::store_key(account, *kind))
            .collect();
        let values = match self.store.get_many(&keys).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read credentials changed elsewhere; retrying by reconciliation");
                return;
            }
        };
        let accounts = self.accounts.load();
        let now = unix_now();
        for ((account, kind), raw) in changed.iter().zip(values) {
            let Some(slot) = accounts.get(account).and_then(|a| a.made_slot(*kind)) else {
                continue;
            };
            match valid_stored(account, *kind, raw.as_deref(), now) {
                Some(c) => self.adopt(account, slot, &Arc::new(c)),
                None if announced => slot.cached.clear(),
                None => {}
            }
        }
    }

    /// Re-reads every credential this instance holds once per `reconcile_every`, spread out;
    /// after a missed notice, a whole new round at once. Forever.
    pub(super) async fn run_reconcile(self: Arc<Self>) {
        let mut catching_up = false;
        loop {
            let held = self.held_credentials();
            let batches = held.len().div_ceil(RECONCILE_BATCH).max(1);
            let pace = self.options.reconcile_every / u32::try_from(batches).unwrap_or(u32::MAX);
            let fast = std::mem::take(&mut catching_up);
            if held.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(self.options.reconcile_every) => {}
                    () = self.reconcile_now.notified() => {}
                }
                continue;
            }
            for batch in held.chunks(RECONCILE_BATCH) {
                if fast {
                    tokio::time::sleep(CATCH_UP_PAUSE).await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(pace) => {}
                        () = self.reconcile_now.notified() => {
                            catching_up = true;
                            break;
                        }
                    }
                }
                self.reread(batch, false).await;
            }
        }
    }

    /// Whether this instance holds a view of `kind` of `account`.
    fn holds(&self, account: &str, kind: CredentialKind) -> bool {
        self.accounts
            .load()
            .get(account)
            .and_then(|acct| acct.made_slot(kind).map(|s| !s.cached.is_empty()))
            .unwrap_or(false)
    }

    /// Every credential this instance holds a view of.
    fn held_credentials(&self) -> Vec<(String, CredentialKind)> {
        let accounts = self.accounts.load();
        let mut held = Vec::new();
        for (name, acct) in accounts.iter() {
            let acct: &AccountCreds = acct;
            for slot in acct.slots.made() {
                if !slot.cached.is_empty() {
                    held.push((name.clone(), slot.kind));
                }
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_and_anything_else_is_ignored() {
        for kind in CredentialKind::ALL {
            for account in ["main", "component:platform", "wx0123456789abcdef", "a b"] {
                let m = announcement("inst1", kind, account);
                assert_eq!(
                    parse_announcement(&m),
                    Some(Announced {
                        instance: "inst1",
                        kind,
                        account
                    })
                );
            }
        }
        for other in [
            "",
            "cred",
            "cred x",
            "cred x y",
            "cred x nope main",
            "other x access_token main",
        ] {
            assert_eq!(parse_announcement(other), None, "{other:?}");
        }
    }
}
