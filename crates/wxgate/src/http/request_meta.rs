//! The per-request bookkeeping every route shares, as ONE hand-written tower layer: the request
//! id (`X-Wxgate-Request-Id`: the caller's own, up to 64 bytes, or 16 fresh hex digits — put
//! into the request, for handlers to log, and into the answer) and the request metrics by route
//! template (never the raw path, which may carry one-time codes).
//!
//! Why hand-written: `axum::middleware::from_fn` boxes a future and clones the inner service on
//! every request, and with two such layers that bookkeeping cost about as much CPU as signing a
//! JS-SDK config. Here the inner future is wrapped in place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use rand::Rng;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The request id header, in requests and answers.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-wxgate-request-id");

/// The request id a request carries, or a fresh one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= 64)
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// 16 random hex digits, formatted on the stack.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n: u64 = rand::thread_rng().gen();
    let mut buf = [0u8; 16];
    for b in buf.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Applied to the routes with `Router::route_layer` (the route template is known there).
#[derive(Clone)]
pub struct RequestMetaLayer {
    metrics: Arc<Metrics>,
}

impl RequestMetaLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RequestMetaLayer { metrics }
    }
}

impl<S> Layer<S> for RequestMetaLayer {
    type Service = RequestMeta<S>;

    fn layer(&self, inner: S) -> RequestMeta<S> {
        RequestMeta {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// See [`RequestMetaLayer`].
#[derive(Clone)]
pub struct RequestMeta<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for RequestMeta<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequestMetaFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = request_id(req.headers());
        req.headers_mut().insert(REQUEST_ID, id.clone());
        // `MatchedPath` is a shared string: cloning it allocates nothing.
        let route = req.extensions().get::<MatchedPath>().cloned();
        RequestMetaFuture {
            inner: self.inner.call(req),
            done: Some(Pending {
                id,
                route,
                started: Instant::now(),
                metrics: Arc::clone(&self.metrics),
            }),
        }
    }
}

/// What is recorded when the answer is ready.
struct Pending {
    id: HeaderValue,
    route: Option<MatchedPath>,
    started: Instant,
    metrics: Arc<Metrics>,
}

pin_project_lite::pin_project! {
    /// The inner future, plus the bookkeeping done when it completes.
    pub struct RequestMetaFuture<F> {
        #[pin]
        inner: F,
        done: Option<Pending>,
    }
}

impl<F, E> Future for RequestMetaFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(response)) => response,
        };
        if let Some(done) = this.done.take() {
            done.metrics.http_request(
                done.route.as_ref().map_or("unmatched", MatchedPath::as_str),
                response.status().as_u16(),
                done.started.elapsed(),
            );
            response.headers_mut().insert(REQUEST_ID, done.id);
        }
        Poll::Ready(Ok(response))
    }
}
