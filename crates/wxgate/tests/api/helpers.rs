//! Test harness: real gateways (in-process or as `wxgate serve` processes) on port 0, in front
//! of the real mock WeChat API, on real stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use wxgate::config::Settings;
use wxgate::http::AppState;
use wxgate::startup::Application;
use wxgate_mock::{MockAccount, MockConfig, MockWechat};

pub use crate::mongo_db::{drop_mongo_db, fresh_mongo_db, in_fresh_mongo_db, mongo_client};

pub const APPID: &str = "wx1234567890abcdef";
pub const SECRET: &str = "the-app-secret-0123456789abcdef";
pub const API_KEY: &str = "test-api-key-0123456789";
pub const TOKEN: &str = "pushtoken123";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// The mock WeChat API, started in this process with the test account.
pub async fn start_mock() -> (MockWechat, SocketAddr) {
    start_mock_with(|_| {}).await
}

pub async fn start_mock_with(tune: impl FnOnce(&mut MockConfig)) -> (MockWechat, SocketAddr) {
    let mut config = MockConfig {
        accounts: vec![MockAccount {
            appid: APPID.into(),
            secret: SECRET.into(),
        }],
        ..MockConfig::default()
    };
    tune(&mut config);
    MockWechat::start(config).await.expect("mock starts")
}

/// A shared temporary directory, deleted when its last holder is dropped.
pub type Scratch = std::sync::Arc<tempfile::TempDir>;

/// What a test may vary in the gateway's config.
#[derive(Clone)]
pub struct GatewayConfig {
    pub mock_addr: SocketAddr,
    pub storage_url: String,
    /// `[database] url`; a fresh SQLite file per config unless a test sets it.
    pub database_url: String,
    pub key_prefix: String,
    pub token_api: &'static str,
    pub secret: String,
    pub api_keys: Vec<String>,
    pub timeout_ms: u64,
    /// `server.max_body_bytes`.
    pub max_body_bytes: u64,
    /// Appended to the account table (after `secret`).
    pub account_extra: String,
    /// Appended at the end of the file (e.g. `[[accounts.rules]]`).
    pub tail: String,
    /// Appended to the `[server]` table (e.g. `request_timeout_ms = 1000`).
    pub server_extra: String,
    /// Holds the default user database; removed when the last holder is dropped (every gateway
    /// started from this config holds it too, see [`GatewayConfig::scratch`]).
    scratch: Scratch,
}

impl GatewayConfig {
    pub fn new(mock_addr: SocketAddr) -> Self {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        Self {
            mock_addr,
            storage_url: "memory://".into(),
            database_url: format!("sqlite://{}", scratch.path().join("users.db").display()),
            key_prefix: "wxgate:".into(),
            token_api: "stable",
            secret: SECRET.into(),
            api_keys: vec![API_KEY.into()],
            timeout_ms: 2000,
            max_body_bytes: 65536,
            account_extra: String::new(),
            tail: String::new(),
            server_extra: String::new(),
            scratch: std::sync::Arc::new(scratch),
        }
    }

    pub fn toml(&self) -> String {
        let keys: Vec<String> = self.api_keys.iter().map(|k| format!("{k:?}")).collect();
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:9"
max_body_bytes = {max_body}
{server_extra}
[storage]
url = "{storage}"
key_prefix = "{prefix}"
[database]
url = "{database}"
[upstream]
api_base = "http://{mock}"
open_base = "http://{mock}"
mp_base = "http://{mock}"
timeout_ms = {timeout}
[api]
keys = [{keys}]
[[accounts]]
name = "main"
appid = "{APPID}"
secret = "{secret}"
token = "{TOKEN}"
token_api = "{api}"
{extra}
{tail}
"#,
            storage = self.storage_url,
            database = self.database_url,
            prefix = self.key_prefix,
            mock = self.mock_addr,
            timeout = self.timeout_ms,
            max_body = self.max_body_bytes,
            keys = keys.join(", "),
            secret = self.secret,
            api = self.token_api,
            extra = self.account_extra,
            tail = self.tail,
            server_extra = self.server_extra,
        )
    }

    /// The temporary directory of this config's files, for a gateway to hold while it runs.
    pub fn scratch(&self) -> Scratch {
        self.scratch.clone()
    }

    pub fn settings(&self) -> Settings {
        Settings::from_toml_and_env(&self.toml(), std::iter::empty()).expect("valid test config")
    }
}

/// A gateway running inside the test process.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// The running gateway's state (its store, user database, credentials).
    pub state: AppState,
    /// `http://` + the address of `server.metrics_listen`, when set.
    pub metrics_base: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _scratch: Scratch,
}

pub async fn spawn_app(config: &GatewayConfig) -> TestApp {
    spawn_app_full(config, None, |_, _| {}).await
}

/// Like [`spawn_app`], with a last word on the settings (for values `GatewayConfig` has no
/// field for).
pub async fn spawn_app_with(config: &GatewayConfig, tune: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_full(config, None, |s, _| tune(s)).await
}

