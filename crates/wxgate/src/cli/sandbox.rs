//! `wxgate sandbox`: the whole product on one machine with no WeChat account.
//!
//! Starts the built-in mock of the WeChat API with a demo account, then a gateway pointed at
//! it on the embedded SQLite store (a fresh file in the temp directory, removed at exit), and
//! prints the URLs, a generated API key and ready-to-paste example calls.

use std::net::SocketAddr;

use rand::distributions::Alphanumeric;
use rand::Rng;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};
use wxgate_mock::{MockAccount, MockConfig, MockWechat};

pub const DEMO_ACCOUNT: &str = "demo";
pub const DEMO_APPID: &str = "wxdemo000000000001";
/// The AppID of the printed example of an account added at runtime.
pub const SHOP_APPID: &str = "wxdemo000000000002";

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
    let master_key = crate::vault::MasterKey::random().to_base64();
    let shop_secret = random(32);

    let mock_listener = tokio::net::TcpListener::bind(mock_listen)
        .await
        .map_err(|e| format!("cannot listen on {mock_listen} for the mock: {e}"))?;
    let mock_addr = mock_listener.local_addr().map_err(|e| e.to_string())?;
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
        ],
        ..MockConfig::default()
    });
    tokio::spawn(mock.serve(mock_listener, std::future::pending()));

    let db = std::env::temp_dir().join(format!("wxgate-sandbox-{}.db", std::process::id()));
    let db_url = format!("sqlite://{}", db.display());
    let public_url = format!("http://{listen}");
    let master_key = master_key.expose_secret();
    let config = format!(
        r#"
[server]
listen = "{listen}"
public_url = "{public_url}"
[storage]
url = "{db_url}"
[database]
url = "{db_url}"
[upstream]
api_base = "http://{mock_addr}"
open_base = "http://{mock_addr}"
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
oauth_redirects = ["{public_url}/"]
verify_files = {{ "MP_verify_Sandbox123.txt" = "Sandbox123" }}
[[accounts.rules]]
event = "subscribe"
reply = {{ type = "text", content = "欢迎关注 wxgate sandbox" }}
[[accounts.rules]]
keyword = "help"
reply = {{ type = "text", content = "Try: hello" }}
"#
    );
    let (settings, accounts) = Settings::from_toml_and_env_validated(&config, std::iter::empty())
        .map_err(|e| format!("sandbox config: {e}"))?;
    let app = Application::build_validated(settings, accounts)
        .await
        .map_err(|e| e.to_string())?
        .with_routes(crate::http::demo::router());
    let base = format!("http://{}", app.local_addr());
    let api = format!("{base}/api/v1/accounts/{DEMO_ACCOUNT}");
    // The config on disk, so that `wxgate simulate` can sign and encrypt pushes for the demo.
    let config_file = db.with_extension("toml");
    if let Err(e) = std::fs::write(&config_file, &config) {
        eprintln!(
            "wxgate sandbox: cannot write {}: {e}",
            config_file.display()
        );
    }
    let simulate = format!(
        "wxgate simulate --config {} --account {DEMO_ACCOUNT} --url {base}",
        config_file.display()
    );
    println!(
        r#"
wxgate sandbox is running — no WeChat account needed.

  gateway         {base}
  mock WeChat API http://{mock_addr}   (calls: http://{mock_addr}/__mock/calls)
  demo account    {DEMO_ACCOUNT} (appid {DEMO_APPID}, token_api stable)
  API key         {api_key}
  admin key       {admin_key}
  store           {db_url}
  demo page       {base}/demo   (JS-SDK signature + web login; {base}/demo?autologin=1 logs in at once)

Try:
  curl -H 'Authorization: Bearer {api_key}' {api}/access_token
  curl -H 'Authorization: Bearer {api_key}' {api}/tickets/jsapi
  curl -X POST -H 'Authorization: Bearer {api_key}' {api}/access_token/refresh
  curl -H 'Authorization: Bearer {api_key}' {api}/status
  curl {base}/metrics

Add an account at runtime (admin API; the mock WeChat knows this AppID and AppSecret too):
  curl -X PUT -H 'Authorization: Bearer {admin_key}' -H 'content-type: application/json' \
       -d '{{"appid":"{SHOP_APPID}","secret":"{shop_secret}","js_domains":["h5.example.com"]}}' \
       {base}/admin/api/v1/accounts/shop
  curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/accounts/shop/access_token
  curl -H 'Authorization: Bearer {admin_key}' {base}/admin/api/v1/accounts

Act as WeChat (a signed, encrypted push to {base}/wx/{DEMO_ACCOUNT}; prints the decoded reply):
  {simulate} --text help
  {simulate} --event subscribe --openid oDemoUser

Ctrl-C stops it.
"#
    );
    let result = app.run_until_stopped(shutdown_signal()).await;
    let _ = std::fs::remove_file(&config_file);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    result.map_err(|e| e.to_string())
}
