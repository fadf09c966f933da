//! What wxgate observed per account, for the admin console: the onboarding steps reached or
//! failing ([`steps`]), the last pushes and credential fetches ([`pushes`]), upstream calls per
//! hour and endpoint ([`calls`]), the instances running and the egress IP learned
//! ([`instances`]), and WeChat's daily quotas on demand ([`quota`]).
//!
//! Everything lives in the shared [`Store`], so every instance sees the same data, and every key
//! is bounded and ages out. Requests never wait on it: the services record into memory
//! ([`Activity::step`], [`Activity::push`], … — sync, a short lock) and a background task
//! ([`Activity::run_background`]) writes what is pending: onboarding steps within about
//! [`STEP_FLUSH_EVERY`], the rest every [`ActivityOptions::flush_every`]. What was written is
//! dropped from memory, so only accounts with activity since the last flush cost memory (plus a
//! few bytes per account for the deduplication of steps). Anonymous routes (pushes, JS-SDK,
//! web login) cannot make anything grow: a reached step is written once per process, failures
//! at most once a minute per account and step, lists are capped at [`LIST_LEN`] per account and
//! endpoints at [`ENDPOINTS_MAX`] per account and hour.

pub mod calls;
mod flush;
pub mod instances;
pub mod pushes;
pub mod quota;
pub mod steps;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use self::calls::{Counts, HOURS, HOUR_MS};
pub use self::calls::{EndpointCalls, HourCalls, ENDPOINTS_MAX, OTHER};
pub use self::instances::InstanceSeen;
use self::instances::{Egress, EGRESS_KEY, INDEX_KEY};
pub use self::pushes::{Answered, PushSeen, RefreshSeen, CONTENT_MAX, LIST_LEN};
pub use self::quota::{quota, Quota, QuotaError};
use self::steps::StepMemory;
pub use self::steps::{Step, StepOutcome, StepState, Steps};
use crate::domain::{lock, unix_now_ms};
use crate::store::{Store, StoreError};

/// How long the onboarding steps, the lists and the newest-push time are kept after their last
/// update.
pub const STATE_TTL: Duration = Duration::from_secs(90 * 86_400);
/// Steps observed reach the store within about this.
pub const STEP_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The same egress IP is written again at most this often.
const EGRESS_REWRITE_MS: i64 = 600_000;

/// How an [`Activity`] behaves.
#[derive(Clone, Debug)]
pub struct ActivityOptions {
    /// Keep the text of pushes (`admin.console_message_content`).
    pub keep_message_content: bool,
    /// How often pending pushes, refreshes and call counts are written.
    pub flush_every: Duration,
    /// This instance's id (see [`ActivityOptions::new`]).
    pub instance: String,
    /// wxgate's version, shown with the instance.
    pub version: &'static str,
}

impl ActivityOptions {
    /// A generated instance id, content not kept, flushed every 5 s.
    pub fn new(version: &'static str) -> ActivityOptions {
        ActivityOptions {
            keep_message_content: false,
            flush_every: Duration::from_secs(5),
            instance: generated_instance_id(),
            version,
        }
    }
}

/// A random instance id (16 hex digits).
pub fn generated_instance_id() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; 8]>())
}

/// What is waiting to be written.
#[derive(Default)]
struct Pending {
    steps: HashMap<Box<str>, Vec<(Step, i64, StepOutcome)>>,
    pushes: HashMap<Box<str>, Vec<PushSeen>>,
    refreshes: HashMap<Box<str>, Vec<RefreshSeen>>,
    /// Per account, per hour start.
    calls: HashMap<Box<str>, BTreeMap<i64, Counts>>,
    egress: Option<Egress>,
}

