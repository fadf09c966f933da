//! De-duplication of WeChat's retries: one webhook call and identical bytes for every delivery,
//! across instances sharing Redis or sharing nothing, whatever the sender's clock; delivery
//! reports told apart by their `MsgID`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wxgate_proto::Reply;

use crate::helpers::{spawn_app, start_mock, GatewayConfig, TestApp, AES_KEY};

use super::support::*;

#[tokio::test]
async fn a_retry_storm_runs_the_webhook_once_and_gets_identical_answers() {
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "from the hook"}}));
    hook.delay = Duration::from_millis(400);
    let (hook, addr) = hook.start().await;
    let (app, _) = app_with(
        &format!("{}{}", aes_mixed_extra(), webhook_extra(addr, 3000)),
        "",
    )
    .await;
    let wx = Arc::new(Wechat::new(&app));
    let xml = text_xml("oFrank", "anything?", msg_id());
    // Three deliveries of the same message, each signed afresh like WeChat's retries.
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    assert_eq!(hook.calls(), 1, "the webhook must run once");
    assert_eq!(hook.bad_signatures.load(Ordering::SeqCst), 0);
    for (s, _, body) in &answers {
        assert_eq!(*s, 200);
        assert_eq!(body, &answers[0].2, "identical bytes for every delivery");
    }
    let (reply, _, _) = open_encrypted(&answers[0].2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("from the hook"));
    // A later retry too.
    let (_, _, again) = wx.send(&wx.safe(&xml)).await;
    assert_eq!(again, answers[0].2);
    assert_eq!(hook.calls(), 1);

    // Events are deduplicated by FromUserName + CreateTime + Event (+ EventKey).
    let ev = event_xml("oFrank", "CLICK", Some("MENU_1"), now());
    let (_, _, a) = wx.send(&wx.plain(&ev)).await;
    let (_, _, b) = wx.send(&wx.plain(&ev)).await;
    assert_eq!(a, b);
    assert_eq!(hook.calls(), 2);
    let other_key = event_xml("oFrank", "CLICK", Some("MENU_2"), now());
    wx.send(&wx.plain(&other_key)).await;
    assert_eq!(hook.calls(), 3);
    app.stop().await;
}

#[tokio::test]
async fn retries_of_a_rule_answered_push_get_the_very_same_encrypted_bytes() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oRita", "hello", msg_id());
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wx.send(&wx.safe(&xml)).await;
    for (s, _, body) in &answers {
        assert_eq!(*s, 200);
        assert_eq!(
            body, &later,
            "identical bytes, although every seal has a fresh nonce"
        );
    }
    assert_eq!(
        open_encrypted(&later, AES_KEY).0.reply,
        Reply::text("world")
    );
    // A different message is a different answer.
    let (_, _, other) = wx
        .send(&wx.safe(&text_xml("oRita", "hello", msg_id())))
        .await;
    assert_ne!(other, later);
    app.stop().await;
}

/// What the gateway's store holds for the push with MsgId `id` of account `main`.
async fn dedup_record(app: &TestApp, id: u64) -> Option<Vec<u8>> {
    app.state
        .store
        .get(&format!("push:main:id:{id}"))
        .await
        .unwrap()
}

/// The text message `content` from `openid` stamped `create_time` (WeChat's clock).
fn text_xml_at(openid: &str, content: &str, id: u64, create_time: i64) -> String {
    text_xml(openid, content, id).replacen(
        &format!("<CreateTime>{}</CreateTime>", now()),
        &format!("<CreateTime>{create_time}</CreateTime>"),
        1,
    )
}

