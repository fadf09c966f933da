//! Writing what [`Activity`] recorded: [`Activity::flush`] takes everything pending out of
//! memory and writes it — per kind of record, the stored values read with `get_many` (500
//! keys a call), merged, and written 16 `put`s at a time (a flush after a cold start of
//! 10 000 accounts waits on about 20 reads and a sixteenth of its writes, not on every round
//! trip one after the other) — putting back what could not be written; [`Activity::heartbeat`] keeps this
//! instance listed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::future::join_all;

use super::calls::{self, Counts, CALLS_TTL};
use super::instances::{self, Egress, EGRESS_KEY, INDEX_KEY};
use super::{
    json, last_push_key, pushes, pushes_key, refreshes_key, steps_key, Activity, InstanceSeen,
    Pending, PushSeen, RefreshSeen, Step, StepOutcome, Steps, STATE_TTL,
};
use crate::domain::{lock, unix_now_ms};
use crate::store::StoreError;

/// Keys read per `get_many`.
const READ_BATCH: usize = 500;
/// Writes in flight at once.
const WRITES_AT_ONCE: usize = 16;

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

    /// Writes the pending steps only (of every account: a few small keys; the console's wizard
    /// calls it so its checklist shows a step it has just caused).
    pub async fn flush_steps(&self) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let steps = std::mem::take(&mut lock(&self.pending).steps);
        self.write_steps(steps).await
    }

    /// Reads the stored values of `keys` (in batches of [`READ_BATCH`]), lets `merge` make
    /// each one's new value from the stored one, and writes them, [`WRITES_AT_ONCE`] at a
    /// time. Answers, per key, whether it was written, and the first error.
    async fn read_merge_write(
        &self,
        keys: &[String],
        ttl: Duration,
        merge: impl Fn(usize, Option<&[u8]>) -> Result<Vec<u8>, StoreError>,
    ) -> (Vec<bool>, Option<StoreError>) {
        let mut stored = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_BATCH) {
            match self.store.get_many(chunk).await {
                Ok(values) => stored.extend(values),
                Err(e) => return (vec![false; keys.len()], Some(e)),
            }
        }
        let values: Vec<_> = stored
            .iter()
            .enumerate()
            .map(|(i, value)| merge(i, value.as_deref()))
            .collect();
        // Plain loops over boxed store futures (no stream closures borrowing the keys: those
        // make the flush future lose `Send` for `tokio::spawn`).
        let mut results = Vec::with_capacity(keys.len());
        let mut values = values.into_iter();
        for chunk in keys.chunks(WRITES_AT_ONCE) {
            let mut batch = Vec::with_capacity(chunk.len());
            for key in chunk {
                batch.push(self.put_merged(key, values.next(), ttl));
            }
            results.extend(join_all(batch).await);
        }
        let mut first = None;
        let written = results
            .into_iter()
            .map(|r| match r {
                Ok(()) => true,
                Err(e) => {
                    first.get_or_insert(e);
                    false
                }
            })
            .collect();
        (written, first)
    }

    async fn put_merged(
        &self,
        key: &str,
        value: Option<Result<Vec<u8>, StoreError>>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match value {
            Some(bytes) => self.store.put(key, &bytes?, Some(ttl)).await,
            None => Err(StoreError::Backend("fewer values than keys".into())),
        }
    }

    async fn write_steps(
        &self,
        pending: HashMap<Box<str>, Vec<(Step, i64, StepOutcome)>>,
    ) -> Result<(), StoreError> {
        let entries: Vec<_> = pending.into_iter().collect();
        let keys: Vec<String> = entries.iter().map(|(a, _)| steps_key(a)).collect();
        let (written, error) = self
            .read_merge_write(&keys, STATE_TTL, |i, stored| {
                let mut steps = Steps::from_stored(stored);
                for (step, at, outcome) in &entries[i].1 {
                    steps.apply(*step, *at, outcome);
                }
                json(&steps.entries)
            })
            .await;
        let mut p = lock(&self.pending);
        for ((account, observed), ok) in entries.into_iter().zip(written) {
            if !ok {
                let list = p.steps.entry(account).or_default();
                let later = std::mem::take(list);
                list.extend(observed);
                list.extend(later);
                list.truncate(2 * Step::ALL.len());
            }
        }
        error.map_or(Ok(()), Err)
    }

    async fn write_pushes(
        &self,
        pending: HashMap<Box<str>, Vec<PushSeen>>,
    ) -> Result<(), StoreError> {
        let entries: Vec<_> = pending.into_iter().collect();
        let keys: Vec<String> = entries.iter().map(|(a, _)| pushes_key(a)).collect();
        let (written, error) = self
            .read_merge_write(&keys, STATE_TTL, |i, stored| {
                json(&pushes::merged(stored, entries[i].1.clone()))
            })
            .await;
        // The newest push per account, for the overview (never older than what is stored).
        let newest: Vec<(String, i64, String)> = entries
            .iter()
            .zip(&written)
            .filter(|(_, ok)| **ok)
            .map(|((account, fresh), _)| {
                let at = fresh.iter().map(|p| p.at).max().unwrap_or(0);
                (last_push_key(account), at, at.to_string())
            })
            .collect();
        let mut newest_written = Vec::with_capacity(newest.len());
        for chunk in newest.chunks(WRITES_AT_ONCE) {
            let puts = chunk.iter().map(|(key, at, body)| {
                self.store
                    .put_if_newer(key, body.as_bytes(), *at, Some(STATE_TTL))
            });
            newest_written.extend(join_all(puts).await);
        }
        {
            let mut p = lock(&self.pending);
            for ((account, fresh), ok) in entries.into_iter().zip(written) {
                if !ok {
                    let list = p.pushes.entry(account).or_default();
                    for push in fresh {
                        pushes::queue(list, push);
                    }
                }
            }
        }
        let newest_error = newest_written.into_iter().find_map(Result::err);
        error.or(newest_error).map_or(Ok(()), Err)
    }

    async fn write_refreshes(
        &self,
        pending: HashMap<Box<str>, Vec<RefreshSeen>>,
    ) -> Result<(), StoreError> {
        let entries: Vec<_> = pending.into_iter().collect();
        let keys: Vec<String> = entries.iter().map(|(a, _)| refreshes_key(a)).collect();
        let (written, error) = self
            .read_merge_write(&keys, STATE_TTL, |i, stored| {
                json(&pushes::merged(stored, entries[i].1.clone()))
            })
            .await;
        let mut p = lock(&self.pending);
        for ((account, fresh), ok) in entries.into_iter().zip(written) {
            if !ok {
                let list = p.refreshes.entry(account).or_default();
                for record in fresh {
                    pushes::queue(list, record);
                }
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// Adds the pending counts to this instance's keys (only this instance writes them, so
    /// the read-add-write never races).
    async fn write_calls(
        &self,
        pending: HashMap<Box<str>, BTreeMap<i64, Counts>>,
    ) -> Result<(), StoreError> {
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
        let (written, error) = self
            .read_merge_write(&keys, CALLS_TTL, |i, stored| {
                let mut total = Counts::from_stored(stored);
                total.add_all(&entries[i].1);
                json(&total.to_list())
            })
            .await;
        let failed: Vec<_> = entries
            .into_iter()
            .zip(written)
            .filter(|(_, ok)| !ok)
            .map(|(entry, _)| entry)
            .collect();
        self.requeue_calls(failed);
        error.map_or(Ok(()), Err)
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
