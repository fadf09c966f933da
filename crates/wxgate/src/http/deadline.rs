//! The per-request deadline (`server.request_timeout_ms`): a request whose answer is not ready in
//! time — a slow request body upload included, since handlers read the body inside their
//! future — is answered 503 `request_timeout` with `Connection: close`, and its handler is
//! dropped.
//!
//! It is kept by the per-request bookkeeping every route already has
//! ([`super::request_meta::RequestMetaFuture`], which also serves the JS-SDK config route
//! answered in front of the router), so it costs no layer, no box and no allocation of its own,
//! and a cut request is counted (as 503) and carries its request id like any other. Every route
//! has it except the streaming API proxy ([`super::proxy::API_ROUTE`]), whose transfers may
//! rightly take long and which bounds every *silence* itself (`proxy::forward`).
//!
//! Cost: the timer is armed only when a handler's first poll is not ready, so a request answered
//! at once (a cached credential, a signed JS-SDK config) pays neither a clock read nor a timer;
//! the deadline then runs from that first poll, i.e. from the moment the request's headers were
//! read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;

use super::ApiError;

/// The deadline of the requests of `route` (a route template): `None` for the streaming proxy.
pub fn for_route(route: &str, limit: Duration) -> Option<Duration> {
    (route != super::proxy::API_ROUTE).then_some(limit)
}

pin_project_lite::pin_project! {
    /// The timer of one request: idle until [`Deadline::poll_expired`] is first called.
    pub struct Deadline {
        limit: Option<Duration>,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl Deadline {
    /// A deadline `limit` from the first [`Self::poll_expired`] (`None`: never).
    pub fn new(limit: Option<Duration>) -> Self {
        Deadline { limit, timer: None }
    }

    /// Called when the request's future is pending: arms the timer on the first call, and is
    /// `true` once the deadline has passed (the waker is registered otherwise).
    pub fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let mut this = self.project();
        let Some(limit) = *this.limit else {
            return false;
        };
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(limit)));
        }
        matches!(
            this.timer.as_pin_mut().map(|timer| timer.poll(cx)),
            Some(Poll::Ready(()))
        )
    }

    /// The answer to a request cut at this deadline: 503 `request_timeout`, with
    /// `Connection: close` since the request's body may not have been read to its end.
    pub fn answer(&self) -> Response {
        let ms = self.limit.unwrap_or_default().as_millis();
        tracing::warn!(
            limit_ms = ms as u64,
            "request cut at server.request_timeout_ms"
        );
        let mut response = ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request was not done within server.request_timeout_ms ({ms} ms)"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[test]
    fn only_the_streaming_proxy_has_no_deadline() {
        let limit = Duration::from_secs(30);
        assert_eq!(for_route(crate::http::proxy::API_ROUTE, limit), None);
        for route in [
            "/api/v1/accounts/{account}/access_token",
            "/wx/{account}",
            "/metrics",
        ] {
            assert_eq!(for_route(route, limit), Some(limit), "{route}");
        }
    }

    #[tokio::test]
    async fn a_deadline_expires_after_its_limit_from_the_first_poll() {
        let mut deadline = std::pin::pin!(Deadline::new(Some(Duration::from_millis(50))));
        assert!(!poll_fn(|cx| Poll::Ready(deadline.as_mut().poll_expired(cx))).await);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(poll_fn(|cx| Poll::Ready(deadline.as_mut().poll_expired(cx))).await);
        let answer = deadline.answer();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()[header::CONNECTION], "close");

        let mut never = std::pin::pin!(Deadline::new(None));
        assert!(!poll_fn(|cx| Poll::Ready(never.as_mut().poll_expired(cx))).await);
    }
}
