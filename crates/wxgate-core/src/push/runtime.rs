//! What message push needs beyond the validated [`Account`](crate::config::Account) (which
//! already holds the Token, the EncodingAESKey ring, the compiled rules and the webhook target,
//! prepared once at load): the HTTP client that calls webhooks, and the Token without which
//! an account takes no part in message push.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::PushError;
use crate::config::Account;

/// The server Token of `account`, or [`PushError::Disabled`] when none is configured: without
/// it no push can be authenticated, so the account does not take part in message push at all.
pub fn push_token(account: &Account) -> Result<&str, PushError> {
    account
        .token
        .as_ref()
        .map(|t| t.expose_secret())
        .ok_or_else(|| PushError::Disabled {
            account: account.name.clone(),
        })
}

/// The HTTP client that calls webhooks, built once at start.
pub struct PushRuntime {
    pub(crate) webhook_http: reqwest::Client,
}

impl PushRuntime {
    /// Builds the webhook client; fails with a sentence when TLS cannot be set up.
    pub fn new() -> Result<Self, String> {
        let webhook_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(PushRuntime { webhook_http })
    }
}
