//! WeChat's message encryption (WXBizMsgCrypt), written again for the mock.
//!
//! The mock encrypts what it pushes to a third-party platform (`component_verify_ticket`,
//! `authorized`, `unauthorized` …) exactly as WeChat does, and tests decrypt it. It is written
//! here rather than taken from `wxgate-proto` so that the mock stays independent of the
//! gateway: a mistake shared by both would make a wrong gateway pass its tests. The official
//! vectors below pin it to WeChat's format: AES-256-CBC with the key
//! `base64(EncodingAESKey + "=")` and the IV its first 16 bytes, over
//! `random(16) || u32 BE length || msg || receive id`, PKCS#7-padded to **32**-byte blocks,
//! then base64; `msg_signature` is the SHA-1 of the sorted concatenation of token, timestamp,
//! nonce and `Encrypt`. Nothing here panics on any input.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;
use sha1::{Digest, Sha1};

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// WXBizMsgCrypt pads to the AES key length, not to the AES block size.
const PAD_BLOCK: usize = 32;

/// The 43 characters of an EncodingAESKey carry 258 bits: the last two are not part of the
/// key and strict base64 decoders reject them, so trailing bits are allowed.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a key could not be read or a ciphertext not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters.
    InvalidKey,
    /// `Encrypt` is not base64 of a whole number of AES blocks.
    InvalidCiphertext,
    /// The plaintext's padding or length field is inconsistent (wrong key, or tampered).
    InvalidPlaintext,
    /// The plaintext ends with another receive id than expected.
    ReceiveIdMismatch,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::InvalidKey => "the EncodingAESKey must be 43 base64 characters",
            CryptoError::InvalidCiphertext => "Encrypt is not base64 of whole AES blocks",
            CryptoError::InvalidPlaintext => "the decrypted plaintext is malformed",
            CryptoError::ReceiveIdMismatch => "the plaintext names another receive id",
        })
    }
}

impl std::error::Error for CryptoError {}

/// The 32-byte AES key of an EncodingAESKey.
pub fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::InvalidKey);
    }
    let bytes = KEY_ENGINE
        .decode(format!("{encoding_aes_key}="))
        .map_err(|_| CryptoError::InvalidKey)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| CryptoError::InvalidKey)
}

/// `Encrypt` for `msg` addressed to `receive_id` (the component appid for platform pushes),
/// with fresh random bytes in front.
pub fn encrypt(key: &[u8; 32], msg: &str, receive_id: &str) -> String {
    let mut random = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut random);
    encrypt_with_random(key, &random, msg, receive_id)
}

/// [`encrypt`] with the 16 leading bytes given (deterministic, for test vectors).
pub fn encrypt_with_random(
    key: &[u8; 32],
    random: &[u8; 16],
    msg: &str,
    receive_id: &str,
) -> String {
    let msg_len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(20 + msg.len() + receive_id.len() + PAD_BLOCK);
    buf.extend_from_slice(random);
    buf.extend_from_slice(&msg_len.to_be_bytes());
    buf.extend_from_slice(msg.as_bytes());
    buf.extend_from_slice(receive_id.as_bytes());
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
    // `pad` is 1..=32, so it fits a byte.
    buf.resize(buf.len() + pad, pad as u8);
    let len = buf.len();
    let iv = &key[..16];
    let cipher = Enc::new(key.into(), iv.into());
    // A whole number of blocks: NoPadding cannot fail here.
    match cipher.encrypt_padded_mut::<NoPadding>(&mut buf, len) {
        Ok(ct) => B64.encode(ct),
        Err(_) => String::new(),
    }
}

/// Opens `Encrypt`: the message and the receive id it ends with.
pub fn decrypt(key: &[u8; 32], encrypt: &str) -> Result<(String, String), CryptoError> {
    let mut buf = B64
        .decode(encrypt.trim())
        .map_err(|_| CryptoError::InvalidCiphertext)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CryptoError::InvalidCiphertext);
    }
    let iv = &key[..16];
    let plain = Dec::new(key.into(), iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::InvalidCiphertext)?;
    let pad = usize::from(*plain.last().ok_or(CryptoError::InvalidPlaintext)?);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::InvalidPlaintext);
    }
    let body = &plain[..plain.len() - pad];
    let len_bytes: [u8; 4] = body
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .ok_or(CryptoError::InvalidPlaintext)?;
    let msg_len = usize::try_from(u32::from_be_bytes(len_bytes))
        .map_err(|_| CryptoError::InvalidPlaintext)?;
    let msg_end = 20usize
        .checked_add(msg_len)
        .filter(|end| *end <= body.len())
        .ok_or(CryptoError::InvalidPlaintext)?;
    let msg = std::str::from_utf8(&body[20..msg_end]).map_err(|_| CryptoError::InvalidPlaintext)?;
    let id = std::str::from_utf8(&body[msg_end..]).map_err(|_| CryptoError::InvalidPlaintext)?;
    Ok((msg.to_owned(), id.to_owned()))
}

