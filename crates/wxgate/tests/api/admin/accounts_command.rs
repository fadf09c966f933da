//! `wxgate accounts put --from FILE` / `list` / `delete` against a running gateway.

use serde_json::Value;

use crate::helpers::*;

use super::support::*;

/// `wxgate accounts put --from FILE` / `list` / `delete` drive the admin API of a running
/// gateway.
#[tokio::test]
async fn the_accounts_command_drives_the_admin_api() {
    let (_mock, config) = setup().await;
    let app = spawn_app(&config).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    std::fs::write(
        &file,
        format!("appid = \"{SHOP_APPID}\"\nsecret = \"{SHOP_SECRET}\"\njs_domains = [\"h5.shop.example\"]\n"),
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let base = app.base.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
                .arg("accounts")
                .args(["--url", &base])
                .env("WXGATE_ADMIN_KEY", ADMIN_KEY)
                .args(args)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(vec![
        "put".into(),
        "shop".into(),
        "--from".into(),
        file.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        200
    );
    let out = run(vec!["list".into()]).await;
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["accounts"][1]["name"], "shop");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SHOP_SECRET));
    let out = run(vec!["delete".into(), "main".into()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read_only_account"));
    let out = run(vec!["delete".into(), "shop".into()]).await;
    assert!(out.status.success());
    assert_eq!(
        status_of(&app, app.api("shop/access_token"), API_KEY).await,
        404
    );
    app.stop().await;
}
