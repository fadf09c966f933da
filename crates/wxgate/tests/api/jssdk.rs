//! JS-SDK routes against a real gateway and the mock WeChat API: the SPEC's `config`
//! contract (shape, byte-for-byte URLs, errors, CORS), `diagnose`, `wxgate.js`, and one
//! upstream fetch for a crowd of cold requests.

use std::collections::BTreeSet;

use crate::helpers::{start_mock, start_mock_with, GatewayConfig};
use crate::web_support::{spawn_web_app, WebApp, WebCalls};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use wxgate_mock::MockAccount;
use wxgate_proto::jssdk::sign;

const OTHER_APPID: &str = "wxabcdefabcdef0002";

fn config_with(mock: std::net::SocketAddr, js_domains: &str) -> GatewayConfig {
    let mut c = GatewayConfig::new(mock);
    c.account_extra = format!("js_domains = {js_domains}\n");
    c
}

/// `encodeURIComponent`, as pages encode the url parameter.
fn component(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    utf8_percent_encode(s, SET).to_string()
}

/// The config path for `page_url`, encoded as a page would encode it.
fn config_path(page_url: &str) -> String {
    format!("/jssdk/main/config?url={}", component(page_url))
}

async fn config_for(app: &WebApp, page_url: &str) -> (u16, Value) {
    app.get(&config_path(page_url)).await
}

#[tokio::test]
async fn config_answers_the_spec_shape_signed_with_the_current_ticket() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let page = "https://h5.example.com/page?a=1&b=2";
    let (status, body) = app
        .get(&format!(
            "/jssdk/main/config?url={}&apis=updateAppMessageShareData,chooseImage",
            component(page)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "appId",
            "timestamp",
            "nonceStr",
            "signature",
            "jsApiList",
            "url"
        ])
    );
    assert_eq!(body["appId"], crate::helpers::APPID);
    assert!(body["timestamp"].is_u64(), "timestamp is a JSON integer");
    let now = wxgate::domain::unix_now() as u64;
    assert!(body["timestamp"].as_u64().unwrap().abs_diff(now) <= 5);
    assert_eq!(body["url"], page);
    assert_eq!(
        body["jsApiList"],
        serde_json::json!(["updateAppMessageShareData", "chooseImage"])
    );
    let ticket = app.jsapi_ticket("main").await;
    let expected = sign(
        &ticket,
        body["nonceStr"].as_str().unwrap(),
        body["timestamp"].as_u64().unwrap(),
        page,
    );
    assert_eq!(body["signature"], expected.as_str());
    app.stop().await;
}

#[tokio::test]
async fn every_config_gets_a_fresh_nonce_and_apis_default_to_an_empty_list() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let mut nonces = BTreeSet::new();
    for _ in 0..5 {
        let (status, body) = config_for(&app, "https://h5.example.com/").await;
        assert_eq!(status, 200);
        assert_eq!(body["jsApiList"], serde_json::json!([]));
        nonces.insert(body["nonceStr"].as_str().unwrap().to_owned());
    }
    assert_eq!(nonces.len(), 5);
    let (_, body) = app
        .get(&format!(
            "/jssdk/main/config?apis=&url={}",
            component("https://h5.example.com/")
        ))
        .await;
    assert_eq!(body["jsApiList"], serde_json::json!([]));
    let (_, body) = app
        .get(&format!(
            "/jssdk/main/config?apis=a,,%20b%20,&url={}",
            component("https://h5.example.com/")
        ))
        .await;
    assert_eq!(body["jsApiList"], serde_json::json!(["a", "b"]));
    app.stop().await;
}

