//! What message push needs beyond the validated [`Account`](crate::config::Account) (which
//! already holds the Token, the EncodingAESKey ring, the compiled rules and the webhook target,
//! prepared once at load): the Token without which an account takes no part in message push.
//! The client that calls webhooks is the gateway's ([`crate::upstream::WebhookClient`]).

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
