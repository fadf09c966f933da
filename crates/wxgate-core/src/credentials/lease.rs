//! The store lease that makes one instance, among all processes and hosts, the one fetching a
//! credential; the single guard both fetch paths (a plain fetch and the guarded forced refresh)
//! use.
//!
//! Taking it is one `put_if_absent` of an owner string unique to this take, with a TTL (a
//! crashed holder's lease frees itself). While the guard lives, a background task renews the TTL
//! every third of it with `extend_if_equals`, which extends only while the stored value is still
//! ours: a holder whose work outlasts one TTL (a ticket fetch that first refreshes the token, the
//! stable-token path normal + probe + force, retries against a slow WeChat) keeps its lease, and
//! one that lost it (a stalled process, a store outage longer than the TTL) can never extend
//! another instance's. [`Lease::is_lost`] tells a holder, before it stores what it fetched,
//! whether it lost the lease (the write is conditional on the version either way). Releasing deletes the lease only while it is ours; a guard dropped without release
//! (its caller was cancelled) releases it in the background, else it expires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// See the module documentation.
pub(super) struct Lease {
    store: Arc<dyn Store>,
    key: String,
    owner: String,
    /// Set by the renewal task when the store says the lease is no longer ours.
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Takes the lease when nobody holds it; `None` when someone does.
    pub(super) async fn try_take(
        store: &Arc<dyn Store>,
        key: &str,
        owner: String,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if !store
            .put_if_absent(key, owner.as_bytes(), Some(ttl))
            .await?
        {
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew(
            Arc::clone(store),
            key.to_owned(),
            owner.clone(),
            ttl,
            Arc::clone(&lost),
        ));
        Ok(Some(Lease {
            store: Arc::clone(store),
            key: key.to_owned(),
            owner,
            lost,
            renewal,
            released: false,
        }))
    }

    /// Whether the renewal found the lease taken over (no store read: the renewal, every third
    /// of the TTL, is what watches it).
    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Whether the store still holds this lease as ours (tests check renewal with it). A store
    /// error counts as "not known to be ours".
    #[cfg(test)]
    pub(super) async fn still_held(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return false;
        }
        matches!(self.store.get(&self.key).await, Ok(Some(v)) if v == self.owner.as_bytes())
    }

    /// Stops renewing and deletes the lease if it is still ours.
    pub(super) async fn release(mut self) {
        self.renewal.abort();
        let deleted = self
            .store
            .delete_if_equals(&self.key, self.owner.as_bytes())
            .await;
        // Only now: a caller cancelled during the delete leaves it to `Drop` to retry.
        self.released = true;
        if let Err(e) = deleted {
            tracing::warn!(lease = %self.key, error = %e, "could not release a refresh lease; it will expire");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        // The holder was cancelled mid-work: free the lease for the others now rather than
        // after its TTL (best effort; without a runtime it simply expires).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            let key = std::mem::take(&mut self.key);
            let owner = std::mem::take(&mut self.owner);
            runtime.spawn(async move {
                let _ = store.delete_if_equals(&key, owner.as_bytes()).await;
            });
        }
    }
}

/// Extends the lease every `ttl / 3` while it is ours; stops for good once it is not.
async fn renew(
    store: Arc<dyn Store>,
    key: String,
    owner: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match store.extend_if_equals(&key, owner.as_bytes(), ttl).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Release);
                tracing::warn!(lease = %key, "a refresh lease expired before its holder finished; its result is stored only if newer");
                return;
            }
            // Perhaps still ours: try again at the next tick (the TTL covers two misses).
            Err(e) => tracing::warn!(lease = %key, error = %e, "could not renew a refresh lease"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_held_lease_outlives_its_ttl_and_a_released_one_is_free() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let ttl = Duration::from_millis(150);
        let lease = Lease::try_take(&store, "lease:x", "a:1".into(), ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(Lease::try_take(&store, "lease:x", "b:1".into(), ttl)
            .await
            .unwrap()
            .is_none());
        tokio::time::sleep(ttl * 4).await;
        assert!(lease.still_held().await, "renewed while held");
        assert!(Lease::try_take(&store, "lease:x", "b:1".into(), ttl)
            .await
            .unwrap()
            .is_none());
        lease.release().await;
        let other = Lease::try_take(&store, "lease:x", "b:2".into(), ttl)
            .await
            .unwrap();
        assert!(other.is_some());
    }

    #[tokio::test]
    async fn a_lease_taken_over_is_no_longer_held_and_a_dropped_one_is_freed() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let ttl = Duration::from_secs(60);
        let lease = Lease::try_take(&store, "lease:y", "a:1".into(), ttl)
            .await
            .unwrap()
            .unwrap();
        // As if it had expired and another instance took it.
        store.put("lease:y", b"b:1", Some(ttl)).await.unwrap();
        assert!(!lease.still_held().await);
        lease.release().await;
        assert_eq!(
            store.get("lease:y").await.unwrap().as_deref(),
            Some(&b"b:1"[..])
        );

        store.delete("lease:y").await.unwrap();
        let dropped = Lease::try_take(&store, "lease:y", "c:1".into(), ttl)
            .await
            .unwrap();
        drop(dropped);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.get("lease:y").await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never freed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
