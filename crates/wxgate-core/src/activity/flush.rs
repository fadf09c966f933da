//! Writing what [`Activity`] recorded: [`Activity::flush`] takes everything pending out of
//! memory and writes it (steps, lists and the newest push: read, merge, write; call counts:
//! one `get_many` of this instance's keys, then a `put` per account and hour), putting back
//! what could not be written; [`Activity::heartbeat`] keeps this instance listed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::calls::{self, Counts, CALLS_TTL};
use super::instances::{self, Egress, EGRESS_KEY, INDEX_KEY};
use super::{
    json, last_push_key, pushes, pushes_key, refreshes_key, steps_key, Activity, InstanceSeen,
    Pending, PushSeen, RefreshSeen, Step, StepOutcome, Steps, STATE_TTL,
};
use crate::domain::{lock, unix_now_ms};
use crate::store::StoreError;

impl Activity {
    /// Writes everything pending now. What could not be written stays pending.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let taken = std::mem::take(&mut *lock(&self.pending));
        lock(&self.step_memory).prune();
        let Pending {
            steps,
            pushes,
            refreshes,
            calls,
            egress,
        } = taken;
        let mut first_error = None;
        let mut keep = |r: Result<(), StoreError>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        keep(self.write_steps(steps).await);
        keep(self.write_pushes(pushes).await);
        keep(self.write_refreshes(refreshes).await);
        keep(self.write_calls(calls).await);
        if let Some(egress) = egress {
            keep(self.write_egress(egress).await);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the pending steps only.
    pub(super) async fn flush_steps(&self) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let steps = std::mem::take(&mut lock(&self.pending).steps);
        self.write_steps(steps).await
    }

    async fn write_steps(
        &self,
        pending: HashMap<Box<str>, Vec<(Step, i64, StepOutcome)>>,
    ) -> Result<(), StoreError> {
        let mut failed = None;
        for (account, observed) in pending {
            let result = async {
                let key = steps_key(&account);
                let stored = self.store.get(&key).await?;
                let mut steps = Steps::from_stored(stored.as_deref());
                for (step, at, outcome) in &observed {
                    steps.apply(*step, *at, outcome);
                }
                self.store
                    .put(&key, &json(&steps.entries)?, Some(STATE_TTL))
                    .await
            }
            .await;
            if let Err(e) = result {
                let mut p = lock(&self.pending);
                let list = p.steps.entry(account).or_default();
                let later = std::mem::take(list);
                list.extend(observed);
                list.extend(later);
                list.truncate(2 * Step::ALL.len());
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn write_pushes(
        &self,
        pending: HashMap<Box<str>, Vec<PushSeen>>,
    ) -> Result<(), StoreError> {
        let mut failed = None;
        for (account, fresh) in pending {
            let newest = fresh.iter().map(|p| p.at).max().unwrap_or(0);
            let result = async {
                let key = pushes_key(&account);
                let stored = self.store.get(&key).await?;
                let list = pushes::merged(stored.as_deref(), fresh.clone());
                self.store.put(&key, &json(&list)?, Some(STATE_TTL)).await?;
                self.store
                    .put_if_newer(
                        &last_push_key(&account),
                        newest.to_string().as_bytes(),
                        newest,
                        Some(STATE_TTL),
                    )
                    .await
                    .map(|_| ())
            }
            .await;
            if let Err(e) = result {
                let mut p = lock(&self.pending);
                let list = p.pushes.entry(account).or_default();
                for push in fresh {
                    pushes::queue(list, push);
                }
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn write_refreshes(
        &self,
        pending: HashMap<Box<str>, Vec<RefreshSeen>>,
    ) -> Result<(), StoreError> {
        let mut failed = None;
        for (account, fresh) in pending {
            let result = async {
                let key = refreshes_key(&account);
                let stored = self.store.get(&key).await?;
                let list = pushes::merged(stored.as_deref(), fresh.clone());
                self.store.put(&key, &json(&list)?, Some(STATE_TTL)).await
            }
            .await;
            if let Err(e) = result {
                let mut p = lock(&self.pending);
                let list = p.refreshes.entry(account).or_default();
                for record in fresh {
                    pushes::queue(list, record);
                }
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Adds the pending counts to this instance's keys: one `get_many`, one `put` per
    /// account and hour.
    async fn write_calls(
        &self,
        pending: HashMap<Box<str>, BTreeMap<i64, Counts>>,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let entries: Vec<((Box<str>, i64), Counts)> = pending
            .into_iter()
            .flat_map(|(account, hours)| {
                hours
                    .into_iter()
                    .map(move |(hour, counts)| ((account.clone(), hour), counts))
            })
            .collect();
        let keys: Vec<String> = entries
            .iter()
            .map(|((account, hour), _)| calls::key(account, *hour, &self.options.instance))
            .collect();
        let stored = match self.store.get_many(&keys).await {
            Ok(stored) => stored,
            Err(e) => {
                self.requeue_calls(entries);
                return Err(e);
            }
        };
        let mut failed = None;
        for ((entry, key), stored) in entries.into_iter().zip(&keys).zip(stored) {
            let mut total = Counts::from_stored(stored.as_deref());
            total.add_all(&entry.1);
            let result = match json(&total.to_list()) {
                Ok(bytes) => self.store.put(key, &bytes, Some(CALLS_TTL)).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                self.requeue_calls(vec![entry]);
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn requeue_calls(&self, entries: Vec<((Box<str>, i64), Counts)>) {
        let mut p = lock(&self.pending);
        for ((account, hour), counts) in entries {
            p.calls
                .entry(account)
                .or_default()
                .entry(hour)
                .or_default()
                .add_all(&counts);
        }
    }

    async fn write_egress(&self, egress: Egress) -> Result<(), StoreError> {
        match self
            .store
            .put(EGRESS_KEY, &json(&egress)?, Some(instances::EGRESS_TTL))
            .await
        {
            Ok(()) => {
                *lock(&self.egress_written) = Some(egress);
                Ok(())
            }
            Err(e) => {
                lock(&self.pending).egress.get_or_insert(egress);
                Err(e)
            }
        }
    }

    /// Writes this instance's heartbeat and makes sure the index names it.
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        let now = unix_now_ms();
        let me = InstanceSeen {
            id: self.options.instance.clone(),
            version: self.options.version.to_owned(),
            started_at: self.started_at,
            last_seen: now,
        };
        self.store
            .put(
                &instances::instance_key(&me.id),
                &json(&me)?,
                Some(instances::INSTANCE_TTL),
            )
            .await?;
        let index = instances::read_index(self.store.get(INDEX_KEY).await?.as_deref());
        if let Some(index) = instances::confirmed(index, &me.id, now) {
            let ttl = Duration::from_millis(u64::try_from(instances::INDEX_KEEP_MS).unwrap_or(0));
            self.store.put(INDEX_KEY, &json(&index)?, Some(ttl)).await?;
        }
        Ok(())
    }
}