#[tokio::test]
async fn the_url_is_signed_byte_for_byte_without_its_fragment() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com", "*.example.org"]"#)).await;
    let ticket = app.jsapi_ticket("main").await;
    // (page url as the browser has it, what WeChat hashes)
    let cases = [
        (
            "https://h5.example.com/p?x=1#/route?y=2",
            "https://h5.example.com/p?x=1",
        ),
        ("https://h5.example.com/p#", "https://h5.example.com/p"),
        (
            "https://h5.example.com/p?a=1&amp;b=2",
            "https://h5.example.com/p?a=1&amp;b=2",
        ),
        (
            "https://h5.example.com/页面?q=中文",
            "https://h5.example.com/页面?q=中文",
        ),
        (
            "https://h5.example.com/p?q=%E4%B8%AD%20x&r=a%2Fb&s=%e4",
            "https://h5.example.com/p?q=%E4%B8%AD%20x&r=a%2Fb&s=%e4",
        ),
        (
            "https://h5.example.com/p?q=a+b%2Bc",
            "https://h5.example.com/p?q=a+b%2Bc",
        ),
        (
            "https://h5.example.com/p?q=%2525",
            "https://h5.example.com/p?q=%2525",
        ),
        (
            "https://H5.Example.COM:8443/P?Q=1",
            "https://H5.Example.COM:8443/P?Q=1",
        ),
        (
            "https://deep.sub.example.org/x",
            "https://deep.sub.example.org/x",
        ),
        (
            "http://h5.example.com/?from=singlemessage&isappinstalled=0",
            "http://h5.example.com/?from=singlemessage&isappinstalled=0",
        ),
    ];
    for (page, signed) in cases {
        let (status, body) = config_for(&app, page).await;
        assert_eq!(status, 200, "{page}: {body}");
        assert_eq!(body["url"], signed, "{page}");
        let expected = sign(
            &ticket,
            body["nonceStr"].as_str().unwrap(),
            body["timestamp"].as_u64().unwrap(),
            signed,
        );
        assert_eq!(body["signature"], expected.as_str(), "{page}");
    }
    // A form encoder (spaces as '+') reaches the same string as encodeURIComponent.
    let resp = app
        .http
        .get(app.url("/jssdk/main/config"))
        .query(&[("url", "https://h5.example.com/p?q=a+b&r=中 文")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["url"], "https://h5.example.com/p?q=a+b&r=中 文");
    app.stop().await;
}

