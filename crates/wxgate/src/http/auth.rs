//! Bearer-key authentication of the business API.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time, so neither a timing
//! difference nor a memory dump of this struct gives a key away. No keys configured means the
//! business API is off (403 `api_disabled`), never open.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Digests of the configured API keys.
pub struct ApiKeys(Vec<[u8; 32]>);

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
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&digest))
            .into()
    }
}

/// Middleware for `/api/*`.
pub async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.api_keys.is_empty() {
        return Err(ApiError::ApiDisabled);
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    match presented {
        Some(key) if state.api_keys.accepts(key) => Ok(next.run(req).await),
        _ => Err(ApiError::Unauthorized),
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
