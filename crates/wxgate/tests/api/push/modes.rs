//! The three modes: plaintext, safe (only `<Encrypt>`) and compatible (both), a rule reply or
//! `success` in the matching form, pushes sealed with the previous AES key, and plaintext
//! refused by an account with a key unless it accepts it.

use wxgate_proto::crypto::KeyRing;
use wxgate_proto::xml::Fields;
use wxgate_proto::Reply;

use crate::helpers::{AES_KEY, APPID};

use super::support::*;

#[tokio::test]
async fn a_plaintext_text_message_gets_the_rule_reply_as_plain_xml() {
    let (app, _) = app_with("", HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let (status, headers, body) = wx
        .send(&wx.plain(&text_xml("oAlice", "hello", msg_id())))
        .await;
    assert_eq!(status, 200, "{body}");
    let ct = content_type(&headers);
    assert!(
        ct.starts_with("application/xml") || ct.starts_with("text/xml"),
        "{ct}"
    );
    let reply = plain_reply(&body);
    assert_eq!(reply.reply, Reply::text("world"));
    assert_eq!(reply.to_user, "oAlice");
    assert_eq!(reply.from_user, "gh_test");
    assert!((reply.create_time - now()).abs() < 5);
    app.stop().await;
}

#[tokio::test]
async fn a_message_no_rule_answers_gets_200_success_as_text_plain() {
    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    for push in [
        wx.plain(&text_xml("oAlice", "something else", msg_id())),
        wx.safe(&text_xml("oAlice", "something else", msg_id())),
    ] {
        let (status, headers, body) = wx.send(&push).await;
        assert_eq!((status, body.as_str()), (200, "success"));
        assert!(content_type(&headers).starts_with("text/plain"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_safe_mode_message_gets_an_encrypted_reply_with_a_fresh_nonce_and_timestamp() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.safe_with(
        &text_xml("oBob", "hello", msg_id()),
        AES_KEY,
        APPID,
        now() - 100,
    );
    let (status, headers, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type(&headers).contains("xml"));
    assert!(
        !body.contains("world"),
        "the reply must be encrypted: {body}"
    );
    let (reply, ts, n) = open_encrypted(&body, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    assert_eq!(reply.to_user, "oBob");
    assert!(
        !push.query.contains(&format!("nonce={n}&")),
        "nonce must be fresh"
    );
    assert!(
        (ts.parse::<i64>().unwrap() - now()).abs() < 5,
        "timestamp must be now"
    );
    app.stop().await;
}

#[tokio::test]
async fn compatible_mode_with_encrypt_type_aes_is_decrypted_and_answered_encrypted() {
    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.compatible(&text_xml("oCarol", "hello", msg_id()));
    assert!(push.body.contains("<Content>") && push.body.contains("<Encrypt>"));
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    let (reply, _, _) = open_encrypted(&body, AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));

    // The same kind of body without encrypt_type is read as plaintext and answered so.
    let compat = wx.compatible(&text_xml("oCarol", "hello", msg_id()));
    let (plain_query, _, _) = wx.signed_query_at(now());
    let (status, _, body) = wx.send_raw(&plain_query, compat.body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    app.stop().await;
}

#[tokio::test]
async fn a_message_encrypted_with_the_previous_key_is_answered_with_the_previous_key() {
    let extra = format!(
        "{}encoding_aes_key_previous = \"{OLD_AES_KEY}\"\n",
        aes_extra()
    );
    let (app, _) = app_with(&extra, HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let push = wx.safe_with(
        &text_xml("oDave", "hello", msg_id()),
        OLD_AES_KEY,
        APPID,
        now(),
    );
    let (status, _, body) = wx.send(&push).await;
    assert_eq!(status, 200, "{body}");
    let (reply, _, _) = open_encrypted(&body, OLD_AES_KEY);
    assert_eq!(reply.reply, Reply::text("world"));
    let (_, fields) = Fields::parse_document(body.as_bytes()).unwrap();
    let current = KeyRing::from_encoding_aes_keys(AES_KEY, None).unwrap();
    assert!(current
        .decrypt(fields.text("Encrypt").unwrap(), Some(APPID))
        .is_err());

    // And the current key still works, answered with the current key.
    let (_, _, body) = wx
        .send(&wx.safe(&text_xml("oDave", "hello", msg_id())))
        .await;
    open_encrypted(&body, AES_KEY);
    app.stop().await;
}

#[tokio::test]
async fn an_account_with_a_key_refuses_plaintext_pushes_unless_it_accepts_them() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oMallory", "hello", msg_id());
    // A plaintext push's signature does not cover its body: with a key it is refused.
    let (status, _, body) = wx.send(&wx.plain(&xml)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "encryption_required"),
        "{body}"
    );
    assert!(body.contains("accept_plaintext"), "{body}");
    let (status, _, body) = wx.send(&wx.safe(&xml)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(open_encrypted(&body, AES_KEY).0.reply, Reply::text("world"));
    app.stop().await;

    let (app, _) = app_with(&aes_mixed_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let (status, _, body) = wx
        .send(&wx.plain(&text_xml("oMallory", "hello", msg_id())))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(plain_reply(&body).reply, Reply::text("world"));
    app.stop().await;
}
