//! Console sessions: a random token in an HttpOnly cookie, kept in the store only as its
//! SHA-256 digest for 12 hours, so every instance sharing the store accepts it and signing out
//! (or the admin key leaving `admin.keys`) ends it everywhere.
//!
//! The CSRF token of a session is derived from the session token (SHA-256 under its own
//! label): unguessable without the cookie, and nothing more to store.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::domain::unix_now;
use crate::gateway::Gateway;
use crate::registry::keys::digest_hex;

/// How long a session lasts after signing in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// What forms and htmx requests must send back ([`Session::csrf_matches`]).
    pub csrf: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Session {
    /// Constant-time check of a presented CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// What the store keeps of a session.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// SHA-256 of the admin key it was opened with, hex.
    key_digest: String,
    created_at: i64,
}

fn store_key(token: &str) -> String {
    format!("console:session:{}", digest_hex(token))
}

fn csrf_of(token: &str) -> String {
    digest_hex(&format!("wxgate console csrf\n{token}"))
}

/// Opens a session for `presented` when it is an admin key; the token goes in the cookie.
/// A wrong key writes nothing.
pub async fn sign_in(
    gateway: &Gateway,
    presented: &str,
) -> Result<(String, Session), ConsoleError> {
    let presented = presented.trim();
    if presented.is_empty() || !gateway.admin_keys.accepts(presented) {
        return Err(ConsoleError::WrongKey);
    }
    let token = crate::domain::random_alnum(43);
    let stored = Stored {
        key_digest: digest_hex(presented),
        created_at: unix_now(),
    };
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    gateway
        .store
        .put(&store_key(&token), &value, Some(SESSION_TTL))
        .await?;
    let session = Session {
        csrf: csrf_of(&token),
        created_at: stored.created_at,
    };
    Ok((token, session))
}

/// The session of a cookie's token, when it is live and its admin key is still configured.
pub async fn session(gateway: &Gateway, token: &str) -> Result<Option<Session>, ConsoleError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some(raw) = gateway.store.get(&store_key(token)).await? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<Stored>(&raw) else {
        return Ok(None);
    };
    let digest: Option<[u8; 32]> = hex::decode(&stored.key_digest)
        .ok()
        .and_then(|d| d.try_into().ok());
    if !digest.is_some_and(|d| gateway.admin_keys.accepts_digest(&d)) {
        return Ok(None);
    }
    Ok(Some(Session {
        csrf: csrf_of(token),
        created_at: stored.created_at,
    }))
}

/// Ends the session of `token` on every instance.
pub async fn sign_out(gateway: &Gateway, token: &str) -> Result<(), ConsoleError> {
    gateway.store.delete(&store_key(token)).await?;
    Ok(())
}
