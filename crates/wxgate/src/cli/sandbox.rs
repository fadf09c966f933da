//! `wxgate sandbox`: the whole product on one machine with no WeChat account.
//!
//! Starts the built-in mock of the WeChat API with a demo account and a demo third-party
//! platform, then a gateway pointed at it on the embedded SQLite store (a fresh file in the temp
//! directory, removed at exit). Before it prints anything, the platform has received its ticket
//! and one demo merchant has authorized it through the real flow (the gateway's authorize link,
//! the mock's authorization page, the gateway's callback), so the printed calls answer at once;
//! then it prints the URLs, a generated API key, ready-to-paste example calls and how to
//! authorize another merchant.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use rand::distributions::Alphanumeric;
use rand::Rng;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::http::AppState;
use crate::startup::{shutdown_signal, Application};
use wxgate_mock::{MockAccount, MockComponent, MockConfig, MockWechat};

pub const DEMO_ACCOUNT: &str = "demo";
pub const DEMO_APPID: &str = "wxdemo000000000001";
/// The AppID of the printed example of an account added at runtime.
pub const SHOP_APPID: &str = "wxdemo000000000002";
/// The demo third-party platform: its name in the config and paths, and its component_appid.
pub const DEMO_PLATFORM: &str = "demo-platform";
pub const DEMO_COMPONENT_APPID: &str = "wxdemoplatform0001";
/// The merchant that authorizes the demo platform at start.
pub const DEMO_MERCHANT_APPID: &str = "wxdemomerchant0001";
const DEMO_MERCHANT_NAME: &str = "演示商户";
/// The AppID the printed example of another authorization uses.
pub const NEXT_MERCHANT_APPID: &str = "wxdemomerchant0002";
/// The demo mini program (小程序): its account name and AppID.
pub const DEMO_MINI: &str = "demo-mini";
pub const DEMO_MINI_APPID: &str = "wxdemominiprog0001";
/// Where a merchant lands after authorizing (the sandbox's own page, under `auth_redirects`).
const LANDING: &str = "/demo/authorized";

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

