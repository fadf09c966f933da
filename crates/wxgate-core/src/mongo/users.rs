//! [`UserDb`] on MongoDB: one document per account and openid in `wxgate_users`, unique on
//! `(account, openid)`. Every write is one update of that document, so the guarantees written
//! on [`UserDb`] hold as on SQL:
//! - a follow event is an upsert whose filter carries the condition ("no event yet, or an older
//!   one"): when the stored event is as new or newer the filter misses, the upsert tries to
//!   insert, and the unique index refuses it (E11000), which reads as "changed nothing";
//! - a login `$set`s only the fields it carries and moves `last_login_at` with `$max`, so it
//!   never erases a known nickname nor moves the time backwards;
//! - two first writes of one openid racing both try to insert: the loser's E11000 is retried
//!   once, as an update of the winner's document;
//! - [`UserDb::list`] sorts by `openid` without a collation, which MongoDB compares by bytes.
//!
//! Queries on other fields (e.g. by `unionid`) add an index in `MongoDb::migrate` and a filter
//! on [`MongoDb::users`] here.

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt as _;
use mongodb::bson::{doc, Bson, Document};

use super::{fail, int, is_duplicate_key, required, text, MongoDb, USERS};
use crate::users::{
    clamp_limit, now_secs, AccountUser, LoginProfile, UserDb, UserDbError, UserRecord,
    MAX_LIST_LIMIT,
};

impl MongoDb {
    /// The user documents, and the filter that picks this handle's account and `openid`.
    fn users(&self) -> mongodb::Collection<Document> {
        self.collection(USERS)
    }

    fn user_key(&self, openid: &str) -> Document {
        doc! { "account": self.account.as_str(), "openid": openid }
    }
}

/// Maps a user document.
fn user_from_doc(d: &Document) -> Result<UserRecord, UserDbError> {
    Ok(UserRecord {
        openid: required(text(d, "openid"), USERS, "openid")?,
        unionid: text(d, "unionid"),
        nickname: text(d, "nickname"),
        headimgurl: text(d, "headimgurl"),
        subscribed: d.get_bool("subscribed").ok(),
        subscribe_scene: text(d, "subscribe_scene"),
        subscribed_at: int(d, "subscribed_at"),
        unsubscribed_at: int(d, "unsubscribed_at"),
        last_login_at: int(d, "last_login_at"),
        created_at: required(int(d, "created_at"), USERS, "created_at")?,
        updated_at: required(int(d, "updated_at"), USERS, "updated_at")?,
    })
}

/// Runs an upsert, retrying once when a concurrent first write of the same document won the
/// insert (the retry then updates that document). `Ok(None)`: the filter missed twice, i.e.
/// the document exists and its condition refused the write.
async fn upsert(
    users: &mongodb::Collection<Document>,
    filter: Document,
    update: Document,
    what: &str,
) -> Result<Option<mongodb::results::UpdateResult>, UserDbError> {
    for _ in 0..2 {
        match users
            .update_one(filter.clone(), update.clone())
            .upsert(true)
            .await
        {
            Ok(done) => return Ok(Some(done)),
            Err(e) if is_duplicate_key(&e) => continue,
            Err(e) => return Err(fail(what, &e)),
        }
    }
    Ok(None)
}

#[async_trait]
impl UserDb for MongoDb {
    fn for_account(&self, account: &str) -> Arc<dyn UserDb> {
        Arc::new(MongoDb {
            account: account.to_owned(),
            ..self.clone()
        })
    }

