//! Property tests of the mini program's protocol: open data round-trips for any content and
//! any key, is refused for another appid's watermark and for a broken padding, and no input
//! makes the decryption or the JSON push reader panic. (Beside `properties.rs`, which is at
//! its size limit.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use proptest::prelude::*;
use wxgate_proto::json_push;
use wxgate_proto::miniprogram::{decrypt_open_data, encrypt_open_data, OpenDataError};
use wxgate_proto::{Envelope, Message};

fn b64_16() -> impl Strategy<Value = String> {
    any::<[u8; 16]>().prop_map(|b| STANDARD.encode(b))
}

fn appid() -> impl Strategy<Value = String> {
    "wx[a-z0-9]{16}"
}

/// Open data as WeChat makes it: some user fields and the watermark.
fn open_data(appid: &str, fields: &[(String, String)]) -> String {
    let mut object = serde_json::Map::new();
    for (k, v) in fields {
        object.insert(format!("f_{k}"), serde_json::Value::from(v.as_str()));
    }
    object.insert(
        "watermark".into(),
        serde_json::json!({"appid": appid, "timestamp": 1_700_000_000}),
    );
    serde_json::Value::Object(object).to_string()
}

proptest! {
    #[test]
    fn open_data_round_trips(
        key in b64_16(),
        iv in b64_16(),
        appid in appid(),
        fields in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
    ) {
        let plain = open_data(&appid, &fields);
        let sealed = encrypt_open_data(&key, &iv, plain.as_bytes()).unwrap();
        let opened = decrypt_open_data(&key, &sealed, &iv, &appid).unwrap();
        let expected: serde_json::Value = serde_json::from_str(&plain).unwrap();
        prop_assert_eq!(serde_json::Value::Object(opened), expected);
    }

    #[test]
    fn open_data_of_another_appid_is_refused(
        key in b64_16(),
        iv in b64_16(),
        made_for in appid(),
        asked_by in appid(),
    ) {
        prop_assume!(made_for != asked_by);
        let plain = open_data(&made_for, &[]);
        let sealed = encrypt_open_data(&key, &iv, plain.as_bytes()).unwrap();
        prop_assert_eq!(
            decrypt_open_data(&key, &sealed, &iv, &asked_by),
            Err(OpenDataError::WatermarkMismatch)
        );
    }

    #[test]
    fn a_broken_padding_is_refused(
        key in any::<[u8; 16]>(),
        iv in any::<[u8; 16]>(),
        blocks in prop::collection::vec(any::<[u8; 16]>(), 1..4),
        last in prop_oneof![Just(0u8), 17u8..=255, 2u8..=16],
    ) {
        // The last plaintext byte is no PKCS#7 padding: 0, over 16, or a count whose byte
        // before it differs.
        let mut plain: Vec<u8> = blocks.concat();
        let n = plain.len();
        plain[n - 1] = last;
        if (2..=16).contains(&last) {
            plain[n - 2] = last ^ 0x80;
        }
        let mut buf = plain.clone();
        let len = buf.len();
        let sealed = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap()
            .to_vec();
        prop_assert_eq!(
            decrypt_open_data(
                &STANDARD.encode(key),
                &STANDARD.encode(sealed),
                &STANDARD.encode(iv),
                "wx0000000000000000"
            ),
            Err(OpenDataError::BadPadding)
        );
    }

    #[test]
    fn open_data_decryption_never_panics(
        key in any::<String>(),
        data in any::<String>(),
        iv in any::<String>(),
        raw in prop::collection::vec(any::<u8>(), 0..200),
        good_key in b64_16(),
        good_iv in b64_16(),
    ) {
        let _ = decrypt_open_data(&key, &data, &iv, "wx4f4bc4dec97d474b");
        // Well-formed key and iv over arbitrary ciphertext: the padding and JSON checks see
        // every shape.
        let _ = decrypt_open_data(&good_key, &STANDARD.encode(&raw), &good_iv, "wx4f4bc4dec97d474b");
    }

    #[test]
    fn json_pushes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300), text in any::<String>()) {
        let _ = Message::parse_json(&raw);
        let _ = Envelope::parse_json(&raw);
        let _ = json_push::parse_fields(text.as_bytes());
    }
}
