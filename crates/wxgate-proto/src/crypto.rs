//! Message encryption of compatible and safe mode, byte-for-byte as WeChat's WXBizMsgCrypt.
//!
//! WeChat encrypts each push with the account's EncodingAESKey: AES-256-CBC with the IV
//! taken from the key's first 16 bytes, over `random(16) || u32 BE length || msg || appid`
//! padded with PKCS#7 to a **32**-byte block (not 16), then base64. This module implements
//! that exactly (it reproduces the official vectors), plus the two-key [`KeyRing`] the FAQ
//! asks for during a key rotation, and the envelope helpers that open a push (check
//! `msg_signature` in constant time *before* decrypting, so there is no padding oracle) and
//! seal a reply (the sealing lives in the `sealed_reply` submodule, re-exported here). Every
//! function returns a typed [`CryptoError`] — mapped to the official error codes — for any
//! input and never panics.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::message::Envelope;
use crate::signature;
use crate::xml::ParseError;

mod sealed_reply;

pub use sealed_reply::{seal_reply, seal_reply_derived, seal_reply_with_random, EncryptedReply};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// PKCS#7 block size used by WXBizMsgCrypt (the AES key length, not the AES block size).
pub const PAD_BLOCK: usize = 32;

/// Decodes the EncodingAESKey: WeChat's 43 characters encode 258 bits, so the last
/// character carries 2 bits that are not part of the key; strict decoders reject that.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding for `Encrypt`; decoding also accepts unpadded input.
const CIPHER_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why encryption, decryption or opening a push failed.
///
/// [`CryptoError::code`] gives the matching official WXBizMsgCrypt error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// `msg_signature` does not match (-40001).
    #[error("msg_signature does not match")]
    InvalidSignature,
    /// The push body is not a valid envelope (-40002).
    #[error("invalid encrypted envelope: {0}")]
    InvalidXml(#[from] ParseError),
    /// The EncodingAESKey is not 43 characters of `[A-Za-z0-9]` (-40004).
    #[error("EncodingAESKey must be 43 characters of A-Z, a-z, 0-9")]
    InvalidKey,
    /// The plaintext names a different appid than expected (-40005).
    #[error("appid in the message does not match")]
    AppIdMismatch,
    /// The ciphertext is empty or not a whole number of AES blocks (-40007).
    #[error("ciphertext length is not a positive multiple of 16")]
    InvalidCiphertextLength,
    /// The PKCS#7 padding is wrong — usually the wrong key (-40007).
    #[error("invalid padding after decryption (wrong key?)")]
    InvalidPadding,
    /// The length prefix does not fit the decrypted buffer (-40008).
    #[error("invalid message length in decrypted buffer")]
    InvalidLength,
    /// The message or appid is not UTF-8 where text was required (-40008).
    #[error("decrypted message is not valid UTF-8")]
    InvalidUtf8,
    /// `Encrypt` is not valid base64 (-40010).
    #[error("ciphertext is not valid base64")]
    InvalidBase64,
}

impl CryptoError {
    /// The official WXBizMsgCrypt error code (`-40001` … `-40011`).
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::InvalidSignature => -40001,
            CryptoError::InvalidXml(_) => -40002,
            CryptoError::InvalidKey => -40004,
            CryptoError::AppIdMismatch => -40005,
            CryptoError::InvalidCiphertextLength | CryptoError::InvalidPadding => -40007,
            CryptoError::InvalidLength | CryptoError::InvalidUtf8 => -40008,
            CryptoError::InvalidBase64 => -40010,
        }
    }
}

/// A 32-byte AES key derived from an EncodingAESKey. `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

