//! A built-in mock of the WeChat API, faithful to the official answer shapes.
//!
//! It exists so that wxgate can be developed, demonstrated (`wxgate sandbox`) and tested —
//! in-process or from other processes (`wxgate mock-wechat --listen ADDR`) — without a WeChat
//! account. It implements the token semantics a central server has to get right: classic
//! tokens rotate on every call with a grace period for the previous one, stable tokens are
//! idempotent and re-issued in their last 300 s, `force_refresh` is rate limited; tickets,
//! OAuth codes (single use, 5 minutes), web tokens, `sns/userinfo`, the customer-service
//! message endpoint and a generic echo for any other `cgi-bin/*` API. Every error is HTTP 200
//! with `{"errcode","errmsg":"... rid: ..."}` like WeChat's. Tests steer it through
//! [`MockWechat`] methods or the `/__mock/*` HTTP endpoints: call counters, injected faults,
//! latency, an outage switch, token invalidation and a mock clock. It logs no secrets.

mod routes;
mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use self::state::Inner;

/// One mock Official Account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockAccount {
    pub appid: String,
    pub secret: String,
}

impl MockAccount {
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
        }
    }
}

/// How the mock behaves. `Default`: no accounts, WeChat's own lifetimes and limits, no latency.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub accounts: Vec<MockAccount>,
    /// Lifetime of a newly issued access_token (WeChat: 7200).
    pub token_ttl_s: u64,
    /// Lifetime of a newly issued ticket (WeChat: 7200).
    pub ticket_ttl_s: u64,
    /// Added before answering every WeChat endpoint (not `/__mock/*`).
    pub latency: Duration,
    /// The URL browsers use to reach this mock's `/connect/oauth2/authorize` (what wxgate's
    /// `upstream.open_base` should be set to); reported by `GET /__mock/info`.
    pub open_base_public: Option<String>,
    /// How long a classic token stays valid after the next one was issued (WeChat: 300).
    pub classic_grace_s: u64,
    /// How long an OAuth code may wait for its exchange (WeChat: 300).
    pub code_ttl_s: u64,
    /// `stable_token` force refreshes per account per day (WeChat: 20), then 45009. Days are
    /// counted on the mock clock from the mock's start.
    pub force_refresh_daily_limit: u32,
    /// Minimum time between two force refreshes of an account (WeChat: 30), else 45011.
    pub force_refresh_interval_s: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            accounts: Vec::new(),
            token_ttl_s: 7200,
            ticket_ttl_s: 7200,
            latency: Duration::ZERO,
            open_base_public: None,
            classic_grace_s: 300,
            code_ttl_s: 300,
            force_refresh_daily_limit: 20,
            force_refresh_interval_s: 30,
        }
    }
}

impl MockConfig {
    /// Default settings with one account.
    pub fn with_account(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            accounts: vec![MockAccount::new(appid, secret)],
            ..Self::default()
        }
    }
}

/// A misbehaviour to inject into the next call of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with this errcode and WeChat's errmsg for it.
    Errcode(i64),
    /// This HTTP status with a short text body.
    HttpStatus(u16),
    /// HTTP 200 with an HTML body instead of JSON.
    Garbage,
    /// Wait this long, then answer normally.
    Delay(Duration),
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Handle to a mock WeChat; clones share the same state.
#[derive(Clone)]
pub struct MockWechat {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockWechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockWechat")
            .field("appids", &self.shared.lock().appids())
            .finish_non_exhaustive()
    }
}

impl MockWechat {
    pub fn new(config: MockConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::new(config)),
            }),
        }
    }

    /// The axum app: the WeChat endpoints plus the `/__mock/*` controls.
    pub fn router(&self) -> axum::Router {
        routes::router(self.shared.clone())
    }

    /// Binds `127.0.0.1:0` and serves in a background task until the runtime ends.
    pub async fn start(config: MockConfig) -> std::io::Result<(MockWechat, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let mock = MockWechat::new(config);
        let server = mock.clone();
        tokio::spawn(async move {
            if let Err(e) = server.serve(listener, std::future::pending()).await {
                tracing::warn!(error = %e, "mock WeChat stopped");
            }
        });
        Ok((mock, addr))
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Calls received by one endpoint, e.g. `"cgi-bin/token"` (a leading `/` is ignored).
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.shared
            .lock()
            .calls
            .get(&state::label(endpoint))
            .copied()
            .unwrap_or(0)
    }

    /// Calls received per endpoint.
    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls.clone()
    }

    /// Calls received by all WeChat endpoints together.
    pub fn total_calls(&self) -> u64 {
        self.shared.lock().calls.values().sum()
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Lifetime of access_tokens issued from now on.
    pub fn set_token_ttl(&self, secs: u64) {
        self.shared.lock().set_token_ttl(secs);
    }

    /// Lifetime of tickets issued from now on.
    pub fn set_ticket_ttl(&self, secs: u64) {
        self.shared.lock().set_ticket_ttl(secs);
    }

    /// Grace period of replaced classic tokens from now on.
    pub fn set_classic_grace(&self, secs: u64) {
        self.shared.lock().set_classic_grace(secs);
    }

    /// Queues `fault` for `endpoint`; queued faults are consumed one per call, in order.
    pub fn inject_fault(&self, endpoint: &str, fault: Fault) {
        self.shared.lock().push_fault(endpoint, fault);
    }

    /// Outage mode: every WeChat endpoint answers HTTP 503.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
    }

    /// Every access_token of `appid` issued so far answers 40001 from now on.
    pub fn invalidate_access_tokens(&self, appid: &str) {
        self.shared.lock().invalidate_access_tokens(appid);
    }

    /// Bodies received by `cgi-bin/message/custom/send`, oldest first.
    pub fn custom_messages(&self) -> Vec<Value> {
        self.shared.lock().custom_messages.clone()
    }

    /// The access_tokens (classic and stable) of `appid` that WeChat would accept now.
    pub fn current_access_tokens(&self, appid: &str) -> Vec<String> {
        self.shared.lock().current_access_tokens(appid)
    }

    /// Adds (or changes the secret of) an account.
    pub fn add_account(&self, appid: &str, secret: &str) {
        self.shared.lock().add_account(appid, secret);
    }

    /// Moves the mock clock forward: tokens, tickets, codes and limits age by `by`.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().advance(by);
    }

    /// Forgets counters, faults, latency, down mode, force-refresh counters and recorded
    /// messages; issued tokens, tickets and codes stay valid.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// The openid the mock gives the user chosen with `mock_openid=user` on `appid`
    /// (28 characters starting with `o`, like a real one).
    pub fn openid_for(appid: &str, user: &str) -> String {
        state::openid_for(appid, user)
    }

    /// The unionid of the user chosen with `mock_openid=user`.
    pub fn unionid_for(user: &str) -> String {
        state::unionid_for(user)
    }
}
