//! The per-request bookkeeping every route shares, as ONE hand-written tower layer (and, for
//! the route answered before the router, [`RequestMetaFuture::around`]): the request
//! id (`X-Wxgate-Request-Id`: the caller's own, up to 64 bytes, or 16 fresh hex digits, in every
//! answer), the request metrics by route template (never the raw path, which may carry
//! one-time codes) and the per-request deadline ([`super::deadline`]).
//!
//! Why hand-written: `axum::middleware::from_fn` boxes a future and clones the inner service on
//! every request, and with two such layers that bookkeeping cost about as much CPU as signing a
//! JS-SDK config. Here the inner future is wrapped in place.
//!
//! Why the id is made only at the answer, and not put into the request: only the proxy logs it,
//! and it asks for it itself ([`request_id`]). Every other route would pay for a header written
//! into a request nobody reads (measured over HTTP: about 0.25 µs a request). The route's
//! metrics are found once per route, not per request (see `crate::metrics`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use rand::Rng;
use tower::{Layer, Service};

use super::deadline::{self, Deadline};
use crate::metrics::{Metrics, RouteMetrics};

/// The request id header, in requests and answers.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-wxgate-request-id");

/// The request id a request carries, or a fresh one. A handler that logs the id calls this and
/// answers with the id in the [`REQUEST_ID`] header; the layer keeps an id a handler answered
/// with, so the log and the answer agree.
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
    deadline: Duration,
}

impl RequestMetaLayer {
    /// `deadline`: `server.request_timeout_ms`, for every route but the streaming proxy.
    pub fn new(metrics: Arc<Metrics>, deadline: Duration) -> Self {
        RequestMetaLayer { metrics, deadline }
    }
}

impl<S> Layer<S> for RequestMetaLayer {
    type Service = RequestMeta<S>;

    fn layer(&self, inner: S) -> RequestMeta<S> {
        RequestMeta {
            inner,
            route: Arc::new(RouteSlot {
                metrics: Arc::clone(&self.metrics),
                found: OnceLock::new(),
                deadline: self.deadline,
            }),
        }
    }
}

/// See [`RequestMetaLayer`]. axum clones it for every request, so it holds one `Arc`.
#[derive(Clone)]
pub struct RequestMeta<S> {
    inner: S,
    route: Arc<RouteSlot>,
}

/// The figures of the one route a layered service serves, looked up on its first request.
struct RouteSlot {
    metrics: Arc<Metrics>,
    found: OnceLock<Arc<RouteMetrics>>,
    deadline: Duration,
}

impl RouteSlot {
    fn metrics_for(&self, matched: Option<&MatchedPath>) -> Arc<RouteMetrics> {
        let route = matched.map_or("unmatched", MatchedPath::as_str);
        let found = self.found.get_or_init(|| self.metrics.route(route));
        // One layered service serves one route template; the check keeps the figures right
        // even if axum ever shared one between templates.
        if found.route() == route {
            Arc::clone(found)
        } else {
            self.metrics.route(route)
        }
    }
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

    fn call(&mut self, req: Request) -> Self::Future {
        let callers_id = callers_id(req.headers());
        let route = self
            .route
            .metrics_for(req.extensions().get::<MatchedPath>());
        let deadline = deadline::for_route(route.route(), self.route.deadline);
        RequestMetaFuture::around(self.inner.call(req), callers_id, route, deadline)
    }
}

/// The caller's own request id, if usable. A slice of the buffer hyper read the request into:
/// cloning it copies nothing.
pub fn callers_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(&REQUEST_ID).filter(|v| v.len() <= 64).cloned()
}

impl<F> RequestMetaFuture<F> {
    /// `inner` with the bookkeeping of `route` around it, answered 503 `request_timeout` if
    /// not ready within `deadline` (also used by [`super::front`], which answers one route
    /// before the router).
    pub fn around(
        inner: F,
        callers_id: Option<HeaderValue>,
        route: Arc<RouteMetrics>,
        deadline: Option<Duration>,
    ) -> Self {
        RequestMetaFuture {
            inner,
            deadline: Deadline::new(deadline),
            done: Some(Pending {
                callers_id,
                route,
                started: Instant::now(),
            }),
        }
    }
}

/// What is recorded when the answer is ready.
struct Pending {
    callers_id: Option<HeaderValue>,
    route: Arc<RouteMetrics>,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The inner future under its deadline, plus the bookkeeping done when it completes.
    pub struct RequestMetaFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        deadline: Deadline,
        done: Option<Pending>,
    }
}

impl<F, E> Future for RequestMetaFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending if this.deadline.as_mut().poll_expired(cx) => this.deadline.answer(),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(response)) => response,
        };
        if let Some(done) = this.done.take() {
            done.route
                .record(response.status().as_u16(), done.started.elapsed());
            // A handler that logs the id (the proxy) has answered with it already.
            response
                .headers_mut()
                .entry(REQUEST_ID)
                .or_insert_with(|| done.callers_id.unwrap_or_else(new_request_id));
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_sixteen_hex_digits_and_distinct_across_threads() {
        let ids = || (0..1000).map(|_| new_request_id()).collect::<Vec<_>>();
        let other_thread = std::thread::spawn(ids);
        let mut all = ids();
        all.extend(other_thread.join().unwrap());
        for id in &all {
            let id = id.to_str().unwrap();
            assert_eq!(id.len(), 16, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "a fresh id repeated");
    }
}