impl AesKey {
    /// Decodes the 43-character EncodingAESKey from the WeChat console:
    /// `base64_decode(key + "=")`, trailing bits allowed.
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<AesKey, CryptoError> {
        if encoding_aes_key.len() != 43
            || !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(CryptoError::InvalidKey);
        }
        let mut padded = String::with_capacity(44);
        padded.push_str(encoding_aes_key);
        padded.push('=');
        let bytes = KEY_ENGINE
            .decode(padded)
            .map_err(|_| CryptoError::InvalidKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        Ok(AesKey(key))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> AesKey {
        AesKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The IV: the first 16 bytes of the key.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The 16 random bytes that prefix the plaintext.
    pub random: [u8; 16],
    /// The message bytes (UTF-8 XML for WeChat pushes).
    pub message: Vec<u8>,
    /// The appid (WeCom: corp id / receive id) that trails the message.
    pub appid: String,
}

impl Decrypted {
    /// The message as text.
    pub fn message_str(&self) -> Result<&str, CryptoError> {
        std::str::from_utf8(&self.message).map_err(|_| CryptoError::InvalidUtf8)
    }

    /// The message as an owned string.
    pub fn into_message_string(self) -> Result<String, CryptoError> {
        String::from_utf8(self.message).map_err(|_| CryptoError::InvalidUtf8)
    }
}

/// Appends PKCS#7 padding to a multiple of [`PAD_BLOCK`] (always 1..=32 bytes).
pub fn pkcs7_pad(buf: &mut Vec<u8>) {
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
    // pad is in 1..=32, so it fits a byte.
    buf.resize(buf.len() + pad, pad as u8);
}

/// Strips PKCS#7 padding (pad value 1..=32, every pad byte equal); errors otherwise.
///
/// Also accepts padding to 16-byte blocks, which is a subset.
pub fn pkcs7_unpad(buf: &[u8]) -> Result<&[u8], CryptoError> {
    let Some(&last) = buf.last() else {
        return Err(CryptoError::InvalidPadding);
    };
    let pad = usize::from(last);
    if pad == 0 || pad > PAD_BLOCK || pad > buf.len() {
        return Err(CryptoError::InvalidPadding);
    }
    let (body, padding) = buf.split_at(buf.len() - pad);
    if padding.iter().any(|&b| b != last) {
        return Err(CryptoError::InvalidPadding);
    }
    Ok(body)
}

/// Encrypts `msg` for `appid` and returns the base64 `Encrypt` value.
///
/// `random` fixes the 16-byte prefix (tests, vectors); `None` draws it from the OS-seeded
/// thread RNG, as WeChat does.
pub fn encrypt(key: &AesKey, msg: &[u8], appid: &str, random: Option<[u8; 16]>) -> String {
    let random = random.unwrap_or_else(random16);
    let mut buf = Vec::with_capacity(16 + 4 + msg.len() + appid.len() + PAD_BLOCK);
    buf.extend_from_slice(&random);
    // WXBizMsgCrypt's length field is 32 bits; a push or reply is never near 4 GiB, and
    // saturating keeps this total (the receiver would then reject it).
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(appid.as_bytes());
    pkcs7_pad(&mut buf);
    let n = buf.len();
    let cipher = Aes256CbcEnc::new(key.as_bytes().into(), &key.iv().into());
    // The buffer is a whole number of 32-byte blocks, so NoPadding cannot fail; fall back to
    // encoding nothing rather than panicking if that ever changed.
    let ciphertext = cipher
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .unwrap_or(&[]);
    CIPHER_ENGINE.encode(ciphertext)
}

/// Decrypts a base64 `Encrypt` value.
///
/// With `expected_appid = Some(id)` the trailing appid must equal `id`
/// ([`CryptoError::AppIdMismatch`] otherwise); `None` accepts any appid.
pub fn decrypt(
    key: &AesKey,
    encrypt_b64: &str,
    expected_appid: Option<&str>,
) -> Result<Decrypted, CryptoError> {
    let mut buf = CIPHER_ENGINE
        .decode(encrypt_b64.trim())
        .map_err(|_| CryptoError::InvalidBase64)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CryptoError::InvalidCiphertextLength);
    }
    let cipher = Aes256CbcDec::new(key.as_bytes().into(), &key.iv().into());
    let plain = cipher
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::InvalidCiphertextLength)?;
    let plain = pkcs7_unpad(plain)?;
    if plain.len() < 20 {
        return Err(CryptoError::InvalidLength);
    }
    let (random_bytes, rest) = plain.split_at(16);
    let (len_bytes, rest) = rest.split_at(4);
    let mut len4 = [0u8; 4];
    len4.copy_from_slice(len_bytes);
    let msg_len =
        usize::try_from(u32::from_be_bytes(len4)).map_err(|_| CryptoError::InvalidLength)?;
    if msg_len > rest.len() {
        return Err(CryptoError::InvalidLength);
    }
    let (message, appid) = rest.split_at(msg_len);
    if let Some(expected) = expected_appid {
        if !bool::from(appid.ct_eq(expected.as_bytes())) {
            return Err(CryptoError::AppIdMismatch);
        }
    }
    let appid = std::str::from_utf8(appid)
        .map_err(|_| CryptoError::InvalidUtf8)?
        .to_owned();
    let mut random = [0u8; 16];
    random.copy_from_slice(random_bytes);
    Ok(Decrypted {
        random,
        message: message.to_vec(),
        appid,
    })
}

fn random16() -> [u8; 16] {
    let mut r = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut r);
    r
}