#[tokio::test]
async fn the_official_js_sdk_example_verifies_through_the_proto_function() {
    let ticket =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
    assert_eq!(
        sign(
            ticket,
            "Wm3WZYTPz0wzccnW",
            1414587457,
            "http://mp.weixin.qq.com?params=value"
        ),
        "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    );
    assert_eq!(
        sign(
            ticket,
            "Wm3WZYTPz0wzccnW",
            1414587457,
            "http://mp.weixin.qq.com?params=value#x"
        ),
        "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    );
}

/// `GET /jssdk/{account}/config` with a plain account is answered in front of the router
/// (`wxgate::http::front`); the same request with the account percent-encoded, and HEAD, go
/// through the router. Both ways must answer alike and count under the same route.
#[tokio::test]
async fn config_answers_alike_in_front_of_the_router_and_through_it() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let query = format!(
        "?url={}&apis=a,b",
        component("https://h5.example.com/p?x=1")
    );
    let ticket = app.jsapi_ticket("main").await;
    let mut answers = Vec::new();
    for path in ["/jssdk/main/config", "/jssdk/%6Dain/config"] {
        let resp = app
            .http
            .get(app.url(&format!("{path}{query}")))
            .header("Origin", "https://h5.example.com")
            .header("x-wxgate-request-id", "mine-42")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        for (name, value) in [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("vary", "Origin"),
            ("access-control-allow-origin", "https://h5.example.com"),
            ("x-wxgate-request-id", "mine-42"),
        ] {
            assert_eq!(h[name], value, "{path}: {name}");
        }
        let body: Value = resp.json().await.unwrap();
        let signed = sign(
            &ticket,
            body["nonceStr"].as_str().unwrap(),
            body["timestamp"].as_u64().unwrap(),
            "https://h5.example.com/p?x=1",
        );
        assert_eq!(body["signature"], signed.as_str(), "{path}");
        answers.push(body);
    }
    for field in ["appId", "jsApiList", "url"] {
        assert_eq!(answers[0][field], answers[1][field], "{field}");
    }

    // HEAD goes through the router: the same status and headers, no body.
    let head = app
        .http
        .head(app.url(&format!("/jssdk/main/config{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/json");
    assert!(head.bytes().await.unwrap().is_empty());

    // Paths that only look like the route are the router's, and answered as before: no such
    // endpoint, or (an empty account segment) no such account.
    for (path, code) in [
        ("/jssdk/main/config/", "not_found"),
        ("/jssdk/a/b/config", "not_found"),
        ("/jssdk//config", "unknown_account"),
    ] {
        let (status, body) = app.get(&format!("{path}{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}"
        );
    }
    let (status, body) = app.get(&format!("/jssdk/nobody/config{query}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_account"))
    );

    // Every config request above counts under the route template, whichever way it went.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |status: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "wxgate_http_requests_total{{route=\"/jssdk/{{account}}/config\",status=\"{status}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.to_owned())
    };
    assert_eq!(count("200").as_deref(), Some("3"), "{metrics}");
    assert_eq!(count("404").as_deref(), Some("2"), "{metrics}");
}

#[tokio::test]
async fn config_refuses_missing_invalid_and_foreign_urls_and_unknown_accounts() {
    let (mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com", "*.example.org"]"#)).await;
    for query in ["", "?apis=a", "?url=", "?url&apis=a"] {
        let (status, body) = app.get(&format!("/jssdk/main/config{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "missing_parameter", "{query}");
    }
    for bad in [
        "/page",
        "//h5.example.com/page",
        "h5.example.com/page",
        "ftp://h5.example.com/",
        "javascript:alert(1)",
        "https://",
        "http:h5.example.com",
    ] {
        let (status, body) = config_for(&app, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_url", "{bad}");
    }
    let (status, body) = app
        .get("/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2F%FF")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_url"))
    );
    for foreign in [
        "https://evil.com/",
        "https://h5.example.com.evil.com/",
        "https://h5.example.com@evil.com/",
        "https://evil.com/?u=https://h5.example.com/",
        "https://example.org/",
        "https://a.h5.example.com/",
    ] {
        let (status, body) = config_for(&app, foreign).await;
        assert_eq!(status, 403, "{foreign}: {body}");
        assert_eq!(body["error"]["code"], "domain_not_allowed", "{foreign}");
    }
    let (status, body) = app
        .get(&format!(
            "/jssdk/nope/config?url={}",
            component("https://h5.example.com/")
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_account");
    // Refused requests never reached WeChat.
    assert_eq!(mock.calls("cgi-bin/ticket/getticket"), 0);
    app.stop().await;
}

#[tokio::test]
async fn an_empty_js_domains_list_allows_any_page() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, "[]")).await;
    let (status, body) = config_for(&app, "http://127.0.0.1:3000/anything?x=1").await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn cors_is_granted_only_to_origins_on_js_domains() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let url = app.url(&config_path("https://h5.example.com/p"));
    let allowed = app
        .http
        .get(&url)
        .header("Origin", "https://h5.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://h5.example.com"
    );
    assert!(allowed
        .headers()
        .get_all("vary")
        .iter()
        .any(|v| v == "Origin"));
    // The signed answer's other headers: never cached, JSON, with its request id.
    assert_eq!(allowed.headers()["cache-control"], "no-store");
    assert_eq!(allowed.headers()["content-type"], "application/json");
    assert_eq!(allowed.headers()["x-wxgate-request-id"].len(), 16);

    for origin in [
        "https://evil.com",
        "https://h5.example.com.evil.com",
        "null",
    ] {
        let denied = app
            .http
            .get(&url)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            denied.status(),
            200,
            "signing itself does not depend on the origin"
        );
        assert!(
            denied
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
        assert_eq!(denied.headers()["vary"], "Origin", "{origin}");
        assert_eq!(denied.headers()["cache-control"], "no-store", "{origin}");
    }

    // An error answer to an allowed origin is readable by the page too.
    let err = app
        .http
        .get(app.url("/jssdk/main/config"))
        .header("Origin", "https://h5.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.headers()["access-control-allow-origin"],
        "https://h5.example.com"
    );

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://h5.example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://h5.example.com");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));
    assert_eq!(h["access-control-allow-headers"], "x-requested-with");

    let refused = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://evil.com")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn three_hundred_cold_config_requests_cause_one_token_and_one_ticket_fetch() {
    let (mock, addr) = start_mock().await;
    mock.set_latency(std::time::Duration::from_millis(100));
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let url = app.url(&config_path("https://h5.example.com/page"));
    let requests = (0..300).map(|_| {
        let http = app.http.clone();
        let url = url.clone();
        async move {
            let resp = http.get(&url).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert_eq!(mock.calls("cgi-bin/stable_token"), 1);
    assert_eq!(mock.calls("cgi-bin/ticket/getticket"), 1);
    let ticket = app.jsapi_ticket("main").await;
    for (_, body) in &answers {
        let expected = sign(
            &ticket,
            body["nonceStr"].as_str().unwrap(),
            body["timestamp"].as_u64().unwrap(),
            "https://h5.example.com/page",
        );
        assert_eq!(body["signature"], expected.as_str());
    }
    app.stop().await;
}

/// The per-route request figures of `/metrics` add up whatever worker thread served each
/// request (they are kept per thread and summed when rendered), and every answer carries a
/// request id: a fresh one, or the caller's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_every_config_request_by_status_across_threads() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let good = app.url(&config_path("https://h5.example.com/page"));
    let bad = app.url("/jssdk/main/config");
    let requests = (0..207).map(|i| {
        let http = app.http.clone();
        let url = if i < 200 { good.clone() } else { bad.clone() };
        async move {
            let resp = http.get(&url).send().await.unwrap();
            let id = resp.headers()["x-wxgate-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            (resp.status().as_u16(), id)
        }
    });
    let answers = futures::future::join_all(requests).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 200);
    assert_eq!(answers.iter().filter(|(s, _)| *s == 400).count(), 7);
    let ids: BTreeSet<&str> = answers.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 207, "request ids repeat");
    assert!(ids
        .iter()
        .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    let own = app
        .http
        .get(&good)
        .header("x-wxgate-request-id", "page-view-7")
        .send()
        .await
        .unwrap();
    assert_eq!(own.headers()["x-wxgate-request-id"], "page-view-7");

    let metrics = app.metrics_text().await;
    let route = r#"route="/jssdk/{account}/config""#;
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value(&format!(
            "wxgate_http_requests_total{{{route},status=\"200\"}}"
        )),
        201
    );
    assert_eq!(
        value(&format!(
            "wxgate_http_requests_total{{{route},status=\"400\"}}"
        )),
        7
    );
    assert_eq!(
        value(&format!(
            "wxgate_http_request_duration_seconds_count{{{route}}}"
        )),
        208
    );
    let buckets: Vec<u64> = metrics
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "wxgate_http_request_duration_seconds_bucket{{{route}"
            ))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 11, "{metrics}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "not cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&208));
    app.stop().await;
}

async fn diagnose(
    app: &WebApp,
    account: &str,
    url: &str,
    sig: &str,
    ts: u64,
    nonce: &str,
) -> (u16, Value) {
    app.get(&format!(
        "/jssdk/{account}/diagnose?url={}&signature={sig}&timestamp={ts}&nonceStr={nonce}",
        component(url)
    ))
    .await
}

fn failed_checks(body: &Value) -> Vec<String> {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn diagnose_confirms_a_signature_made_by_config() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let page = "https://h5.example.com/p?q=%E4%B8%AD#/r";
    let (_, c) = config_for(&app, page).await;
    let (status, d) = diagnose(
        &app,
        "main",
        page,
        c["signature"].as_str().unwrap(),
        c["timestamp"].as_u64().unwrap(),
        c["nonceStr"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["valid"], true, "{d:#}");
    assert_eq!(d["url"], "https://h5.example.com/p?q=%E4%B8%AD");
    assert_eq!(d["match"]["variant"], "exact");
    assert!(failed_checks(&d).is_empty());
    let text = d.to_string();
    let ticket = app.jsapi_ticket("main").await;
    assert!(!text.contains(&ticket), "the ticket never appears");
    app.stop().await;
}

#[tokio::test]
async fn diagnose_names_the_usual_url_mistakes() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let ticket = app.jsapi_ticket("main").await;
    let page = "https://h5.example.com/p?q=%E4%B8%AD&x=1#/r";
    let raw = |url: &str| {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(
            format!("jsapi_ticket={ticket}&noncestr=n0nce&timestamp=1700000000&url={url}")
                .as_bytes(),
        ))
    };
    let cases = [
        (raw(page), "fragment"),
        (raw("https://h5.example.com/p?q=中&x=1"), "percent_encoding"),
        (
            raw("https://h5.example.com/p?q=%E4%B8%AD&amp;x=1"),
            "html_entity",
        ),
        (raw("http://h5.example.com/p?q=%E4%B8%AD&x=1"), "scheme"),
        (
            raw(&component("https://h5.example.com/p?q=%E4%B8%AD&x=1")),
            "percent_encoding",
        ),
    ];
    for (sig, check) in cases {
        let (status, d) = diagnose(&app, "main", page, &sig, 1_700_000_000, "n0nce").await;
        assert_eq!(status, 200);
        assert_eq!(d["valid"], false);
        assert_eq!(failed_checks(&d), vec![check.to_owned()], "{d:#}");
        assert!(d["summary"].as_str().unwrap().len() > 20);
    }
    // Nothing matches: say what cannot be checked.
    let (_, d) = diagnose(
        &app,
        "main",
        page,
        &raw(page).replace('a', "b"),
        1_700_000_000,
        "other",
    )
    .await;
    assert_eq!(d["valid"], false);
    assert!(d["match"].is_null());
    let nonce = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "nonce_timestamp")
        .unwrap();
    assert_eq!(nonce["status"], "info");
    assert!(nonce["message"]
        .as_str()
        .unwrap()
        .contains("cannot be checked"));
    // A foreign domain fails even with a right signature.
    let foreign = "https://evil.com/p";
    let (_, d) = diagnose(&app, "main", foreign, &raw(foreign), 1_700_000_000, "n0nce").await;
    assert_eq!(d["valid"], false);
    assert_eq!(failed_checks(&d), vec!["domain".to_owned()]);
    app.stop().await;
}

