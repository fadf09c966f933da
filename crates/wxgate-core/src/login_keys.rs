//! The key of web-login states, kept once per process: derived from `server.state_secret`, or
//! from a random secret written once to the shared store (so every instance agrees) and read
//! again every [`STORED_KEY_REREAD`] (so instances follow a lost and regenerated secret).
//!
//! It lives apart from `oauth` because the gateway's state holds it, and the `oauth` service
//! takes that state: keeping it here keeps the imports one way (gateway → login_keys ← oauth).

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::store::{Store, StoreError};

/// Where the generated secret lives when `server.state_secret` is not set.
pub const SECRET_STORE_KEY: &str = "oauth:state-secret";
const KEY_LABEL: &[u8] = b"wxgate oauth state key v1";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The MAC key of states. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct StateKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(redacted)")
    }
}

impl StateKey {
    /// The key derived from a secret (the configured `state_secret`, or the stored one).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = hmac_with(secret);
        mac.update(KEY_LABEL);
        StateKey(mac.finalize().into_bytes().into())
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        hmac_with(&self.0)
    }
}

fn hmac_with(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length (longer ones are hashed first).
        Err(_) => unreachable!("HMAC-SHA256 refused a key"),
    }
}

/// How long a key derived from the stored secret is used before the store is read again.
pub const STORED_KEY_REREAD: Duration = Duration::from_secs(60);

/// The process's state key ([`StateKeys::key`]).
pub struct StateKeys {
    /// Derived from `server.state_secret`, when configured.
    configured: Option<StateKey>,
    /// Derived from the stored secret, and when it was read.
    stored: Mutex<Option<(StateKey, Instant)>>,
}

impl StateKeys {
    /// `configured` is `server.state_secret`.
    pub fn new(configured: Option<SecretString>) -> Self {
        StateKeys {
            configured: configured.map(|s| StateKey::derive(s.expose_secret().as_bytes())),
            stored: Mutex::new(None),
        }
    }

    /// The key: from `server.state_secret`, or from the secret shared through `store` (created
    /// there when absent, read again every [`STORED_KEY_REREAD`]). Only a store failure fails,
    /// and the next call tries again.
    pub async fn key(&self, store: &dyn Store) -> Result<StateKey, StoreError> {
        if let Some(key) = &self.configured {
            return Ok(key.clone());
        }
        let mut stored = self.stored.lock().await;
        if let Some((key, read_at)) = stored.as_ref() {
            if read_at.elapsed() < STORED_KEY_REREAD {
                return Ok(key.clone());
            }
        }
        let key = read_or_create(store).await?;
        *stored = Some((key.clone(), Instant::now()));
        Ok(key)
    }
}

/// The key derived from the store's secret, which is written first when absent.
async fn read_or_create(store: &dyn Store) -> Result<StateKey, StoreError> {
    let fresh: [u8; 32] = rand::random();
    store.put_if_absent(SECRET_STORE_KEY, &fresh, None).await?;
    match store.get(SECRET_STORE_KEY).await? {
        Some(kept) if kept.len() >= 32 => Ok(StateKey::derive(&kept)),
        Some(_) => Err(StoreError::Backend(format!(
            "the stored {SECRET_STORE_KEY} is shorter than 32 bytes; delete it"
        ))),
        None => Err(StoreError::Backend(format!(
            "{SECRET_STORE_KEY} vanished right after it was written"
        ))),
    }
}
