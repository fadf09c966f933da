//! The database of `database.url` as the two services that keep records there see it: the
//! user records ([`crate::users`]) and the runtime registry ([`crate::registry`]), on one pool
//! opened once. It sits above both so that neither imports the other.

use std::sync::Arc;

use crate::registry::RegistryDb;
use crate::users::{PostgresUserDb, SqliteUserDb, UserDb, UserDbError};

/// Opens `database.url` like [`crate::users::connect`], for both services on it.
pub async fn connect(url: &str) -> Result<Database, UserDbError> {
    if url.starts_with("sqlite:") {
        Ok(Database::over(Arc::new(SqliteUserDb::open(url).await?)))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Database::over(Arc::new(
            PostgresUserDb::connect(url).await?,
        )))
    } else {
        Err(crate::users::invalid_url(url))
    }
}

/// The database of `database.url`, as the two services that use it see it: the user records
/// and the runtime registry ([`crate::registry`]), on one pool.
#[derive(Clone)]
pub struct Database {
    pub users: Arc<dyn UserDb>,
    pub registry: Arc<dyn RegistryDb>,
}

impl Database {
    fn over<T: UserDb + RegistryDb>(db: Arc<T>) -> Database {
        Database {
            users: db.clone(),
            registry: db,
        }
    }
}
