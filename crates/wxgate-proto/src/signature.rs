//! Request signatures of the WeChat push protocol.
//!
//! WeChat authenticates every call to the server URL with `signature =
//! sha1(sort(token, timestamp, nonce))`, and in compatible/safe mode the ciphertext with
//! `msg_signature = sha1(sort(token, timestamp, nonce, Encrypt))`. Both are "sort the strings
//! byte-wise, concatenate, SHA-1, lower-case hex". This module computes them and verifies a
//! received value in constant time, so that the time a comparison takes does not tell an
//! attacker how many leading characters of a forged signature were right.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Lower-case hex SHA-1 of `data`.
pub fn sha1_hex(data: &[u8]) -> String {
    lower_hex(&Sha1::digest(data))
}

/// Lower-case hex of `bytes` (a table lookup per nibble; `hex::encode` goes through a `char`
/// iterator, which showed in the push profile).
pub fn lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A SHA-1 digest in lower-case hex, held inline (no allocation).
pub type Sha1Hex = crate::inline_ascii::InlineAscii<40>;

/// Lower-case hex of a SHA-1 digest, without allocating.
pub fn sha1_hex_inline(digest: &[u8; 20]) -> Sha1Hex {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    Sha1Hex::from_known_ascii(out)
}

/// SHA-1 (lower-case hex) of the parts sorted lexicographically (byte order) and concatenated.
///
/// This is the primitive behind every WeChat push signature.
pub fn sha1_sorted(parts: &[&str]) -> String {
    sha1_sorted_joined(parts, "")
}

/// Like [`sha1_sorted`] but joins the sorted parts with `separator` (WxJava's
/// `SHA1.genWithAmple` uses `"&"`).
pub fn sha1_sorted_joined(parts: &[&str], separator: &str) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for (i, part) in sorted.iter().enumerate() {
        if i > 0 {
            hasher.update(separator.as_bytes());
        }
        hasher.update(part.as_bytes());
    }
    lower_hex(&hasher.finalize())
}

/// The server-URL `signature`: `sha1(sort(token, timestamp, nonce))`.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sha1_sorted(&[token, timestamp, nonce])
}

/// Checks a received server-URL `signature` in constant time.
///
/// The comparison ignores ASCII case of `received` (WeChat sends lower case).
pub fn verify_signature(token: &str, timestamp: &str, nonce: &str, received: &str) -> bool {
    hex_eq(&signature(token, timestamp, nonce), received)
}

/// The ciphertext signature `msg_signature`: `sha1(sort(token, timestamp, nonce, encrypt))`.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sha1_sorted(&[token, timestamp, nonce, encrypt])
}

/// Checks a received `msg_signature` in constant time (ASCII case of `received` ignored).
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    received: &str,
) -> bool {
    hex_eq(&msg_signature(token, timestamp, nonce, encrypt), received)
}

/// Constant-time equality of two byte strings.
///
/// Only the length is allowed to leak (it is public: a SHA-1 hex string is always 40 bytes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Compares our lower-case hex digest with a received one, case-insensitively, in constant
/// time (only the lengths, which are public, decide early). Lower-casing touches only the
/// attacker-supplied bytes.
fn hex_eq(expected_lower: &str, received: &str) -> bool {
    let (expected, received) = (expected_lower.as_bytes(), received.as_bytes());
    if expected.len() != received.len() {
        return false;
    }
    let mut equal = subtle::Choice::from(1);
    for (e, r) in expected.iter().zip(received) {
        equal &= e.ct_eq(&r.to_ascii_lowercase());
    }
    equal.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_official_url_verification_signature() {
        let sig = signature("AAAAA", "1714036504", "1514711492");
        assert_eq!(sig, "f464b24fc39322e44b38aa78f5edd27bd1441696");
        assert!(verify_signature(
            "AAAAA",
            "1714036504",
            "1514711492",
            "f464b24fc39322e44b38aa78f5edd27bd1441696"
        ));
    }

    #[test]
    fn v2_official_plaintext_mode_signature() {
        assert_eq!(
            signature("AAAAA", "1714037059", "486452656"),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
        // The doc spells out the concatenation order.
        assert_eq!(
            sha1_hex(b"1714037059486452656AAAAA"),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
    }

    #[test]
    fn v3_wechatpy_signature_ok_and_one_char_off_fails() {
        assert!(verify_signature(
            "test",
            "1410685589",
            "test",
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        ));
        assert!(!verify_signature(
            "test",
            "1410685589",
            "test",
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
        ));
    }

    #[test]
    fn v4_silenceper_signature_of_a_b_c_is_sha1_abc() {
        assert_eq!(
            sha1_sorted(&["a", "b", "c"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            sha1_sorted(&["c", "a", "b"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn v5_wxjava_sha1_gen_and_gen_with_ample() {
        assert_eq!(
            sha1_sorted(&["123", "345"]),
            "9f537aeb751ec72605f57f94a2f6dc3e3958e1dd"
        );
        assert_eq!(
            sha1_sorted_joined(&["345", "123"], "&"),
            "20b896ccbd5a72dde5dbe0878ff985e4069771c6"
        );
    }

    #[test]
    fn verification_accepts_upper_case_and_rejects_wrong_lengths() {
        let sig = signature("AAAAA", "1714036504", "1514711492").to_ascii_uppercase();
        assert!(verify_signature("AAAAA", "1714036504", "1514711492", &sig));
        assert!(!verify_signature("AAAAA", "1714036504", "1514711492", ""));
        assert!(!verify_signature(
            "AAAAA",
            "1714036504",
            "1514711492",
            "f464b24fc39322e44b38aa78f5edd27bd144169"
        ));
    }

    #[test]
    fn v11b_msg_signature_over_official_sample() {
        let encrypt = crate::crypto::tests_support::V11_ENCRYPT;
        assert_eq!(
            msg_signature("pamtest", "1409304348", "xxxxxx", encrypt),
            "ea88b765074e41eb8c7a75b449db34fa2fd560d5"
        );
        assert!(verify_msg_signature(
            "pamtest",
            "1409304348",
            "xxxxxx",
            encrypt,
            "ea88b765074e41eb8c7a75b449db34fa2fd560d5"
        ));
        assert!(!verify_msg_signature(
            "pamtest",
            "1409304349",
            "xxxxxx",
            encrypt,
            "ea88b765074e41eb8c7a75b449db34fa2fd560d5"
        ));
    }
}
