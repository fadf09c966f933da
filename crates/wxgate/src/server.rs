//! Serving connections: the accept loop, the limits a hostile client meets before any route
//! runs, and the orderly stop.
//!
//! Why not `axum::serve`: it runs hyper without a timer, so even hyper's header-read timeout is
//! off, and it accepts without limit; a client that sends a request slowly (or nothing at all)
//! holds its socket forever. Here:
//! - **connection cap**: at most `server.max_connections` connections are served at once; at the
//!   cap the loop stops accepting (further clients wait in the kernel's accept queue) until one
//!   closes;
//! - **header-read timeout**: a connection must deliver each request's headers within
//!   `server.header_read_timeout_ms` of starting to wait for them, which also closes keep-alive
//!   connections left idle that long;
//! - **request deadline**: per route, see [`crate::http::deadline`];
//! - **HTTP/1.1 only**: wxgate sits behind a TLS terminator that speaks HTTP/1.1 to it. Plain
//!   HTTP/2 (h2c) is not offered: sniffing the protocol of a new connection has no timeout in
//!   hyper-util, and an HTTP/2 connection has no idle bound, so either would let a silent client
//!   keep a connection (and its place under the cap) forever;
//! - **orderly stop** ([`Server::drain`]): on shutdown the loops stop accepting (new connections
//!   are refused), idle connections close, in-flight requests and the tracked background work
//!   ([`crate::tasks`]) may finish within `server.shutdown_grace_s`; at that deadline the
//!   remaining connections (a long proxied transfer, a slow client) are cut and the remaining
//!   tasks cancelled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::config::ServerSettings;
use crate::tasks::BackgroundTasks;

/// The connection limits and the shutdown grace, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub grace: Duration,
}

impl ServeOptions {
    pub fn from_settings(s: &ServerSettings) -> Self {
        ServeOptions {
            max_connections: usize::try_from(s.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: s.header_read_timeout(),
            grace: s.shutdown_grace(),
        }
    }
}

/// The connections of one gateway, on one or more listeners (the API and, with
/// `server.metrics_listen`, the metrics address); each listener has its own connection cap.
pub struct Server {
    options: ServeOptions,
    http: hyper::server::conn::http1::Builder,
    /// Cancelled when the gateway stops: the loops stop accepting, connections drain.
    stop: CancellationToken,
    /// Cancelled at the end of the grace: connections still open are dropped.
    cut: CancellationToken,
    connections: TaskTracker,
}

impl Server {
    pub fn new(options: ServeOptions) -> Self {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        Server {
            options,
            http,
            stop: CancellationToken::new(),
            cut: CancellationToken::new(),
            connections: TaskTracker::new(),
        }
    }

    /// Stops the accept loops and starts draining the connections.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Accepts on `listener` and serves `service` on each connection until [`Self::stop`];
    /// the listener is closed when this returns.
    pub async fn accept_loop<S>(&self, listener: TcpListener, service: S)
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(self.options.max_connections));
        loop {
            // At the cap, wait for a connection to close before accepting the next one.
            let permit = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        self.accept_failed(e).await;
                        continue;
                    }
                },
            };
            let service = service
                .clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(Body::new));
            let conn = self
                .http
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let stop = self.stop.clone();
            let cut = self.cut.clone();
            self.connections.spawn(async move {
                let _permit = permit;
                tokio::pin!(conn);
                let finished = tokio::select! {
                    result = conn.as_mut() => Some(result),
                    () = stop.cancelled() => None,
                };
                let result = match finished {
                    Some(result) => result,
                    None => {
                        // Close when idle, or after the answer in progress.
                        conn.as_mut().graceful_shutdown();
                        tokio::select! {
                            result = conn.as_mut() => result,
                            () = cut.cancelled() => return,
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
    }

    /// A failed `accept`: per-connection errors (the client left already) are skipped; others
    /// (out of file descriptors) are logged and retried after a second, as `axum::serve` does.
    async fn accept_failed(&self, e: std::io::Error) {
        use std::io::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
        ) {
            return;
        }
        tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
        tokio::select! {
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }

    /// After [`Self::stop`] and the end of the accept loops: waits for the connections and for
    /// `tasks` to finish, at most `server.shutdown_grace_s`; then cuts the connections still
    /// open and cancels the tasks still running. `true` when everything finished in time.
    pub async fn drain(&self, tasks: &BackgroundTasks) -> bool {
        self.connections.close();
        tasks.close();
        let everything = async {
            self.connections.wait().await;
            tasks.wait().await;
        };
        if tokio::time::timeout(self.options.grace, everything)
            .await
            .is_ok()
        {
            return true;
        }
        tracing::warn!(
            connections = self.connections.len(),
            background_tasks = tasks.len(),
            grace_s = self.options.grace.as_secs(),
            "shutdown grace is over: cutting the connections and cancelling the work still running"
        );
        self.cut.cancel();
        tasks.cancel();
        // Both end at their next await point.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            self.connections.wait().await;
            tasks.wait().await;
        })
        .await;
        false
    }
}
