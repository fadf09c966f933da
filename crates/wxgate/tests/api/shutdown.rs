//! SIGTERM to a `wxgate serve` process: the work WeChat was already told is done (a webhook
//! call answered late, its reply sent through the customer-service API) still happens before
//! the process exits, within `server.shutdown_grace_s`; work beyond the grace is cut there.

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
