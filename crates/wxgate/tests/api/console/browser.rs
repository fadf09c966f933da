//! The console in a real browser: Debian's headless Chromium driven through WebDriver
//! (`chromium-driver`, with `fantoccini`), clicking and typing as an operator would. One
//! operator takes a new test account from nothing to "push answered, JS-SDK signed, login
//! done" by following the console alone, with the mock playing WeChat (its stand-in for
//! WeChat's console sends the verification GET and the test message; its authorize page
//! plays the login). Then keys are made and revoked, a setting is edited and takes effect, and
//! every page is checked at 360 px wide and for labelled controls. Screenshots of each page go
//! to `target/console-screenshots/` (or `WXGATE_CONSOLE_SCREENSHOTS`).
//!
//! Needs `WXGATE_TEST_CHROMIUM` and `WXGATE_TEST_CHROMEDRIVER` (CI sets both); unset, the
//! test is skipped with a printed reason; set to something that does not run, it fails.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::support::*;
use crate::helpers::*;

/// `(chromium, chromedriver)`, or `None` after printing why the test skips.
fn tools(test: &str) -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (var("WXGATE_TEST_CHROMIUM"), var("WXGATE_TEST_CHROMEDRIVER")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            eprintln!(
                "skipping {test}: WXGATE_TEST_CHROMIUM and WXGATE_TEST_CHROMEDRIVER are not both \
                 set (CI sets them to /usr/bin/chromium and /usr/bin/chromedriver)"
            );
            None
        }
    }
}

