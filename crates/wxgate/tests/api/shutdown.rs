//! SIGTERM to a `wxgate serve` process: the work WeChat was already told is done (a webhook
//! call answered late, its reply sent through the customer-service API) still happens before
//! the process exits, within `server.shutdown_grace_s`; work beyond the grace is cut there, and
//! a second signal ends the process at once.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    send_plain_push, start_mock, start_webhook, webhook_account_extra, GatewayConfig,
    GatewayProcess,
};

#[tokio::test]
async fn sigterm_during_a_slow_webhook_still_delivers_the_late_reply_before_exiting() {
    let (mock, mock_addr) = start_mock().await;
    let (hook, calls) = start_webhook(
        Duration::from_millis(2500),
        json!({"reply": {"type": "text", "content": "sorry I'm late"}}),
    )
    .await;
    let mut config = GatewayConfig::new(mock_addr);
    config.account_extra = webhook_account_extra(&hook, 300);
    let gw = GatewayProcess::start(&config).await;

    let (status, body) = send_plain_push(&gw.base, "oLate", "slow?").await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // WeChat has its `success`; the webhook is still thinking.
    assert!(mock.custom_messages().is_empty());

    let (exit, _took, log) = gw.terminate_within(Duration::from_secs(30)).await;
    let exit = exit.unwrap_or_else(|| panic!("wxgate did not exit within 30 s:\n{log}"));
    assert!(exit.success(), "{exit:?}\n{log}");
    // Read once, right after the exit: the reply went out before it.
    assert_eq!(
        mock.custom_messages(),
        vec![json!({"touser": "oLate", "msgtype": "text", "text": {"content": "sorry I'm late"}})],
        "{log}"
    );
}

#[tokio::test]
async fn work_beyond_the_shutdown_grace_is_cut_and_the_process_exits_after_the_grace() {
    let (mock, mock_addr) = start_mock().await;
    let (hook, _calls) = start_webhook(
        Duration::from_secs(40),
        json!({"reply": {"type": "text", "content": "far too late"}}),
    )
    .await;
    let mut config = GatewayConfig::new(mock_addr);
    config.server_extra = "shutdown_grace_s = 1".into();
    config.account_extra = webhook_account_extra(&hook, 300);
    let gw = GatewayProcess::start(&config).await;

    let (status, body) = send_plain_push(&gw.base, "oNever", "slow?").await;
    assert_eq!((status, body.as_str()), (200, "success"));

    let (exit, took, log) = gw.terminate_within(Duration::from_secs(20)).await;
    assert!(exit.is_some(), "wxgate did not exit within 20 s:\n{log}");
    // It waited for the grace (a lower bound only: sleeping never ends early), then gave up.
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
    assert!(log.contains("shutdown grace is over"), "{log}");
    assert!(mock.custom_messages().is_empty());
}

#[tokio::test]
async fn a_second_sigterm_ends_the_process_without_waiting_for_the_grace() {
    let (_mock, mock_addr) = start_mock().await;
    let (hook, _calls) = start_webhook(
        Duration::from_secs(40),
        json!({"reply": {"type": "text", "content": "far too late"}}),
    )
    .await;
    let mut config = GatewayConfig::new(mock_addr);
    config.account_extra = webhook_account_extra(&hook, 300);
    let gw = GatewayProcess::start(&config).await;
    let (status, _) = send_plain_push(&gw.base, "oTwice", "slow?").await;
    assert_eq!(status, 200);
    let pid = gw.pid().unwrap();
    let sigterm = || {
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap()
    };
    sigterm();
    // Let the first one be handled (the orderly stop has started), then send the second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm();
    // With the default grace (30 s) and a 40 s webhook, only the second signal ends it early.
    let (exit, took, log) = gw.exit_within(Duration::from_secs(20)).await;
    assert!(exit.is_some(), "still running after {took:?}:\n{log}");
    assert!(log.contains("second stop signal"), "{log}");
}