pub async fn run(listen: SocketAddr, mock_listen: SocketAddr) -> Result<(), String> {
    let secret = random(32);
    let token = random(16);
    let aes_key = random(43);
    let api_key = random(32);
    let admin_key = random(32);
    // A fresh key per run is enough: it seals what lives in the database (the secrets of
    // accounts added at runtime, the platform's refresh tokens), and the database is a fresh
    // file of this run, removed at exit — nothing sealed by one run is ever opened by another.
    let master_key = crate::vault::MasterKey::random().to_base64();
    let shop_secret = random(32);
    let component_secret = random(32);
    let component_token = random(16);
    let component_aes_key = random(43);
    let mini_secret = random(32);

    let mock_listener = tokio::net::TcpListener::bind(mock_listen)
        .await
        .map_err(|e| format!("cannot listen on {mock_listen} for the mock: {e}"))?;
    let mock_addr = mock_listener.local_addr().map_err(|e| e.to_string())?;
    let mock_base = format!("http://{mock_addr}");
    let mock = MockWechat::new(MockConfig {
        accounts: vec![
            MockAccount {
                appid: DEMO_APPID.into(),
                secret: secret.clone(),
            },
            // For the printed example of an account added at runtime.
            MockAccount {
                appid: SHOP_APPID.into(),
                secret: shop_secret.clone(),
            },
            MockAccount {
                appid: DEMO_MINI_APPID.into(),
                secret: mini_secret.clone(),
            },
        ],
        open_base_public: Some(mock_base.clone()),
        mp_base_public: Some(mock_base.clone()),
        ..MockConfig::default()
    });
    tokio::spawn(mock.clone().serve(mock_listener, std::future::pending()));

    // Bound before the config is written, so that `public_url` (the callback and event URLs)
    // is the real address, also with `--listen 127.0.0.1:0`.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");

    let db = std::env::temp_dir().join(format!("wxgate-sandbox-{}.db", std::process::id()));
    // A file left by a killed run that had the same process id was sealed with another key.
    remove_store(&db);
    let db_url = format!("sqlite://{}", db.display());
    let master_key = master_key.expose_secret();
    let config = format!(
        r#"
[server]
listen = "{addr}"
public_url = "{base}"
[storage]
url = "{db_url}"
[database]
url = "{db_url}"
[upstream]
api_base = "{mock_base}"
open_base = "{mock_base}"
mp_base = "{mock_base}"
timeout_ms = 3000
[api]
keys = ["{api_key}"]
[admin]
keys = ["{admin_key}"]
master_key = "{master_key}"
[[accounts]]
name = "{DEMO_ACCOUNT}"
appid = "{DEMO_APPID}"
secret = "{secret}"
token = "{token}"
encoding_aes_key = "{aes_key}"
js_domains = []
oauth_redirects = ["{base}/"]
verify_files = {{ "MP_verify_Sandbox123.txt" = "Sandbox123" }}
[[accounts.rules]]
event = "subscribe"
reply = {{ type = "text", content = "欢迎关注 wxgate sandbox" }}
[[accounts.rules]]
keyword = "help"
reply = {{ type = "text", content = "Try: hello" }}
[[accounts]]
name = "{DEMO_MINI}"
kind = "miniprogram"
appid = "{DEMO_MINI_APPID}"
secret = "{mini_secret}"
[[components]]
name = "{DEMO_PLATFORM}"
appid = "{DEMO_COMPONENT_APPID}"
secret = "{component_secret}"
token = "{component_token}"
encoding_aes_key = "{component_aes_key}"
auth_redirects = ["{base}{LANDING}"]
oauth_redirects = ["{base}/"]
[[components.rules]]
keyword = "help"
reply = {{ type = "text", content = "Hello from the demo platform" }}
"#
    );
    let settings = Settings::from_toml_and_env(&config, std::iter::empty())
        .map_err(|e| format!("sandbox config: {e}"))?;
    let app = Application::build_with_listener(settings, listener)
        .await
        .map_err(|e| e.to_string())?
        .with_routes(crate::http::demo::router().merge(landing(&base)));
    let api = format!("{base}/api/v1/accounts/{DEMO_ACCOUNT}");
    // The config on disk, so that `wxgate simulate` can sign and encrypt pushes for the demo.
    let config_file = db.with_extension("toml");
    if let Err(e) = std::fs::write(&config_file, &config) {
        eprintln!(
            "wxgate sandbox: cannot write {}: {e}",
            config_file.display()
        );
    }

    // Served from here on: the platform's setup below goes through the gateway's routes.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        tokio::select! {
            () = shutdown_signal() => {}
            _ = stopped => {}
        }
    }));
    let component = MockComponent {
        push_url: Some(format!("{base}/wx/component/{DEMO_PLATFORM}")),
        // As WeChat does, so that a sandbox left running keeps a usable ticket.
        ticket_every: Some(Duration::from_secs(600)),
        ..MockComponent::new(
            DEMO_COMPONENT_APPID,
            component_secret,
            component_token,
            component_aes_key,
        )
    };
    if let Err(e) = demo_platform(&mock, component, &base, &api_key).await {
        let _ = stop.send(());
        let _ = server.await;
        cleanup(&db, &config_file);
        return Err(format!("the demo platform: {e}"));
    }

    // The binary that is running (a `cargo run` user has no `wxgate` on their PATH).
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cargo run --release --".to_owned());
    let simulate = format!(
        "{me} simulate --config {} --account {DEMO_ACCOUNT} --url {base}",
        config_file.display()
    );
    let platform_api = format!("{base}/api/v1/components/{DEMO_PLATFORM}");
    let authorize = authorize_link(&base);
    println!(
        r#"
wxgate sandbox is running — no WeChat account needed.

  gateway         {base}
  mock WeChat API {mock_base}   (calls: {mock_base}/__mock/calls)
  demo account    {DEMO_ACCOUNT} (appid {DEMO_APPID}, token_api stable)
  demo platform   {DEMO_PLATFORM} (component_appid {DEMO_COMPONENT_APPID}; events at {base}/wx/component/{DEMO_PLATFORM})
  mini program    {DEMO_MINI} (appid {DEMO_MINI_APPID}, kind miniprogram)
  authorizer      {DEMO_MERCHANT_APPID} ({DEMO_MERCHANT_NAME}; authorized the demo platform at start, served like an account)
  API key         {api_key}
  admin key       {admin_key}
  master key      {master_key}   (sandbox only, new each run: seals this run's database)
  store           {db_url}
  demo page       {base}/demo   (JS-SDK signature + web login; {base}/demo?autologin=1 logs in at once)
  admin console   {base}/admin   (sign in with the admin key above)

Onboard a test account in the console, as you would a real one: {base}/admin/onboard with
AppID {SHOP_APPID} and AppSecret {shop_secret}; the mock's stand-in for WeChat's console
(server URL, Token, key, domains, a test message) is {mock_base}/__mock/console/{SHOP_APPID}

Try:
  curl -H 'Authorization: Bearer {api_key}' {api}/access_token
  curl -H 'Authorization: Bearer {api_key}' {api}/tickets/jsapi
  curl -X POST -H 'Authorization: Bearer {api_key}' {api}/access_token/refresh
  curl -H 'Authorization: Bearer {api_key}' {api}/status
  curl {base}/metrics

The demo platform (开放平台 第三方平台; the mock plays the Open Platform):
  curl -H 'Authorization: Bearer {api_key}' {platform_api}/status
  curl -H 'Authorization: Bearer {api_key}' {platform_api}/authorizers
  curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/accounts/{DEMO_MERCHANT_APPID}/access_token

Authorize another merchant: open in a browser (the mock's page stands in for WeChat's QR code;
pick an AppID and click 授权):
  {authorize}
or the same steps with curl (the link, the merchant's click on the mock's page, the callback):
  jar=$(mktemp); page=$(curl -s -c "$jar" -o /dev/null -w '%{{redirect_url}}' '{authorize}')
  back=$(curl -s -o /dev/null -w '%{{redirect_url}}' "$(echo "$page" | sed 's#/cgi-bin/componentloginpage#/__mock/component/authorize#')&authorizer_appid={NEXT_MERCHANT_APPID}")
  curl -s -b "$jar" -o /dev/null -w '%{{redirect_url}}\n' "$back"
  curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/accounts/{NEXT_MERCHANT_APPID}/access_token

Add an account at runtime (admin API; the mock WeChat knows this AppID and AppSecret too):
  curl -X PUT -H 'Authorization: Bearer {admin_key}' -H 'content-type: application/json' \
       -d '{{"appid":"{SHOP_APPID}","secret":"{shop_secret}","js_domains":["h5.example.com"]}}' \
       {base}/admin/api/v1/accounts/shop
  curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/accounts/shop/access_token
  curl -H 'Authorization: Bearer {admin_key}' {base}/admin/api/v1/accounts

The demo mini program: mint a wx.login code at the mock (what WeChat gives the mini program),
then log the user in (the answer has the openid and unionid, never the session_key):
  code=$(curl -s -X POST -d '{{"appid":"{DEMO_MINI_APPID}","user":"alice"}}' {mock_base}/__mock/miniprogram/code | sed 's/.*"code":"\([^"]*\)".*/\1/')
  curl -X POST -H 'Authorization: Bearer {api_key}' -d "{{\"code\":\"$code\"}}" {base}/api/v1/accounts/{DEMO_MINI}/miniprogram/login

Act as WeChat (a signed, encrypted push to {base}/wx/{DEMO_ACCOUNT}; prints the decoded reply):
  {simulate} --text help
  {simulate} --event subscribe --openid oDemoUser

Ctrl-C stops it.
"#
    );
    let result = server.await;
    drop(stop);
    cleanup(&db, &config_file);
    match result {
        Ok(served) => served.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the gateway stopped: {e}")),
    }
}

