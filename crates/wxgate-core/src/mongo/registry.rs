//! [`RegistryDb`] on MongoDB, and the change counter every registry write (accounts, keys,
//! authorizers' status) is stamped with.
//!
//! SQL holds the counter's row lock until the stamped row is committed; without transactions a
//! counter bumped with `$inc` could not promise that: writer A takes 5, writer B takes 6 and
//! writes first, a reader sees 6 and moves past 5 before A's row lands — a change never seen.
//! Here the counter is a log of claims, `wxgate_registry_changes`, one document per number
//! (`_id`), and two rules make a reader never skip a change:
//! - a writer claims number N+1 by INSERTING `{_id: N+1, done: false}` after reading N as the
//!   highest claim (another writer that took N+1 first makes the insert fail on `_id`, and it
//!   reads again): claim N+1 can exist only once claim N does, so claims appear in order,
//!   without holes;
//! - the writer stamps its document with its number, then marks the claim `done` (also when the
//!   write changed nothing or failed). [`RegistryDb::seq`] reads the highest claim, then the
//!   lowest claim still open, and answers just below it: every document stamped at or below
//!   the answer is written, which is what the SQL counter guarantees.
//!
//! A writer that dies between its claim and `done` would hold readers back forever, so a claim
//! open for longer than [`ABANDONED_AFTER`] no longer holds them; a writer that has not sent
//! its write within [`GIVE_UP_AFTER`] of its claim (a pause, a slow server) gives the claim up
//! and claims anew, so a late write cannot land below a number readers have passed. This
//! assumes the instances' clocks agree within a few seconds (NTP), as the lease of the
//! credential store does. Old `done` claims are pruned, keeping the latest [`KEEP_CLAIMS`].

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt as _;
use mongodb::bson::{doc, Document};

use super::{fail, int, is_duplicate_key, required, text, MongoDb, ACCOUNTS, API_KEYS, CHANGES};
use crate::registry::{AccountWrite, Changes, RegistryDb, StoredAccount, StoredKey, WriteOutcome};
use crate::users::UserDbError;

/// A claim open this long no longer holds readers back (its writer is presumed dead).
pub(super) const ABANDONED_AFTER: Duration = Duration::from_secs(10);
/// A writer that has not written this long after its claim gives the claim up.
pub(super) const GIVE_UP_AFTER: Duration = Duration::from_secs(3);
/// How many claims are kept below the newest (older `done` ones are pruned).
const KEEP_CLAIMS: i64 = 1000;
/// Attempts at claiming a number while other writers take them first.
const CLAIM_ATTEMPTS: usize = 64;

/// wxgate's clock in unix milliseconds (claims' times).
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn account_from_doc(d: &Document) -> Result<StoredAccount, UserDbError> {
    Ok(StoredAccount {
        name: required(text(d, "_id"), ACCOUNTS, "_id")?,
        settings: required(text(d, "settings"), ACCOUNTS, "settings")?,
        secrets: required(text(d, "secrets"), ACCOUNTS, "secrets")?,
        deleted: required(d.get_bool("deleted").ok(), ACCOUNTS, "deleted")?,
        seq: required(int(d, "seq"), ACCOUNTS, "seq")?,
        created_at: required(int(d, "created_at"), ACCOUNTS, "created_at")?,
        updated_at: required(int(d, "updated_at"), ACCOUNTS, "updated_at")?,
    })
}

fn key_from_doc(d: &Document) -> Result<StoredKey, UserDbError> {
    Ok(StoredKey {
        id: required(text(d, "_id"), API_KEYS, "_id")?,
        name: required(text(d, "name"), API_KEYS, "name")?,
        digest: required(text(d, "digest"), API_KEYS, "digest")?,
        accounts: required(text(d, "accounts"), API_KEYS, "accounts")?,
        scopes: required(text(d, "scopes"), API_KEYS, "scopes")?,
        deleted: required(d.get_bool("deleted").ok(), API_KEYS, "deleted")?,
        seq: required(int(d, "seq"), API_KEYS, "seq")?,
        created_at: required(int(d, "created_at"), API_KEYS, "created_at")?,
    })
}

impl MongoDb {
    /// Claims the next number of the counter (see the module documentation).
    async fn claim(&self, what: &str) -> Result<(i64, Instant), UserDbError> {
        let claims = self.collection(CHANGES);
        for _ in 0..CLAIM_ATTEMPTS {
            let highest = self.highest_claim(what).await?;
            let started = Instant::now();
            let claim = doc! { "_id": highest + 1, "done": false, "claimed_at": now_millis() };
            match claims.insert_one(claim).await {
                Ok(_) => return Ok((highest + 1, started)),
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(fail(what, &e)),
            }
        }
        Err(UserDbError::Backend(format!(
            "mongodb: {what}: no registry number could be claimed in {CLAIM_ATTEMPTS} attempts"
        )))
    }

    async fn highest_claim(&self, what: &str) -> Result<i64, UserDbError> {
        let top = self
            .collection(CHANGES)
            .find_one(doc! {})
            .sort(doc! { "_id": -1 })
            .await
            .map_err(|e| fail(what, &e))?;
        Ok(top.as_ref().and_then(|d| int(d, "_id")).unwrap_or(0))
    }

