//! Hot paths of a push: signature checks, decrypt + parse, reply build + encrypt, JS-SDK
//! signing, and the whole safe-mode round trip (target: under 10 µs).
//! `build_and_encrypt_reply_derived` is the sealing of a rule answer derived from the push.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wxgate_proto::signature::{verify_msg_signature, verify_signature};
use wxgate_proto::{crypto, jssdk, open_push, seal_reply, AesKey, KeyRing, Message, Reply};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";
const TOKEN: &str = "pamtest";
const TEXT: &str = "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2TjjewbmiOUlr6X-1crbLOvLw]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好，请问营业时间？]]></Content><MsgId>6054768590064713728</MsgId></xml>";

fn benches(c: &mut Criterion) {
    let key = AesKey::from_encoding_aes_key(KEY).unwrap();
    let ring = KeyRing::new(key.clone(), None);
    let (ts, nonce) = ("1409304348", "1320562132");

    c.bench_function("verify_signature", |b| {
        let sig = wxgate_proto::signature::signature(TOKEN, ts, nonce);
        b.iter(|| verify_signature(black_box(TOKEN), black_box(ts), black_box(nonce), &sig))
    });

    let encrypted = crypto::encrypt(&key, TEXT.as_bytes(), APPID, None);
    c.bench_function("decrypt_and_parse_text", |b| {
        b.iter(|| {
            let d = crypto::decrypt(&key, black_box(&encrypted), Some(APPID)).unwrap();
            Message::parse(&d.message).unwrap()
        })
    });

    let reply = Reply::text("营业时间：每天 9:00–21:00。");
    let render_reply = |reply: &Reply| {
        reply
            .to_xml(
                "oia2TjjewbmiOUlr6X-1crbLOvLw",
                "gh_7f083739789a",
                1407743424,
            )
            .unwrap()
    };
    c.bench_function("build_and_encrypt_reply", |b| {
        b.iter(|| {
            let xml = render_reply(black_box(&reply));
            seal_reply(&key, TOKEN, APPID, &xml, Some(1407743424), Some(nonce))
        })
    });

    // What a rule answer costs instead when its nonce and prefix are derived from the push
    // (one HMAC-SHA256 more, no random numbers).
    c.bench_function("build_and_encrypt_reply_derived", |b| {
        b.iter(|| {
            let xml = render_reply(black_box(&reply));
            crypto::seal_reply_derived(
                &key,
                TOKEN,
                APPID,
                &xml,
                1407743424,
                b"push:main:id:6054768590064713728",
            )
        })
    });

    c.bench_function("jssdk_sign", |b| {
        b.iter(|| {
            jssdk::sign(
                black_box("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"),
                black_box("Wm3WZYTPz0wzccnW"),
                1414587457,
                black_box("https://h5.example.com/shop/item?id=42&from=singlemessage#/detail"),
            )
        })
    });

    let body = format!(
        "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    );
    let msg_signature = wxgate_proto::signature::msg_signature(TOKEN, ts, nonce, &encrypted);
    assert!(verify_msg_signature(
        TOKEN,
        ts,
        nonce,
        &encrypted,
        &msg_signature
    ));
    c.bench_function("safe_mode_round_trip", |b| {
        b.iter(|| {
            let opened = open_push(
                &ring,
                TOKEN,
                ts,
                nonce,
                &msg_signature,
                black_box(body.as_bytes()),
                Some(APPID),
            )
            .unwrap();
            let message = Message::parse(opened.plaintext.as_bytes()).unwrap();
            let xml = Reply::text("收到")
                .to_xml(
                    message.from_user(),
                    message.to_user(),
                    message.create_time(),
                )
                .unwrap();
            seal_reply(
                ring.key(opened.key_used),
                TOKEN,
                APPID,
                &xml,
                Some(1407743424),
                Some(nonce),
            )
            .to_xml()
        })
    });
}

criterion_group!(protocol, benches);
criterion_main!(protocol);
