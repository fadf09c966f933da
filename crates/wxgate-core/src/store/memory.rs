//! In-process [`Store`] for a single wxgate process (`memory://`): tests, development, and
//! deployments that run exactly one instance and accept losing state on restart.
//!
//! All entries live in one `HashMap` behind one mutex, and every primitive does its whole
//! read-check-write while holding that lock, so each call is atomic with respect to every other
//! call in the process. It gives no coordination across processes — use SQLite or Redis for that.
//! Expiry is checked on every access against a monotonic clock (an expired entry is treated
//! exactly like a missing one), and an amortized sweep (see `after_write`) drops expired
//! entries nobody touches again, so the map does not grow without bound. Notices go through a
//! broadcast channel to every follower of the same store value (the instances of a test share
//! one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use tokio::sync::broadcast;

use super::notices::{self, Notice};
use super::{Store, StoreError};

/// Writes between two sweeps of expired entries.
const SWEEP_EVERY_WRITES: u64 = 1024;

struct Entry {
    value: Vec<u8>,
    version: i64,
    /// `None` = never expires.
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => at > now,
        }
    }
}

/// Process-local store; see the module documentation.
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    writes: AtomicU64,
    notices: broadcast::Sender<String>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
            notices: broadcast::channel(notices::NOTICE_QUEUE).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The critical sections below never panic, so a poisoned lock can only come from a
        // panic elsewhere while holding it; the map itself is still consistent.
        crate::domain::lock(&self.entries)
    }

    /// Counts a write and drops every expired entry once the writes since the last sweep reach
    /// [`SWEEP_EVERY_WRITES`] or the map's size, whichever is larger: a sweep costs O(size), so
    /// this keeps its cost per write constant however many entries are live.
    fn after_write(&self, map: &mut HashMap<String, Entry>, now: Instant) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= SWEEP_EVERY_WRITES.max(map.len() as u64) {
            self.writes.store(0, Ordering::Relaxed);
            map.retain(|_, entry| entry.is_live(now));
        }
    }

    fn write(&self, key: &str, value: &[u8], version: i64, ttl: Option<Duration>, now: Instant) {
        let mut map = self.lock();
        map.insert(key.to_owned(), entry(value, version, ttl, now));
        self.after_write(&mut map, now);
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn entry(value: &[u8], version: i64, ttl: Option<Duration>, now: Instant) -> Entry {
    Entry {
        value: value.to_vec(),
        version,
        // A TTL too large to represent is as good as none.
        expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get(key) {
            Some(entry) if entry.is_live(now) => Ok(Some(entry.value.clone())),
            Some(_) => {
                map.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.write(key, value, i64::MIN, ttl, Instant::now());
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.get(key).is_some_and(|e| e.is_live(now)) {
            return Ok(false);
        }
        map.insert(key.to_owned(), entry(value, i64::MIN, ttl, now));
        self.after_write(&mut map, now);
        Ok(true)
    }

    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        if map
            .get(key)
            .is_some_and(|e| e.is_live(now) && e.version >= version)
        {
            return Ok(false);
        }
        map.insert(key.to_owned(), entry(value, version, ttl, now));
        self.after_write(&mut map, now);
        Ok(true)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        Ok(map.remove(key).filter(|e| e.is_live(now)).map(|e| e.value))
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get(key) {
            Some(e) if e.is_live(now) && e.value == expected => {
                map.remove(key);
                Ok(true)
            }
            Some(e) if !e.is_live(now) => {
                map.remove(key);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(e) if e.is_live(now) && e.value == expected => {
                e.expires_at = now.checked_add(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let now = Instant::now();
        let map = self.lock();
        Ok(keys
            .iter()
            .map(|k| {
                map.get(k)
                    .filter(|e| e.is_live(now))
                    .map(|e| e.value.clone())
            })
            .collect())
    }

    async fn notify(&self, message: &str) -> Result<(), StoreError> {
        notices::check_len(message)?;
        // No follower is not an error.
        let _ = self.notices.send(message.to_owned());
        Ok(())
    }

    async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Notice>, StoreError> {
        let mut source = self.notices.subscribe();
        let (mut tx, rx) = notices::queue();
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    () = tx.closed() => return,
                    received = source.recv() => match received {
                        Ok(message) => Notice::Message(message),
                        Err(broadcast::error::RecvError::Lagged(_)) => Notice::Missed,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                if !tx.send(notice) {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
