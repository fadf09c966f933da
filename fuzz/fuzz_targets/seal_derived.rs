//! A derived reply seal (how rule answers are sealed) with fuzzed reply, push identity and
//! time: it must never panic, must open again to exactly the reply it sealed, and sealing the
//! same inputs twice must give the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate_proto::{open_push, seal_reply_derived, AesKey, KeyRing};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = AesKey::from_encoding_aes_key(KEY) else {
        return;
    };
    // Layout: 8 bytes of timestamp, 1 byte of context length, the context, then the reply.
    let Some((time, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&context_len, rest)) = rest.split_first() else {
        return;
    };
    let (context, reply) = rest.split_at(usize::from(context_len).min(rest.len()));
    let Ok(reply) = std::str::from_utf8(reply) else {
        return;
    };
    let timestamp = u64::from_be_bytes(*time);
    let sealed = seal_reply_derived(&key, "token", "wxappid", reply, timestamp, context);
    assert_eq!(
        sealed,
        seal_reply_derived(&key, "token", "wxappid", reply, timestamp, context)
    );
    let ring = KeyRing::new(key, None);
    let opened = open_push(
        &ring,
        "token",
        &sealed.timestamp,
        &sealed.nonce,
        &sealed.msg_signature,
        sealed.to_xml().as_bytes(),
        Some("wxappid"),
    );
    match opened {
        Ok(opened) => assert_eq!(opened.plaintext, reply),
        Err(e) => panic!("a derived seal does not open: {e}"),
    }
});
