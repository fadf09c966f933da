//! The account a route names, as an extractor: every route with an `{account}` segment takes
//! [`AccountPath`] and gets the validated [`Account`], or the caller gets 404
//! `unknown_account` before the handler runs — or, on the business API, 403 `forbidden` when the
//! request's key does not reach that account (checked first, so a scoped key learns nothing of
//! other accounts).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::config::Account;

/// The account of the route's `{account}` segment (percent-decoded), looked up once.
pub struct AccountPath(pub Arc<Account>);

impl std::ops::Deref for AccountPath {
    type Target = Arc<Account>;
    fn deref(&self) -> &Arc<Account> {
        &self.0
    }
}

impl FromRequestParts<AppState> for AccountPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A segment that does not decode (e.g. `%ff`, not UTF-8) names no account.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::not_found(
                    "unknown_account",
                    "the path names no account (a segment is not valid percent-encoded UTF-8)",
                )
            })?;
        let name = params
            .iter()
            .find_map(|(key, value)| (key == "account").then_some(value))
            .ok_or_else(|| ApiError::Internal("the route has no {account} segment".into()))?;
        super::auth::check_account(&parts.extensions, name)?;
        AccountPath::find(state, name)
    }
}

impl AccountPath {
    /// The account called `name` as served now, or 404 `unknown_account`: the extractor's
    /// lookup, also used by the front service (`super::front`) for the route it answers itself.
    pub fn find(state: &AppState, name: &str) -> Result<Self, ApiError> {
        state
            .account(name)
            .map(AccountPath)
            .ok_or_else(|| ApiError::UnknownAccount(name.to_owned()))
    }
}
