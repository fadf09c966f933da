//! The HTTP client that calls the businesses' webhooks (message push answers), built once at
//! start and held by the gateway: no redirects followed, a bounded connect, wxgate's user agent.
//! The per-call timeout is the account's `webhook.timeout_ms`, set by the caller.

use std::time::Duration;

/// See the module documentation.
pub struct WebhookClient {
    pub(crate) http: reqwest::Client,
}

impl WebhookClient {
    /// Builds the client; fails with a sentence when TLS cannot be set up.
    pub fn new() -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(WebhookClient { http })
    }
}
