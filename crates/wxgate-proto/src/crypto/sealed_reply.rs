//! Sealing passive replies: the encrypted reply envelope ([`EncryptedReply`]) with its XML and
//! compact stored forms, and [`seal_reply`] and its variants (fixed random prefix, or prefix and
//! nonce derived so that every delivery of one push gets the very same bytes). Re-exported by
//! the parent module, whose [`encrypt`] does the encryption.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{encrypt, AesKey, CIPHER_ENGINE};
use crate::signature;
use crate::xml::{push_cdata_element, push_plain_element};

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
