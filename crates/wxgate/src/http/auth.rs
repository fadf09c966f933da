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
}

impl RequireApiKeyLayer {
    pub fn new(state: AppState) -> Self {
        RequireApiKeyLayer { state }
    }
}

impl<S> Layer<S> for RequireApiKeyLayer {
    type Service = RequireApiKey<S>;

    fn layer(&self, inner: S) -> RequireApiKey<S> {
        RequireApiKey {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See [`RequireApiKeyLayer`].
#[derive(Clone)]
pub struct RequireApiKey<S> {
    inner: S,
    state: AppState,
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

    fn call(&mut self, req: Request) -> Self::Future {
        let keys = &self.state.api_keys;
        let refusal = if keys.is_empty() {
            ApiError::ApiDisabled
        } else if presented_key(&req).is_some_and(|key| keys.accepts(key)) {
            return Either::Right(self.inner.call(req));
        } else {
            ApiError::Unauthorized
        };
        Either::Left(ready(Ok(refusal.into_response())))
    }
}
