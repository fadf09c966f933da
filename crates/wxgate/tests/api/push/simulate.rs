//! `wxgate simulate`: a push sent to a running gateway and its decrypted reply printed, and a
//! clear failure on HTTP errors.

use crate::helpers::{GatewayConfig, TOKEN};

use super::support::*;

async fn simulate(config: &GatewayConfig, base: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    std::fs::write(&path, config.toml()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .arg("simulate")
        .arg("--config")
        .arg(&path)
        .arg("--account")
        .arg("main")
        .arg("--url")
        .arg(base)
        .args(args)
        .output()
        .await
        .unwrap();
    drop(dir);
    out
}

#[tokio::test]
async fn wxgate_simulate_prints_the_decrypted_rule_reply_of_a_running_gateway() {
    let tail = format!(
        "{HELLO_RULE}[[accounts.rules]]\nevent = \"subscribe\"\nreply = {{ type = \"text\", content = \"welcome aboard\" }}\n"
    );
    for extra in [aes_extra(), String::new()] {
        let (app, config) = app_with(&extra, &tail).await;
        let out = simulate(&config, &app.base, &["--text", "hello"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "stdout {stdout}\nstderr {stderr}");
        assert!(stdout.contains("world"), "stdout {stdout}\nstderr {stderr}");

        let out = simulate(
            &config,
            &app.base,
            &["--event", "subscribe", "--openid", "oSim"],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("welcome aboard"), "{stdout}");
        let user = wxgate::users::connect(&config.database_url)
            .await
            .unwrap()
            .for_account("main")
            .get("oSim")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.subscribed, Some(true));

        let out = simulate(&config, &app.base, &["--text", "no rule for this"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(stdout.contains("(no reply: success)"), "{stdout}");
        app.stop().await;
    }
}

#[tokio::test]
async fn wxgate_simulate_fails_with_a_clear_message_on_http_errors() {
    let (app, config) = app_with(&aes_extra(), HELLO_RULE).await;
    // A gateway with another token: the signature does not match.
    let mut other = config.clone();
    other.account_extra = format!("{}\n", aes_extra());
    let wrong = other.toml().replace(TOKEN, "someothertoken");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    std::fs::write(&path, wrong).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(["simulate", "--config"])
        .arg(&path)
        .args(["--account", "main", "--text", "hello", "--url", &app.base])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("invalid_signature"),
        "{stderr}"
    );

    // Nobody listening.
    let out = simulate(&config, "http://127.0.0.1:9", &["--text", "hello"]).await;
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    app.stop().await;
}
