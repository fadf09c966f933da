//! The sandbox's demo page end to end in a real browser: Debian's Chromium, headless, loads
//! `/demo?autologin=1`, follows the whole login through the mock's authorize page, signs its
//! own URL with `wxgate.js`, verifies it with `diagnose`, and shows the user. The test reads
//! the final DOM (`--dump-dom` after a virtual-time budget) and checks the signature itself.
//!
//! Set `WXGATE_TEST_CHROMIUM=/usr/bin/chromium` (CI does); unset, the browser test is skipped
//! with a printed reason; set to something that does not run, it fails.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{start_mock, GatewayConfig, APPID};
use crate::web_support::{spawn_web_app, spawn_web_app_with, WebApp, WebCalls};
use wxgate_mock::MockWechat;

/// `WXGATE_TEST_CHROMIUM`, or `None` after printing why the test skips.
fn chromium(test: &str) -> Option<String> {
    match std::env::var("WXGATE_TEST_CHROMIUM") {
        Ok(path) if !path.trim().is_empty() => Some(path),
        _ => {
            eprintln!(
                "skipping {test}: WXGATE_TEST_CHROMIUM is not set (CI sets it to /usr/bin/chromium)"
            );
            None
        }
    }
}

/// The DOM of `url` after `budget_ms` of virtual time, from a fresh headless Chromium.
async fn dump_dom(chromium: &str, url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--virtual-time-budget={budget_ms}"))
    .arg("--dump-dom")
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("WXGATE_TEST_CHROMIUM={chromium} does not start: {e}"));
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("chromium finishes within 120 s")
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("<html"),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The text of the element with `id` in a dumped DOM (entities decoded).
fn text_of(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} in:\n{dom}"));
    let after = &dom[start..];
    let open_end = after.find('>').unwrap() + 1;
    let inner = &after[open_end..];
    let close = inner.find("</").unwrap();
    inner[..close]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

async fn demo_app(js_domains: &str) -> (MockWechat, WebApp) {
    let (mock, addr) = start_mock().await;
    let mut config = GatewayConfig::new(addr);
    config.account_extra = format!("js_domains = {js_domains}\n");
    let app = spawn_web_app_with(
        &config,
        Some(wxgate::http::demo::router()),
        |settings, base| settings.accounts[0].oauth_redirects = vec![format!("{base}/demo")],
    )
    .await;
    (mock, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_signs_itself_and_logs_in_in_headless_chromium() {
    let Some(chromium) = chromium("the_demo_page_signs_itself_and_logs_in_in_headless_chromium")
    else {
        return;
    };
    let (mock, app) = demo_app(r#"["127.0.0.1"]"#).await;
    let dom = dump_dom(&chromium, &app.url("/demo?autologin=1&jweixin=0"), 20_000).await;

    // The login went through WeChat's (mock) authorize page and back.
    assert_eq!(text_of(&dom, "login-status"), "logged in", "{dom}");
    let openid = MockWechat::openid_for(APPID, "mock-user");
    assert_eq!(text_of(&dom, "user-openid"), openid);
    assert_eq!(text_of(&dom, "user-nickname"), "测试用户mock-user");
    assert_eq!(text_of(&dom, "login-scope"), "snsapi_userinfo");
    assert_eq!(mock.calls("sns/oauth2/access_token"), 1);
    let (status, user) = app.api_get(&format!("main/users/{openid}")).await;
    assert_eq!(status, 200, "{user}");

    // The page signed the URL it ended on, and the signature is right.
    assert!(text_of(&dom, "wx-kind").starts_with("stub"));
    assert_eq!(text_of(&dom, "jssdk-status"), "signed", "{dom}");
    let url = text_of(&dom, "cfg-url");
    assert!(
        url.starts_with(&format!("{}/demo?jweixin=0&wxgate_code=", app.base)),
        "{url}"
    );
    assert_eq!(text_of(&dom, "cfg-appid"), APPID);
    let ticket = app.jsapi_ticket("main").await;
    let expected = wxgate_proto::jssdk::sign(
        &ticket,
        &text_of(&dom, "cfg-nonce"),
        text_of(&dom, "cfg-timestamp").parse().unwrap(),
        &url,
    );
    assert_eq!(text_of(&dom, "cfg-signature"), expected.as_str());
    assert!(text_of(&dom, "wx-config").contains(expected.as_str()));
    assert_eq!(text_of(&dom, "diagnose-verdict"), "valid", "{dom}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_autologin_the_demo_page_only_signs_and_offers_the_login_button() {
    let Some(chromium) =
        chromium("without_autologin_the_demo_page_only_signs_and_offers_the_login_button")
    else {
        return;
    };
    let (mock, app) = demo_app("[]").await;
    let dom = dump_dom(&chromium, &app.url("/demo?jweixin=0&x=a%20b"), 10_000).await;
    assert_eq!(text_of(&dom, "diagnose-verdict"), "valid", "{dom}");
    assert_eq!(
        text_of(&dom, "cfg-url"),
        format!("{}/demo?jweixin=0&x=a%20b", app.base)
    );
    assert_eq!(text_of(&dom, "login-status"), "not logged in");
    assert!(dom.contains("id=\"login-button\""));
    assert_eq!(mock.calls("sns/oauth2/access_token"), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_demo_redeems_codes_server_side_and_is_absent_from_a_normal_gateway() {
    let (_mock, app) = demo_app("[]").await;
    let resp = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("\"account\":\"main\""));
    assert!(
        !html.contains(crate::helpers::API_KEY),
        "the page never holds the API key"
    );
    let (status, body) = app.get("/demo/login-result?code=nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );
    let (status, body) = app.get("/demo/login-result").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_parameter"))
    );
    app.stop().await;

    let (_mock, addr) = start_mock().await;
    let plain = spawn_web_app(&GatewayConfig::new(addr)).await;
    let (status, _) = plain.get("/demo").await;
    assert_eq!(status, 404);
    plain.stop().await;
}
