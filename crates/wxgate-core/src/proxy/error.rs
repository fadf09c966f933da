//! Why a proxied call was refused or failed, as the proxy's own error type; the HTTP layer maps
//! each variant to the SPEC's status and code once.

use super::path::PathError;
use crate::credentials::CredentialError;
use crate::upstream::UpstreamError;

/// A proxied call that got no answer from WeChat to pass on.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The WeChat path is malformed, denied or outside `proxy_allow` (400 `invalid_path`, 403
    /// `path_not_allowed`).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The request body exceeds `server.max_body_bytes` (this limit), declared or counted while
    /// streaming (413 `body_too_large`).
    #[error("the request body exceeds the limit of {0} bytes")]
    BodyTooLarge(u64),
    /// The caller's body could not be read (400 `bad_body`).
    #[error("could not read the request body: {0}")]
    BadBody(String),
    /// WeChat could not be reached, timed out or went silent (no answer to pass on).
    #[error(transparent)]
    Upstream(UpstreamError),
    /// No access_token to inject.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}
