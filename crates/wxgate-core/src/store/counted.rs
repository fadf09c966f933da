//! Counts every call to the shared store, by operation, for `/metrics`
//! (`wxgate_store_operations_total{op}`): what an idle instance costs the store server is an
//! operations-per-second figure, and it should be read off the gateway rather than guessed.
//!
//! A wrapper rather than a counter in each backend, so every backend is counted the same way.
//! Not counted: the reads a backend's notice follower makes on its own (SQLite's one read a
//! second; Redis and PostgreSQL push notices and make none).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use metrics::Counter;

use super::{Notice, Store, StoreError};
use crate::metrics::Metrics;

/// A store whose calls are counted; see the module documentation.
pub struct CountedStore {
    inner: Arc<dyn Store>,
    counts: Counts,
}

struct Counts {
    get: Counter,
    put: Counter,
    put_if_absent: Counter,
    put_if_newer: Counter,
    take: Counter,
    delete_if_equals: Counter,
    extend_if_equals: Counter,
    delete: Counter,
    ping: Counter,
    get_many: Counter,
    notify: Counter,
    subscribe: Counter,
}

impl CountedStore {
    /// `inner`, counted on `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: &Metrics) -> Self {
        let c = |op| metrics.store_operations(op);
        CountedStore {
            inner,
            counts: Counts {
                get: c("get"),
                put: c("put"),
                put_if_absent: c("put_if_absent"),
                put_if_newer: c("put_if_newer"),
                take: c("take"),
                delete_if_equals: c("delete_if_equals"),
                extend_if_equals: c("extend_if_equals"),
                delete: c("delete"),
                ping: c("ping"),
                get_many: c("get_many"),
                notify: c("notify"),
                subscribe: c("subscribe"),
            },
        }
    }
}

#[async_trait]
impl Store for CountedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.counts.get.increment(1);
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.counts.put.increment(1);
        self.inner.put(key, value, ttl).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.counts.put_if_absent.increment(1);
        self.inner.put_if_absent(key, value, ttl).await
    }

    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.counts.put_if_newer.increment(1);
        self.inner.put_if_newer(key, value, version, ttl).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.counts.take.increment(1);
        self.inner.take(key).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.counts.delete_if_equals.increment(1);
        self.inner.delete_if_equals(key, expected).await
    }

    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.counts.extend_if_equals.increment(1);
        self.inner.extend_if_equals(key, expected, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counts.delete.increment(1);
        self.inner.delete(key).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.counts.ping.increment(1);
        self.inner.ping().await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.counts.get_many.increment(1);
        self.inner.get_many(keys).await
    }

    async fn notify(&self, message: &str) -> Result<(), StoreError> {
        self.counts.notify.increment(1);
        self.inner.notify(message).await
    }

    async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Notice>, StoreError> {
        self.counts.subscribe.increment(1);
        self.inner.subscribe().await
    }
}
