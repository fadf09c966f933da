//! The console's HTTP contract, with a plain client: who gets in, what a session is, which
//! requests are refused, what a page never shows, and that its forms change the gateway.

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn the_console_is_off_without_admin_keys() {
    let (_mock, addr) = start_mock().await;
    let app = spawn_app(&GatewayConfig::new(addr)).await;
    let console = Console::new(&app.base);
    let page = console.get("/admin/sign-in").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("[admin] keys"), "{}", page.body);
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_a_wrong_key_is_refused() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let mut console = Console::new(&app.base);

    // Not signed in: pages send the browser to the sign-in page.
    let page = console.get("/admin/overview").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/sign-in"));
    let page = console.get("/admin").await;
    assert_eq!(page.location.as_deref(), Some("/admin/sign-in"));

    let wrong = console.sign_in("not-the-key").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(wrong.body.contains("not an admin key"), "{}", wrong.body);

    let ok = console.sign_in(ADMIN_KEY).await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location.as_deref(), Some("/admin/overview"));
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_owned();
    // Served over http here: the plain name, without Secure (a browser would drop it).
    assert!(cookie.starts_with("wxgate_console="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let overview = console.get("/admin/overview").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("Overview"));
}

#[tokio::test]
async fn over_https_the_cookie_is_a_secure_host_cookie() {
    let (_mock, config) = setup().await;
    let app = spawn_app_full(&config, None, |s, _| {
        s.server.public_url = "https://gateway.example.com".into();
    })
    .await;
    let mut console = Console::new(&app.base);
    let ok = console.sign_in(ADMIN_KEY).await;
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-wxgate_console="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The same name is read back.
    assert_eq!(console.get("/admin/overview").await.status, 200);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_a_replayed_cookie_too() {
    let (_mock, config) = setup().await;
    let (_app, console, csrf) = signed_in(&config).await;
    let out = console
        .post_form("/admin/sign-out", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(out.status, 303);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie, replayed, is no longer a session.
    let page = console.get("/admin/overview").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/sign-in"));
}

#[tokio::test]
async fn state_changes_without_the_csrf_token_or_from_another_site_are_refused() {
    let (_mock, config) = setup().await;
    let (app, console, csrf) = signed_in(&config).await;
    let create = |token: &'static str| {
        vec![
            ("name", "billing"),
            ("accounts", "*"),
            ("scope", "status"),
            ("csrf", token),
        ]
    };
    // No token, a wrong token: refused, and no key was made.
    let mut without: Vec<(&str, &str)> = create("");
    without.pop();
    let page = console.post_form("/admin/keys", &without).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let page = console.post_form("/admin/keys", &create("00ff")).await;
    assert_eq!(page.status, 403);
    // The right token from another site (a browser says so): refused.
    let req = console
        .http
        .post(format!("{}/admin/keys", app.base))
        .header("cookie", console.cookie.clone().unwrap())
        .header("origin", "https://evil.example")
        .form(&[
            ("name", "x"),
            ("accounts", "*"),
            ("scope", "status"),
            ("csrf", csrf.as_str()),
        ]);
    assert_eq!(req.send().await.unwrap().status(), 403);
    assert_eq!(
        wxgate::admin::list_keys(&app.state).len(),
        0,
        "a refused request made a key"
    );
    // Signed out, a POST is not a session at all.
    let anonymous = Console::new(&app.base);
    let page = anonymous
        .post_form("/admin/keys", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(page.status, 401);
    // With the token it works.
    let mut with: Vec<(&str, &str)> = create("");
    with.pop();
    with.push(("csrf", csrf.as_str()));
    let page = console.post_form("/admin/keys", &with).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(wxgate::admin::list_keys(&app.state).len(), 1);
}

#[tokio::test]
async fn every_page_has_a_strict_csp_and_no_inline_script_or_style() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let mut console = Console::new(&app.base);
    let sign_in = console.get("/admin/sign-in").await;
    console.sign_in(ADMIN_KEY).await;
    let mut pages = vec![sign_in];
    for path in [
        "/admin/overview",
        "/admin/accounts/main",
        "/admin/onboard",
        "/admin/onboard/main",
        "/admin/keys",
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        pages.push(page);
    }
    let script_tag = regex::Regex::new(r"<script([^>]*)>").unwrap();
    let handler = regex::Regex::new(r#"\son[a-z]+\s*="#).unwrap();
    for page in &pages {
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(page.headers["cache-control"], "no-store");
        for tag in script_tag.captures_iter(&page.body) {
            assert!(tag[1].contains("src="), "inline script in:\n{}", page.body);
        }
        assert!(
            !page.body.contains(" style="),
            "inline style in:\n{}",
            page.body
        );
        assert!(
            !handler.is_match(&page.body),
            "inline handler in:\n{}",
            page.body
        );
    }
}

#[tokio::test]
async fn onboarding_shows_the_generated_secrets_once_and_never_again() {
    let (_mock, config) = setup().await;
    let (app, console, csrf) = signed_in(&config).await;
    let page = console.onboard(&csrf, "fresh").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page.input("v-token");
    let key = page.input("v-key");
    assert_eq!(token.len(), 32);
    assert_eq!(key.len(), 43);
    assert_eq!(page.input("v-url"), format!("{}/wx/fresh", app.base));
    // The generated values work: WeChat's verification GET, signed with the token, is answered.
    let ts = wxgate::domain::unix_now().to_string();
    let nonce = "n1";
    let signature = wxgate_proto::signature::signature(&token, &ts, nonce);
    let echo = app
        .http
        .get(format!(
            "{}/wx/fresh?signature={signature}&timestamp={ts}&nonce={nonce}&echostr=hello123",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(echo.text().await.unwrap(), "hello123");
    // The first token was fetched at creation: the secret is right.
    let account = wxgate::admin::account(&app.state, "fresh").unwrap();
    assert_eq!(account.account.appid, NEW_APPID);
    // Afterwards no page shows a secret.
    for path in [
        "/admin/onboard/fresh",
        "/admin/accounts/fresh",
        "/admin/overview",
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        for secret in [token.as_str(), key.as_str(), NEW_SECRET] {
            assert!(!page.body.contains(secret), "{path} shows a secret");
        }
    }
    // Onboarding never replaces an account.
    let again = console.onboard(&csrf, "fresh").await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn the_overview_pages_and_filters_many_accounts() {
    let (mock, mut config) = setup().await;
    let (accounts, names) = more_accounts(&mock, 120);
    config.tail = format!("{accounts}\n{}", config.tail);
    let app = spawn_app(&config).await;
    let mut console = Console::new(&app.base);
    console.sign_in(ADMIN_KEY).await;
    let rows = |body: &str| body.matches("<tr data-account=").count();
    let first = console.get("/admin/overview").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(rows(&first.body), 50);
    assert!(first.body.contains("121 of 121 accounts"), "{}", first.body);
    let last = console.get("/admin/overview?page=3").await;
    assert_eq!(rows(&last.body), 21);
    // By a part of an appid, and as htmx asks (the table alone).
    let (name, appid) = &names[7];
    let found = console
        .http
        .get(format!(
            "{}/admin/overview?q={}",
            app.base,
            &appid[appid.len() - 6..]
        ))
        .header("cookie", console.cookie.clone().unwrap())
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        found.contains(&format!("data-account=\"{name}\"")),
        "{found}"
    );
    assert!(!found.contains("<html"), "htmx gets the table alone");
    // By health: one account with a token is valid, the rest idle.
    let (status, _) = app.get_json("main/access_token").await;
    assert_eq!(status, 200);
    let valid = console.get("/admin/overview?health=valid").await;
    assert_eq!(rows(&valid.body), 1);
    assert!(valid.body.contains("data-account=\"main\""));
}

#[tokio::test]
async fn keys_are_shown_once_work_and_stop_working_when_revoked() {
    let (_mock, config) = setup().await;
    let (app, console, csrf) = signed_in(&config).await;
    let page = console
        .post_form(
            "/admin/keys",
            &[
                ("csrf", csrf.as_str()),
                ("name", "ops"),
                ("accounts", "main"),
                ("scope", "credentials"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let key = page.input("new-key");
    assert!(key.starts_with("wxk_"), "{key}");
    let listed = console.get("/admin/keys").await;
    assert!(listed.body.contains("ops"));
    assert!(!listed.body.contains(&key), "the key is shown again");
    let use_key = || {
        app.http
            .get(format!("{}/api/v1/accounts/main/access_token", app.base))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(use_key().await.unwrap().status(), 200);
    let id = wxgate::admin::list_keys(&app.state)[0].id.clone();
    let revoked = console
        .post_form(
            &format!("/admin/keys/{id}/revoke"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(use_key().await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_edited_setting_takes_effect_and_a_verify_file_is_served() {
    let (_mock, config) = setup().await;
    let (app, console, csrf) = signed_in(&config).await;
    console.onboard(&csrf, "shop").await;
    let sign = |host: &'static str| {
        let url = format!("https://{host}/page");
        let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
        app.http
            .get(format!("{}/jssdk/shop/config?url={encoded}", app.base))
            .send()
    };
    assert_eq!(sign("h5.example.com").await.unwrap().status(), 200);
    assert_eq!(sign("www.example.org").await.unwrap().status(), 403);
    // The settings form: a second JS-safe domain, and a rule.
    let page = console.get("/admin/accounts/shop").await;
    assert!(page.body.contains("id=\"settings-form\""));
    let saved = console
        .post_form(
            "/admin/accounts/shop/settings",
            &[
                ("csrf", csrf.as_str()),
                ("appid", NEW_APPID),
                ("js_domains", "h5.example.com\nwww.example.org"),
                ("oauth_redirects", "https://h5.example.com/"),
                ("proxy_allow", ""),
                (
                    "rules",
                    r#"[{"keyword": "ping", "reply": {"type": "text", "content": "pong"}}]"#,
                ),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let back = console.get(saved.location.as_deref().unwrap()).await;
    assert!(back.body.contains("id=\"saved\""), "{}", back.body);
    assert_eq!(sign("www.example.org").await.unwrap().status(), 200);
    let view = wxgate::admin::account(&app.state, "shop").unwrap();
    assert_eq!(view.settings.rules.len(), 1);
    // Secrets left empty were kept: the token still verifies pushes (has_token stays).
    assert!(view.settings.has_token && view.settings.has_encoding_aes_key);
    // A bad field is a 400 page, and changes nothing.
    let bad = console
        .post_form(
            "/admin/accounts/shop/settings",
            &[("csrf", csrf.as_str()), ("rules", "{not json")],
        )
        .await;
    assert_eq!(bad.status, 400);
    // The MP_verify file, uploaded as a file, is served at the root.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text("AbC123xyz")
            .file_name("MP_verify_AbC123xyz.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let uploaded = console
        .post_multipart(
            &format!("/admin/accounts/shop/verify-file?csrf={csrf}"),
            form,
        )
        .await;
    assert_eq!(uploaded.status, 303, "{}", uploaded.body);
    let back = console.get(uploaded.location.as_deref().unwrap()).await;
    assert!(back.body.contains("id=\"uploaded\""), "{}", back.body);
    let served = app
        .http
        .get(format!("{}/MP_verify_AbC123xyz.txt", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), "AbC123xyz");
    // A config-file account is read-only: no form, and a POST is refused.
    let main = console.get("/admin/accounts/main").await;
    assert!(!main.body.contains("id=\"settings-form\""));
    let refused = console
        .post_form("/admin/accounts/main/settings", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(refused.status, 409);
}

#[tokio::test]
async fn the_account_page_finds_a_person_by_unionid_and_asks_for_the_quota() {
    let (mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let users = |account: &str| app.state.users.for_account(account);
    let login = |openid: &str| wxgate::users::LoginProfile {
        openid: openid.into(),
        unionid: Some("uPerson1".into()),
        nickname: Some("Band".into()),
        headimgurl: None,
    };
    users("main")
        .record_login(&login("oMain1"), 1_700_000_000)
        .await
        .unwrap();
    let mut console = Console::new(&app.base);
    console.sign_in(ADMIN_KEY).await;
    let csrf = console.csrf().await;
    console.onboard(&csrf, "shop").await;
    users("shop")
        .record_login(&login("oShop1"), 1_700_000_001)
        .await
        .unwrap();
    // By openid: this account's record; by unionid: the person in every account.
    let by_openid = console.get("/admin/accounts/main?user=oMain1").await;
    assert!(by_openid.body.contains("oMain1"));
    let found = |body: &str| {
        let start = body.find("id=\"found\"").expect("a result");
        body[start..].split("</ul>").next().unwrap().to_owned()
    };
    assert!(!found(&by_openid.body).contains("oShop1"));
    let by_unionid = console.get("/admin/accounts/main?user=uPerson1").await;
    let both = found(&by_unionid.body);
    assert!(both.contains("oMain1") && both.contains("oShop1"), "{both}");
    // The quota, on demand (htmx posts with the header), from WeChat (the mock) once.
    let ask = || {
        console
            .http
            .post(format!("{}/admin/accounts/main/quota", app.base))
            .header("cookie", console.cookie.clone().unwrap())
            .header("x-csrf-token", csrf.as_str())
            .header("hx-request", "true")
            .send()
    };
    let quota = ask().await.unwrap();
    assert_eq!(quota.status(), 200);
    let table = html_escape::decode_html_entities(&quota.text().await.unwrap()).into_owned();
    assert!(table.contains("id=\"quota-table\""), "{table}");
    assert!(table.contains("/cgi-bin/message/custom/send"), "{table}");
    let calls = mock.calls("cgi-bin/openapi/quota/get");
    assert!(calls > 0);
    ask().await.unwrap();
    assert_eq!(mock.calls("cgi-bin/openapi/quota/get"), calls, "cached");
}

#[tokio::test]
async fn a_failing_step_shows_wechats_errcode_and_what_to_do() {
    let (_mock, config) = setup().await;
    let (_app, console, csrf) = signed_in(&config).await;
    // A wrong AppSecret: the first token fetch (at creation) fails with 40125.
    let page = console
        .post_form(
            "/admin/onboard",
            &[
                ("csrf", csrf.as_str()),
                ("name", "typo"),
                ("appid", NEW_APPID),
                ("secret", "not-the-secret"),
                ("h5_domain", "h5.example.com"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let checklist = console.get("/admin/onboard/typo/checklist").await;
    let body = html_escape::decode_html_entities(&checklist.body).into_owned();
    let step = body
        .split("id=\"step-token\"")
        .nth(1)
        .and_then(|rest| rest.split("</li>").next())
        .expect("the token step")
        .to_owned();
    assert!(step.contains("data-state=\"failed\""), "{body}");
    assert!(step.contains("40125"), "{step}");
    assert!(
        step.contains("AppSecret"),
        "the hint says what to do: {step}"
    );
    // The other steps wait.
    assert!(
        body.contains("id=\"step-verify\" class=\"step step-waiting\""),
        "{body}"
    );
}

/// Console sessions in the SQLite store at `path`.
fn stored_sessions(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM wxgate_kv WHERE key LIKE 'console:session:%'",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn a_wrong_key_writes_nothing_and_a_session_dies_with_its_admin_key() {
    let (_mock, mut config) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    config.storage_url = format!("sqlite://{}", store.display());
    let first = spawn_app(&config).await;
    let mut console = Console::new(&first.base);
    for _ in 0..3 {
        assert_eq!(console.sign_in("not-the-key").await.status, 401);
    }
    assert_eq!(
        stored_sessions(&store),
        0,
        "a refused sign-in wrote a session"
    );
    console.sign_in(ADMIN_KEY).await;
    assert_eq!(stored_sessions(&store), 1);
    first.stop().await;

    // The same store after a restart: the session holds while its key is configured…
    let again = spawn_app(&config).await;
    console.base = again.base.clone();
    assert_eq!(console.get("/admin/overview").await.status, 200);
    again.stop().await;
    // …and is refused once the key left `admin.keys`.
    let mut rotated = config.clone();
    rotated.tail = config
        .tail
        .replace(ADMIN_KEY, "the-next-admin-key-0123456789");
    let after = spawn_app(&rotated).await;
    console.base = after.base.clone();
    let page = console.get("/admin/overview").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/sign-in"));
}
