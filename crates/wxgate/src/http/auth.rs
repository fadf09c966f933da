//! Bearer-key authentication of the business API.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time, so neither a timing
//! difference nor a memory dump of this struct gives a key away. No keys configured means the
//! business API is off (403 `api_disabled`), never open.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::future::{ready, Either, Ready};
use tower::{Layer, Service};

use super::{ApiError, AppState};
pub use crate::api_keys::ApiKeys;
pub use crate::registry::keys::{Access, Grant, Scope};

/// 403 `forbidden`: a valid key used beyond its accounts or scopes.
pub fn forbidden(message: &str) -> ApiError {
    ApiError::client(axum::http::StatusCode::FORBIDDEN, "forbidden", message)
}

/// Refuses `account` when the request's key (its [`Grant`], put there by
/// [`RequireApiKeyLayer`] for keys made with the admin API) does not reach it. A request with
/// no grant passed the layer with a key of `api.keys` (every account) or is outside the
/// business API, and passes.
pub fn check_account(extensions: &axum::http::Extensions, account: &str) -> Result<(), ApiError> {
    check_grant(
        extensions.get::<std::sync::Arc<Grant>>().map(|g| &**g),
        account,
    )
}

/// [`check_account`] for a grant already in hand.
pub fn check_grant(grant: Option<&Grant>, account: &str) -> Result<(), ApiError> {
    match grant {
        Some(grant) if !grant.allows_account(account) => Err(forbidden(&format!(
            "this API key does not reach the account {account:?}"
        ))),
        _ => Ok(()),
    }
}

/// The Bearer key a request presents, if any.
fn presented_key(req: &Request) -> Option<&str> {
    bearer_token(req.headers())
}

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Layer for `/api/*` (applied with `Router::route_layer`): requests without a configured key
/// get 401 `unauthorized` (403 `api_disabled` when no key is configured) and never reach the
/// handler.
///
/// Hand-written for the same reason as [`super::request_meta`]: `axum::middleware::from_fn`
/// boxes a future and clones the inner service on every request: ~0.2 µs, a tenth of what
/// `GET access_token` costs in process (`cargo bench -p wxgate --bench routes`). The check
/// itself is synchronous, so a refusal is a ready future and an accepted request is the inner
/// service's own future, unwrapped.
#[derive(Clone)]
pub struct RequireApiKeyLayer {
    state: AppState,
    scope: Scope,
}

impl RequireApiKeyLayer {
    /// Requires a key that holds `scope`; the key's [`Grant`] goes into the request's
    /// extensions, where [`super::extract::AccountPath`] checks the account against it.
    pub fn new(state: AppState, scope: Scope) -> Self {
        RequireApiKeyLayer { state, scope }
    }
}

impl<S> Layer<S> for RequireApiKeyLayer {
    type Service = RequireApiKey<S>;

    fn layer(&self, inner: S) -> RequireApiKey<S> {
        RequireApiKey {
            inner,
            state: self.state.clone(),
            scope: self.scope,
        }
    }
}

/// See [`RequireApiKeyLayer`].
#[derive(Clone)]
pub struct RequireApiKey<S> {
    inner: S,
    state: AppState,
    scope: Scope,
}

impl<S> Service<Request> for RequireApiKey<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let snapshot = self.state.registry.snapshot();
        let keys = &snapshot.keys;
        let refusal = if keys.is_empty() {
            ApiError::ApiDisabled
        } else {
            match presented_key(&req).and_then(|key| keys.access(key)) {
                None => ApiError::Unauthorized,
                // No grant in the extensions means no restriction (see `check_account`).
                Some(Access::Full) => return Either::Right(self.inner.call(req)),
                Some(Access::Scoped(grant)) if !grant.allows_scope(self.scope) => {
                    forbidden(&format!(
                        "this API key does not hold the scope {:?}",
                        self.scope.as_str()
                    ))
                }
                Some(Access::Scoped(grant)) => {
                    req.extensions_mut().insert(grant);
                    return Either::Right(self.inner.call(req));
                }
            }
        };
        Either::Left(ready(Ok(refusal.into_response())))
    }
}
