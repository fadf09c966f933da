//! Why a mini-program call was refused or failed. Each message is the sentence a mini-program
//! developer reads; the HTTP layer picks the status and the code (`not_supported`,
//! `invalid_code`, `rate_limited`, `risky_user`, `no_session`, `invalid_data`, …).

use wxgate_proto::miniprogram::OpenDataError;

use crate::credentials::CredentialError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;
use crate::users::UserDbError;

#[derive(Debug, thiserror::Error)]
pub enum MiniprogramError {
    /// The account is an Official Account.
    #[error(
        "account {account:?} is an Official Account; the mini-program endpoints need an account \
         with kind = \"miniprogram\""
    )]
    NotMiniprogram { account: String },
    /// A required value of the body is missing, empty or malformed.
    #[error("{0}")]
    InvalidParameter(String),
    /// WeChat refused the code (40029 invalid, 40163 already used).
    #[error(
        "WeChat refused the code (errcode {errcode}): it is invalid, expired (5 minutes) or was \
         already used; get a new one with {source_call} in the mini program and send it once"
    )]
    InvalidCode {
        errcode: i64,
        source_call: &'static str,
    },
    /// 45011: WeChat's frequency limit.
    #[error(
        "WeChat's frequency limit was hit (errcode 45011; jscode2session allows 100 calls a \
         minute per user); try again in a minute"
    )]
    RateLimited,
    /// 40226: WeChat blocked a high-risk user.
    #[error(
        "WeChat blocked this login (errcode 40226): the user is flagged as high-risk and may not \
         log in to this mini program now"
    )]
    RiskyUser,
    /// No session_key is kept for the openid (never logged in here, or it expired).
    #[error(
        "no session is kept for openid {openid:?} in account {account:?} (no login through \
         wxgate, or it was more than {ttl_days} days ago); log the user in again with wx.login"
    )]
    NoSession {
        account: String,
        openid: String,
        ttl_days: u64,
    },
    /// Open data did not decrypt or is for another mini program.
    #[error("{0}; call the open-data API again after a fresh wx.login if the session changed")]
    InvalidData(#[from] OpenDataError),
    /// Another WeChat failure.
    #[error(transparent)]
    Upstream(UpstreamError),
    /// The access token could not be had.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The user database failed.
    #[error("user database: {0}")]
    UserDb(#[from] UserDbError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MiniprogramError {
    /// WeChat's refusal of a single-use code (`source_call` says where a new one comes
    /// from), mapped to what it means; anything else stays an upstream error.
    pub(super) fn from_code_call(e: UpstreamError, source_call: &'static str) -> Self {
        match e.wechat_errcode() {
            Some(errcode @ (40029 | 40163)) => MiniprogramError::InvalidCode {
                errcode,
                source_call,
            },
            Some(45011) => MiniprogramError::RateLimited,
            Some(40226) => MiniprogramError::RiskyUser,
            _ => MiniprogramError::Upstream(e),
        }
    }
}
