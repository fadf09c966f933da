//! [`AuthorizerDb`] on MongoDB: one document per platform and authorizer appid in
//! `wxgate_authorizers` (unique on `(component, appid)`), and one per platform in
//! `wxgate_component_tickets` (`_id` = the platform's appid).
//!
//! Status and profile writes are stamped with the registry's counter (`registry.rs`), like
//! account writes; refresh-token replacements are conditional on the token's own version
//! instead. Each write is one single-document update whose filter carries the SQL statement's
//! `WHERE`, so "revoked unless granted by a newer event", "invalid only while the refused
//! version is stored" and "a ticket replaces only an older one" are decided by the server
//! atomically. A grant keeps `authorized_at` of an authorizer that is still authorized: it
//! first updates a document that is `authorized`, else upserts one that is not (when the
//! status flips between the two, the unique index or the missed filter sends it round again).

use async_trait::async_trait;
use futures::TryStreamExt as _;
use mongodb::bson::{doc, Document};

use super::{fail, int, is_duplicate_key, required, text, MongoDb, AUTHORIZERS, TICKETS};
use crate::registry::{
    AuthorizerDb, AuthorizerGrant, AuthorizerProfile, SealedRefreshToken, SealedTicket,
    StoredAuthorizer,
};
use crate::users::UserDbError;

/// Rounds a grant may take while the status flips under it.
const GRANT_ATTEMPTS: usize = 8;

fn authorizer_from_doc(d: &Document) -> Result<StoredAuthorizer, UserDbError> {
    let field = |key: &str| required(text(d, key), AUTHORIZERS, key);
    Ok(StoredAuthorizer {
        component: field("component")?,
        appid: field("appid")?,
        status: field("status")?,
        nick_name: field("nick_name")?,
        principal_name: field("principal_name")?,
        func_info: field("func_info")?,
        seq: required(int(d, "seq"), AUTHORIZERS, "seq")?,
        authorized_at: required(int(d, "authorized_at"), AUTHORIZERS, "authorized_at")?,
        updated_at: required(int(d, "updated_at"), AUTHORIZERS, "updated_at")?,
    })
}

impl MongoDb {
    /// The authorizer documents stamped in `(after, upto]`.
    pub(super) async fn changed_authorizers(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<StoredAuthorizer>, UserDbError> {
        let what = "reading changed authorizers";
        let docs: Vec<Document> = self
            .collection(AUTHORIZERS)
            .find(doc! { "seq": { "$gt": after, "$lte": upto } })
            .sort(doc! { "seq": 1 })
            .await
            .map_err(|e| fail(what, &e))?
            .try_collect()
            .await
            .map_err(|e| fail(what, &e))?;
        docs.iter().map(authorizer_from_doc).collect()
    }

    /// A stamped conditional update of one authorizer; `true` when it matched.
    async fn stamped_authorizer_update(
        &self,
        what: &str,
        filter: Document,
        set: Document,
    ) -> Result<bool, UserDbError> {
        let authorizers = self.collection(AUTHORIZERS);
        self.stamped(what, |seq| {
            let (authorizers, filter) = (authorizers.clone(), filter.clone());
            let mut set = set.clone();
            set.insert("seq", seq);
            async move {
                let done = authorizers
                    .update_one(filter, doc! { "$set": set })
                    .await
                    .map_err(|e| fail(what, &e))?;
                Ok(done.matched_count > 0)
            }
        })
        .await
    }
}

#[async_trait]
impl AuthorizerDb for MongoDb {
    async fn grant_authorizer(&self, g: AuthorizerGrant<'_>) -> Result<bool, UserDbError> {
        let what = "recording an authorizer";
        let authorizers = self.collection(AUTHORIZERS);
        self.stamped(what, |seq| {
            let authorizers = authorizers.clone();
            let g = g.clone();
            async move {
                let mut set = doc! {
                    "status": "authorized", "func_info": g.func_info,
                    "refresh_token": g.refresh_token, "seq": seq, "updated_at": g.now,
                };
                let mut on_insert = Document::new();
                match g.profile {
                    Some(p) => {
                        set.insert("nick_name", p.nick_name);
                        set.insert("principal_name", p.principal_name);
                    }
                    None => {
                        on_insert.insert("nick_name", "");
                        on_insert.insert("principal_name", "");
                    }
                }
                let common = doc! {
                    "$inc": { "refresh_version": 1_i64 },
                    "$max": { "event_at": g.event_at },
                };
                let key = doc! { "component": g.component, "appid": g.appid };
                for _ in 0..GRANT_ATTEMPTS {
                    // Still authorized: keep `authorized_at`.
                    let mut update = common.clone();
                    update.insert("$set", set.clone());
                    let mut filter = key.clone();
                    filter.insert("status", "authorized");
                    let done = authorizers
                        .update_one(filter, update)
                        .await
                        .map_err(|e| fail(what, &e))?;
                    if done.matched_count > 0 {
                        return Ok(true);
                    }
                    // New, revoked or invalid: (re)authorized now.
                    let mut update = common.clone();
                    let mut set = set.clone();
                    set.insert("authorized_at", g.now);
                    update.insert("$set", set);
                    if !on_insert.is_empty() {
                        update.insert("$setOnInsert", on_insert.clone());
                    }
                    let mut filter = key.clone();
                    filter.insert("status", doc! { "$ne": "authorized" });
                    match authorizers.update_one(filter, update).upsert(true).await {
                        Ok(_) => return Ok(true),
                        Err(e) if is_duplicate_key(&e) => continue,
                        Err(e) => return Err(fail(what, &e)),
                    }
                }
                Err(UserDbError::Backend(format!(
                    "mongodb: {what}: the status kept changing in {GRANT_ATTEMPTS} attempts"
                )))
            }
        })
        .await
    }

