//! Any string as `Encrypt` (and any bytes as a raw key) must give Ok or Err, never a panic.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wxgate_proto::crypto::{decrypt, AesKey, KeyRing};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = AesKey::from_encoding_aes_key(KEY) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let _ = decrypt(&key, &text, None);
    let _ = decrypt(&key, &text, Some("wxb11529c136998cb6"));
    // The first 43 bytes as an EncodingAESKey candidate.
    let _ = AesKey::from_encoding_aes_key(&text.chars().take(43).collect::<String>());
    // Treat the input as raw ciphertext too, so the padding/length checks see every shape
    // rather than only what survives base64 decoding.
    let ring = KeyRing::new(key, Some(AesKey::from_bytes([0x5a; 32])));
    let _ = ring.decrypt(&STANDARD.encode(data), Some("wxb11529c136998cb6"));
});
