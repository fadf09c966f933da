//! One page of the user list, and whether another follows: what the users API answers.

use serde::Serialize;

use super::{UserDb, UserDbError, UserRecord, MAX_LIST_LIMIT};

/// Page size when the caller gives none.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// Up to `limit` users after the openid `after`, and the openid to continue after when more
/// follow (`None` on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    pub next: Option<String>,
}

/// The page of up to `limit` users (clamped to `1..=`[`MAX_LIST_LIMIT`]) whose openid is
/// strictly greater than `after`, in byte order of the openid.
pub async fn page(
    db: &dyn UserDb,
    after: Option<&str>,
    limit: u32,
) -> Result<UserPage, UserDbError> {
    let limit = limit.clamp(1, MAX_LIST_LIMIT);
    // One row more than the page tells whether a user follows it; the database caps a query
    // at MAX_LIST_LIMIT rows, so a full page of that size asks once more.
    let fetch = if limit < MAX_LIST_LIMIT {
        limit + 1
    } else {
        limit
    };
    let mut users = db.list(after, fetch).await?;
    let more = if users.len() > limit as usize {
        users.truncate(limit as usize);
        true
    } else if users.len() == limit as usize && fetch == limit {
        match users.last() {
            Some(last) => !db.list(Some(&last.openid), 1).await?.is_empty(),
            None => false,
        }
    } else {
        false
    };
    let next = if more {
        users.last().map(|u| u.openid.clone())
    } else {
        None
    };
    Ok(UserPage { users, next })
}