    async fn set_authorizer_profile(
        &self,
        component: &str,
        appid: &str,
        profile: AuthorizerProfile<'_>,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_authorizer_update(
            "recording an authorizer's profile",
            doc! {
                "component": component, "appid": appid,
                "$or": [
                    { "nick_name": { "$ne": profile.nick_name } },
                    { "principal_name": { "$ne": profile.principal_name } },
                ],
            },
            doc! {
                "nick_name": profile.nick_name, "principal_name": profile.principal_name,
                "updated_at": now,
            },
        )
        .await
    }

    async fn revoke_authorizer(
        &self,
        component: &str,
        appid: &str,
        event_at: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_authorizer_update(
            "revoking an authorizer",
            doc! {
                "component": component, "appid": appid,
                "status": { "$ne": "revoked" }, "event_at": { "$lt": event_at },
            },
            doc! {
                "status": "revoked", "refresh_token": "", "event_at": event_at,
                "updated_at": now,
            },
        )
        .await
    }

    async fn mark_refresh_token_invalid(
        &self,
        component: &str,
        appid: &str,
        version: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        self.stamped_authorizer_update(
            "marking a refresh token invalid",
            doc! {
                "component": component, "appid": appid, "status": "authorized",
                "refresh_version": version,
            },
            doc! { "status": "refresh_token_invalid", "updated_at": now },
        )
        .await
    }

    async fn refresh_token(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Option<SealedRefreshToken>, UserDbError> {
        let d = self
            .collection(AUTHORIZERS)
            .find_one(doc! { "component": component, "appid": appid })
            .await
            .map_err(|e| fail("reading a refresh token", &e))?;
        d.map(|d| {
            Ok(SealedRefreshToken {
                sealed: required(text(&d, "refresh_token"), AUTHORIZERS, "refresh_token")?,
                version: required(int(&d, "refresh_version"), AUTHORIZERS, "refresh_version")?,
                status: required(text(&d, "status"), AUTHORIZERS, "status")?,
            })
        })
        .transpose()
    }

    async fn replace_refresh_token(
        &self,
        component: &str,
        appid: &str,
        sealed: &str,
        expected: i64,
        now: i64,
    ) -> Result<bool, UserDbError> {
        let done = self
            .collection(AUTHORIZERS)
            .update_one(
                doc! {
                    "component": component, "appid": appid, "refresh_version": expected,
                    "status": "authorized",
                },
                doc! {
                    "$set": { "refresh_token": sealed, "updated_at": now },
                    "$inc": { "refresh_version": 1_i64 },
                },
            )
            .await
            .map_err(|e| fail("replacing a refresh token", &e))?;
        Ok(done.matched_count > 0)
    }

    async fn list_authorizers(
        &self,
        component: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredAuthorizer>, UserDbError> {
        let what = "listing authorizers";
        let docs: Vec<Document> = self
            .collection(AUTHORIZERS)
            .find(doc! { "component": component, "appid": { "$gt": after.unwrap_or("") } })
            .sort(doc! { "appid": 1 })
            .limit(limit)
            .await
            .map_err(|e| fail(what, &e))?
            .try_collect()
            .await
            .map_err(|e| fail(what, &e))?;
        docs.iter().map(authorizer_from_doc).collect()
    }

    async fn count_authorizers(&self, component: &str) -> Result<Vec<(String, i64)>, UserDbError> {
        let what = "counting authorizers";
        let groups: Vec<Document> = self
            .collection(AUTHORIZERS)
            .aggregate([
                doc! { "$match": { "component": component } },
                doc! { "$group": { "_id": "$status", "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .await
            .map_err(|e| fail(what, &e))?
            .try_collect()
            .await
            .map_err(|e| fail(what, &e))?;
        groups
            .iter()
            .map(|d| {
                Ok((
                    required(text(d, "_id"), AUTHORIZERS, "status")?,
                    required(int(d, "n"), AUTHORIZERS, "count")?,
                ))
            })
            .collect()
    }

    async fn put_ticket(&self, t: &SealedTicket) -> Result<bool, UserDbError> {
        let done = self
            .collection(TICKETS)
            .update_one(
                doc! { "_id": t.component.as_str(), "create_time": { "$lt": t.create_time } },
                doc! { "$set": {
                    "ticket": t.sealed.as_str(), "create_time": t.create_time,
                    "received_at": t.received_at,
                } },
            )
            .upsert(true)
            .await;
        match done {
            Ok(done) => Ok(done.matched_count > 0 || done.upserted_id.is_some()),
            // A ticket as new or newer is kept.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(fail("keeping a ticket", &e)),
        }
    }

    async fn ticket(&self, component: &str) -> Result<Option<SealedTicket>, UserDbError> {
        let d = self
            .collection(TICKETS)
            .find_one(doc! { "_id": component })
            .await
            .map_err(|e| fail("reading a ticket", &e))?;
        d.map(|d| {
            Ok(SealedTicket {
                component: component.to_owned(),
                sealed: required(text(&d, "ticket"), TICKETS, "ticket")?,
                create_time: required(int(&d, "create_time"), TICKETS, "create_time")?,
                received_at: required(int(&d, "received_at"), TICKETS, "received_at")?,
            })
        })
        .transpose()
    }
}
