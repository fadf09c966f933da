//! The memory of a credential's last failed fetch, so that an upstream outage costs one fetch
//! (its few attempts) per backoff window, not one per caller.
//!
//! Callers that find no valid credential queue on the slot's flight lock. Before queueing each
//! notes the slot's [`FailureMemory::generation`]; a fetch that ends (either way) advances it.
//! A caller that gets the lock after a failed fetch it queued behind shares that fetch's error
//! instead of redoing it, and for [`ManagerOptions::failure_backoff`](super::ManagerOptions)
//! after a failure every new caller is answered at once with
//! [`CredentialError::Backoff`](super::CredentialError), which says it is a remembered failure
//! and when the next attempt is allowed. A successful fetch forgets the failure. The windows are
//! measured on the monotonic clock (a wall clock stepped back or forward changes nothing), as
//! they only concern this process.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::CredentialError;
use crate::domain::lock;
use crate::upstream::UpstreamError;

#[derive(Default)]
pub(super) struct FailureMemory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Advanced by every fetch that ends.
    generation: u64,
    /// Boxed: most slots never see a failure, and this keeps them small.
    last: Option<Box<Remembered>>,
}

struct Remembered {
    error: UpstreamError,
    /// The generation the failed fetch ended.
    generation: u64,
    retry_at: Instant,
}

impl FailureMemory {
    /// Noted by a caller before it queues for the flight lock.
    pub(super) fn generation(&self) -> u64 {
        lock(&self.inner).generation
    }

    /// The remembered failure while its backoff runs, as the error a new caller gets.
    pub(super) fn in_backoff(&self, now: Instant) -> Option<CredentialError> {
        let inner = lock(&self.inner);
        let last = inner.last.as_ref().filter(|r| now < r.retry_at)?;
        Some(CredentialError::Backoff {
            error: last.error.clone(),
            retry_in: last.retry_at - now,
        })
    }

    /// For a caller that queued at generation `seen` and now holds the flight lock: the error of
    /// a fetch that failed meanwhile (shared as is), else the remembered one while in backoff.
    pub(super) fn after_queueing(&self, seen: u64, now: Instant) -> Option<CredentialError> {
        {
            let inner = lock(&self.inner);
            if let Some(last) = inner.last.as_ref().filter(|r| r.generation > seen) {
                return Some(CredentialError::Upstream(last.error.clone()));
            }
        }
        self.in_backoff(now)
    }

    /// A fetch failed at `now`: remember it for `backoff`.
    pub(super) fn failed(&self, error: &UpstreamError, now: Instant, backoff: Duration) {
        let mut inner = lock(&self.inner);
        inner.generation += 1;
        inner.last = Some(Box::new(Remembered {
            error: error.clone(),
            generation: inner.generation,
            retry_at: now + backoff,
        }));
    }

    /// A fetch succeeded: forget any failure.
    pub(super) fn succeeded(&self) {
        let mut inner = lock(&self.inner);
        inner.generation += 1;
        inner.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_shared_with_queued_callers_and_refused_during_its_backoff() {
        let memory = FailureMemory::default();
        let backoff = Duration::from_secs(5);
        let t0 = Instant::now();
        let secs = |s| t0 + Duration::from_secs(s);
        let seen = memory.generation();
        assert!(memory.after_queueing(seen, t0).is_none());
        memory.failed(&UpstreamError::HttpStatus(503), t0, backoff);
        // A caller that queued behind the failed fetch gets its very error.
        assert!(matches!(
            memory.after_queueing(seen, t0),
            Some(CredentialError::Upstream(UpstreamError::HttpStatus(503)))
        ));
        // A new caller is refused at once, told when to come back.
        match memory.in_backoff(secs(2)) {
            Some(CredentialError::Backoff { retry_in, .. }) => {
                assert_eq!(retry_in, Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
        // After the window, the next caller may fetch again.
        let seen = memory.generation();
        assert!(memory.in_backoff(secs(5)).is_none());
        assert!(memory.after_queueing(seen, secs(5)).is_none());
        // A success forgets the failure.
        memory.failed(&UpstreamError::Timeout, secs(5), backoff);
        memory.succeeded();
        assert!(memory.in_backoff(secs(6)).is_none());
        assert!(memory.after_queueing(0, secs(6)).is_none());
    }
}
