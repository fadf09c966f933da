//! What can go wrong with a push or a URL verification, as the push service's own error type.
//!
//! The HTTP layer maps each variant to the SPEC's status and code once; the messages here are
//! the sentences the caller (and the log) reads. Most variants refuse the request itself (a
//! missing parameter, a bad signature, a body that is not a push); [`PushError::is_refusal`]
//! tells those from the account's configuration and the gateway's own failures.

use wxgate_proto::ParseError;

/// Why a push or a URL verification was not answered normally.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The account has no Token, so no push can be authenticated (403 `push_disabled`).
    #[error(
        "message push is disabled for account {account:?}: configure its `token` (the Token of \
         the server configuration in the WeChat console)"
    )]
    Disabled { account: String },
    /// A required query parameter is absent or empty (400 `missing_parameter`).
    #[error("the query parameter `{0}` is required")]
    MissingParameter(&'static str),
    /// `encrypt_type` is neither `aes` nor `raw` (400 `invalid_parameter`).
    #[error("encrypt_type must be `aes` or `raw` (or absent)")]
    InvalidEncryptType,
    /// `signature`, `msg_signature` or the appid inside the ciphertext is wrong (403
    /// `invalid_signature`).
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// The timestamp (or the message's `CreateTime`) is outside `push.replay_window_s` (403
    /// `stale_timestamp`).
    #[error(
        "{what} (more than {replay_window_s} s away, push.replay_window_s); a replayed or forged \
         request, or a clock that needs syncing"
    )]
    Stale {
        replay_window_s: u64,
        what: &'static str,
    },
    /// A plaintext push to an account that has an EncodingAESKey (400 `encryption_required`).
    #[error(
        "account {account:?} has an `encoding_aes_key`, so it accepts only encrypted pushes \
         (encrypt_type=aes, safe or compatible mode); set `accept_plaintext = true` on the \
         account only for the minutes of switching WeChat's console to safe mode"
    )]
    EncryptionRequired { account: String },
    /// An encrypted push to an account without an EncodingAESKey (400
    /// `encryption_not_configured`).
    #[error(
        "the push is encrypted (encrypt_type=aes) but account {account:?} has no \
         `encoding_aes_key` configured"
    )]
    EncryptionNotConfigured { account: String },
    /// The body is not a valid push, or its ciphertext cannot be opened (400
    /// `invalid_message`).
    #[error("{0}")]
    InvalidMessage(String),
    /// The follower record could not be written (503 `unavailable`, so that WeChat retries).
    #[error("user database: {0}")]
    FollowerRecord(String),
    /// The push's handling task was cancelled by the end of the shutdown grace (503).
    #[error("push handling cancelled: wxgate is shutting down")]
    ShuttingDown,
    /// The push's handling task failed (500 `internal`).
    #[error("push handling task failed: {0}")]
    TaskFailed(String),
}

impl PushError {
    /// `true` for a refusal of the request itself (what the HTTP layer logs as a rejected
    /// push); `false` for the account's configuration ([`PushError::Disabled`]) and for the
    /// gateway's own failures, which are reported elsewhere.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            PushError::Disabled { .. }
                | PushError::FollowerRecord(_)
                | PushError::ShuttingDown
                | PushError::TaskFailed(_)
        )
    }

    pub(crate) fn invalid_body(e: ParseError) -> Self {
        PushError::InvalidMessage(format!("the body is not a valid WeChat push: {e}"))
    }
}
