//! Secrets in URLs never reach the log: a `wxgate serve` process is given a password in the
//! storage URL, in the database URL and a key in a webhook URL, each failing (unreachable,
//! timing out), and its whole stderr is searched for them.

use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{
    send_plain_push, start_mock, webhook_account_extra, GatewayConfig, GatewayProcess,
};

#[tokio::test]
async fn a_password_in_the_storage_url_is_not_in_the_startup_error() {
    let (_mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    // Nothing listens on port 1: the store cannot be reached and wxgate stops.
    config.storage_url = "redis://:hunter2secret@127.0.0.1:1/0".into();
    let (status, log) = GatewayProcess::run_failing(&config).await;
    assert!(!status.success());
    assert!(log.contains("cannot open storage"), "{log}");
    assert!(log.contains("127.0.0.1:1"), "the URL is still named: {log}");
    assert!(!log.contains("hunter2secret"), "{log}");
}

#[tokio::test]
async fn a_password_in_the_database_url_is_not_in_the_startup_error() {
    let (_mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.database_url = "postgres://wxgate:pgsecretpw@127.0.0.1:1/wx?password=pgsecretpw".into();
    let (status, log) = GatewayProcess::run_failing(&config).await;
    assert!(!status.success());
    assert!(log.contains("cannot open the user database"), "{log}");
    assert!(!log.contains("pgsecretpw"), "{log}");
}

/// A TCP address whose accept queue is full, so that connecting to it hangs (the kernel drops
/// further SYNs) until the client's own connect timeout; keep the returned values alive.
async fn address_that_never_answers() -> (
    std::net::SocketAddr,
    tokio::net::TcpListener,
    Vec<TcpStream>,
) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => queued.push(s),
            _ => return (addr, listener, queued),
        }
    }
    panic!("the accept queue of {addr} never filled up");
}

#[tokio::test]
async fn a_key_in_a_webhook_url_is_not_in_the_log_of_a_webhook_timeout() {
    let (_mock, mock_addr) = start_mock().await;
    let (hook_addr, _listener, _queued) = address_that_never_answers().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.account_extra =
        webhook_account_extra(&format!("http://{hook_addr}/hook?key=webhooksecret"), 300);
    let gw = GatewayProcess::start(&config).await;
    let (status, body) = send_plain_push(&gw.base, "oUser", "hello").await;
    assert_eq!((status, body.as_str()), (200, "success"));
    // Wait until the call has failed (the client's 5 s connect timeout), as counted in /metrics.
    let counted = "endpoint=\"webhook\",outcome=\"timeout\"";
    let http = crate::helpers::http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = http
            .get(format!("{}/metrics", gw.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(counted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook call never timed out:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (exit, _, log) = gw.terminate_within(Duration::from_secs(30)).await;
    assert!(exit.is_some(), "{log}");
    let log = without_colours(&log);
    assert!(log.contains("webhook call failed"), "{log}");
    assert!(log.contains("outcome=\"timeout\""), "{log}");
    assert!(!log.contains("webhooksecret"), "{log}");
}

/// `log` without the terminal colour sequences the log formatter writes.
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
