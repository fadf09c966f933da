//! Building and running the gateway: connect the store, create the WeChat client and the
//! credential manager, start the refresh-ahead task, bind, serve until told to stop, then stop
//! in order ([`crate::server`]: in-flight requests and background work get
//! `server.shutdown_grace_s`).
//!
//! [`Application::build`] binds before it returns, so tests can listen on port 0 and read the
//! real port with [`Application::port`]; the binary is a few lines around it. Startup errors
//! name the storage and database URLs without their passwords ([`crate::scrub`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Settings, Validated};
use crate::gateway::Gateway;
pub use crate::gateway::StartupError;
use crate::http::{self, AppState};
use crate::server::{ServeOptions, Server};

/// A bound, ready-to-run gateway.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// `server.metrics_listen`, bound.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    extra_routes: Option<axum::Router<AppState>>,
}

impl Application {
    /// Binds `server.listen` and builds everything.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let validated = settings.validate()?;
        Self::build_validated(settings, validated).await
    }

    /// [`Application::build`] with the accounts and platforms already built from exactly these
    /// settings ([`Settings::load_validated`]), so they are built once.
    pub async fn build_validated(
        settings: Settings,
        validated: Validated,
    ) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(&settings.server.listen)
            .await
            .map_err(|e| StartupError::Bind {
                addr: settings.server.listen.clone(),
                reason: e.to_string(),
            })?;
        Self::serve_on(settings, validated, listener).await
    }

    /// Builds everything around a listener the caller already bound. The accounts are built
    /// from the settings actually served (callers may adjust loaded settings).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let validated = settings.validate()?;
        Self::serve_on(settings, validated, listener).await
    }

    async fn serve_on(
        settings: Settings,
        validated: Validated,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let addr = listener.local_addr().map_err(|e| StartupError::Bind {
            addr: settings.server.listen.clone(),
            reason: e.to_string(),
        })?;
        let metrics_listener = match &settings.server.metrics_listen {
            Some(at) => {
                let bind_failed = |e: std::io::Error| StartupError::Bind {
                    addr: at.clone(),
                    reason: e.to_string(),
                };
                let listener = TcpListener::bind(at).await.map_err(bind_failed)?;
                let addr = listener.local_addr().map_err(bind_failed)?;
                Some((listener, addr))
            }
            None => None,
        };
        let gateway = Gateway::build(settings, validated).await?;
        let state = AppState(Arc::new(gateway));
        Ok(Self {
            listener,
            addr,
            metrics_listener,
            state,
            extra_routes: None,
        })
    }

    /// Adds routes that only some modes serve (the sandbox's demo page).
    pub fn with_routes(mut self, routes: axum::Router<AppState>) -> Self {
        self.extra_routes = Some(match self.extra_routes.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests and
    /// background work finish within `server.shutdown_grace_s` (see [`crate::server`]).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let refresher = tokio::spawn(self.state.creds.clone().run_background());
        let registry_watch = tokio::spawn(Arc::clone(&self.state.0).run_registry_watch());
        let activity = tokio::spawn(Arc::clone(&self.state.activity).run_background());
        let app = http::service(self.state.clone(), self.extra_routes);
        let server = Server::new(ServeOptions::from_settings(&self.state.settings.server));
        tracing::info!(addr = %self.addr, accounts = self.state.registry.snapshot().accounts.len(), "wxgate is listening");
        let metrics = async {
            if let Some((listener, addr)) = self.metrics_listener {
                tracing::info!(addr = %addr, "/metrics is served on its own address");
                let service = http::metrics_service(self.state.clone());
                server.accept_loop(listener, service).await;
            }
        };
        let signal = async {
            shutdown.await;
            server.stop();
        };
        tokio::join!(server.accept_loop(self.listener, app), metrics, signal);
        tracing::info!(
            grace_s = self.state.settings.server.shutdown_grace_s,
            "no longer accepting; finishing in-flight requests and background work"
        );
        if server.drain(&self.state.tasks).await {
            tracing::info!("stopped");
        }
        refresher.abort();
        registry_watch.abort();
        activity.abort();
        if let Err(e) = self.state.activity.flush().await {
            tracing::warn!(error = %e, "activity: what was observed last could not be written");
        }
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
