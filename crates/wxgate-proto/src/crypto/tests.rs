//! Unit tests of the parent module, kept in their own file so the module reads short.

use super::tests_support::*;
use super::*;

fn key() -> AesKey {
    AesKey::from_encoding_aes_key(KEY).unwrap()
}

const RANDOM: [u8; 16] = *b"aaaabbbbccccdddd";

/// Whether a sealed reply's `msg_signature` verifies with `token`.
fn signed_with(reply: &EncryptedReply, token: &str) -> bool {
    signature::verify_msg_signature(
        token,
        &reply.timestamp,
        &reply.nonce,
        &reply.encrypt,
        &reply.msg_signature,
    )
}

#[test]
fn official_key_decodes_with_trailing_bits() {
    let k = key();
    assert_eq!(
        hex::encode(k.as_bytes()),
        "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
    );
    assert_eq!(hex::encode(k.iv()), "69b71d79f8218a39259a7a29aabb2dba");
    assert_eq!(format!("{k:?}"), "AesKey(<redacted>)");
}

#[test]
fn bad_keys_are_rejected() {
    for bad in [
        "",
        "abc",
        &KEY[..42],
        &format!("{KEY}A"),
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF=",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEé",
    ] {
        assert_eq!(
            AesKey::from_encoding_aes_key(bad),
            Err(CryptoError::InvalidKey),
            "{bad}"
        );
    }
    assert_eq!(CryptoError::InvalidKey.code(), -40004);
}

#[test]
fn only_canonical_replies_have_a_compact_form() {
    let sealed = seal_reply_with_random(
        &key(),
        "token",
        APPID,
        SAMPLE_REPLY,
        Some(1_409_304_348),
        Some("1320562132"),
        Some(RANDOM),
    );
    let compact = sealed.to_compact().unwrap();
    // 1 + (1 + 10) + (1 + 10) + 20 + ciphertext, against the base64 and hex of the XML.
    assert_eq!(
        compact.len(),
        43 + CIPHER_ENGINE.decode(&sealed.encrypt).unwrap().len()
    );
    assert_eq!(
        EncryptedReply::from_compact(&compact).unwrap().to_xml(),
        sealed.to_xml()
    );
    let variant = |f: &dyn Fn(&mut EncryptedReply)| {
        let mut r = sealed.clone();
        f(&mut r);
        r.to_compact()
    };
    assert_eq!(variant(&|r| r.msg_signature.make_ascii_uppercase()), None);
    assert_eq!(variant(&|r| r.msg_signature.push('0')), None);
    assert!(variant(&|r| r.encrypt = "AQ==".into()).is_some());
    assert_eq!(variant(&|r| r.encrypt = "AQ".into()), None);
    assert_eq!(variant(&|r| r.encrypt = "AR==".into()), None);
    assert_eq!(variant(&|r| r.encrypt.insert(4, '\n')), None);
    assert_eq!(variant(&|r| r.nonce = "n".repeat(256)), None);
    assert!(variant(&|r| r.nonce = "n".repeat(255)).is_some());
    // Not a compact reply: other versions, truncations.
    assert_eq!(EncryptedReply::from_compact(&[]), None);
    assert_eq!(EncryptedReply::from_compact(&compact[..30]), None);
    let mut other_version = compact.clone();
    other_version[0] = 2;
    assert_eq!(EncryptedReply::from_compact(&other_version), None);
}

#[test]
fn v10_wxjava_encrypt_chinese_text() {
    let out = encrypt(&key(), "我是中文abcd123".as_bytes(), APPID, Some(RANDOM));
    assert_eq!(
        out,
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    );
    let d = decrypt(&key(), &out, Some(APPID)).unwrap();
    assert_eq!(d.message_str().unwrap(), "我是中文abcd123");
    assert_eq!(d.message.len(), 19);
    assert_eq!(&d.random, &RANDOM);
    assert_eq!(d.appid, APPID);
}

