//! The baseline of `bench/run.sh`: the most trivial axum route, on the same runtime settings as
//! wxgate, so gateway figures can be read as a ratio of what this machine can serve at all.

/// The same allocator as the `wxgate` binary, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    // Any other request (the push bench's POSTs) gets WeChat's "success", so a bench that needs
    // a request script can be compared with the same script against this server.
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { "success" });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("trivial listening on http://{addr}");
    axum::serve(listener, app).await
}
