//! The mock's count of concurrent WeChat calls over real HTTP: calls held by the mock's latency
//! are counted while they wait, the most at once is kept until reset, and the `/__mock/*`
//! controls are not WeChat calls. Gateways' tests read it to prove a bound on concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use wxgate_mock::{MockConfig, MockWechat};

/// Long enough that calls sent together are all still being answered when the last arrives.
const LATENCY: Duration = Duration::from_secs(3);

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn concurrent_calls_are_counted_while_answered_and_the_most_at_once_is_kept() {
    let (mock, addr) = MockWechat::start(MockConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    assert_eq!((mock.in_flight(), mock.max_in_flight()), (0, 0));

    mock.set_latency(LATENCY);
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let (http, url) = (http.clone(), format!("{base}/cgi-bin/getcallbackip?n={i}"));
            tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        })
        .collect();
    wait_for("5 calls in flight", || mock.in_flight() == 5).await;
    // The controls answer at once and are not WeChat calls.
    let info: Value = http
        .get(format!("{base}/__mock/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["in_flight"], 5, "{info}");
    assert_eq!(info["max_in_flight"], 5, "{info}");
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!((mock.in_flight(), mock.max_in_flight()), (0, 5));

    // One call after another is one at a time.
    mock.reset_max_in_flight();
    assert_eq!(mock.max_in_flight(), 0);
    mock.set_latency(Duration::ZERO);
    for _ in 0..3 {
        let status = http
            .get(format!("{base}/cgi-bin/getcallbackip"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    assert_eq!((mock.in_flight(), mock.max_in_flight()), (0, 1));
    assert_eq!(mock.calls("cgi-bin/getcallbackip"), 8);

    // A reset over HTTP forgets the most at once too.
    let reset = http
        .post(format!("{base}/__mock/reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert_eq!(mock.max_in_flight(), 0);
}
