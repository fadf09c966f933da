//! `upstream.max_in_flight` end to end: a gateway never has more WeChat calls open than the
//! bound (the mock counts what it is handling at once), every queued caller is still served,
//! callers are served in arrival order whichever account they belong to, and a caller that
//! cannot get a call in time is answered 503 without WeChat ever being asked.
//!
//! The tests queue callers deterministically by holding the gateway's permits themselves
//! (`client.limit()`), then watch the queue grow to its expected length before letting go.

use std::time::Duration;

use serde_json::{json, Value};

use wxgate_mock::MockWechat;

use crate::helpers::{more_accounts, spawn_app_with, start_mock, GatewayConfig, TestApp, API_KEY};

/// Far enough away that the test's own hold on a permit never expires first.
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(60)
}

/// Waits (at most 20 s) until `waiting` callers queue for a permit of `app`.
async fn until_waiting(app: &TestApp, waiting: usize) {
    let limit = app.state.client.limit();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while limit.waiting() != waiting {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} callers waiting, never {waiting}",
            limit.waiting()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A gateway with `main` and one more account, one WeChat call at a time
/// (`upstream.max_in_flight = 1`), `upstream.timeout_ms` as given; the other account's name
/// and appid.
async fn main_and_another_on_one_permit(
    timeout_ms: u64,
) -> (MockWechat, TestApp, (String, String)) {
    let (mock, addr) = start_mock().await;
    let (tail, accounts) = more_accounts(&mock, 1);
    let mut config = GatewayConfig::new(addr);
    config.tail = tail;
    config.timeout_ms = timeout_ms;
    let app = spawn_app_with(&config, |s| s.upstream.max_in_flight = 1).await;
    (mock, app, accounts[0].clone())
}

/// The value of an unlabelled gauge on a `/metrics` page.
fn gauge(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_cold_start_of_40_accounts_never_has_more_than_4_calls_open_and_serves_all() {
    let (mock, addr) = start_mock().await;
    let (tail, accounts) = more_accounts(&mock, 39);
    let mut config = GatewayConfig::new(addr);
    config.tail = tail;
    // The wait for a permit counts against each attempt's time: ten rounds of 300 ms fit.
    config.timeout_ms = 10_000;
    let app = spawn_app_with(&config, |s| s.upstream.max_in_flight = 4).await;
    mock.set_latency(Duration::from_millis(300));
    let names: Vec<String> = std::iter::once("main".to_owned())
        .chain(accounts.iter().map(|(name, _)| name.clone()))
        .collect();

    // Every permit held: all 40 first callers must queue, and WeChat hears nothing yet.
    let limit = app.state.client.limit();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(limit.acquire_until(far()).await.unwrap());
    }
    let callers: Vec<_> = names
        .iter()
        .map(|name| {
            let (http, url) = (app.http.clone(), app.api(&format!("{name}/access_token")));
            tokio::spawn(async move {
                let resp = http.get(url).bearer_auth(API_KEY).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    until_waiting(&app, 40).await;
    let page = app.metrics_text().await;
    assert_eq!(gauge(&page, "wxgate_upstream_in_flight"), 4.0);
    assert_eq!(gauge(&page, "wxgate_upstream_waiting"), 40.0);
    assert_eq!(gauge(&page, "wxgate_upstream_max_in_flight"), 4.0);
    assert_eq!(mock.total_calls(), 0, "{:?}", mock.all_calls());

    drop(held);
    for caller in callers {
        let (status, body) = caller.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string(), "{body}");
    }
    assert_eq!(mock.calls("cgi-bin/stable_token"), 40);
    // Four at a time: the bound held, and it was used (callers were not served one by one).
    assert_eq!(mock.max_in_flight(), 4);
    assert_eq!(
        (mock.in_flight(), limit.in_flight(), limit.waiting()),
        (0, 0, 0)
    );
    let page = app.metrics_text().await;
    assert_eq!(gauge(&page, "wxgate_upstream_in_flight"), 0.0);
    assert_eq!(gauge(&page, "wxgate_upstream_waiting"), 0.0);
    app.stop().await;
}

/// One account sends a burst of proxied calls, another asks once in the middle, and the first
/// sends another burst: the other account's call is served right after the calls queued before
/// it, ahead of everything its busy neighbour sent afterwards.
#[tokio::test]
async fn a_busy_account_cannot_starve_another_one() {
    const BURST: usize = 10;
    let (mock, app, (other, other_appid)) = main_and_another_on_one_permit(10_000).await;
    for name in ["main", other.as_str()] {
        assert_eq!(app.get_json(&format!("{name}/access_token")).await.0, 200);
    }
    mock.set_latency(Duration::from_millis(20));

    let send = |account: &str, label: String| {
        let http = app.http.clone();
        let url = app.api(&format!("{account}/wechat/cgi-bin/message/custom/send"));
        let message = json!({"touser": "o-user", "msgtype": "text", "text": {"content": label}});
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(API_KEY)
                .json(&message)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    let held = app.state.client.limit().acquire_until(far()).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..BURST {
        calls.push(send("main", format!("main-{i}")));
    }
    until_waiting(&app, BURST).await;
    calls.push(send(&other, "other".into()));
    until_waiting(&app, BURST + 1).await;
    for i in BURST..2 * BURST {
        calls.push(send("main", format!("main-{i}")));
    }
    until_waiting(&app, 2 * BURST + 1).await;
    drop(held);
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }

    let received: Vec<String> = mock
        .custom_messages()
        .iter()
        .map(|m| m["text"]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received.len(), 2 * BURST + 1);
    let position = received.iter().position(|c| c == "other");
    assert_eq!(position, Some(BURST), "{received:?}");
    assert_eq!(mock.custom_message_senders()[BURST], other_appid);
    assert_eq!(mock.max_in_flight(), 1);
    app.stop().await;
}

/// With every permit taken for longer than `upstream.timeout_ms`, a token fetch and a proxied
/// call give up (503 `upstream_unavailable`, counted as `saturated`) and WeChat is never
/// asked; once a permit is free, calls go through again.
#[tokio::test]
async fn a_caller_that_gets_no_permit_in_time_is_answered_503_and_wechat_is_not_called() {
    let (mock, app, (other, _)) = main_and_another_on_one_permit(200).await;
    assert_eq!(app.get_json("main/access_token").await.0, 200);
    let before = mock.total_calls();

    let held = app.state.client.limit().acquire_until(far()).await.unwrap();
    let (status, body) = app.get_json(&format!("{other}/access_token")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("upstream.max_in_flight"), "{message}");
    let proxied = app
        .http
        .get(app.api("main/wechat/cgi-bin/getcallbackip"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 503);
    assert_eq!(mock.total_calls(), before, "{:?}", mock.all_calls());
    let (_, status_doc) = app.get_json(&format!("{other}/status")).await;
    let saturated = &status_doc["upstream_calls"]["cgi-bin/stable_token"]["saturated"];
    assert_eq!(*saturated, 3, "every attempt gave up waiting: {status_doc}");
    let (_, status_doc) = app.get_json("main/status").await;
    assert_eq!(
        status_doc["upstream_calls"]["proxy"]["saturated"], 1,
        "{status_doc}"
    );

    drop(held);
    let proxied = app
        .http
        .get(app.api("main/wechat/cgi-bin/getcallbackip"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 200);
    assert_eq!(mock.total_calls(), before + 1);
    app.stop().await;
}
