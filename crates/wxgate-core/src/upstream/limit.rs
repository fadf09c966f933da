//! `upstream.max_in_flight`: how many WeChat calls one instance has open at once.
//!
//! Without a bound, a cold start of 100 000 accounts (every first caller fetches its token) or a
//! burst on the proxy opens as many sockets to WeChat as there are callers: file descriptors
//! run out, WeChat's per-IP limits trip, and every call gets slower together. [`UpstreamLimit`]
//! is one `tokio::sync::Semaphore` shared by every clone of the
//! [`WechatClient`](super::WechatClient) and by the API proxy; each HTTP attempt holds a
//! [`Permit`] while it talks to WeChat (never across a retry's backoff sleep).
//!
//! Tokio's semaphore is FIFO: a call that has to wait is served in arrival order, so a busy
//! account cannot starve another — the other's call waits only for the calls queued *before*
//! it, never for those its neighbour sends afterwards. Waiting is not free time: a caller gives
//! up at the deadline of the attempt it waits for ([`UpstreamLimit::acquire_until`]), and the
//! attempt then has only what is left of its `upstream.timeout_ms`.
//!
//! The figures for `/metrics` (calls in flight, calls waiting, the bound) are read at render
//! time from the semaphore and one counter, so a call costs nothing more to count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::metrics::Gauge;

/// See the module documentation. Cheap to clone; clones share the permits.
#[derive(Clone)]
pub struct UpstreamLimit {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Semaphore,
    max: usize,
    /// Callers inside [`UpstreamLimit::acquire_until`] that found no free permit.
    waiting: AtomicUsize,
}

/// The right to one WeChat call; released when dropped.
#[must_use = "the call is only counted while the permit is held"]
pub struct Permit<'a> {
    _permit: SemaphorePermit<'a>,
}

/// No permit came free before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saturated;

impl std::fmt::Debug for UpstreamLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLimit")
            .field("max", &self.inner.max)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl UpstreamLimit {
    /// At most `max` calls at once (0 is taken as 1: a gateway that may never call WeChat
    /// would only ever time out).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        UpstreamLimit {
            inner: Arc::new(Inner {
                permits: Semaphore::new(max),
                max,
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// A permit, waiting in arrival order behind the callers already waiting, or
    /// [`Saturated`] when none came free by `deadline`.
    pub async fn acquire_until(&self, deadline: Instant) -> Result<Permit<'_>, Saturated> {
        // Released permits go to the waiters first, so this never overtakes a waiting caller.
        if let Ok(permit) = self.inner.permits.try_acquire() {
            return Ok(Permit { _permit: permit });
        }
        let _waiting = Waiting::enter(&self.inner.waiting);
        match tokio::time::timeout_at(deadline, self.inner.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(Permit { _permit: permit }),
            // The semaphore is never closed; were it, no call could be made either.
            Ok(Err(_)) | Err(_) => Err(Saturated),
        }
    }

    /// The configured bound.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Calls holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.inner
            .max
            .saturating_sub(self.inner.permits.available_permits())
    }

    /// Callers waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// The figures `/metrics` shows ([`crate::metrics::upstream_limit_gauges`]).
    pub fn gauges(&self) -> [Gauge; 3] {
        crate::metrics::upstream_limit_gauges(self.in_flight(), self.waiting(), self.max())
    }
}

/// Counts one waiting caller for as long as it lives (a caller that is cancelled while
/// waiting stops counting too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn permits_are_counted_and_given_back() {
        let limit = UpstreamLimit::new(2);
        let a = limit.acquire_until(soon()).await.unwrap();
        let b = limit.acquire_until(soon()).await.unwrap();
        assert_eq!((limit.in_flight(), limit.waiting(), limit.max()), (2, 0, 2));
        drop(a);
        assert_eq!(limit.in_flight(), 1);
        drop(b);
        assert_eq!(limit.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_caller_gives_up_at_its_deadline_and_stops_counting_as_waiting() {
        let limit = UpstreamLimit::new(1);
        let held = limit.acquire_until(soon()).await.unwrap();
        let late = limit
            .acquire_until(Instant::now() + Duration::from_millis(20))
            .await;
        assert_eq!(late.err(), Some(Saturated));
        assert_eq!(limit.waiting(), 0);
        drop(held);
        assert!(limit.acquire_until(soon()).await.is_ok());
    }

    /// Waiters are served in arrival order: the one queued first gets the next free permit,
    /// whatever order the runtime polls them in.
    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let limit = UpstreamLimit::new(1);
        let held = limit.acquire_until(soon()).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (queued, order) = (limit.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = queued.acquire_until(soon()).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            // Each task is queued before the next one starts.
            while limit.waiting() <= i {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(limit.waiting(), 5);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!((limit.in_flight(), limit.waiting()), (0, 0));
    }

    #[test]
    fn zero_is_one() {
        assert_eq!(UpstreamLimit::new(0).max(), 1);
    }
}
