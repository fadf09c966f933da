//! The per-request deadline (`server.request_timeout_ms`): a request whose answer is not ready in
//! time — a slow request body upload included, since handlers read the body inside their
//! future — is answered 503 `request_timeout` with `Connection: close`, and its handler is
//! dropped.
//!
//! Every route has it ([`DeadlineLayer`] on the router, [`DeadlineFuture`] around the JS-SDK
//! config route answered in front of it) except the streaming API proxy
//! ([`crate::proxy::API_ROUTE`]), whose transfers may rightly take long and which bounds every
//! *silence* itself (`proxy::forward`).
//!
//! Cost: the timer is armed only when a handler's first poll is not ready, so a request answered
//! at once (a cached credential, a signed JS-SDK config) pays neither a clock read nor a timer;
//! the deadline then runs from that first poll, i.e. from the moment the request's headers were
//! read. Hand-written (not `axum::middleware`) for the same reason as [`super::request_meta`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::ApiError;

/// `server.request_timeout_ms` as a duration.
pub fn request_timeout(server: &crate::config::ServerSettings) -> Duration {
    Duration::from_millis(server.request_timeout_ms)
}

/// Applied with `Router::route_layer`, inside the request bookkeeping so a cut request is
/// counted (as 503) like any other.
#[derive(Clone, Copy)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    pub fn new(limit: Duration) -> Self {
        DeadlineLayer { limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let streaming = req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == crate::proxy::API_ROUTE);
        let limit = (!streaming).then_some(self.limit);
        DeadlineFuture::new(self.inner.call(req), limit)
    }
}

pin_project_lite::pin_project! {
    /// `inner`, or the 503 `request_timeout` answer once `limit` has passed since its first
    /// poll that was not ready.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Option<Sleep>,
        limit: Option<Duration>,
    }
}

impl<F> DeadlineFuture<F> {
    /// `inner` under `limit` (`None`: no deadline).
    pub fn new(inner: F, limit: Option<Duration>) -> Self {
        DeadlineFuture {
            inner,
            timer: None,
            limit,
        }
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(limit)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(timed_out(limit))),
            _ => Poll::Pending,
        }
    }
}

/// The answer to a request cut at its deadline. `Connection: close`, since the request's body
/// may not have been read to its end.
fn timed_out(limit: Duration) -> Response {
    let ms = limit.as_millis();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn a_ready_answer_passes_and_a_late_one_is_cut() {
        let ready = async { Ok::<_, Infallible>(Response::new(axum::body::Body::empty())) };
        let answer = DeadlineFuture::new(ready, Some(Duration::from_millis(50)))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);

        let late = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Response::new(axum::body::Body::empty()))
        };
        let answer = DeadlineFuture::new(late, Some(Duration::from_millis(50)))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()[header::CONNECTION], "close");

        let unbounded = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Infallible>(Response::new(axum::body::Body::empty()))
        };
        let answer = DeadlineFuture::new(unbounded, None).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
}