    async fn adopt_legacy(&self, owner: &str) -> Result<u64, UserDbError> {
        // Each legacy document moves on its own; one whose openid `owner` already has stays
        // (the unique index refuses the move), as the SQL `NOT EXISTS` does.
        let what = "adopt_legacy";
        let users = self.users();
        let mut legacy = users
            .find(doc! { "account": "" })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| fail(what, &e))?;
        let mut moved = 0;
        while let Some(d) = legacy.try_next().await.map_err(|e| fail(what, &e))? {
            let Some(id) = d.get("_id") else { continue };
            match users
                .update_one(
                    doc! { "_id": id.clone(), "account": "" },
                    doc! { "$set": { "account": owner } },
                )
                .await
            {
                Ok(done) => moved += done.modified_count,
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(fail(what, &e)),
            }
        }
        Ok(moved)
    }

    async fn record_follow(
        &self,
        openid: &str,
        subscribed: bool,
        scene: Option<&str>,
        at: i64,
    ) -> Result<bool, UserDbError> {
        let now = now_secs();
        let mut set = doc! { "subscribed": subscribed, "follow_event_at": at, "updated_at": now };
        if subscribed {
            set.insert("subscribe_scene", scene.map_or(Bson::Null, Bson::from));
            set.insert("subscribed_at", at);
        } else {
            set.insert("unsubscribed_at", at);
        }
        let mut filter = self.user_key(openid);
        filter.insert(
            "$or",
            vec![
                doc! { "follow_event_at": Bson::Null },
                doc! { "follow_event_at": { "$lt": at } },
            ],
        );
        let update = doc! { "$set": set, "$setOnInsert": { "created_at": now } };
        Ok(upsert(&self.users(), filter, update, "record_follow")
            .await?
            .is_some_and(|done| done.matched_count > 0 || done.upserted_id.is_some()))
    }

    async fn record_login(&self, login: &LoginProfile, at: i64) -> Result<(), UserDbError> {
        let now = now_secs();
        let mut set = doc! { "updated_at": now };
        for (field, value) in [
            ("unionid", &login.unionid),
            ("nickname", &login.nickname),
            ("headimgurl", &login.headimgurl),
        ] {
            if let Some(value) = value {
                set.insert(field, value.as_str());
            }
        }
        let update = doc! {
            "$set": set,
            "$max": { "last_login_at": at },
            "$setOnInsert": { "created_at": now },
        };
        match upsert(
            &self.users(),
            self.user_key(&login.openid),
            update,
            "record_login",
        )
        .await?
        {
            Some(_) => Ok(()),
            None => Err(UserDbError::Backend(
                "mongodb: record_login: the user's document could be neither inserted nor found"
                    .to_owned(),
            )),
        }
    }

    async fn get(&self, openid: &str) -> Result<Option<UserRecord>, UserDbError> {
        self.users()
            .find_one(self.user_key(openid))
            .await
            .map_err(|e| fail("get", &e))?
            .as_ref()
            .map(user_from_doc)
            .transpose()
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, UserDbError> {
        let mut filter = doc! { "account": self.account.as_str() };
        if let Some(after) = after {
            filter.insert("openid", doc! { "$gt": after });
        }
        let docs: Vec<Document> = self
            .users()
            .find(filter)
            .sort(doc! { "openid": 1 })
            .limit(clamp_limit(limit))
            .await
            .map_err(|e| fail("list", &e))?
            .try_collect()
            .await
            .map_err(|e| fail("list", &e))?;
        docs.iter().map(user_from_doc).collect()
    }

    async fn find_by_unionid(&self, unionid: &str) -> Result<Vec<AccountUser>, UserDbError> {
        let docs: Vec<Document> = self
            .users()
            .find(doc! { "unionid": unionid, "account": { "$ne": "" } })
            .sort(doc! { "account": 1 })
            .limit(i64::from(MAX_LIST_LIMIT))
            .await
            .map_err(|e| fail("find_by_unionid", &e))?
            .try_collect()
            .await
            .map_err(|e| fail("find_by_unionid", &e))?;
        docs.iter()
            .map(|d| {
                Ok(AccountUser {
                    account: required(text(d, "account"), USERS, "account")?,
                    user: user_from_doc(d)?,
                })
            })
            .collect()
    }

    async fn restore(&self, user: &UserRecord) -> Result<bool, UserDbError> {
        let optional_text = |v: &Option<String>| v.as_deref().map_or(Bson::Null, Bson::from);
        let optional_int = |v: Option<i64>| v.map_or(Bson::Null, Bson::Int64);
        let mut record = self.user_key(&user.openid);
        record.extend(doc! {
            "unionid": optional_text(&user.unionid),
            "nickname": optional_text(&user.nickname),
            "headimgurl": optional_text(&user.headimgurl),
            "subscribed": user.subscribed.map_or(Bson::Null, Bson::Boolean),
            "subscribe_scene": optional_text(&user.subscribe_scene),
            "subscribed_at": optional_int(user.subscribed_at),
            "unsubscribed_at": optional_int(user.unsubscribed_at),
            "follow_event_at": optional_int(crate::users::follow_event_at(user)),
            "last_login_at": optional_int(user.last_login_at),
            "created_at": user.created_at,
            "updated_at": user.updated_at,
        });
        match self.users().insert_one(record).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(fail("restore", &e)),
        }
    }

    async fn ping(&self) -> Result<(), UserDbError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| fail("ping", &e))?;
        Ok(())
    }
}
