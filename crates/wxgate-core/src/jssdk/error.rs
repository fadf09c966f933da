//! Why the JS-SDK service refused or failed: the page URL, the allowlist, what `diagnose` was
//! given, or the ticket. Each message is the sentence the caller reads; the HTTP layer picks the
//! status and the SPEC code (`invalid_url`, `domain_not_allowed`, `invalid_parameter`, …).

use super::page::InvalidPageUrl;
use super::{MAX_DIAGNOSE_FIELD, MAX_PAGE_URL_BYTES};
use crate::credentials::CredentialError;

#[derive(Debug, thiserror::Error)]
pub enum JssdkError {
    /// The page URL is longer than [`MAX_PAGE_URL_BYTES`].
    #[error("the page URL is {len} bytes long; at most {max} are signed", max = MAX_PAGE_URL_BYTES)]
    PageUrlTooLong { len: usize },
    /// The page URL is not an absolute http(s) URL.
    #[error("{0}; pass the page's location.href, encoded with encodeURIComponent")]
    InvalidPageUrl(#[from] InvalidPageUrl),
    /// The page's host is not on the account's `js_domains`.
    #[error(
        "the host {host:?} is not on the js_domains of account {account:?}; add it there (and to \
         the account's JS接口安全域名 in the WeChat console)"
    )]
    DomainNotAllowed { host: String, account: String },
    /// `diagnose` was given a `signature` or `nonceStr` longer than wx.config's.
    #[error(
        "`signature` and `nonceStr` are at most {max} characters (as wx.config's are)",
        max = MAX_DIAGNOSE_FIELD
    )]
    FieldTooLong,
    /// `diagnose` was given a `timestamp` that is not unix seconds.
    #[error("`timestamp` must be the integer given to wx.config (unix seconds)")]
    InvalidTimestamp,
    /// The account's jsapi_ticket could not be had.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}