#[tokio::test]
async fn a_current_rule_answered_push_gets_the_same_bytes_from_instances_that_share_no_store() {
    // Two gateways, each with its own memory store: nothing is shared but the configuration.
    let (a, config) = app_with(&aes_extra(), HELLO_RULE).await;
    let b = spawn_app(&config).await;
    let (wa, wb) = (Wechat::new(&a), Wechat::new(&b));
    let created = now() - 3;
    let id = msg_id();
    let xml = text_xml_at("oSam", "hello", id, created);
    let deliveries = [wa.safe(&xml), wb.safe(&xml), wa.safe(&xml)];
    let answers = futures::future::join_all(
        deliveries
            .iter()
            .zip([&wa, &wb, &wa])
            .map(|(p, w)| w.send(p)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wb.send(&wb.safe(&xml)).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body, &later,
            "every delivery, at either instance, gets the same bytes"
        );
    }
    let (reply, ts, n) = open_encrypted(&later, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    // Stamped with the push's own time, inside and outside the envelope; the nonce is none of
    // the requests'.
    assert_eq!(ts, created.to_string());
    assert_eq!(reply.create_time, created);
    for p in &deliveries {
        assert!(
            !p.query.contains(&format!("nonce={n}&")),
            "nonce must be fresh"
        );
    }
    // Nothing was written for it: the answer is derived from the push, not remembered.
    for app in [&a, &b] {
        assert_eq!(dedup_record(app, id).await, None);
    }
    // Another message with the same sender, time and reply is sealed differently.
    let (_, _, other) = wa
        .send(&wa.safe(&text_xml_at("oSam", "hello", msg_id(), created)))
        .await;
    let (other_reply, other_ts, other_nonce) = open_encrypted(&other, AES_KEY);
    assert_eq!(other_reply.reply, Reply::text("world"));
    assert_eq!(other_ts, ts);
    assert_ne!(other_nonce, n);
    assert_ne!(other, later);

    // Plaintext mode: the same for the reply XML.
    let (c, config) = app_with("", HELLO_RULE).await;
    let d = spawn_app(&config).await;
    let (wc, wd) = (Wechat::new(&c), Wechat::new(&d));
    let plain = text_xml_at("oSam", "hello", msg_id(), created);
    let (_, _, first) = wc.send(&wc.plain(&plain)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, second) = wd.send(&wd.plain(&plain)).await;
    assert_eq!(first, second);
    assert_eq!(plain_reply(&first).create_time, created);
    for app in [a, b, c, d] {
        app.stop().await;
    }
}

#[tokio::test]
async fn a_push_stamped_far_from_the_gateway_clock_is_answered_at_the_gateway_time_and_kept_for_retries(
) {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let id = msg_id();
    // An hour old (the request itself is current, so it passes the replay window).
    let xml = text_xml_at("oTess", "hello", id, now() - 3600);
    let pushes: Vec<Push> = (0..3).map(|_| wx.safe(&xml)).collect();
    let answers = futures::future::join_all(pushes.iter().map(|p| wx.send(p))).await;
    let (reply, ts, _) = open_encrypted(&answers[0].2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    assert!(
        (ts.parse::<i64>().unwrap() - now()).abs() < 5,
        "timestamp must be now: {ts}"
    );
    assert!((reply.create_time - now()).abs() < 5);
    // A second later the clock has moved on, yet the retry gets the first answer's bytes: they
    // come from the de-duplication record.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = wx.send(&wx.safe(&xml)).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &later);
    }
    assert!(
        dedup_record(&app, id).await.is_some(),
        "the answer is kept for retries"
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_are_deduplicated_across_two_gateway_instances_sharing_redis() {
    let Some(redis) = crate::helpers::redis_url(
        "retries_are_deduplicated_across_two_gateway_instances_sharing_redis",
    ) else {
        return;
    };
    let mut hook = Hook::answering(json!({"reply": {"type": "text", "content": "once"}}));
    hook.delay = Duration::from_millis(300);
    let (hook, addr) = hook.start().await;
    let (_mock, mock_addr) = start_mock().await;
    let mut config = GatewayConfig::new(mock_addr);
    config.storage_url = redis;
    config.key_prefix = crate::helpers::unique_prefix();
    config.account_extra = format!("{}{}", aes_extra(), webhook_extra(addr, 3000));
    let a = spawn_app(&config).await;
    let b = spawn_app(&config).await;
    let wa = Wechat::new(&a);
    let wb = Wechat::new(&b);
    let xml = text_xml("oGrace", "hi", msg_id());
    let (pa, pb, pc) = (wa.safe(&xml), wb.safe(&xml), wa.safe(&xml));
    let (ra, rb, rc) = tokio::join!(wa.send(&pa), wb.send(&pb), wa.send(&pc));
    assert_eq!(hook.calls(), 1);
    assert_eq!(ra.2, rb.2);
    assert_eq!(ra.2, rc.2);
    let (reply, _, _) = open_encrypted(&ra.2, AES_KEY);
    assert_eq!(reply.reply, Reply::text("once"));
    let (_, _, later) = wb.send(&wb.safe(&xml)).await;
    assert_eq!(later, ra.2);
    assert_eq!(hook.calls(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn two_delivery_reports_in_one_second_both_reach_the_webhook() {
    let (hook, addr) = Hook::answering(json!({})).start().await;
    let (app, _) = app_with(&format!("{}{}", aes_extra(), webhook_extra(addr, 3000)), "").await;
    let wx = Wechat::new(&app);
    let at = now();
    let report = |msg_id: u64| {
        event_xml("oReport", "TEMPLATESENDJOBFINISH", None, at).replace(
            "</xml>",
            &format!("<MsgID>{msg_id}</MsgID><Status><![CDATA[success]]></Status></xml>"),
        )
    };
    for id in [200163836u64, 200163840] {
        let (status, _, body) = wx.send(&wx.safe(&report(id))).await;
        assert_eq!((status, body.as_str()), (200, "success"));
    }
    // A retry of the first is still a retry.
    let (status, _, _) = wx.send(&wx.safe(&report(200163836))).await;
    assert_eq!(status, 200);
    assert_eq!(hook.calls(), 2, "two reports, each delivered once");
    let ids: Vec<Value> = hook
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["MsgID"].clone())
        .collect();
    assert_eq!(ids, vec![json!(200163836), json!(200163840)]);
    app.stop().await;
}