/// The demo platform's authorize link, landing on the sandbox's own page.
fn authorize_link(base: &str) -> String {
    let landing: String =
        url::form_urlencoded::byte_serialize(format!("{base}{LANDING}").as_bytes()).collect();
    format!("{base}/component/{DEMO_PLATFORM}/authorize?redirect={landing}")
}

/// Registers the platform with the mock (which pushes its ticket to the gateway), authorizes
/// the demo merchant the way a browser would, and waits until the merchant's token is served.
async fn demo_platform(
    mock: &MockWechat,
    component: MockComponent,
    base: &str,
    api_key: &str,
) -> Result<(), String> {
    mock.add_component(component);
    let answer = mock
        .push_ticket_now(DEMO_COMPONENT_APPID)
        .await
        .map_err(|e| format!("the ticket push: {e}"))?;
    if (answer.status, answer.body.as_str()) != (200, "success") {
        return Err(format!(
            "the gateway answered the ticket push {}: {}",
            answer.status, answer.body
        ));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let hop = |what: &'static str| move |e: reqwest::Error| format!("{what}: {e}");

    // 1. The gateway's authorize link: a cookie, and a 302 to WeChat's page (the mock's).
    let start = http
        .get(authorize_link(base))
        .send()
        .await
        .map_err(hop("the authorize link"))?;
    let cookie = start
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let page = redirect_of(start, "the authorize link")?;
    // 2. The merchant's click on that page: the same query to the mock's authorize route.
    let mut click = url::Url::parse(&page).map_err(|e| format!("the authorization page: {e}"))?;
    click.set_path("/__mock/component/authorize");
    click
        .query_pairs_mut()
        .append_pair("authorizer_appid", DEMO_MERCHANT_APPID)
        .append_pair("nick_name", DEMO_MERCHANT_NAME);
    let confirmed = http
        .get(click)
        .send()
        .await
        .map_err(hop("the authorization"))?;
    let callback = redirect_of(confirmed, "the authorization")?;
    // 3. Back at the gateway's callback, which exchanges the code.
    let mut back = http.get(&callback);
    if let Some(cookie) = cookie {
        back = back.header(reqwest::header::COOKIE, cookie);
    }
    let done = back.send().await.map_err(hop("the callback"))?;
    redirect_of(done, "the callback")?;

    let token = format!("{base}/api/v1/accounts/{DEMO_MERCHANT_APPID}/access_token");
    let mut last = String::new();
    for _ in 0..50 {
        match http.get(&token).bearer_auth(api_key).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the merchant's access token is not served: {last}"))
}

/// The `Location` of a 302, or what went wrong instead.
fn redirect_of(resp: reqwest::Response, what: &str) -> Result<String, String> {
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match location {
        Some(l) if resp.status() == reqwest::StatusCode::FOUND => Ok(l),
        _ => Err(format!(
            "{what} answered {} instead of a 302",
            resp.status()
        )),
    }
}

/// `GET /demo/authorized?wxgate_authorizer=<appid>`: where a merchant lands after authorizing
/// the demo platform (plain text, so nothing of the query can become markup).
fn landing(base: &str) -> Router<AppState> {
    let base = base.to_owned();
    Router::new().route(
        LANDING,
        get(move |RawQuery(q): RawQuery| async move {
            let appid: String = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "wxgate_authorizer")
                .map(|(_, v)| {
                    v.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(32)
                        .collect()
                })
                .unwrap_or_default();
            let text = if appid.is_empty() {
                "wxgate sandbox: no authorizer in this URL.\n".to_owned()
            } else {
                format!(
                    "wxgate sandbox: {appid} authorized the demo platform {DEMO_PLATFORM}.\n\n\
                     It is served like an account now, e.g. (API key: as printed by `wxgate sandbox`):\n\
                     curl -H \"Authorization: Bearer $API_KEY\" {base}/api/v1/accounts/{appid}/access_token\n"
                )
            };
            ([(CONTENT_TYPE, "text/plain; charset=utf-8")], text)
        }),
    )
}

fn remove_store(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

fn cleanup(db: &Path, config_file: &Path) {
    let _ = std::fs::remove_file(config_file);
    remove_store(db);
}
