//! MongoDB as `database.url` (`mongodb://HOST:PORT/DB`): the same three services as on SQL —
//! user records ([`UserDb`](crate::users::UserDb), `users.rs`), the registry's accounts and keys
//! ([`RegistryDb`](crate::registry::RegistryDb), `registry.rs`) and the authorizers of
//! third-party platforms ([`AuthorizerDb`](crate::registry::AuthorizerDb), `authorizers.rs`) —
//! with the official `mongodb` driver, for teams that already run MongoDB.
//!
//! It is written for MongoDB 6.0 and later, standalone or replica set, and uses no
//! multi-document transaction: every write is ONE single-document atomic operation (an update
//! with a filter that carries the condition, an upsert guarded by a unique index, or an insert),
//! which is what keeps the SQL backends' guarantees here (see each module). At start,
//! [`MongoDb::connect`] checks that the server answers, creates the unique indexes (creating an
//! index that exists is a no-op, so concurrent starts are safe) and records the schema version
//! in `wxgate_schema_migrations` (one document per version, like the SQL table) for future
//! migrations.

mod authorizers;
mod registry;
mod users;

use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use crate::users::{now_secs, UserDbError};

/// The schema versions this wxgate knows, as recorded in `wxgate_schema_migrations`.
pub const SCHEMA_VERSIONS: &[(i64, &str)] = &[(1, "users, registry, authorizers: indexes")];

/// How long the first contact with the server may take before start fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const USERS: &str = "wxgate_users";
const ACCOUNTS: &str = "wxgate_accounts";
const API_KEYS: &str = "wxgate_api_keys";
const AUTHORIZERS: &str = "wxgate_authorizers";
const TICKETS: &str = "wxgate_component_tickets";
/// The registry's change counter (see `registry.rs`).
const CHANGES: &str = "wxgate_registry_changes";
const MIGRATIONS: &str = "wxgate_schema_migrations";

/// The database of a `mongodb://` URL, seen as the users of one account (see
/// [`UserDb::for_account`](crate::users::UserDb::for_account)); the registry and authorizer
/// calls ignore the account.
#[derive(Clone)]
pub struct MongoDb {
    db: Database,
    /// The account whose users this handle reads and writes (`""`: none).
    account: String,
}

impl std::fmt::Debug for MongoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoDb")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

impl MongoDb {
    /// Opens `url` (`mongodb://[USER:PASSWORD@]HOST[:PORT][,HOST...]/DB[?OPTIONS]`; the
    /// database name is required), checks that the server answers within a few seconds and
    /// brings the indexes and the schema version up to date.
    pub async fn connect(url: &str) -> Result<MongoDb, UserDbError> {
        let redacted = crate::scrub::redact_url(url);
        let mut options = ClientOptions::parse(url).await.map_err(|e| {
            UserDbError::InvalidUrl(format!("{redacted:?}: {}", scrub(&e.to_string(), url)))
        })?;
        let Some(name) = options.default_database.clone().filter(|n| !n.is_empty()) else {
            return Err(UserDbError::InvalidUrl(format!(
                "{redacted:?}: expected mongodb://HOST:PORT/DATABASE (the database name is missing)"
            )));
        };
        options
            .server_selection_timeout
            .get_or_insert(CONNECT_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "wxgate".to_owned());
        let client = Client::with_options(options).map_err(|e| {
            UserDbError::InvalidUrl(format!("{redacted:?}: {}", scrub(&e.to_string(), url)))
        })?;
        let db = client.database(&name);
        db.run_command(doc! { "ping": 1 }).await.map_err(|e| {
            UserDbError::Unavailable(format!(
                "mongodb {redacted}: {}",
                scrub(&e.to_string(), url)
            ))
        })?;
        let opened = MongoDb {
            db,
            account: String::new(),
        };
        opened
            .migrate()
            .await
            .map_err(|e| UserDbError::Migration(format!("mongodb: {}", scrub(&e, url))))?;
        Ok(opened)
    }

    /// Creates the indexes (idempotent) and records the schema versions not yet recorded.
    async fn migrate(&self) -> Result<(), String> {
        let unique = |keys: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build()
        };
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        let indexes = [
            (
                USERS,
                vec![
                    unique(doc! { "account": 1, "openid": 1 }),
                    // One person across accounts (`UserDb::find_by_unionid`).
                    plain(doc! { "unionid": 1 }),
                ],
            ),
            (ACCOUNTS, vec![plain(doc! { "seq": 1 })]),
            (API_KEYS, vec![plain(doc! { "seq": 1 })]),
            (
                AUTHORIZERS,
                vec![
                    unique(doc! { "component": 1, "appid": 1 }),
                    plain(doc! { "seq": 1 }),
                ],
            ),
            (CHANGES, vec![plain(doc! { "done": 1, "_id": 1 })]),
        ];
        for (collection, models) in indexes {
            self.db
                .collection::<Document>(collection)
                .create_indexes(models)
                .await
                .map_err(|e| format!("creating the indexes of {collection}: {e}"))?;
        }
        let recorded = self.db.collection::<Document>(MIGRATIONS);
        for (version, description) in SCHEMA_VERSIONS {
            let done = recorded
                .update_one(
                    doc! { "_id": version },
                    doc! { "$setOnInsert": {
                        "description": *description, "applied_at": now_secs()
                    } },
                )
                .upsert(true)
                .await;
            match done {
                Ok(done) if done.upserted_id.is_some() => tracing::info!(
                    backend = "mongodb",
                    version,
                    description,
                    "user database: migration applied"
                ),
                Ok(_) => {}
                // Two instances starting at once: the other one recorded it.
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(format!("recording version {version}: {e}")),
            }
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

/// Whether a write failed on a unique index (E11000): the guarded upserts' "someone else's
/// document is there".
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// The error for a failed operation.
fn fail(what: &str, e: &mongodb::error::Error) -> UserDbError {
    UserDbError::Backend(format!("mongodb: {what}: {e}"))
}

/// A driver message with the URL's password (should it ever quote it) replaced.
fn scrub(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message.to_owned(),
    }
}

/// A stored integer field (`None` when absent or null).
fn int(d: &Document, key: &str) -> Option<i64> {
    match d.get(key) {
        Some(mongodb::bson::Bson::Int64(v)) => Some(*v),
        Some(mongodb::bson::Bson::Int32(v)) => Some(i64::from(*v)),
        _ => None,
    }
}

/// A stored string field (`None` when absent or null).
fn text(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

/// A required field, or the error naming it.
fn required<T>(value: Option<T>, collection: &str, key: &str) -> Result<T, UserDbError> {
    value.ok_or_else(|| {
        UserDbError::Backend(format!(
            "mongodb: a document of {collection} has no valid {key:?}"
        ))
    })
}