/// A headless Chromium under its own chromedriver, ended when dropped.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start(chromium: &str, driver: &str) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("WXGATE_TEST_CHROMEDRIVER={driver} does not start: {e}"));
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--no-proxy-server", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    let shots = std::env::var("WXGATE_CONSOLE_SCREENSHOTS")
                        .map(PathBuf::from)
                        .unwrap_or_else(|_| {
                            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                                .join("../../target/console-screenshots")
                        });
                    std::fs::create_dir_all(&shots).unwrap();
                    return Browser {
                        client,
                        _driver: child,
                        _profile: profile,
                        shots,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver at {url} does not take a session: {last:?}");
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(el) => el,
            Err(e) => {
                let url = self.client.current_url().await.map(String::from);
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} ({e}) on {url:?}:\n{page}")
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The element's text; found again when the page navigated in between (a stale element).
    async fn text(&self, css: &str) -> String {
        for _ in 0..20 {
            if let Ok(text) = self.find(css).await.text().await {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the text of {css} cannot be read");
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits until the page's text contains `needle`.
    async fn wait_text(&self, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let body = self.body().await;
            if body.contains(needle) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} within {within:?} in:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.unwrap()
    }

    /// Every visible control has a label, and nothing is wider than the window.
    async fn check_accessible(&self, page: &str) {
        let unlabelled = self
            .script(
                "return Array.from(document.querySelectorAll('input, select, textarea'))\
                 .filter(e => e.type !== 'hidden')\
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))\
                 .map(e => e.id || e.name);",
            )
            .await;
        assert_eq!(unlabelled, json!([]), "{page}: controls without a label");
        let overflow = self
            .script("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(1) <= 0,
            "{page}: wider than the window by {overflow} px"
        );
    }
}

#[tokio::test]
async fn an_operator_onboards_an_account_by_following_the_console() {
    let Some((chromium, driver)) = tools("the console's browser test") else {
        return;
    };
    let (mock, config) = setup().await;
    let mock_base = format!("http://{}", config.mock_addr);
    let app = spawn_app_full(&config, Some(wxgate::http::demo::router()), |_, _| {}).await;
    let base = app.base.clone();
    let host = base.trim_start_matches("http://").to_owned();
    let b = Browser::start(&chromium, &driver).await;

    // Sign in: a wrong key is refused; the right one, typed and sent with Enter, gets in.
    b.goto(&format!("{base}/admin")).await;
    b.shot("01-sign-in").await;
    b.type_into("#key", "not-the-key").await;
    b.click("#sign-in").await;
    assert!(b.text("#sign-in-error").await.contains("not an admin key"));
    b.type_into("#key", &format!("{ADMIN_KEY}\n")).await;
    b.wait_text("This server", Duration::from_secs(10)).await;
    b.shot("02-overview").await;

    // Onboard: name, AppID, AppSecret, the pages' domain (the gateway itself serves the demo).
    b.click("a[href='/admin/onboard']").await;
    b.type_into("#o-name", "shop").await;
    b.type_into("#o-appid", NEW_APPID).await;
    b.type_into("#o-secret", NEW_SECRET).await;
    b.type_into("#o-domain", &host).await;
    b.find("#o-scheme option[value='http']")
        .await
        .click()
        .await
        .unwrap();
    b.click("#onboard").await;
    let server_url = b.value("#v-url").await;
    let token = b.value("#v-token").await;
    let aes_key = b.value("#v-key").await;
    assert_eq!(server_url, format!("{base}/wx/shop"));
    assert_eq!((token.len(), aes_key.len()), (32, 43));
    b.wait_text("An access token was fetched — ", Duration::from_secs(10))
        .await;
    b.shot("03-wizard").await;

    // WeChat's console (the mock's stand-in): server URL, Token, key, safe mode, Submit.
    b.goto(&format!("{mock_base}/__mock/console/{NEW_APPID}"))
        .await;
    b.type_into("#server-url", &server_url).await;
    b.type_into("#server-token", &token).await;
    b.type_into("#server-encoding-aes-key", &aes_key).await;
    b.click("#server-mode-safe").await;
    b.click("#server-submit").await;
    b.find("#server-message[data-ok='true']").await;
    // The MP_verify file WeChat asks for: downloaded there, uploaded in wxgate's wizard.
    let file_link = b.find("#js-domain-verify-file").await;
    let file_url = file_link.attr("href").await.unwrap().unwrap();
    let file_url = if file_url.starts_with("http") {
        file_url
    } else {
        format!("{mock_base}{file_url}")
    };
    let file_name = file_url.rsplit('/').next().unwrap().to_owned();
    let content = app
        .http
        .get(&file_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let download = tempfile::tempdir().unwrap();
    let path = download.path().join(&file_name);
    std::fs::write(&path, &content).unwrap();
    b.goto(&format!("{base}/admin/onboard/shop")).await;
    b.find("#verify-file")
        .await
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    b.click("#upload-verify").await;
    b.wait_text(&format!("/{file_name}"), Duration::from_secs(10))
        .await;
    // Back in WeChat's console: the two domains (WeChat fetches the file from each), then a
    // test message, sent encrypted as WeChat does.
    b.goto(&format!("{mock_base}/__mock/console/{NEW_APPID}"))
        .await;
    b.type_into("#js-domain-input", &host).await;
    b.click("#js-domain-submit").await;
    b.find("#js-domain-message[data-ok='true']").await;
    b.type_into("#oauth-domain-input", &host).await;
    b.click("#oauth-domain-submit").await;
    b.find("#oauth-domain-message[data-ok='true']").await;
    b.click("#push-submit").await;
    b.find("#push-message[data-ok='true']").await;
    b.shot("mock-wechat-console").await;

    // The operator's page with wxgate.js (the sandbox's demo page for this account): it signs
    // its URL and logs in through the mock's authorize page.
    b.goto(&format!("{base}/demo?account=shop&autologin=1"))
        .await;
    b.wait_text("logged in", Duration::from_secs(30)).await;

    // The checklist turns green by itself.
    b.goto(&format!("{base}/admin/onboard/shop")).await;
    b.wait_text("5 of 5 steps observed", Duration::from_secs(30))
        .await;
    for step in ["token", "verify", "push", "jssdk", "login"] {
        let state = b
            .find(&format!("#step-{step}"))
            .await
            .attr("data-state")
            .await
            .unwrap();
        assert_eq!(state.as_deref(), Some("ok"), "step {step}");
    }
    b.script("document.getElementById('w4').scrollIntoView();")
        .await;
    b.shot("04-checklist-green").await;
    b.check_accessible("wizard").await;

    // The account's page: credentials, calls, the push.
    // (Pushes are written to the store every few seconds: reload until the test message shows.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        b.goto(&format!("{base}/admin/accounts/shop")).await;
        let listed = b.client.find_all(Locator::Css("#pushes")).await.unwrap();
        if !listed.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push is not listed"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    b.find("svg.chart").await;
    b.shot("05-account").await;
    b.check_accessible("account").await;

    // An edited setting takes effect: a second JS-safe domain signs at once.
    let sign = |page_host: &'static str| {
        let url: String =
            url::form_urlencoded::byte_serialize(format!("https://{page_host}/p").as_bytes())
                .collect();
        app.http
            .get(format!("{base}/jssdk/shop/config?url={url}"))
            .send()
    };
    assert_eq!(sign("www.example.org").await.unwrap().status(), 403);
    let js = b.find("#s-js").await;
    js.send_keys("\nwww.example.org").await.unwrap();
    b.click("#save-settings").await;
    b.wait_text("Settings", Duration::from_secs(10)).await;
    assert_eq!(sign("www.example.org").await.unwrap().status(), 200);

    // Keys: create one (shown once), use it, revoke it.
    b.goto(&format!("{base}/admin/keys")).await;
    b.type_into("#k-name", "billing").await;
    b.type_into("#k-accounts", "shop").await;
    b.click("#k-scope-credentials").await;
    b.click("#create-key").await;
    let key = b.value("#new-key").await;
    b.shot("06-keys").await;
    b.check_accessible("keys").await;
    let use_key = || {
        app.http
            .get(format!("{base}/api/v1/accounts/shop/access_token"))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(use_key().await.unwrap().status(), 200);
    b.goto(&format!("{base}/admin/keys")).await;
    assert!(!b.body().await.contains(&key), "the key is shown again");
    b.click("button[aria-label='Revoke billing']").await;
    b.wait_text("Live keys", Duration::from_secs(10)).await;
    assert_eq!(use_key().await.unwrap().status(), 401);

    // A state change without the session's CSRF token, sent by this very page: refused.
    let status = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/admin/keys', {method: 'POST', body: new URLSearchParams(\
               {name: 'sneaky', accounts: '*', scope: 'status'})})\
             .then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));

    // 360 px wide: every page readable without sideways scrolling.
    b.client.set_window_size(360, 800).await.unwrap();
    for (name, path) in [
        ("07-overview-360", "/admin/overview"),
        ("08-account-360", "/admin/accounts/shop"),
        ("09-wizard-360", "/admin/onboard/shop"),
        ("10-keys-360", "/admin/keys"),
        ("11-onboard-360", "/admin/onboard"),
    ] {
        b.goto(&format!("{base}{path}")).await;
        b.find("main").await;
        b.check_accessible(path).await;
        b.shot(name).await;
    }

    // Signing out ends it.
    b.click("#sign-out").await;
    b.find("#key").await;
    let _ = mock;
    b.client.close().await.unwrap();
}