#[test]
fn v11_wxjava_encrypt_official_sample_reply() {
    let out = encrypt(&key(), SAMPLE_REPLY.as_bytes(), APPID, Some(RANDOM));
    assert_eq!(SAMPLE_REPLY.len(), 435);
    assert_eq!(out, V11_ENCRYPT);
    assert_eq!(CIPHER_ENGINE.decode(&out).unwrap().len(), 480);
    let d = decrypt(&key(), V11_ENCRYPT, Some(APPID)).unwrap();
    assert_eq!(d.message_str().unwrap(), SAMPLE_REPLY);
}

#[test]
fn v11b_seal_reply_reproduces_the_vector() {
    let sealed = seal_reply_with_random(
        &key(),
        "pamtest",
        APPID,
        SAMPLE_REPLY,
        Some(1409304348),
        Some("xxxxxx"),
        Some(RANDOM),
    );
    assert_eq!(sealed.encrypt, V11_ENCRYPT);
    assert_eq!(
        sealed.msg_signature,
        "ea88b765074e41eb8c7a75b449db34fa2fd560d5"
    );
    assert_eq!(
        sealed.to_xml(),
        format!(
            "<xml><Encrypt><![CDATA[{V11_ENCRYPT}]]></Encrypt>\
                 <MsgSignature><![CDATA[ea88b765074e41eb8c7a75b449db34fa2fd560d5]]></MsgSignature>\
                 <TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
        )
    );
    // And the official decrypt side: wrap the ciphertext the way the sample does.
    let body = format!(
            "<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[{V11_ENCRYPT}]]></Encrypt></xml>"
        );
    let ring = KeyRing::new(key(), None);
    let opened = open_push(
        &ring,
        "pamtest",
        "1409304348",
        "xxxxxx",
        "ea88b765074e41eb8c7a75b449db34fa2fd560d5",
        body.as_bytes(),
        Some(APPID),
    )
    .unwrap();
    assert_eq!(opened.plaintext, SAMPLE_REPLY);
    assert_eq!(opened.to_user.as_deref(), Some("toUser"));
    assert_eq!(opened.key_used, KeyUsed::Current);
}

const V12_ENCRYPT: &str = "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA==";
const V12_PLAIN: &str = "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName><FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>";

#[test]
fn v12_easywechat_decrypt() {
    assert!(signature::verify_msg_signature(
        "pamtest",
        "1458300676",
        "260774613",
        V12_ENCRYPT,
        "4f3ad57b6989f09f4eb392acce4f9e93942ed890"
    ));
    let d = decrypt(&key(), V12_ENCRYPT, Some(APPID)).unwrap();
    assert_eq!(d.message_str().unwrap(), V12_PLAIN);
    assert_eq!(&d.random, b"d43123b161a4ba84");
    assert_eq!(d.appid, APPID);
    // Same ciphertext, wrong receive id: must fail.
    let err = decrypt(&key(), V12_ENCRYPT, Some("invalid appid")).unwrap_err();
    assert_eq!(err, CryptoError::AppIdMismatch);
    assert_eq!(err.code(), -40005);
    // No appid check.
    assert_eq!(decrypt(&key(), V12_ENCRYPT, None).unwrap().appid, APPID);
    // Through open_push, as a push body.
    let body = format!(
            "<xml><ToUserName><![CDATA[asdasdasd]]></ToUserName><Encrypt><![CDATA[{V12_ENCRYPT}]]></Encrypt></xml>"
        );
    let ring = KeyRing::new(key(), None);
    let opened = open_push(
        &ring,
        "pamtest",
        "1458300676",
        "260774613",
        "4f3ad57b6989f09f4eb392acce4f9e93942ed890",
        body.as_bytes(),
        Some(APPID),
    )
    .unwrap();
    assert_eq!(opened.plaintext, V12_PLAIN);
    assert_eq!(
        open_push(
            &ring,
            "pamtest",
            "1458300676",
            "260774613",
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890",
            body.as_bytes(),
            Some("invalid appid"),
        ),
        Err(CryptoError::AppIdMismatch)
    );
}

