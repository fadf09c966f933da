//! Message encryption of compatible and safe mode, byte-for-byte as WeChat's WXBizMsgCrypt.
//!
//! WeChat encrypts each push with the account's EncodingAESKey: AES-256-CBC with the IV
//! taken from the key's first 16 bytes, over `random(16) || u32 BE length || msg || appid`
//! padded with PKCS#7 to a **32**-byte block (not 16), then base64. This module implements
//! that exactly (it reproduces the official vectors), plus the two-key [`KeyRing`] the FAQ
//! asks for during a key rotation, and the envelope helpers that open a push (check
//! `msg_signature` in constant time *before* decrypting, so there is no padding oracle) and
//! seal a reply. Every function returns a typed [`CryptoError`] — mapped to the official
//! error codes — for any input and never panics.

use std::time::{SystemTime, UNIX_EPOCH};

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
use crate::xml::{push_cdata_element, push_plain_element, ParseError};

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

/// An encrypted passive reply: the four fields of the reply envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    /// Base64 ciphertext.
    pub encrypt: String,
    /// `sha1(sort(token, timestamp, nonce, encrypt))`.
    pub msg_signature: String,
    /// Unix seconds, as signed.
    pub timestamp: String,
    /// Nonce, as signed.
    pub nonce: String,
}

/// First byte of [`EncryptedReply::to_compact`]: the format's version.
const COMPACT_V1: u8 = 1;

impl EncryptedReply {
    /// A compact binary form that [`EncryptedReply::from_compact`] turns back into the very same
    /// reply (so [`EncryptedReply::to_xml`] gives the same bytes): the ciphertext and the
    /// signature as raw bytes instead of base64 and hex, about 55 % of the XML's size. For
    /// keeping an answer (de-duplication records) rather than re-encrypting it.
    ///
    /// `None` when the reply is not in the canonical form [`seal_reply`] makes (padded base64,
    /// 40 lower-case hex digits, timestamp and nonce under 256 bytes); keep the XML then.
    pub fn to_compact(&self) -> Option<Vec<u8>> {
        let timestamp = u8::try_from(self.timestamp.len()).ok()?;
        let nonce = u8::try_from(self.nonce.len()).ok()?;
        let signature = decode_lower_hex_20(&self.msg_signature)?;
        let ciphertext = CIPHER_ENGINE.decode(&self.encrypt).ok()?;
        // Only text that encodes back the same is kept compact: the decoder refuses stray
        // trailing bits and characters, so the padded length is what is left to check.
        if base64::encoded_len(ciphertext.len(), true) != Some(self.encrypt.len()) {
            return None;
        }
        let mut out =
            Vec::with_capacity(3 + self.timestamp.len() + self.nonce.len() + 20 + ciphertext.len());
        out.push(COMPACT_V1);
        out.push(timestamp);
        out.extend_from_slice(self.timestamp.as_bytes());
        out.push(nonce);
        out.extend_from_slice(self.nonce.as_bytes());
        out.extend_from_slice(&signature);
        out.extend_from_slice(&ciphertext);
        Some(out)
    }

    /// Reads [`EncryptedReply::to_compact`]'s form; `None` for anything else.
    pub fn from_compact(bytes: &[u8]) -> Option<EncryptedReply> {
        let (&version, rest) = bytes.split_first()?;
        if version != COMPACT_V1 {
            return None;
        }
        let (timestamp, rest) = take_short_str(rest)?;
        let (nonce, rest) = take_short_str(rest)?;
        if rest.len() < 20 {
            return None;
        }
        let (signature, ciphertext) = rest.split_at(20);
        Some(EncryptedReply {
            encrypt: CIPHER_ENGINE.encode(ciphertext),
            msg_signature: signature::lower_hex(signature),
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
        })
    }

    /// The reply body WeChat expects:
    /// `<xml><Encrypt>…</Encrypt><MsgSignature>…</MsgSignature><TimeStamp>…</TimeStamp><Nonce>…</Nonce></xml>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(self.encrypt.len() + 160);
        out.push_str("<xml>");
        push_cdata_element(&mut out, "Encrypt", &self.encrypt);
        push_cdata_element(&mut out, "MsgSignature", &self.msg_signature);
        push_plain_element(&mut out, "TimeStamp", &self.timestamp);
        push_cdata_element(&mut out, "Nonce", &self.nonce);
        out.push_str("</xml>");
        out
    }
}

