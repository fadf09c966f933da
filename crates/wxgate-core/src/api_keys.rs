//! The business API's keys, kept only as SHA-256 digests and compared in constant time, so
//! neither a timing difference nor a memory dump gives a key away. No keys means the business
//! API is off, never open. The HTTP layer (`http::auth`) reads the Bearer header and asks here.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Digests of the configured API keys.
pub struct ApiKeys(Vec<[u8; 32]>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    pub fn new(keys: &[SecretString]) -> Self {
        ApiKeys(
            keys.iter()
                .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time check of a presented key against every configured key.
    pub fn accepts(&self, presented: &str) -> bool {
        self.accepts_digest(&Sha256::digest(presented.as_bytes()).into())
    }

    /// [`ApiKeys::accepts`] for a key already hashed (SHA-256).
    pub fn accepts_digest(&self, digest: &[u8; 32]) -> bool {
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(digest))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_keys_are_accepted() {
        let keys = ApiKeys::new(&[SecretString::from("k-one"), SecretString::from("k-two")]);
        assert!(keys.accepts("k-one"));
        assert!(keys.accepts("k-two"));
        assert!(!keys.accepts("k-on"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::new(&[]).accepts("k-one"));
    }
}
