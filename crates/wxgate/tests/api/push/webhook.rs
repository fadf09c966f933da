//! The webhook: the message as signed JSON, its reply as the passive reply, `success` when it
//! fails or says nothing, and a late reply sent as a customer-service message.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wxgate_proto::Reply;

use crate::helpers::{spawn_app, start_mock, GatewayConfig, APPID};

use super::support::*;

#[tokio::test]
async fn the_webhook_gets_the_message_as_signed_json_and_its_reply_is_the_passive_reply() {
    let (hook, addr) = Hook::answering(json!({"reply": {"type": "news", "articles": [
        {"title": "T", "description": "D", "url": "https://e.com/a", "pic_url": "https://e.com/p.jpg"}]}}))
    .start()
    .await;
    let (app, _) = app_with(&webhook_extra(addr, 2000), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let id = msg_id();
    let (s, _, body) = wx
        .send(&wx.plain(&text_xml("oHeidi", "what's new?", id)))
        .await;
    assert_eq!(s, 200);
    let reply = plain_reply(&body);
    match reply.reply {
        Reply::News { articles } => assert_eq!(articles[0].pic_url, "https://e.com/p.jpg"),
        other => panic!("expected news, got {other:?}"),
    }
    assert_eq!(hook.bad_signatures.load(Ordering::SeqCst), 0);
    let sent = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["MsgType"], "text");
    assert_eq!(sent["Content"], "what's new?");
    assert_eq!(sent["FromUserName"], "oHeidi");
    assert_eq!(sent["ToUserName"], "gh_test");
    assert_eq!(sent["MsgId"], json!(id));

    // A rule answers first: the webhook is not asked.
    let (_, _, body) = wx
        .send(&wx.plain(&text_xml("oHeidi", "hello", msg_id())))
        .await;
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    assert_eq!(hook.calls(), 1);
    app.stop().await;
}

#[tokio::test]
async fn webhook_answers_without_a_reply_and_webhook_failures_give_success() {
    let answers: Vec<(u16, String)> = vec![
        (204, String::new()),
        (200, "{}".into()),
        (200, r#"{"reply": null}"#.into()),
        (500, r#"{"reply": {"type": "text", "content": "x"}}"#.into()),
        (200, "not json".into()),
        (200, r#"{"reply": {"type": "news", "articles": []}}"#.into()),
        (200, r#"{"reply": {"type": "bogus"}}"#.into()),
    ];
    for (status, answer) in answers {
        let mut hook = Hook::answering(Value::Null);
        hook.status = status;
        hook.answer = answer.clone();
        let (hook, addr) = hook.start().await;
        let (app, _) = app_with(&webhook_extra(addr, 2000), "").await;
        let wx = Wechat::new(&app);
        let (s, _, body) = wx.send(&wx.plain(&text_xml("oIvan", "q", msg_id()))).await;
        assert_eq!(
            (s, body.as_str()),
            (200, "success"),
            "webhook {status} {answer:?}"
        );
        assert_eq!(hook.calls(), 1);
        app.stop().await;
    }
    // Nobody listening at all.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (app, _) = app_with(&webhook_extra(port, 2000), "").await;
    let wx = Wechat::new(&app);
    let (s, _, body) = wx.send(&wx.plain(&text_xml("oIvan", "q", msg_id()))).await;
    assert_eq!((s, body.as_str()), (200, "success"));
    let metrics = app.metrics_text().await;
    assert!(metrics.contains("webhook"), "webhook failures are counted");
    app.stop().await;
}

/// The first customer-service message the mock WeChat API received, waiting up to 15 s.
async fn first_custom_message(mock: &wxgate_mock::MockWechat) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(m) = mock.custom_messages().first() {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no customer-service message arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_webhook_gets_success_in_time_and_its_late_reply_goes_out_as_a_customer_service_message(
) {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "sorry I'm late"}}));
    hook.delay = Duration::from_millis(1500);
    let (hook, addr) = hook.start().await;
    let (mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 300));
    let app = spawn_app(&config).await;
    let wx = Wechat::new(&app);
    let started = Instant::now();
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oJudy", "slow?", msg_id())))
        .await;
    let took = started.elapsed();
    assert_eq!((s, body.as_str()), (200, "success"));
    assert!(
        took < Duration::from_millis(1200),
        "answered after {took:?}"
    );
    let sent = first_custom_message(&mock).await;
    assert_eq!(
        sent,
        json!({"touser": "oJudy", "msgtype": "text", "text": {"content": "sorry I'm late"}})
    );
    assert_eq!(hook.calls(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_late_reply_whose_token_was_invalidated_goes_out_after_one_refresh() {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "late again"}}));
    hook.delay = Duration::from_millis(1000);
    let (_hook, addr) = hook.start().await;
    let (mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.token_api = "classic";
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 300));
    let app = spawn_app(&config).await;
    let (status, first) = app.get_json("main/access_token").await;
    assert_eq!(status, 200, "{first}");
    // WeChat retires the token wxgate holds before the late reply goes out.
    mock.invalidate_access_tokens(APPID);
    let wx = Wechat::new(&app);
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oKate", "slow?", msg_id())))
        .await;
    assert_eq!((s, body.as_str()), (200, "success"));
    let sent = first_custom_message(&mock).await;
    assert_eq!(
        sent,
        json!({"touser": "oKate", "msgtype": "text", "text": {"content": "late again"}})
    );
    assert_eq!(mock.calls("cgi-bin/message/custom/send"), 2, "one retry");
    assert_eq!(mock.calls("cgi-bin/token"), 2, "one refresh");
    let (_, now) = app.get_json("main/access_token").await;
    assert_ne!(first["access_token"], now["access_token"]);
    app.stop().await;
}
