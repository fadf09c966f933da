//! This instance's last view of one stored credential, read by every request.
//!
//! Every request reads it, from every worker thread at once: readers take no lock and write
//! nothing another thread reads (`arc_swap`), so a cache hit costs no cache-line transfer between
//! cores. Writers (fetches, store re-reads, the refresh scan) are rare; `write` keeps their
//! compare-then-replace steps whole, and a view is only ever replaced by one at least as new
//! (by [`Credential::version_ms`]), so concurrent writers cannot make it go back in time.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::Credential;
use crate::domain::lock;

#[derive(Default)]
pub(super) struct CachedCredential {
    current: ArcSwapOption<Credential>,
    write: Mutex<()>,
}

impl CachedCredential {
    pub(super) fn get(&self) -> Option<Arc<Credential>> {
        self.current.load_full()
    }

    /// The credential when valid at `now`.
    pub(super) fn valid_at(&self, now: i64) -> Option<Arc<Credential>> {
        self.get().filter(|c| c.is_valid_at(now))
    }

    /// The credential when valid at `now`, lent to `f` (no reference count is touched).
    pub(super) fn with_valid<R>(&self, now: i64, f: impl FnOnce(&Credential) -> R) -> Option<R> {
        let current = self.current.load();
        current.as_deref().filter(|c| c.is_valid_at(now)).map(f)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.current.load().is_none()
    }

    /// Replaces the view unless it is newer than `cred` (concurrent writers: newest wins).
    /// Returns whether `cred` is new to this view (nothing, or an older version, was held).
    pub(super) fn set_unless_newer(&self, cred: &Arc<Credential>) -> bool {
        let _write = lock(&self.write);
        let held = self.current.load().as_ref().map(|c| c.version_ms);
        match held {
            Some(v) if v > cred.version_ms => false,
            Some(v) if v == cred.version_ms => {
                self.current.store(Some(Arc::clone(cred)));
                false
            }
            _ => {
                self.current.store(Some(Arc::clone(cred)));
                true
            }
        }
    }

    /// Forgets the view.
    pub(super) fn clear(&self) {
        let _write = lock(&self.write);
        self.current.store(None);
    }

    /// Forgets the view when it is no longer valid at `now`.
    pub(super) fn clear_if_invalid(&self, now: i64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(value: &str, version_ms: i64, expires_at: i64) -> Arc<Credential> {
        Arc::new(Credential {
            value: value.to_owned(),
            expires_at,
            fetched_at: version_ms / 1000,
            version_ms,
            lifetime_s: 7200,
            reason: "initial".to_owned(),
        })
    }

    #[test]
    fn the_cached_view_lends_only_a_valid_credential() {
        let cached = CachedCredential::default();
        assert!(cached.is_empty());
        assert_eq!(cached.with_valid(100, |c| c.value.clone()), None);
        assert!(cached.set_unless_newer(&cred("t1", 1_000, 200)));
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
        assert!(cached.set_unless_newer(&cred("new", 2_000, 9_000)));
        assert!(!cached.set_unless_newer(&cred("old", 1_000, 9_000)));
        assert!(
            !cached.set_unless_newer(&cred("new", 2_000, 9_000)),
            "the same again"
        );
        assert_eq!(
            cached.get().map(|c| c.value.clone()).as_deref(),
            Some("new")
        );
        assert!(cached.set_unless_newer(&cred("newer", 3_000, 9_000)));
        assert_eq!(
            cached.get().map(|c| c.value.clone()).as_deref(),
            Some("newer")
        );
    }
}