const V13_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const V13_ID: &str = "wx49f0ab532d5d035a";

#[test]
fn v13a_wecom_echostr() {
    let echostr =
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
    assert!(signature::verify_msg_signature(
        "123456",
        "1411443780",
        "437374425",
        echostr,
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    ));
    // wechatpy's failing variant: nonce off by one.
    assert!(!signature::verify_msg_signature(
        "123456",
        "1411443780",
        "437374424",
        echostr,
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    ));
    let k = AesKey::from_encoding_aes_key(V13_KEY).unwrap();
    let d = decrypt(&k, echostr, Some(V13_ID)).unwrap();
    assert_eq!(d.message_str().unwrap(), "5927782489442352469");
}

#[test]
fn v13b_wecom_encrypt_reply() {
    let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
    let k = AesKey::from_encoding_aes_key(V13_KEY).unwrap();
    let sealed = seal_reply_with_random(
        &k,
        "123456",
        V13_ID,
        reply,
        Some(1411525903),
        Some("461056294"),
        Some(*b"1234567890123456"),
    );
    assert_eq!(sealed.encrypt, "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3");
    assert_eq!(
        sealed.msg_signature,
        "407518b7649e86ef23978113f92d27afa9296533"
    );
    assert_eq!(sealed.timestamp, "1411525903");
    assert_eq!(sealed.nonce, "461056294");
}

#[test]
fn v13c_wecom_decrypt_message() {
    let body = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>";
    let ring = KeyRing::from_encoding_aes_keys(V13_KEY, None).unwrap();
    let opened = open_push(
        &ring,
        "123456",
        "1411525903",
        "461056294",
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        body.as_bytes(),
        Some(V13_ID),
    )
    .unwrap();
    let fields = crate::xml::Fields::parse_document(opened.plaintext.as_bytes())
        .unwrap()
        .1;
    assert_eq!(fields.text("Content"), Some("test"));
    assert_eq!(fields.text("FromUserName"), Some("messense"));
    assert_eq!(opened.appid, V13_ID);
}

#[test]
fn open_push_checks_the_signature_before_decrypting() {
    let ring = KeyRing::new(key(), None);
    let body = format!("<xml><Encrypt><![CDATA[{V11_ENCRYPT}]]></Encrypt></xml>");
    let err = open_push(
        &ring,
        "pamtest",
        "1409304348",
        "xxxxxy",
        "ea88b765074e41eb8c7a75b449db34fa2fd560d5",
        body.as_bytes(),
        None,
    )
    .unwrap_err();
    assert_eq!(err, CryptoError::InvalidSignature);
    assert_eq!(err.code(), -40001);
    let err = open_push(&ring, "t", "1", "n", "s", b"<xml>", None).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidXml(_)));
    assert_eq!(err.code(), -40002);
    // Compatible mode: plaintext fields next to Encrypt; Encrypt is what counts.
    let body = format!(
            "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[u]]></FromUserName>\
             <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[forged]]></Content>\
             <MsgId>1</MsgId><Encrypt><![CDATA[{V11_ENCRYPT}]]></Encrypt></xml>"
        );
    let opened = open_push(
        &ring,
        "pamtest",
        "1409304348",
        "xxxxxx",
        "ea88b765074e41eb8c7a75b449db34fa2fd560d5",
        body.as_bytes(),
        Some(APPID),
    )
    .unwrap();
    assert_eq!(opened.plaintext, SAMPLE_REPLY);
}

