//! An account's credential slots: per credential kind, this instance's cached view, the
//! single-flight lock, the failure memory and the status bookkeeping.
//!
//! A slot is made when its credential is first asked for: most accounts only ever use their
//! access token, and an unmade slot costs 16 bytes instead of a few hundred — what keeps an
//! instance with 100 000 accounts small.

use std::sync::{Arc, Mutex, OnceLock};

use super::cache::CachedCredential;
use super::failures::FailureMemory;
use super::status;
use crate::config::Account;
use crate::domain::CredentialKind;

pub(super) struct Slot {
    pub(super) kind: CredentialKind,
    /// This instance's last view of the stored credential (saves a store read per request).
    pub(super) cached: CachedCredential,
    /// Single flight inside the process.
    pub(super) flight: tokio::sync::Mutex<()>,
    /// The last failed fetch, shared with the callers queued behind it.
    pub(super) failures: FailureMemory,
    pub(super) status: Mutex<status::SlotStatus>,
}

pub(super) struct AccountCreds {
    pub(super) settings: Arc<Account>,
    /// Shared with the entry that replaces this one when the account's settings change but its
    /// AppID and token API do not, so a replace keeps the credentials (see [`super::CredentialManager::sync`]).
    pub(super) slots: Arc<Slots>,
}

/// An account's credential slots, one per [`CredentialKind::ALL`] in that order, each made when
/// its credential is first asked for: most accounts only ever use their access token, and an
/// empty slot costs 16 bytes instead of a few hundred (what keeps 100 000 accounts small).
#[derive(Default)]
pub(super) struct Slots([OnceLock<Box<Slot>>; 3]);

impl Slots {
    /// The slots made so far.
    pub(super) fn made(&self) -> impl Iterator<Item = &Slot> {
        self.0.iter().filter_map(|s| s.get().map(|b| &**b))
    }
}

impl AccountCreds {
    /// The slot of `kind`, made on first use.
    pub(super) fn slot(&self, kind: CredentialKind) -> &Slot {
        let idx = CredentialKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.slots.0[idx].get_or_init(|| {
            Box::new(Slot {
                kind,
                cached: CachedCredential::default(),
                flight: tokio::sync::Mutex::new(()),
                failures: FailureMemory::default(),
                status: Mutex::new(status::SlotStatus::default()),
            })
        })
    }

    /// The slot of `kind` when it was made (never makes one).
    pub(super) fn made_slot(&self, kind: CredentialKind) -> Option<&Slot> {
        let idx = CredentialKind::ALL.iter().position(|k| *k == kind)?;
        self.slots.0[idx].get().map(|b| &**b)
    }
}
