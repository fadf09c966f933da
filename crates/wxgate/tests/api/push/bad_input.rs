//! Pushes the gateway refuses, with SPEC's error codes: bad signatures, stale or future
//! timestamps, undecryptable or malformed bodies, and an unsigned push refused before its
//! body is read.

use wxgate_proto::Reply;

use crate::helpers::{AES_KEY, APPID, TOKEN};

use super::support::*;

#[tokio::test]
async fn bad_pushes_get_the_spec_error_codes() {
    let tail = format!(
        "{HELLO_RULE}\n[[accounts]]\nname = \"notoken\"\nappid = \"wx0000000000000002\"\nsecret = \"s\"\n\
         [[accounts]]\nname = \"plainonly\"\nappid = \"wx0000000000000003\"\nsecret = \"s\"\ntoken = \"{TOKEN}\"\n"
    );
    let (app, _) = app_with(&aes_mixed_extra(), &tail).await;
    let wx = Wechat::new(&app);
    let xml = text_xml("oEve", "hello", msg_id());

    let mut cases: Vec<(&str, String, String, u16, &str)> = Vec::new();
    // wrong signature
    let p = wx.plain(&xml);
    let bad = p.query.replacen("signature=", "signature=0", 1);
    cases.push(("wrong signature", bad, p.body, 403, "invalid_signature"));
    // wrong msg_signature
    let p = wx.safe(&xml);
    let bad = p.query.replacen("msg_signature=", "msg_signature=0", 1);
    cases.push(("wrong msg_signature", bad, p.body, 403, "invalid_signature"));
    // wrong appid inside the ciphertext
    let p = wx.safe_with(&xml, AES_KEY, OTHER_APPID, now());
    cases.push(("wrong appid", p.query, p.body, 403, "invalid_signature"));
    // stale timestamp, both modes
    let p = wx.safe_with(&xml, AES_KEY, APPID, now() - 601);
    cases.push(("stale safe", p.query, p.body, 403, "stale_timestamp"));
    let (q, _, _) = wx.signed_query_at(now() + 3600);
    cases.push(("future plain", q, xml.clone(), 403, "stale_timestamp"));
    // malformed XML
    let p = wx.plain("<xml><ToUserName>gh</ToUserName><FromUserName>");
    cases.push(("malformed", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain("not xml at all");
    cases.push(("not xml", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain("<xml><ToUserName>gh</ToUserName></xml>");
    cases.push(("missing fields", p.query, p.body, 400, "invalid_message"));
    // DTD bomb, in plaintext and as the decrypted content
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
        <xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>";
    let p = wx.plain(bomb);
    cases.push(("dtd bomb", p.query, p.body, 400, "invalid_message"));
    let p = wx.safe(bomb);
    cases.push((
        "encrypted dtd bomb",
        p.query,
        p.body,
        400,
        "invalid_message",
    ));
    let p = wx.plain("<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><xml/>");
    cases.push(("xxe", p.query, p.body, 400, "invalid_message"));
    // missing parameters
    let p = wx.plain(&xml);
    let no_sig: String = p
        .query
        .split('&')
        .filter(|kv| !kv.starts_with("signature="))
        .collect::<Vec<_>>()
        .join("&");
    cases.push((
        "no signature",
        no_sig,
        xml.clone(),
        400,
        "missing_parameter",
    ));
    let p = wx.safe(&xml);
    let no_msg_sig: String = p
        .query
        .split('&')
        .filter(|kv| !kv.starts_with("msg_signature="))
        .collect::<Vec<_>>()
        .join("&");
    cases.push((
        "no msg_signature",
        no_msg_sig,
        p.body,
        400,
        "missing_parameter",
    ));
    cases.push((
        "nothing",
        String::new(),
        xml.clone(),
        400,
        "missing_parameter",
    ));
    // a ciphertext nobody can decrypt but correctly signed
    let p = wx.safe_with(&xml, OLD_AES_KEY, APPID, now());
    cases.push(("unknown key", p.query, p.body, 400, "invalid_message"));
    let p = wx.plain(&xml);
    cases.push((
        "odd encrypt_type",
        format!("{}&encrypt_type=rot13", p.query),
        p.body,
        400,
        "invalid_parameter",
    ));

    for (name, query, body, status, code) in cases {
        let (s, _, b) = wx.send_raw(&query, body).await;
        assert_eq!((s, error_code(&b).as_str()), (status, code), "{name}: {b}");
    }

    // oversize body
    let big = format!("<xml><Content>{}</Content></xml>", "a".repeat(70_000));
    let p = wx.plain(&big);
    let (s, _, b) = wx.send(&p).await;
    assert_eq!((s, error_code(&b).as_str()), (413, "body_too_large"));
    // streamed (chunked) oversize body
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'a'; 8192])).collect();
    let (s, _, b) = wx
        .send_raw(
            &p.query,
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!((s, error_code(&b).as_str()), (413, "body_too_large"));

    // unknown account, account without token, aes push to an account without a key
    let mut other = Wechat::new(&app);
    other.account = "nobody".into();
    let (s, _, b) = other.send(&other.plain(&xml)).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "unknown_account"));
    other.account = "notoken".into();
    let (s, _, b) = other.send(&other.plain(&xml)).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "push_disabled"));
    let r = app
        .http
        .get(format!(
            "{}/wx/notoken?signature=a&timestamp=1&nonce=1&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    other.account = "plainonly".into();
    other.appid = "wx0000000000000003".into();
    let (s, _, b) = other.send(&other.safe(&xml)).await;
    assert_eq!(
        (s, error_code(&b).as_str()),
        (400, "encryption_not_configured")
    );

    // And nothing broke.
    let (s, _, b) = wx
        .send(&wx.plain(&text_xml("oEve", "hello", msg_id())))
        .await;
    assert_eq!(s, 200);
    assert_eq!(plain_reply(&b).reply, Reply::text("world"));
    app.stop().await;
}

#[tokio::test]
async fn a_push_created_in_the_future_is_refused_and_cannot_freeze_a_follower() {
    let (app, config) = app_with(&aes_extra(), "").await;
    let wx = Wechat::new(&app);
    // Signed now, but claiming to be created an hour from now.
    let future = event_xml("oFuture", "unsubscribe", None, now() + 3600);
    let (status, _, body) = wx.send(&wx.safe(&future)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "stale_timestamp"),
        "{body}"
    );
    // A real subscribe now is recorded (the forged event left no record to be "newer").
    let (status, _, _) = wx
        .send(&wx.safe(&event_xml("oFuture", "subscribe", None, now())))
        .await;
    assert_eq!(status, 200);
    let user = wxgate::users::connect(&config.database_url)
        .await
        .unwrap()
        .for_account("main")
        .get("oFuture")
        .await
        .unwrap()
        .expect("the follower is recorded");
    assert_eq!(user.subscribed, Some(true));
    // Within the window ahead (a clock a little off) is still accepted.
    let (status, _, body) = wx
        .send(&wx.safe(&event_xml("oFuture", "CLICK", Some("K"), now() + 60)))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_unsigned_push_is_refused_before_its_body_is_read() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let p = wx.safe(&text_xml("oEve", "hello", msg_id()));
    let forged = p.query.replacen("signature=", "signature=0", 1);
    // A body over server.max_body_bytes (64 KiB here): had it been read, the answer would be
    // 413; the query is checked first, so it is the signature that is refused.
    let (status, _, body) = wx.send_raw(&forged, vec![b'x'; 200_000]).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "invalid_signature"),
        "{body}"
    );
    // A signed one with the same oversized body is refused for its size.
    let (status, _, body) = wx.send_raw(&p.query, vec![b'x'; 200_000]).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "body_too_large")
    );
    app.stop().await;
}