#[test]
fn keyring_falls_back_to_the_previous_key_and_says_so() {
    let old = key();
    let new = AesKey::from_encoding_aes_key(V13_KEY).unwrap();
    let ring = KeyRing::new(new.clone(), Some(old.clone()));
    let under_old = encrypt(&old, b"<xml/>", APPID, None);
    let under_new = encrypt(&new, b"<xml/>", APPID, None);
    let (d, used) = ring.decrypt(&under_old, Some(APPID)).unwrap();
    assert_eq!(used, KeyUsed::Previous);
    assert_eq!(d.message, b"<xml/>");
    assert_eq!(ring.key(used), &old);
    let (_, used) = ring.decrypt(&under_new, Some(APPID)).unwrap();
    assert_eq!(used, KeyUsed::Current);
    assert_eq!(ring.key(used), &new);
    let third = AesKey::from_bytes([7u8; 32]);
    let under_third = encrypt(&third, b"<xml/>", APPID, None);
    assert!(ring.decrypt(&under_third, Some(APPID)).is_err());
    let single = KeyRing::new(new.clone(), None);
    assert!(single.decrypt(&under_old, Some(APPID)).is_err());
    assert_eq!(single.key(KeyUsed::Previous), &new);
}

#[test]
fn padding_is_pkcs7_to_32() {
    for len in 0..100 {
        let mut buf = vec![0xAB; len];
        pkcs7_pad(&mut buf);
        assert_eq!(buf.len() % 32, 0);
        let pad = buf.len() - len;
        assert!((1..=32).contains(&pad));
        assert!(buf[len..].iter().all(|&b| usize::from(b) == pad));
        assert_eq!(pkcs7_unpad(&buf).unwrap().len(), len);
    }
}

