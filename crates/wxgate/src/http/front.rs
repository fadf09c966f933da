//! The service the server runs: the application router, with the busiest route answered in
//! front of it.
//!
//! `GET /jssdk/{account}/config` is asked on every page view of every H5 page that uses the
//! JS-SDK, and signing it is cheap; going through axum's router cost more than the signing
//! (matching, the URL parameters and the matched path written into the request's extensions,
//! two boxed route services and their futures for the route layer): callgrind counted 26 960
//! instructions per config request through the router and 21 428 from here. So a request
//! that is exactly `GET /jssdk/{account}/config` with a plain account segment (no `%`, which
//! axum would decode) goes straight to the same handler, with the same request-id and metrics
//! bookkeeping ([`RequestMetaFuture`]) under the same route template; everything else — other
//! methods (HEAD, the CORS preflight), encoded or odd paths, every other route — goes through
//! the router. The integration tests compare both ways for the same requests.
//!
//! The config route keeps the per-request deadline of every other route (kept by
//! [`RequestMetaFuture`], see [`super::deadline`]): it awaits the store or WeChat only when no
//! valid ticket is cached, and costs nothing when the answer is ready at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::Service;

use super::extract::AccountPath;
use super::jssdk::CONFIG_ROUTE;
use super::request_meta::{callers_id, RequestMetaFuture};
use super::AppState;
use crate::metrics::RouteMetrics;

/// The router plus the config route in front of it; cheap to clone (two `Arc`s and the
/// router's own).
#[derive(Clone)]
pub struct Front {
    state: AppState,
    router: Router,
    config_metrics: Arc<RouteMetrics>,
    deadline: Duration,
}

impl Front {
    pub fn new(state: AppState, router: Router) -> Self {
        let config_metrics = state.metrics.route(CONFIG_ROUTE);
        let deadline = state.settings.server.request_timeout();
        Front {
            state,
            router,
            config_metrics,
            deadline,
        }
    }
}

/// The account of a path that is exactly [`CONFIG_ROUTE`] with its `{account}` filled, when the
/// segment needs no decoding; `None` sends the request through the router.
fn config_account(path: &str) -> Option<&str> {
    let account = path.strip_prefix("/jssdk/")?.strip_suffix("/config")?;
    let plain = !account.is_empty() && !account.bytes().any(|b| b == b'/' || b == b'%');
    plain.then_some(account)
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// The answer of [`Front`]: signed in front of the router, or routed.
    // hyper keeps the future in place for the request's life; boxing the larger variant would
    // add an allocation to every request of the other kind.
    #[project = FrontFutureProj]
    pub enum FrontFuture {
        Config { #[pin] answer: RequestMetaFuture<Answer> },
        Routed { #[pin] answer: <Router as Service<Request>>::Future },
    }
}

impl Future for FrontFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontFutureProj::Config { answer } => answer.poll(cx),
            FrontFutureProj::Routed { answer } => answer.poll(cx),
        }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> FrontFuture {
        if request.method() == Method::GET {
            if let Some(name) = config_account(request.uri().path()) {
                // What the router's `AccountPath` extractor does: the account, or 404.
                let account = AccountPath::find(&self.state, name);
                let state = self.state.clone();
                let callers_id = callers_id(request.headers());
                let answer: Answer = Box::pin(async move {
                    Ok(match account {
                        Ok(account) => super::jssdk::config(State(state), account, request).await,
                        Err(unknown) => unknown.into_response(),
                    })
                });
                return FrontFuture::Config {
                    answer: RequestMetaFuture::around(
                        answer,
                        callers_id,
                        Arc::clone(&self.config_metrics),
                        Some(self.deadline),
                    ),
                };
            }
        }
        FrontFuture::Routed {
            answer: self.router.call(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_plain_config_path_is_answered_in_front() {
        // The matcher follows the router's template.
        let filled = CONFIG_ROUTE.replace("{account}", "main");
        assert_eq!(config_account(&filled), Some("main"));
        assert_eq!(config_account("/jssdk/main/config"), Some("main"));
        assert_eq!(config_account("/jssdk/a-b_c.d/config"), Some("a-b_c.d"));
        for routed in [
            "/jssdk//config",
            "/jssdk/main/config/",
            "/jssdk/a/b/config",
            "/jssdk/%6Dain/config",
            "/jssdk/main/diagnose",
            "/jssdk/main/configx",
            "//jssdk/main/config",
            "/JSSDK/main/config",
            "/jssdk/config",
            "",
        ] {
            assert_eq!(config_account(routed), None, "{routed}");
        }
    }
}