/// The one way tests start an in-process gateway: bound first, so `server.public_url` is its real
/// address (OAuth redirects come back to it), with optional mode-specific routes (the sandbox's
/// demo page) and a last change to the settings that may use the gateway's base URL.
pub async fn spawn_app_full(
    config: &GatewayConfig,
    routes: Option<axum::Router<AppState>>,
    tune: impl FnOnce(&mut Settings, &str),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = config.settings();
    settings.server.public_url = base.clone();
    tune(&mut settings, &base);
    let mut app = Application::build_with_listener(settings, listener)
        .await
        .expect("gateway builds");
    if let Some(r) = routes {
        app = app.with_routes(r);
    }
    let state = app.state().clone();
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = app
            .run_until_stopped(async {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        _scratch: config.scratch(),
        base,
        http: http_client(),
        state,
        metrics_base,
        stop: Some(tx),
        handle: Some(handle),
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl TestApp {
    /// The `/metrics` page (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1/accounts/{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        get_json(&self.http, &self.api(path)).await
    }

    pub async fn post_json(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(self.api(path)).bearer_auth(API_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Stops the server and waits until it has released everything.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = http.get(url).bearer_auth(API_KEY).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A `wxgate serve` process.
pub struct GatewayProcess {
    pub base: String,
    child: Child,
    stderr: Option<tokio::task::JoinHandle<String>>,
    _dir: tempfile::TempDir,
    _scratch: Scratch,
}

impl GatewayProcess {
    pub async fn start(config: &GatewayConfig) -> Self {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &GatewayConfig, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("wxgate.toml");
        std::fs::write(&path, config.toml()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .current_dir(dir.path())
            .env("WXGATE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("wxgate binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s).await;
            s
        });
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("wxgate prints its address in time")
            .unwrap()
            .expect("wxgate prints its address");
        let base = line
            .strip_prefix("wxgate listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            base,
            child,
            stderr: Some(stderr),
            _dir: dir,
            _scratch: config.scratch(),
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1/accounts/{path}", self.base)
    }

    /// The operating system's id of the process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit: its exit status (`None`
    /// if it was still running, then it is killed), how long it took, and everything it logged.
    pub async fn terminate_within(
        self,
        limit: Duration,
    ) -> (Option<std::process::ExitStatus>, Duration, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        self.exit_within(limit).await
    }

    /// Waits up to `limit` for the process to exit by itself; as [`Self::terminate_within`].
    pub async fn exit_within(
        mut self,
        limit: Duration,
    ) -> (Option<std::process::ExitStatus>, Duration, String) {
        let started = std::time::Instant::now();
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        let took = started.elapsed();
        let _ = self.child.kill().await;
        let log = match self.stderr.take() {
            Some(h) => h.await.unwrap_or_default(),
            None => String::new(),
        };
        (status, took, log)
    }

    /// Runs `wxgate serve` with a config that is expected to fail at start: its exit status and
    /// everything it printed to stderr.
    pub async fn run_failing(config: &GatewayConfig) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("wxgate.toml");
        std::fs::write(&path, config.toml()).unwrap();
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            Command::new(env!("CARGO_BIN_EXE_wxgate"))
                .arg("serve")
                .arg("--config")
                .arg(&path)
                .current_dir(dir.path())
                .env("WXGATE_LOG", "debug")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("wxgate stops in time")
        .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Stops the process (SIGTERM) and returns everything it logged.
    pub async fn stop_and_collect_log(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        match self.stderr.take() {
            Some(h) => h.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

/// `WXGATE_TEST_REDIS_URL`, or `None` after printing why the test skips.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("WXGATE_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipping {test}: WXGATE_TEST_REDIS_URL is not set (CI sets it)");
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("wxgate-test-{}:", rand::random::<u64>())
}

/// A webhook in this process that answers `answer` after `delay`; its URL (path `/hook`) and
/// the number of calls it got so far.
pub async fn start_webhook(
    delay: Duration,
    answer: Value,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            let answer = answer.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                axum::Json(answer)
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), calls)
}

/// The account line that sends pushes to the webhook at `url`.
pub fn webhook_account_extra(url: &str, timeout_ms: u64) -> String {
    format!(
        "webhook = {{ url = \"{url}\", secret = \"webhook-secret-123\", timeout_ms = {timeout_ms} }}\n"
    )
}

/// Sends what WeChat sends for a plaintext text message from `openid` to the account `main`
/// (signed with [`TOKEN`]); the answer's status and body.
pub async fn send_plain_push(base: &str, openid: &str, content: &str) -> (u16, String) {
    send_plain_push_to(base, "main", TOKEN, openid, content).await
}

/// A plaintext text push to `/wx/{account}`, signed with `token`.
pub async fn send_plain_push_to(
    base: &str,
    account: &str,
    token: &str,
    openid: &str,
    content: &str,
) -> (u16, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nonce = rand::random::<u32>().to_string();
    let ts = now.to_string();
    let sig = wxgate_proto::signature::signature(token, &ts, &nonce);
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{}</MsgId></xml>",
        rand::random::<u32>()
    );
    let resp = http_client()
        .post(format!(
            "{base}/wx/{account}?signature={sig}&timestamp={ts}&nonce={nonce}&openid={openid}"
        ))
        .header("content-type", "text/xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Runs `body` with the URL of a fresh PostgreSQL schema, dropped afterwards even when `body`
/// panics. Without `WXGATE_TEST_POSTGRES_URL` it prints that `test` is skipped and returns; with
/// it set but unreachable it fails.
pub async fn in_fresh_pg_schema<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use sqlx::Connection as _;
    let Ok(admin_url) = std::env::var("WXGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipping {test}: WXGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("wxgate_{test}_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("WXGATE_TEST_POSTGRES_URL is set but unreachable: {e}"));
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(url))).await;
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `n` more accounts `acct01`…, known to `mock`: their `[[accounts]]` tables (for
/// `GatewayConfig::tail`) and their names and appids.
pub fn more_accounts(mock: &MockWechat, n: usize) -> (String, Vec<(String, String)>) {
    let mut toml = String::new();
    let mut accounts = Vec::new();
    for i in 1..=n {
        let (name, appid, secret) = (
            format!("acct{i:02}"),
            format!("wx{i:016}"),
            format!("secret-{i}"),
        );
        mock.add_account(&appid, &secret);
        toml.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nappid = \"{appid}\"\nsecret = \"{secret}\"\n"
        ));
        accounts.push((name, appid));
    }
    (toml, accounts)
}