#[test]
fn bad_padding_and_lengths_are_errors() {
    assert_eq!(pkcs7_unpad(&[]), Err(CryptoError::InvalidPadding));
    assert_eq!(pkcs7_unpad(&[0u8; 32]), Err(CryptoError::InvalidPadding));
    assert_eq!(pkcs7_unpad(&[33u8; 64]), Err(CryptoError::InvalidPadding));
    assert_eq!(pkcs7_unpad(&[5u8; 3]), Err(CryptoError::InvalidPadding));
    let mut b = vec![4u8; 32];
    b[29] = 3;
    assert_eq!(pkcs7_unpad(&b), Err(CryptoError::InvalidPadding));

    let k = key();
    let raw_encrypt = |plain: &[u8]| {
        let mut buf = plain.to_vec();
        let n = buf.len();
        let c = Aes256CbcEnc::new(k.as_bytes().into(), &k.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
            .unwrap()
            .to_vec();
        CIPHER_ENGINE.encode(c)
    };
    // Pad byte 0.
    assert_eq!(
        decrypt(&k, &raw_encrypt(&[0u8; 32]), None),
        Err(CryptoError::InvalidPadding)
    );
    // Pad byte > 32.
    assert_eq!(
        decrypt(&k, &raw_encrypt(&[40u8; 64]), None),
        Err(CryptoError::InvalidPadding)
    );
    // Valid padding but shorter than random + length.
    let mut short = vec![1u8; 10];
    pkcs7_pad(&mut short);
    assert_eq!(
        decrypt(&k, &raw_encrypt(&short), None),
        Err(CryptoError::InvalidLength)
    );
    // Length prefix beyond the buffer.
    let mut huge = vec![0u8; 16];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(b"abc");
    pkcs7_pad(&mut huge);
    let err = decrypt(&k, &raw_encrypt(&huge), None).unwrap_err();
    assert_eq!(err, CryptoError::InvalidLength);
    assert_eq!(err.code(), -40008);
    // Non-UTF-8 appid.
    let mut bad_appid = vec![0u8; 16];
    bad_appid.extend_from_slice(&0u32.to_be_bytes());
    bad_appid.push(0xff);
    pkcs7_pad(&mut bad_appid);
    assert_eq!(
        decrypt(&k, &raw_encrypt(&bad_appid), None),
        Err(CryptoError::InvalidUtf8)
    );
    // Non-UTF-8 message is fine as bytes, an error as text.
    let enc = encrypt(&k, &[0xff, 0xfe], APPID, None);
    let d = decrypt(&k, &enc, Some(APPID)).unwrap();
    assert_eq!(d.message_str(), Err(CryptoError::InvalidUtf8));
}

#[test]
fn base64_and_block_errors() {
    let k = key();
    let err = decrypt(&k, "not base64!", None).unwrap_err();
    assert_eq!(err, CryptoError::InvalidBase64);
    assert_eq!(err.code(), -40010);
    assert_eq!(
        decrypt(&k, "", None),
        Err(CryptoError::InvalidCiphertextLength)
    );
    assert_eq!(
        decrypt(&k, "AAAA", None),
        Err(CryptoError::InvalidCiphertextLength)
    );
    assert_eq!(CryptoError::InvalidCiphertextLength.code(), -40007);
    // Unpadded base64 is accepted too.
    let enc = encrypt(&k, b"x", APPID, None);
    let unpadded = enc.trim_end_matches('=');
    assert_eq!(decrypt(&k, unpadded, Some(APPID)).unwrap().message, b"x");
}

#[test]
fn seal_reply_makes_fresh_nonce_and_timestamp() {
    let k = key();
    let a = seal_reply(&k, "tok", APPID, "<xml/>", None, None);
    let b = seal_reply(&k, "tok", APPID, "<xml/>", None, None);
    assert_ne!(a.encrypt, b.encrypt);
    assert_eq!(a.nonce.len(), 10);
    assert!(a.nonce.bytes().all(|c| c.is_ascii_digit()));
    assert!(a.timestamp.parse::<u64>().unwrap() > 1_700_000_000);
    assert!(signed_with(&a, "tok"));
    // The rendered reply opens again with the same parameters.
    let ring = KeyRing::new(k, None);
    let opened = open_push(
        &ring,
        "tok",
        &a.timestamp,
        &a.nonce,
        &a.msg_signature,
        a.to_xml().as_bytes(),
        Some(APPID),
    )
    .unwrap();
    assert_eq!(opened.plaintext, "<xml/>");
}

#[test]
fn a_derived_seal_is_the_same_for_the_same_push_and_unrelated_for_another() {
    let k = key();
    let (push, xml, ts) = (
        &b"push:main:id:6054768590064713728"[..],
        "<xml>回复</xml>",
        1_407_743_424,
    );
    let a = seal_reply_derived(&k, "tok", APPID, xml, ts, push);
    // Computed independently (Python's hmac module): HMAC-SHA256 keyed with the AES key
    // over the length-prefixed label, push and reply, then the timestamp.
    assert_eq!(a.nonce, "5577629995");
    assert_eq!(a.timestamp, "1407743424");
    let opened = decrypt(&k, &a.encrypt, Some(APPID)).unwrap();
    assert_eq!(
        hex::encode(opened.random),
        "2a00a5f8a9c35f6ea574bc3e5502e5a0"
    );
    assert_eq!(opened.message_str().unwrap(), xml);
    assert!(signed_with(&a, "tok"));
    assert_eq!(a, seal_reply_derived(&k, "tok", APPID, xml, ts, push));
    // Another push, reply, time or key: another prefix and nonce.
    let others = [
        seal_reply_derived(
            &k,
            "tok",
            APPID,
            xml,
            ts,
            b"push:main:id:6054768590064713729",
        ),
        seal_reply_derived(&k, "tok", APPID, "<xml>回复 </xml>", ts, push),
        seal_reply_derived(&k, "tok", APPID, xml, ts + 1, push),
        seal_reply_derived(&AesKey::from_bytes([3; 32]), "tok", APPID, xml, ts, push),
    ];
    for other in &others {
        assert_ne!(other.nonce, a.nonce);
        assert_ne!(other.encrypt, a.encrypt);
    }
}
