//! What a slow or greedy client meets before any route runs: the header-read timeout, the
//! per-request deadline (a slowly uploaded body included; the streaming proxy excepted) and the
//! connection cap. Raw TCP clients play the slow ones.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, start_mock, GatewayConfig, TestApp, API_KEY};

async fn app_with_server(server_extra: &str) -> TestApp {
    let (_mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.server_extra = server_extra.to_owned();
    spawn_app(&config).await
}

fn host_port(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection, or `limit` passes (`None`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(got)
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected_after_the_header_timeout() {
    let app = app_with_server("header_read_timeout_ms = 500").await;
    let mut half = TcpStream::connect(host_port(&app)).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(host_port(&app)).await.unwrap();
    // Generous bound: the timeout is half a second; without it neither is ever closed.
    for (name, stream) in [("half a header", &mut half), ("nothing", &mut silent)] {
        let answer = read_until_closed(stream, Duration::from_secs(10)).await;
        assert!(
            answer.is_some(),
            "a client that sent {name} is still connected"
        );
    }
    // A prompt client on a fresh connection is served as before.
    let (status, _) = crate::helpers::get_json(&app.http, &format!("{}/healthz", app.base)).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_dribbled_slower_than_the_deadline_gets_request_timeout() {
    let app = app_with_server("request_timeout_ms = 1000").await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    let head = format!(
        "POST /api/v1/accounts/main/access_token/refresh HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 300 ms: the whole body would take a minute.
    let dribble = tokio::spawn(async move {
        for _ in 0..199 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(Duration::from_secs(15), read).await;
    dribble.abort();
    assert!(closed.is_ok(), "the slow upload was not cut");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout");
    app.stop().await;
}

#[tokio::test]
async fn the_deadline_cuts_slow_api_and_jssdk_routes_but_not_the_streaming_proxy() {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.server_extra = "request_timeout_ms = 1000".into();
    config.timeout_ms = 5000;
    config.account_extra = "js_domains = [\"h5.example.com\"]\n".into();
    let app = spawn_app(&config).await;
    // Every WeChat answer now takes 1.5 s: longer than the deadline, shorter than
    // upstream.timeout_ms.
    mock.set_latency(Duration::from_millis(1500));
    // The proxy: an access_token fetch and the call itself, 3 s in all, are not cut.
    let resp = app
        .http
        .get(app.api("main/wechat/cgi-bin/menu/get"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("request_timeout"), "{text}");
    // The JS-SDK config route, answered in front of the router, has the deadline: its
    // jsapi_ticket is not cached yet, so it waits for WeChat.
    let resp = app
        .http
        .get(format!(
            "{}/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2Fpage",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
    // So has a routed API call waiting for WeChat, answered with its request id.
    let resp = app
        .http
        .get(app.api("main/tickets/jsapi"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("x-wxgate-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
    app.stop().await;
}

/// Sends a whole request on `stream` and reads one answer's status line, within `limit`.
async fn status_line(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let ask = async {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.lines().next().unwrap_or_default().to_owned()
    };
    tokio::time::timeout(limit, ask).await.ok()
}

#[tokio::test]
async fn with_max_connections_2_a_third_connection_is_served_only_once_another_closes() {
    let app = app_with_server("max_connections = 2\nheader_read_timeout_ms = 60000").await;
    let mut first = TcpStream::connect(host_port(&app)).await.unwrap();
    let mut second = TcpStream::connect(host_port(&app)).await.unwrap();
    for stream in [&mut first, &mut second] {
        let line = status_line(stream, Duration::from_secs(10)).await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    }
    // Both stay open (keep-alive). The third is accepted by the kernel but not served.
    let mut third = TcpStream::connect(host_port(&app)).await.unwrap();
    let waiting = tokio::spawn(async move {
        let line = status_line(&mut third, Duration::from_secs(30)).await;
        (line, third)
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were open"
    );
    drop(first);
    let (line, _third) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the third connection is served once one closed")
        .unwrap();
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    drop(second);
    app.stop().await;
}
