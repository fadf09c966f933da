//! Any bytes as a mini program's `encryptedData` (with a valid and an invalid session_key and
//! iv), and any bytes as a JSON push, must give Ok or Err, never a panic.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wxgate_proto::miniprogram::decrypt_open_data;
use wxgate_proto::{Envelope, Message};

const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const APPID: &str = "wx4f4bc4dec97d474b";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decrypt_open_data(SESSION_KEY, &STANDARD.encode(data), IV, APPID);
    let _ = decrypt_open_data(SESSION_KEY, &text, IV, APPID);
    let _ = decrypt_open_data(&text, &text, &text, APPID);
    let _ = Message::parse_json(data);
    let _ = Envelope::parse_json(data);
});
