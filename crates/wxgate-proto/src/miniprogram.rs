//! The mini program's own cryptography (小程序): open data and the login-state signature.
//!
//! A mini program's front end gets user data from WeChat encrypted for its server
//! (`encryptedData` + `iv`, "开放数据校验与解密"): AES-128-CBC with PKCS#7 padding (16-byte
//! blocks), the key being the user's `session_key` (base64, 16 bytes) that `sns/jscode2session`
//! gave the server, and the plaintext a JSON object whose `watermark.appid` names the mini
//! program it was made for. [`decrypt_open_data`] decrypts and checks that watermark, so data
//! made for another mini program is refused; every failure is an [`OpenDataError`], never a
//! panic. [`encrypt_open_data`] is the inverse (the mock and tests).
//!
//! `wxa/checksession` takes `signature = hmac_sha256(session_key, "")` in hex, the key being the
//! session_key as given by WeChat (its base64 text): [`session_signature`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// Why open data did not decrypt, or is not for this mini program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenDataError {
    /// The session_key is not base64 of 16 bytes.
    #[error("the session_key is not base64 of 16 bytes")]
    InvalidSessionKey,
    /// The `iv` is not base64 of 16 bytes.
    #[error("`iv` is not base64 of 16 bytes")]
    InvalidIv,
    /// `encryptedData` is not base64 of whole 16-byte blocks.
    #[error("`encryptedData` is not base64 of whole 16-byte AES blocks")]
    InvalidCiphertext,
    /// The padding is wrong: another session_key or iv, or damaged data.
    #[error(
        "`encryptedData` does not decrypt with this session_key and iv (bad padding): it was made \
         for another login session, or the iv does not belong to it"
    )]
    BadPadding,
    /// The plaintext is not a JSON object.
    #[error("the decrypted data is not a JSON object")]
    NotJson,
    /// The watermark is missing or names another appid.
    #[error("the data's watermark names another appid than this mini program's (or none)")]
    WatermarkMismatch,
}

/// Decrypts open data (`encryptedData`, `iv`, both base64) with the user's `session_key`
/// (base64) and checks that `watermark.appid` equals `appid`. Returns the JSON object.
pub fn decrypt_open_data(
    session_key: &str,
    encrypted_data: &str,
    iv: &str,
    appid: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, OpenDataError> {
    let key = decode_16(session_key).ok_or(OpenDataError::InvalidSessionKey)?;
    let iv = decode_16(iv).ok_or(OpenDataError::InvalidIv)?;
    let mut buf = STANDARD
        .decode(encrypted_data.trim())
        .map_err(|_| OpenDataError::InvalidCiphertext)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(OpenDataError::InvalidCiphertext);
    }
    let plain = Aes128CbcDec::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| OpenDataError::BadPadding)?;
    let value: serde_json::Value =
        serde_json::from_slice(plain).map_err(|_| OpenDataError::NotJson)?;
    let serde_json::Value::Object(object) = value else {
        return Err(OpenDataError::NotJson);
    };
    let stamped = object
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(serde_json::Value::as_str);
    if stamped != Some(appid) {
        return Err(OpenDataError::WatermarkMismatch);
    }
    Ok(object)
}

/// Encrypts `plaintext` as WeChat does open data: AES-128-CBC, PKCS#7, key and iv base64 of 16
/// bytes each. Returns `encryptedData` in base64.
pub fn encrypt_open_data(
    session_key: &str,
    iv: &str,
    plaintext: &[u8],
) -> Result<String, OpenDataError> {
    let key = decode_16(session_key).ok_or(OpenDataError::InvalidSessionKey)?;
    let iv = decode_16(iv).ok_or(OpenDataError::InvalidIv)?;
    let len = plaintext.len();
    let mut buf = vec![0u8; len + 16 - len % 16];
    buf[..len].copy_from_slice(plaintext);
    // The buffer has room for the padding, so this cannot fail.
    let sealed = Aes128CbcEnc::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
        .map_err(|_| OpenDataError::InvalidCiphertext)?;
    Ok(STANDARD.encode(sealed))
}

/// `hmac_sha256(session_key, "")` in lower-case hex: the `signature` of `wxa/checksession`.
pub fn session_signature(session_key: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(session_key.as_bytes())
        .map(Mac::finalize)
        .map(|out| out.into_bytes().to_vec())
        .unwrap_or_default();
    hex::encode(mac)
}

/// Base64 of exactly 16 bytes.
fn decode_16(text: &str) -> Option<[u8; 16]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example of WeChat's "开放数据校验与解密" document (its sample code in every language).
    const APPID: &str = "wx4f4bc4dec97d474b";
    const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    #[test]
    fn the_official_example_decrypts_to_its_user() {
        let data = decrypt_open_data(SESSION_KEY, ENCRYPTED, IV, APPID).unwrap();
        assert_eq!(data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(data["nickName"], "Band");
        assert_eq!(data["city"], "Guangzhou");
        assert_eq!(data["watermark"]["appid"], APPID);
        assert_eq!(data["watermark"]["timestamp"], 1477314187);
    }

    #[test]
    fn the_official_example_is_refused_for_another_appid() {
        assert_eq!(
            decrypt_open_data(SESSION_KEY, ENCRYPTED, IV, "wx0000000000000000"),
            Err(OpenDataError::WatermarkMismatch)
        );
    }

    #[test]
    fn another_session_key_fails_cleanly() {
        let other = STANDARD.encode([7u8; 16]);
        let err = decrypt_open_data(&other, ENCRYPTED, IV, APPID).unwrap_err();
        assert!(matches!(
            err,
            OpenDataError::BadPadding | OpenDataError::NotJson
        ));
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert_eq!(
            decrypt_open_data("short", ENCRYPTED, IV, APPID),
            Err(OpenDataError::InvalidSessionKey)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, ENCRYPTED, "AAAA", APPID),
            Err(OpenDataError::InvalidIv)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, "AAAA", IV, APPID),
            Err(OpenDataError::InvalidCiphertext)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, "", IV, APPID),
            Err(OpenDataError::InvalidCiphertext)
        );
    }

    #[test]
    fn the_checksession_signature_is_hmac_sha256_of_nothing() {
        // HMAC-SHA256 with key "key" over the empty message (a well-known value).
        assert_eq!(
            session_signature("key"),
            "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"
        );
    }
}