/// Which key of a [`KeyRing`] decrypted a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// The current EncodingAESKey.
    Current,
    /// The key from before the last rotation.
    Previous,
}

/// The current key plus, during a rotation, the previous one.
///
/// WeChat's FAQ: after changing the EncodingAESKey, pushes may still arrive under the old
/// key for a while; decrypt with the current key, fall back to the previous, and encrypt the
/// reply with whichever worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    /// The key configured now.
    pub current: AesKey,
    /// The key before the last rotation, still accepted for decryption.
    pub previous: Option<AesKey>,
}

impl KeyRing {
    /// A ring with the given keys.
    pub fn new(current: AesKey, previous: Option<AesKey>) -> KeyRing {
        KeyRing { current, previous }
    }

    /// A ring from the console's EncodingAESKey strings.
    pub fn from_encoding_aes_keys(
        current: &str,
        previous: Option<&str>,
    ) -> Result<KeyRing, CryptoError> {
        Ok(KeyRing {
            current: AesKey::from_encoding_aes_key(current)?,
            previous: previous.map(AesKey::from_encoding_aes_key).transpose()?,
        })
    }

    /// The key identified by `used` (the current one if there is no previous key).
    pub fn key(&self, used: KeyUsed) -> &AesKey {
        match used {
            KeyUsed::Current => &self.current,
            KeyUsed::Previous => self.previous.as_ref().unwrap_or(&self.current),
        }
    }

    /// Decrypts with the current key, then the previous one; says which worked. When both
    /// fail the current key's error is returned.
    pub fn decrypt(
        &self,
        encrypt_b64: &str,
        expected_appid: Option<&str>,
    ) -> Result<(Decrypted, KeyUsed), CryptoError> {
        match decrypt(&self.current, encrypt_b64, expected_appid) {
            Ok(d) => Ok((d, KeyUsed::Current)),
            Err(err) => match &self.previous {
                Some(previous) => match decrypt(previous, encrypt_b64, expected_appid) {
                    Ok(d) => Ok((d, KeyUsed::Previous)),
                    Err(_) => Err(err),
                },
                None => Err(err),
            },
        }
    }
}

/// A decrypted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPush {
    /// The plaintext XML of the message.
    pub plaintext: String,
    /// The appid found in the ciphertext.
    pub appid: String,
    /// Which key decrypted it; seal the reply with [`KeyRing::key`] of it.
    pub key_used: KeyUsed,
    /// `ToUserName` of the envelope, when present.
    pub to_user: Option<String>,
}

/// Opens an encrypted (safe- or compatible-mode) push: reads the envelope, verifies
/// `msg_signature` over its `Encrypt` in constant time, then decrypts with the key ring.
///
/// `expected_appid = None` skips the appid check. The signature is checked before any
/// decryption so forged ciphertexts never reach the padding check.
pub fn open_push(
    keyring: &KeyRing,
    token: &str,
    timestamp: &str,
    nonce: &str,
    msg_signature: &str,
    body_xml: &[u8],
    expected_appid: Option<&str>,
) -> Result<OpenedPush, CryptoError> {
    open_envelope(
        keyring,
        token,
        timestamp,
        nonce,
        msg_signature,
        Envelope::parse(body_xml)?,
        expected_appid,
    )
}

/// [`open_push`] for an envelope already read (an XML body's, or a JSON one's:
/// [`Envelope::parse_json`]).
pub fn open_envelope(
    keyring: &KeyRing,
    token: &str,
    timestamp: &str,
    nonce: &str,
    msg_signature: &str,
    envelope: Envelope,
    expected_appid: Option<&str>,
) -> Result<OpenedPush, CryptoError> {
    if !signature::verify_msg_signature(token, timestamp, nonce, &envelope.encrypt, msg_signature) {
        return Err(CryptoError::InvalidSignature);
    }
    let (decrypted, key_used) = keyring.decrypt(&envelope.encrypt, expected_appid)?;
    let appid = decrypted.appid.clone();
    Ok(OpenedPush {
        plaintext: decrypted.into_message_string()?,
        appid,
        key_used,
        to_user: envelope.to_user,
    })
}

/// Vectors shared with other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    /// WxJava `testAesEncrypt2`: the official sample reply encrypted with random
    /// `aaaabbbbccccdddd`.
    pub const V11_ENCRYPT: &str = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb";

    /// The official WXBizMsgCrypt sample reply.
    pub const SAMPLE_REPLY: &str = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";

    pub const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    pub const APPID: &str = "wxb11529c136998cb6";
}

#[cfg(test)]
mod tests;