#[tokio::test]
async fn diagnose_refuses_missing_parameters_and_unknown_accounts() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let url = component("https://h5.example.com/");
    for (query, code) in [
        (
            "signature=a&timestamp=1&nonceStr=n".to_owned(),
            "missing_parameter",
        ),
        (
            format!("url={url}&timestamp=1&nonceStr=n"),
            "missing_parameter",
        ),
        (
            format!("url={url}&signature=a&nonceStr=n"),
            "missing_parameter",
        ),
        (
            format!("url={url}&signature=a&timestamp=1"),
            "missing_parameter",
        ),
        (
            format!("url={url}&signature=a&timestamp=soon&nonceStr=n"),
            "invalid_parameter",
        ),
    ] {
        let (status, body) = app.get(&format!("/jssdk/main/diagnose?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
    let (status, body) = app
        .get(&format!(
            "/jssdk/nope/diagnose?url={url}&signature=a&timestamp=1&nonceStr=n"
        ))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_account"))
    );
    app.stop().await;
}

#[tokio::test]
async fn diagnose_recognises_another_accounts_ticket() {
    let (_mock, addr) = start_mock_with(|c| {
        c.accounts
            .push(MockAccount::new(OTHER_APPID, "other-secret"));
    })
    .await;
    let mut config = config_with(addr, r#"["h5.example.com"]"#);
    config.tail = format!(
        "[[accounts]]\nname = \"other\"\nappid = \"{OTHER_APPID}\"\nsecret = \"other-secret\"\n"
    );
    let app = spawn_web_app(&config).await;
    let other_ticket = app.jsapi_ticket("other").await;
    let page = "https://h5.example.com/p";
    let sig = sign(&other_ticket, "n0nce", 1_700_000_000, page);
    let (_, d) = diagnose(&app, "main", page, &sig, 1_700_000_000, "n0nce").await;
    assert_eq!(d["valid"], false);
    assert_eq!(failed_checks(&d), vec!["account".to_owned()], "{d:#}");
    assert_eq!(d["match"]["account"], "other");
    assert!(d["summary"].as_str().unwrap().contains(OTHER_APPID));
    app.stop().await;
}

#[tokio::test]
async fn diagnose_says_when_the_ticket_has_since_been_replaced() {
    let (_mock, addr) = start_mock_with(|c| c.ticket_ttl_s = 4).await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let page = "https://h5.example.com/p";
    let (_, c) = config_for(&app, page).await;
    let first = app.jsapi_ticket("main").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.jsapi_ticket("main").await == first {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticket was never refreshed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, d) = diagnose(
        &app,
        "main",
        page,
        c["signature"].as_str().unwrap(),
        c["timestamp"].as_u64().unwrap(),
        c["nonceStr"].as_str().unwrap(),
    )
    .await;
    assert_eq!(d["valid"], false);
    assert_eq!(failed_checks(&d), vec!["ticket".to_owned()], "{d:#}");
    assert_eq!(d["match"]["ticket"], "replaced");
    assert!(d["summary"].as_str().unwrap().contains("replaced"));
    // The finding says when the ticket was replaced: after the page was signed with it.
    let finding = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "ticket")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let replaced_at: u64 = finding
        .split("at unix time ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no replacement time in {finding:?}"));
    assert!(replaced_at >= c["timestamp"].as_u64().unwrap(), "{finding}");
    assert!(
        !finding.contains(&first),
        "the old ticket must not be revealed"
    );
    app.stop().await;
}