    /// Closes claim `seq`; prunes old claims now and then.
    async fn finish(&self, seq: i64, what: &str) -> Result<(), UserDbError> {
        let claims = self.collection(CHANGES);
        claims
            .update_one(doc! { "_id": seq }, doc! { "$set": { "done": true } })
            .await
            .map_err(|e| fail(what, &e))?;
        if seq % 100 == 0 {
            claims
                .delete_many(doc! { "_id": { "$lt": seq - KEEP_CLAIMS }, "done": true })
                .await
                .map_err(|e| fail(what, &e))?;
        }
        Ok(())
    }

    /// Runs `write` with a claimed number and closes the claim, whatever the write's outcome;
    /// claims anew when too long passed between the claim and the write.
    pub(super) async fn stamped<T, F, Fut>(&self, what: &str, write: F) -> Result<T, UserDbError>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = Result<T, UserDbError>>,
    {
        loop {
            let (seq, claimed) = self.claim(what).await?;
            if claimed.elapsed() > GIVE_UP_AFTER {
                tracing::warn!(seq, "registry: a claim took too long; claiming anew");
                self.finish(seq, what).await?;
                continue;
            }
            let outcome = write(seq).await;
            self.finish(seq, what).await?;
            return outcome;
        }
    }
}

#[async_trait]
impl RegistryDb for MongoDb {
    async fn seq(&self) -> Result<i64, UserDbError> {
        let what = "reading the counter";
        let highest = self.highest_claim(what).await?;
        let open = self
            .collection(CHANGES)
            .find_one(doc! {
                "done": false,
                "_id": { "$lte": highest },
                "claimed_at": { "$gt": now_millis() - ABANDONED_AFTER.as_millis() as i64 },
            })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(|e| fail(what, &e))?;
        Ok(match open.as_ref().and_then(|d| int(d, "_id")) {
            Some(lowest_open) => lowest_open - 1,
            None => highest,
        })
    }

    async fn changes_since(&self, after: i64) -> Result<Changes, UserDbError> {
        let seq = self.seq().await?;
        if seq <= after {
            return Ok(Changes {
                seq,
                ..Changes::default()
            });
        }
        let stamped = doc! { "seq": { "$gt": after, "$lte": seq } };
        let what = "reading changes";
        let accounts: Vec<Document> = self
            .collection(ACCOUNTS)
            .find(stamped.clone())
            .sort(doc! { "seq": 1 })
            .await
            .map_err(|e| fail(what, &e))?
            .try_collect()
            .await
            .map_err(|e| fail(what, &e))?;
        let keys: Vec<Document> = self
            .collection(API_KEYS)
            .find(stamped)
            .sort(doc! { "seq": 1 })
            .await
            .map_err(|e| fail(what, &e))?
            .try_collect()
            .await
            .map_err(|e| fail(what, &e))?;
        Ok(Changes {
            seq,
            accounts: accounts
                .iter()
                .map(account_from_doc)
                .collect::<Result<_, _>>()?,
            keys: keys.iter().map(key_from_doc).collect::<Result<_, _>>()?,
            authorizers: self.changed_authorizers(after, seq).await?,
        })
    }

    async fn account(&self, name: &str) -> Result<Option<StoredAccount>, UserDbError> {
        self.collection(ACCOUNTS)
            .find_one(doc! { "_id": name })
            .await
            .map_err(|e| fail("reading an account", &e))?
            .as_ref()
            .map(account_from_doc)
            .transpose()
    }

    async fn write_account(&self, w: AccountWrite<'_>) -> Result<WriteOutcome, UserDbError> {
        let what = "writing an account";
        let accounts = self.collection(ACCOUNTS);
        self.stamped(what, |seq| {
            let (accounts, w) = (accounts.clone(), w.clone());
            async move {
                let written = match w.expected_seq {
                    None => match accounts
                        .insert_one(doc! {
                            "_id": w.name, "settings": w.settings, "secrets": w.secrets,
                            "deleted": false, "seq": seq, "created_at": w.now, "updated_at": w.now,
                        })
                        .await
                    {
                        Ok(_) => true,
                        Err(e) if is_duplicate_key(&e) => false,
                        Err(e) => return Err(fail(what, &e)),
                    },
                    // A live row keeps its creation time, a tombstone brought back gets a new
                    // one: two updates, each conditional on the stamp read with the row (only
                    // one can match, and either changes the stamp).
                    Some(expected) => {
                        let mut written = false;
                        for (deleted, created_at) in [(false, None), (true, Some(w.now))] {
                            let mut set = doc! {
                                "settings": w.settings, "secrets": w.secrets, "deleted": false,
                                "seq": seq, "updated_at": w.now,
                            };
                            if let Some(created_at) = created_at {
                                set.insert("created_at", created_at);
                            }
                            let done = accounts
                                .update_one(
                                    doc! { "_id": w.name, "seq": expected, "deleted": deleted },
                                    doc! { "$set": set },
                                )
                                .await
                                .map_err(|e| fail(what, &e))?;
                            if done.matched_count > 0 {
                                written = true;
                                break;
                            }
                        }
                        written
                    }
                };
                Ok(if written {
                    WriteOutcome::Written { seq }
                } else {
                    WriteOutcome::Conflict
                })
            }
        })
        .await
    }

