//! The gateway's own work per request, without the network: each route is called in process
//! through the service the server runs (`wxgate::http::service`: the router — routing, the
//! request-id and metrics layer, the handler, building the answer and reading its body — with
//! the JS-SDK config route answered in front of it), next to the trivial route of `examples/trivial.rs` called
//! the same way. `bench/run.sh` measures the same routes over loopback HTTP, where the kernel's
//! share makes a change of a few hundred nanoseconds hard to see; here it is not hidden.
//!
//! `route_jssdk_script` (a static answer behind an account check) is the floor every routed
//! route pays: the larger router, the request-id and metrics layer, the path parameter.
//!
//! The gateway runs on the embedded mock of WeChat (in process, on a loopback port) with a
//! memory store; the first request of each route fetches its credential, every measured one is
//! served from the in-process cache, as in production between refreshes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use tower::ServiceExt;
use wxgate::config::Settings;
use wxgate::startup::Application;
use wxgate_mock::{MockConfig, MockWechat};

/// The allocator of the `wxgate` binary, so the figures are those of the gateway as shipped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APPID: &str = "wx1234567890abcdef";
const SECRET: &str = "bench-secret-0123456789";
const KEY: &str = "bench-api-key-0123456789";
const CONFIG_URI: &str = "/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2Fpage";

fn settings(mock: std::net::SocketAddr, db: &std::path::Path) -> Settings {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
url = "memory://"
[database]
url = "sqlite://{db}"
[upstream]
api_base = "http://{mock}"
open_base = "http://{mock}"
[api]
keys = ["{KEY}"]
[[accounts]]
name = "main"
appid = "{APPID}"
secret = "{SECRET}"
token = "benchtoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
js_domains = ["h5.example.com"]
"#,
        db = db.display()
    );
    Settings::from_toml_and_env(&toml, std::iter::empty()).unwrap()
}

/// Sends one request through `app` and reads the whole answer, as hyper would.
async fn call<S>(app: &S, request: Request<Body>) -> usize
where
    S: tower::Service<Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .len()
}

/// A GET as `wrk` sends it (hyper parses its `Host` header into the map).
fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "127.0.0.1:19901")
        .body(Body::empty())
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = rt.block_on(async {
        let (_mock, addr) = MockWechat::start(MockConfig::with_account(APPID, SECRET))
            .await
            .unwrap();
        let app = Application::build(settings(addr, &dir.path().join("users.db")))
            .await
            .unwrap();
        wxgate::http::service(app.state().clone(), None)
    });
    // The same route as the trivial server of `bench/run.sh`.
    let trivial: Router = Router::new().route("/", axum::routing::get(|| async { "ok" }));

    // Warm: the first calls fetch the access_token and the jsapi_ticket from the mock.
    rt.block_on(async {
        call(&gateway, get(CONFIG_URI)).await;
    });

    c.bench_function("route_trivial", |b| {
        b.iter(|| rt.block_on(call(&trivial, get("/"))))
    });
    let authorization = axum::http::HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap();
    c.bench_function("route_access_token", |b| {
        b.iter(|| {
            let mut request = get("/api/v1/accounts/main/access_token");
            request
                .headers_mut()
                .insert("authorization", authorization.clone());
            rt.block_on(call(&gateway, request))
        })
    });
    c.bench_function("route_jssdk_script", |b| {
        b.iter(|| rt.block_on(call(&gateway, get("/jssdk/main/wxgate.js"))))
    });
    c.bench_function("route_jssdk_config", |b| {
        b.iter(|| rt.block_on(call(&gateway, get(CONFIG_URI))))
    });
}

criterion_group!(routes, benches);
criterion_main!(routes);
