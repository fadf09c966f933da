//! Why a web login could not start, finish or be redeemed. Each message is the sentence the
//! caller reads; the HTTP layer picks the status and the SPEC code (`redirect_not_allowed`,
//! `invalid_state`, `invalid_code`, …).

use super::state_token::MAX_REDIRECT_LEN;
use crate::store::StoreError;
use crate::upstream::UpstreamError;
use crate::users::UserDbError;

#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    /// The redirect is longer than [`MAX_REDIRECT_LEN`].
    #[error(
        "the redirect is {len} bytes long; at most {max} are accepted",
        max = MAX_REDIRECT_LEN
    )]
    RedirectTooLong { len: usize },
    /// The redirect is not under any of the account's `oauth_redirects`.
    #[error("{redirect:?} does not start with any of the oauth_redirects of account {account:?}")]
    RedirectNotAllowed { redirect: String, account: String },
    /// The login's redirect was allowed when it started and is no longer.
    #[error("this login's redirect is no longer in the account's oauth_redirects")]
    RedirectNoLongerAllowed,
    /// The callback's `state` cannot finish a login here.
    #[error("{0}; start the login again")]
    InvalidState(StateProblem),
    /// A repeated callback waited in vain for the first one of its state to finish.
    #[error("another request is still completing this login; reload the page in a moment")]
    LoginInProgress,
    /// The `wxgate_code` is unknown, expired or used.
    #[error("this login code is unknown, expired (5 minutes) or already used")]
    InvalidCode,
    /// WeChat refused or failed the code exchange or the profile.
    #[error(transparent)]
    Upstream(UpstreamError),
    /// The platform's token for an authorizer's login could not be had.
    #[error(transparent)]
    Credential(Box<crate::credentials::CredentialError>),
    /// The user database failed.
    #[error("user database: {0}")]
    UserDb(#[from] UserDbError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be written or read back (a bug, not the caller's doing).
    #[error("{0}")]
    Internal(String),
}

/// What is wrong with a callback's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateProblem {
    #[error("the `state` parameter is missing or malformed")]
    Malformed,
    #[error(
        "this login must be finished in the browser that started it, and that browser's login \
         cookie is missing (another browser or app, cookies blocked, or more than 10 minutes)"
    )]
    NoCookie,
    #[error(
        "this login state is not valid here: it was altered, issued for another account, or the \
         login was started in another browser (it must be finished in the browser that started \
         it)"
    )]
    Mismatch,
    #[error("this login state is unknown or expired (logins must complete within 10 minutes)")]
    Unknown,
    #[error("this login state was already used")]
    AlreadyUsed,
}