    async fn delete_account(&self, name: &str, now: i64) -> Result<bool, UserDbError> {
        let what = "deleting an account";
        let accounts = self.collection(ACCOUNTS);
        self.stamped(what, |seq| {
            let accounts = accounts.clone();
            async move {
                let done = accounts
                    .update_one(
                        doc! { "_id": name, "deleted": false },
                        doc! { "$set": {
                            "deleted": true, "secrets": "{}", "seq": seq, "updated_at": now,
                        } },
                    )
                    .await
                    .map_err(|e| fail(what, &e))?;
                Ok(done.matched_count > 0)
            }
        })
        .await
    }

    async fn insert_key(&self, key: &StoredKey) -> Result<i64, UserDbError> {
        let what = "creating a key";
        let keys = self.collection(API_KEYS);
        self.stamped(what, |seq| {
            let keys = keys.clone();
            async move {
                keys.insert_one(doc! {
                    "_id": key.id.as_str(), "name": key.name.as_str(),
                    "digest": key.digest.as_str(), "accounts": key.accounts.as_str(),
                    "scopes": key.scopes.as_str(), "deleted": false, "seq": seq,
                    "created_at": key.created_at,
                })
                .await
                .map_err(|e| fail(what, &e))?;
                Ok(seq)
            }
        })
        .await
    }

    async fn delete_key(&self, id: &str) -> Result<bool, UserDbError> {
        let what = "deleting a key";
        let keys = self.collection(API_KEYS);
        self.stamped(what, |seq| {
            let keys = keys.clone();
            async move {
                let done = keys
                    .update_one(
                        doc! { "_id": id, "deleted": false },
                        doc! { "$set": { "deleted": true, "seq": seq } },
                    )
                    .await
                    .map_err(|e| fail(what, &e))?;
                Ok(done.matched_count > 0)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    //! The counter's rule, on the MongoDB-wire server of `WXGATE_TEST_MONGODB_URL` (skipped
    //! with a printed reason when unset, failing when set and unreachable): a claim still open
    //! holds readers below it, whatever was written above it; an abandoned one does not.
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn fresh() -> Option<MongoDb> {
        let Ok(base) = std::env::var("WXGATE_TEST_MONGODB_URL") else {
            eprintln!("skipping: WXGATE_TEST_MONGODB_URL is not set");
            return None;
        };
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/wxgate_{:016x}", rand::random::<u64>()));
        Some(MongoDb::connect(url.as_str()).await.unwrap())
    }

    fn account(name: &str) -> AccountWrite<'_> {
        AccountWrite {
            name,
            settings: "{}",
            secrets: "{}",
            expected_seq: None,
            now: 1,
        }
    }

    #[tokio::test]
    async fn an_open_claim_holds_readers_below_it_until_it_is_done() {
        let Some(db) = fresh().await else { return };
        let (slow, _) = db.claim("test").await.unwrap();
        let WriteOutcome::Written { seq: fast } = db.write_account(account("fast")).await.unwrap()
        else {
            panic!("conflict")
        };
        assert!(fast > slow);
        // The slow writer has not written yet: a reader stays below its number.
        assert_eq!(db.seq().await.unwrap(), slow - 1);
        let changes = db.changes_since(0).await.unwrap();
        assert_eq!(changes.seq, slow - 1);
        assert!(changes.accounts.is_empty(), "nothing above an open claim");
        // It writes with its number and closes its claim: both changes reach the reader.
        db.collection(ACCOUNTS)
            .insert_one(doc! {
                "_id": "slow", "settings": "{}", "secrets": "{}", "deleted": false,
                "seq": slow, "created_at": 1, "updated_at": 1,
            })
            .await
            .unwrap();
        db.finish(slow, "test").await.unwrap();
        let changes = db.changes_since(0).await.unwrap();
        assert_eq!(changes.seq, fast);
        let names: Vec<_> = changes.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["slow", "fast"]);
        db.db.drop().await.unwrap();
    }

    #[tokio::test]
    async fn an_abandoned_claim_no_longer_holds_readers() {
        let Some(db) = fresh().await else { return };
        let long_ago = now_millis() - ABANDONED_AFTER.as_millis() as i64 - 1000;
        db.collection(CHANGES)
            .insert_one(doc! { "_id": 1_i64, "done": false, "claimed_at": long_ago })
            .await
            .unwrap();
        let WriteOutcome::Written { seq } = db.write_account(account("after")).await.unwrap()
        else {
            panic!("conflict")
        };
        assert_eq!(seq, 2);
        assert_eq!(db.seq().await.unwrap(), 2);
        assert_eq!(db.changes_since(0).await.unwrap().accounts.len(), 1);
        db.db.drop().await.unwrap();
    }
}
