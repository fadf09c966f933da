//! The database of `database.url` as the two services that keep records there see it: the
//! user records ([`crate::users`]) and the runtime registry ([`crate::registry`]), on one pool
//! opened once. It sits above both so that neither imports the other.

use std::sync::Arc;

use crate::registry::{AuthorizerDb, RegistryDb};
use crate::users::{self, Opened, UserDb, UserDbError};

/// Opens `database.url` like [`crate::users::connect`], for both services on it.
pub async fn connect(url: &str) -> Result<Database, UserDbError> {
    Ok(match users::open(url).await? {
        Opened::Sqlite(db) => Database::over(Arc::new(db)),
        Opened::Postgres(db) => Database::over(Arc::new(db)),
        Opened::Mongo(db) => Database::over(Arc::new(db)),
    })
}

/// The database of `database.url`, as the two services that use it see it: the user records
/// and the runtime registry ([`crate::registry`]), on one pool.
#[derive(Clone)]
pub struct Database {
    pub users: Arc<dyn UserDb>,
    pub registry: Arc<dyn RegistryDb>,
    /// The authorizers of third-party platforms (beside the registry's tables).
    pub authorizers: Arc<dyn AuthorizerDb>,
}

impl Database {
    fn over<T: UserDb + RegistryDb + AuthorizerDb>(db: Arc<T>) -> Database {
        Database {
            users: db.clone(),
            registry: db.clone(),
            authorizers: db,
        }
    }
}