#[tokio::test]
async fn wxgate_js_is_served_for_known_accounts() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let resp = app
        .http
        .get(app.url("/jssdk/main/wxgate.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let script = resp.text().await.unwrap();
    assert!(script.contains("wx.config("));
    assert!(script.contains("sessionStorage"));
    assert!(script.contains("window.wxgate"));
    let (status, body) = app.get("/jssdk/nope/wxgate.js").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_account"))
    );
    app.stop().await;
}

#[tokio::test]
async fn config_and_diagnose_bound_the_page_url_and_the_work_per_request() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_web_app(&config_with(addr, r#"["h5.example.com"]"#)).await;
    let at_limit = format!(
        "https://h5.example.com/?q={}",
        "a".repeat(wxgate::jssdk::MAX_PAGE_URL_BYTES - 26)
    );
    assert_eq!(at_limit.len(), wxgate::jssdk::MAX_PAGE_URL_BYTES);
    let (status, body) = config_for(&app, &at_limit).await;
    assert_eq!(status, 200, "{body}");
    let too_long = format!("{at_limit}a");
    let (status, body) = config_for(&app, &too_long).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_url")),
        "{body}"
    );
    let (status, body) = diagnose(&app, "main", &too_long, "a", 1, "n").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_url")),
        "{body}"
    );
    let long_nonce = "n".repeat(65);
    let (status, body) =
        diagnose(&app, "main", "https://h5.example.com/", "a", 1, &long_nonce).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn diagnose_fetches_no_credential_of_other_accounts() {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts
            .push(MockAccount::new(OTHER_APPID, "other-secret"));
    })
    .await;
    let mut config = config_with(addr, r#"["h5.example.com"]"#);
    config.tail = format!(
        "[[accounts]]\nname = \"other\"\nappid = \"{OTHER_APPID}\"\nsecret = \"other-secret\"\n"
    );
    let app = spawn_web_app(&config).await;
    let ticket = app.jsapi_ticket("main").await;
    let (tokens, tickets) = (
        mock.calls("cgi-bin/stable_token"),
        mock.calls("cgi-bin/ticket/getticket"),
    );
    let page = "https://h5.example.com/p";
    let sig = sign(&ticket, "n0nce", 1_700_000_000, page);
    for _ in 0..3 {
        let (status, d) = diagnose(&app, "main", page, &sig, 1_700_000_000, "n0nce").await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["valid"], true, "{d:#}");
    }
    // The anonymous diagnose looked only at what this instance holds: nothing was fetched for
    // the other account.
    assert_eq!(mock.calls("cgi-bin/stable_token"), tokens);
    assert_eq!(mock.calls("cgi-bin/ticket/getticket"), tickets);
    app.stop().await;
}