/// Label of the derivation in [`seal_reply_derived`]; a new derivation gets a new label.
const DERIVED_REPLY_LABEL: &[u8] = b"wxgate derived reply v1";

/// Encrypts and signs a passive reply like [`seal_reply`], but with the random prefix and the
/// nonce *derived* instead of drawn: HMAC-SHA256, keyed with the AES key, over a label,
/// `context`, `timestamp` and the reply. The same inputs therefore always give the very same
/// envelope, byte for byte — so every delivery of one push can be answered identically without
/// remembering the first answer — while a different `context` (another push), reply or
/// timestamp gives an unrelated prefix and nonce. Only the holder of the key can predict them,
/// and that is WeChat, which decrypts the reply anyway. `context` must identify the push
/// uniquely (its account and MsgId, or its event identity).
pub fn seal_reply_derived(
    key: &AesKey,
    token: &str,
    appid: &str,
    reply_xml: &str,
    timestamp: u64,
    context: &[u8],
) -> EncryptedReply {
    use hmac::{Hmac, Mac};
    // HMAC pads a key shorter than the hash's block with zeros; padding it here makes the
    // key length fixed, so creating the MAC cannot fail.
    let mut mac_key = [0u8; 64];
    mac_key[..32].copy_from_slice(key.as_bytes());
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new(&mac_key.into());
    for part in [DERIVED_REPLY_LABEL, context, reply_xml.as_bytes()] {
        // Length-prefixed, so that no two different inputs are the same byte stream.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.update(&timestamp.to_be_bytes());
    let derived = mac.finalize().into_bytes();
    let mut random = [0u8; 16];
    random.copy_from_slice(&derived[..16]);
    let mut nonce_bytes = [0u8; 8];
    nonce_bytes.copy_from_slice(&derived[16..24]);
    // 10 digits, like WeChat's nonces and [`seal_reply`]'s.
    let nonce = (1_000_000_000 + u64::from_be_bytes(nonce_bytes) % 9_000_000_000).to_string();
    seal_reply_with_random(
        key,
        token,
        appid,
        reply_xml,
        Some(timestamp),
        Some(&nonce),
        Some(random),
    )
}

/// Encrypts and signs a passive reply. Fresh values are made for a missing `timestamp`
/// (now) or `nonce` (10 random digits, like WeChat's own).
pub fn seal_reply(
    key: &AesKey,
    token: &str,
    appid: &str,
    reply_xml: &str,
    timestamp: Option<u64>,
    nonce: Option<&str>,
) -> EncryptedReply {
    seal_reply_with_random(key, token, appid, reply_xml, timestamp, nonce, None)
}

/// [`seal_reply`] with a fixed random prefix (for vectors and tests).
pub fn seal_reply_with_random(
    key: &AesKey,
    token: &str,
    appid: &str,
    reply_xml: &str,
    timestamp: Option<u64>,
    nonce: Option<&str>,
    random: Option<[u8; 16]>,
) -> EncryptedReply {
    let timestamp = timestamp.unwrap_or_else(now_unix).to_string();
    let nonce = nonce.map_or_else(numeric_nonce, str::to_owned);
    let encrypt = encrypt(key, reply_xml.as_bytes(), appid, random);
    let msg_signature = signature::msg_signature(token, &timestamp, &nonce, &encrypt);
    EncryptedReply {
        encrypt,
        msg_signature,
        timestamp,
        nonce,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 40 lower-case hex digits → 20 bytes; `None` for anything else (upper case included, so
/// that the bytes always encode back to the same text).
fn decode_lower_hex_20(hex_text: &str) -> Option<[u8; 20]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = hex_text.as_bytes();
    if text.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// A string of at most 255 bytes, prefixed by its length.
fn take_short_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (text, rest) = rest.split_at(len);
    Some((std::str::from_utf8(text).ok()?, rest))
}

fn numeric_nonce() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen_range(1_000_000_000..10_000_000_000);
    n.to_string()
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
    let envelope = Envelope::parse(body_xml)?;
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
mod tests {
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
        let echostr = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
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
}
