//! A whole encrypted push: body, signature and timestamp all attacker-controlled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate_proto::signature::msg_signature;
use wxgate_proto::{open_push, AesKey, Envelope, KeyRing};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = AesKey::from_encoding_aes_key(KEY) else {
        return;
    };
    let ring = KeyRing::new(key, None);
    // A forged signature: must be refused without decrypting.
    let _ = open_push(&ring, "token", "1", "n", "0000", data, Some("wxappid"));
    // A correctly signed envelope, so the decryption path sees fuzzed ciphertexts.
    if let Ok(envelope) = Envelope::parse(data) {
        let sig = msg_signature("token", "1", "n", &envelope.encrypt);
        let _ = open_push(&ring, "token", "1", "n", &sig, data, None);
    }
});