/// [`decrypt`], requiring the plaintext to end with `receive_id`.
pub fn decrypt_for(key: &[u8; 32], encrypt: &str, receive_id: &str) -> Result<String, CryptoError> {
    let (msg, id) = decrypt(key, encrypt)?;
    if id != receive_id {
        return Err(CryptoError::ReceiveIdMismatch);
    }
    Ok(msg)
}

/// SHA-1 (hex) of the lexicographically sorted concatenation of `parts`.
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `msg_signature`: sha1(sort(token, timestamp, nonce, encrypt)).
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce, encrypt])
}

/// `signature` of a push URL: sha1(sort(token, timestamp, nonce)).
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // The vectors of /work/shared/WECHAT.md §2 (official samples, WxJava, EasyWeChat, wechatpy).
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APPID: &str = "wxb11529c136998cb6";

    #[test]
    fn the_encoding_aes_key_decodes_to_the_official_key() {
        let key = aes_key(KEY).unwrap();
        assert_eq!(
            hex::encode(key),
            "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
        );
        assert_eq!(aes_key("short"), Err(CryptoError::InvalidKey));
        assert_eq!(aes_key(&"!".repeat(43)), Err(CryptoError::InvalidKey));
    }

    #[test]
    fn encryption_reproduces_wxjava_vector_v10() {
        let key = aes_key(KEY).unwrap();
        let encrypt = encrypt_with_random(&key, b"aaaabbbbccccdddd", "我是中文abcd123", APPID);
        assert_eq!(
            encrypt,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(
            decrypt_for(&key, &encrypt, APPID).unwrap(),
            "我是中文abcd123"
        );
    }

    #[test]
    fn decryption_and_signature_reproduce_easywechat_vector_v12() {
        let key = aes_key(KEY).unwrap();
        let encrypt = "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA==";
        assert_eq!(
            msg_signature("pamtest", "1458300676", "260774613", encrypt),
            "4f3ad57b6989f09f4eb392acce4f9e93942ed890"
        );
        let msg = decrypt_for(&key, encrypt, APPID).unwrap();
        assert_eq!(
            msg,
            "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName><FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>"
        );
        assert_eq!(
            decrypt_for(&key, encrypt, "invalid appid"),
            Err(CryptoError::ReceiveIdMismatch)
        );
    }

    #[test]
    fn the_wecom_flavour_vector_v13_decrypts_with_its_signature() {
        let key = aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap();
        let echostr = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
        assert_eq!(
            msg_signature("123456", "1411443780", "437374425", echostr),
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
        );
        assert_eq!(
            decrypt_for(&key, echostr, "wx49f0ab532d5d035a").unwrap(),
            "5927782489442352469"
        );
    }

    #[test]
    fn url_signatures_match_the_official_vectors() {
        assert_eq!(
            signature("AAAAA", "1714036504", "1514711492"),
            "f464b24fc39322e44b38aa78f5edd27bd1441696"
        );
        assert_eq!(
            signature("test", "1410685589", "test"),
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        );
    }

    #[test]
    fn random_encryptions_round_trip_and_garbage_is_refused() {
        let key = aes_key(KEY).unwrap();
        for msg in ["", "a", &"x".repeat(12), &"长".repeat(100)] {
            let encrypt = encrypt(&key, msg, "wx0123456789abcdef");
            let (back, id) = decrypt(&key, &encrypt).unwrap();
            assert_eq!((back.as_str(), id.as_str()), (msg, "wx0123456789abcdef"));
            assert_eq!(B64.decode(&encrypt).unwrap().len() % PAD_BLOCK, 0);
        }
        assert_eq!(
            decrypt(&key, "not base64!"),
            Err(CryptoError::InvalidCiphertext)
        );
        assert_eq!(decrypt(&key, "AAAA"), Err(CryptoError::InvalidCiphertext));
        let other = aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap();
        let encrypt = encrypt(&key, "hello", "wx1");
        assert!(decrypt(&other, &encrypt).is_err());
    }
}
