//! Third-party platforms (开放平台 第三方平台), the service: a platform configured in
//! `[[components]]` and the accounts that authorized it.
//!
//! - [`events`]: the authorization event URL (`/wx/component/{c}`): tickets, authorizations,
//!   revocations, each idempotent under WeChat's retries;
//! - [`flow`]: the authorization pages' flow (`/component/{c}/authorize` and `…/callback`);
//! - [`authorization`]: the one place an authorization code is exchanged and an authorizer
//!   recorded or revoked (both the event and the callback come here, and a code is exchanged
//!   once however many of them arrive);
//! - the authorizers' refresh tokens live in the database, sealed
//!   ([`crate::registry::platform_secrets`]) — what the credential manager fetches authorizer
//!   tokens with;
//! - [`report`]: the business API's views (component token, authorizers, status) and the
//!   metrics gauges.
//!
//! An authorizer is served as an account named by its appid ([`crate::config::Component`]),
//! so pushes, JS-SDK, web login and the proxy need nothing of their own; its tokens come from
//! the credential manager like every token ([`crate::credentials`]).

pub mod authorization;
pub mod events;
pub mod flow;
pub mod report;

use std::sync::Arc;

use crate::config::Component;
use crate::credentials::CredentialError;
use crate::gateway::Gateway;
use crate::oauth::OauthError;
use crate::push::PushError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;
use crate::users::UserDbError;

/// Why a platform request failed. The HTTP layer maps each to its answer once.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("no third-party platform named {0:?} is configured")]
    UnknownComponent(String),
    /// The push checks: signature, timestamp, body (`invalid_signature`, `stale_timestamp`,
    /// `invalid_message`, …).
    #[error(transparent)]
    Push(#[from] PushError),
    #[error("the `{0}` parameter is missing")]
    MissingParameter(&'static str),
    #[error("`{name}` {problem}")]
    InvalidParameter {
        name: &'static str,
        problem: &'static str,
    },
    #[error(
        "{redirect:?} does not start with any of the auth_redirects of platform {component:?}"
    )]
    RedirectNotAllowed { redirect: String, component: String },
    /// The callback's state, or the login behind it.
    #[error(transparent)]
    Login(#[from] OauthError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("database: {0}")]
    Database(#[from] UserDbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("another request is still exchanging this authorization code; try again in a moment")]
    ExchangeInProgress,
    #[error("admin.master_key is not set: authorizers' refresh tokens cannot be kept")]
    NoMasterKey,
}

/// The platform called `name`, as configured.
pub fn component(gateway: &Gateway, name: &str) -> Result<Arc<Component>, PlatformError> {
    gateway
        .registry
        .snapshot()
        .component(name)
        .cloned()
        .ok_or_else(|| PlatformError::UnknownComponent(name.to_owned()))
}