/// The recorder and reader of what wxgate observed (see the module documentation).
pub struct Activity {
    store: Arc<dyn Store>,
    options: ActivityOptions,
    started_at: i64,
    pending: Mutex<Pending>,
    step_memory: Mutex<StepMemory>,
    /// The egress IP last written, and when.
    egress_written: Mutex<Option<Egress>>,
    /// Serialises flushes (the background task's and a test's), so an instance's own call
    /// keys are never read-added-written by two flushes at once.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn steps_key(account: &str) -> String {
    format!("act:steps:{account}")
}
fn pushes_key(account: &str) -> String {
    format!("act:pushes:{account}")
}
fn last_push_key(account: &str) -> String {
    format!("act:last_push:{account}")
}
fn refreshes_key(account: &str) -> String {
    format!("act:refreshes:{account}")
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

impl Activity {
    pub fn new(store: Arc<dyn Store>, options: ActivityOptions) -> Activity {
        Activity {
            store,
            options,
            started_at: unix_now_ms(),
            pending: Mutex::new(Pending::default()),
            step_memory: Mutex::new(StepMemory::default()),
            egress_written: Mutex::new(None),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.options.instance
    }

    /// Whether pushes keep their text.
    pub fn keeps_message_content(&self) -> bool {
        self.options.keep_message_content
    }

    /// Writes pending steps every [`STEP_FLUSH_EVERY`], everything every `flush_every`, and
    /// the instance's heartbeat every [`instances::HEARTBEAT_EVERY`]; never returns.
    pub async fn run_background(self: Arc<Self>) {
        let mut last_full = tokio::time::Instant::now();
        let mut last_heartbeat: Option<tokio::time::Instant> = None;
        let mut failing = false;
        loop {
            let now = tokio::time::Instant::now();
            if last_heartbeat.is_none_or(|h| now.duration_since(h) >= instances::HEARTBEAT_EVERY) {
                last_heartbeat = Some(now);
                if let Err(e) = self.heartbeat().await {
                    tracing::warn!(error = %e, "activity: cannot write this instance's heartbeat");
                }
            }
            let result = if now.duration_since(last_full) >= self.options.flush_every {
                last_full = now;
                self.flush().await
            } else {
                self.flush_steps().await
            };
            match result {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "activity: cannot write what was observed; kept in memory and retried");
                }
                Err(_) => {}
            }
            tokio::time::sleep(STEP_FLUSH_EVERY.min(self.options.flush_every)).await;
        }
    }

    // ----- recording -----

    /// An onboarding step observed (deduplicated and rate-limited, see [`steps`]).
    pub fn step(&self, account: &str, step: Step, outcome: StepOutcome) {
        if !lock(&self.step_memory).admit(account, step, &outcome) {
            return;
        }
        let outcome = steps::bounded(outcome);
        let mut pending = lock(&self.pending);
        let list = pending.steps.entry(account.into()).or_default();
        if list.len() < 2 * Step::ALL.len() {
            list.push((step, unix_now_ms(), outcome));
        }
    }

    /// A step reached, for the hot paths that observe it on every request (JS-SDK signatures,
    /// logins): once this process recorded it, a check under the lock and nothing else —
    /// `detail` is built only when the observation is queued.
    pub fn reached(&self, account: &str, step: Step, detail: impl FnOnce() -> Option<String>) {
        if lock(&self.step_memory).already_reached(account, step) {
            return;
        }
        self.step(account, step, StepOutcome::Reached { detail: detail() });
    }

    /// A push accepted. Its content is kept only with `keep_message_content`, truncated to
    /// [`CONTENT_MAX`] characters.
    pub fn push(&self, account: &str, mut push: PushSeen) {
        push.content = if self.options.keep_message_content {
            push.content.map(|c| steps::truncate(&c, CONTENT_MAX))
        } else {
            None
        };
        push.kind = steps::truncate(&push.kind, 64);
        let mut pending = lock(&self.pending);
        pushes::queue(pending.pushes.entry(account.into()).or_default(), push);
    }

    /// One upstream call (an attempt) of `account` to `endpoint`.
    pub fn call(&self, account: &str, endpoint: &str, ok: bool) {
        let hour = calls::hour_start(unix_now_ms());
        let mut pending = lock(&self.pending);
        // No allocation for an account already pending (the common case under load).
        if !pending.calls.contains_key(account) {
            pending.calls.insert(account.into(), BTreeMap::new());
        }
        if let Some(hours) = pending.calls.get_mut(account) {
            hours
                .entry(hour)
                .or_default()
                .add(endpoint, 1, u64::from(!ok));
        }
    }

    /// One fetch of a credential.
    pub fn refresh(&self, account: &str, mut record: RefreshSeen) {
        record.message = record.message.map(|m| steps::truncate(&m, 500));
        let mut pending = lock(&self.pending);
        pushes::queue(pending.refreshes.entry(account.into()).or_default(), record);
    }

    /// This server's egress IP as WeChat named it (a 40164/61004 errmsg).
    pub fn egress_ip(&self, ip: &str) {
        let now = unix_now_ms();
        let recent = lock(&self.egress_written)
            .as_ref()
            .is_some_and(|w| w.ip == ip && now - w.at < EGRESS_REWRITE_MS);
        if recent || ip.len() > 64 {
            return;
        }
        lock(&self.pending).egress = Some(Egress {
            ip: ip.to_owned(),
            at: now,
        });
    }

    // ----- reading -----

    /// The onboarding checklist of `account`.
    pub async fn steps(&self, account: &str) -> Result<Steps, StoreError> {
        let stored = self.store.get(&steps_key(account)).await?;
        Ok(Steps::from_stored(stored.as_deref()))
    }

    /// The last pushes, newest first, at most [`LIST_LEN`].
    pub async fn pushes(&self, account: &str) -> Result<Vec<PushSeen>, StoreError> {
        let stored = self.store.get(&pushes_key(account)).await?;
        Ok(pushes::merged(stored.as_deref(), Vec::new()))
    }

    /// The last credential fetches, newest first, at most [`LIST_LEN`].
    pub async fn refreshes(&self, account: &str) -> Result<Vec<RefreshSeen>, StoreError> {
        let stored = self.store.get(&refreshes_key(account)).await?;
        Ok(pushes::merged(stored.as_deref(), Vec::new()))
    }

    /// The time (unix ms) of the newest push of each account, in one `get_many`.
    pub async fn last_pushes(&self, accounts: &[&str]) -> Result<Vec<Option<i64>>, StoreError> {
        let keys: Vec<String> = accounts.iter().map(|a| last_push_key(a)).collect();
        let values = self.store.get_many(&keys).await?;
        Ok(values
            .into_iter()
            .map(|v| {
                v.and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse().ok())
            })
            .collect())
    }

    /// The ids whose call counts may exist: the index's, and this instance's.
    async fn instance_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> =
            instances::read_index(self.store.get(INDEX_KEY).await?.as_deref())
                .into_iter()
                .map(|e| e.id)
                .collect();
        if !ids.contains(&self.options.instance) {
            ids.push(self.options.instance.clone());
        }
        Ok(ids)
    }

    /// The calls of the last 24 hours (the current one included), oldest first, summed over
    /// every instance.
    pub async fn calls_24h(&self, account: &str) -> Result<Vec<HourCalls>, StoreError> {
        let ids = self.instance_ids().await?;
        let now_hour = calls::hour_start(unix_now_ms());
        let hours: Vec<i64> = (0..HOURS)
            .rev()
            .map(|back| now_hour - back * HOUR_MS)
            .collect();
        let keys: Vec<String> = hours
            .iter()
            .flat_map(|h| ids.iter().map(move |id| calls::key(account, *h, id)))
            .collect();
        let values = self.store.get_many(&keys).await?;
        let mut by_hour: BTreeMap<i64, Counts> =
            hours.iter().map(|h| (*h, Counts::default())).collect();
        for (i, value) in values.iter().enumerate() {
            let hour = hours[i / ids.len()];
            if let Some(counts) = by_hour.get_mut(&hour) {
                counts.add_all(&Counts::from_stored(value.as_deref()));
            }
        }
        Ok(by_hour
            .into_iter()
            .map(|(hour_start, counts)| HourCalls {
                hour_start,
                endpoints: counts.to_list(),
            })
            .collect())
    }

    /// The instances whose heartbeat is younger than [`instances::INSTANCE_TTL`], by id.
    pub async fn instances(&self) -> Result<Vec<InstanceSeen>, StoreError> {
        let ids = self.instance_ids().await?;
        let keys: Vec<String> = ids.iter().map(|id| instances::instance_key(id)).collect();
        let mut seen: Vec<InstanceSeen> = self
            .store
            .get_many(&keys)
            .await?
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(seen)
    }

    /// The egress IP WeChat last named, with when (unix ms).
    pub async fn learned_egress_ip(&self) -> Result<Option<(String, i64)>, StoreError> {
        let stored = self.store.get(EGRESS_KEY).await?;
        Ok(stored
            .and_then(|b| serde_json::from_slice::<Egress>(&b).ok())
            .map(|e| (e.ip, e.at)))
    }

    /// Drops everything kept of `account` (it was deleted): in memory and in the store (best
    /// effort: a store failure is logged; every key ages out anyway).
    pub async fn forget(&self, account: &str) {
        {
            let mut p = lock(&self.pending);
            p.steps.remove(account);
            p.pushes.remove(account);
            p.refreshes.remove(account);
            p.calls.remove(account);
        }
        lock(&self.step_memory).forget(account);
        let mut keys = vec![
            steps_key(account),
            pushes_key(account),
            last_push_key(account),
            refreshes_key(account),
        ];
        keys.extend(quota::keys(account));
        match self.instance_ids().await {
            Ok(ids) => {
                let now_hour = calls::hour_start(unix_now_ms());
                for back in 0..=HOURS {
                    for id in &ids {
                        keys.push(calls::key(account, now_hour - back * HOUR_MS, id));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "activity: cannot read the instance index; the call counts age out by themselves");
            }
        }
        for key in keys {
            if let Err(e) = self.store.delete(&key).await {
                tracing::warn!(account, error = %e, "activity: cannot drop what was kept of a deleted account; it ages out by itself");
                return;
            }
        }
    }
}
