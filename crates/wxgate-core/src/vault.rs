//! Secrets at rest: every secret wxgate keeps in the database (AppSecrets, Tokens,
//! EncodingAESKeys, webhook secrets, later authorizer refresh tokens) is sealed with
//! `admin.master_key` before it is written, so the database file and its backups hold no secret
//! in plain text.
//!
//! The envelope is AES-256-GCM (the RustCrypto `aes-gcm` crate) with a fresh random 96-bit
//! nonce per value, written as `v1.` + unpadded base64url of `nonce ‖ ciphertext ‖ tag`. The
//! caller's associated data (an account's name and the field, see [`field_context`]) is
//! authenticated but not stored: a sealed value copied into another row or another field does
//! not open there. `admin.master_key_previous` still opens what the key before a rotation
//! sealed; [`Opened::sealed_with_previous`] tells the caller to re-seal it with the current key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// The envelope's version prefix.
const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One 256-bit master key; `Debug` never shows it.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Parses `admin.master_key`: 32 bytes in standard base64. The error never shows the value.
    pub fn from_base64(text: &str) -> Result<MasterKey, &'static str> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| {
            "must be standard base64 (e.g. the output of `openssl rand -base64 32`)"
        })?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes (`openssl rand -base64 32`)")?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// A random key (tests and the sandbox).
    pub fn random() -> MasterKey {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        MasterKey(SecretBox::new(Box::new(key)))
    }

    /// A key derived from `secret` for one `purpose` (HMAC-SHA256 keyed by `secret` over
    /// `purpose`): for values sealed with a secret every instance already holds (a mini
    /// program's session keys, under its AppSecret) when no master key need be configured.
    pub fn derive(purpose: &[u8], secret: &[u8]) -> MasterKey {
        use hmac::{Hmac, Mac};
        // HMAC takes keys of any length: this never fails.
        let key: [u8; 32] = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
            .map(|mac| mac.chain_update(purpose).finalize().into_bytes().into())
            .unwrap_or([0u8; 32]);
        MasterKey(SecretBox::new(Box::new(key)))
    }

    /// The key in the configuration's form (standard base64).
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }
}

/// Why a sealed value did not open. Neither variant carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not an envelope this version writes (damaged, or not sealed at all).
    #[error("not a sealed value")]
    Malformed,
    /// No configured key opens it with this associated data: the wrong master key, a value
    /// moved to another row or field, or a tampered value.
    #[error("no configured master key opens it (wrong key, moved or tampered value)")]
    Refused,
}

/// A value opened by [`Vault::open`].
pub struct Opened {
    pub value: SecretString,
    /// Opened with `master_key_previous`: re-seal it with the current key.
    pub sealed_with_previous: bool,
}

/// The configured master keys.
#[derive(Debug)]
pub struct Vault {
    current: MasterKey,
    previous: Option<MasterKey>,
}

impl Vault {
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Vault {
        Vault { current, previous }
    }

    /// Seals `plaintext` with the current key, bound to `context`.
    pub fn seal(&self, plaintext: &str, context: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context,
        };
        // AES-GCM encryption fails only for messages over ~64 GiB; a secret is never that long.
        let sealed = self
            .current
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value [`Vault::seal`] wrote with the same `context`, with the current key or
    /// else the previous one.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Opened, OpenError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(OpenError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let attempt = |key: &MasterKey| {
            key.cipher().decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
        };
        let (plain, sealed_with_previous) = match attempt(&self.current) {
            Ok(plain) => (plain, false),
            Err(_) => match &self.previous {
                Some(previous) => (attempt(previous).map_err(|_| OpenError::Refused)?, true),
                None => return Err(OpenError::Refused),
            },
        };
        let value = String::from_utf8(plain).map_err(|_| OpenError::Malformed)?;
        Ok(Opened {
            value: SecretString::from(value),
            sealed_with_previous,
        })
    }
}

/// The associated data of one secret field of one stored record: `kind`, the record's name and
/// the field, each length-prefixed so no two triples give the same bytes.
pub fn field_context(kind: &str, name: &str, field: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + kind.len() + name.len() + field.len());
    for part in [kind, name, field] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vault() -> Vault {
        Vault::new(MasterKey::random(), None)
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = MasterKey::random();
        let text = key.to_base64();
        assert!(MasterKey::from_base64(text.expose_secret()).is_ok());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(!format!("{key:?}").contains(text.expose_secret()));
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let v = vault();
        let a = v.seal("secret", b"ctx");
        let b = v.seal("secret", b"ctx");
        assert_ne!(a, b);
        assert!(!a.contains("secret"));
    }

    #[test]
    fn the_previous_key_opens_and_asks_for_a_reseal() {
        let old = MasterKey::random();
        let old_copy = MasterKey::from_base64(old.to_base64().expose_secret()).unwrap();
        let sealed = Vault::new(old, None).seal("s3cret", b"ctx");
        let rotated = Vault::new(MasterKey::random(), Some(old_copy));
        let opened = rotated.open(&sealed, b"ctx").unwrap();
        assert_eq!(opened.value.expose_secret(), "s3cret");
        assert!(opened.sealed_with_previous);
        let resealed = rotated.seal(opened.value.expose_secret(), b"ctx");
        assert!(
            !rotated
                .open(&resealed, b"ctx")
                .unwrap()
                .sealed_with_previous
        );
    }

    #[test]
    fn contexts_are_unambiguous() {
        assert_ne!(
            field_context("account", "ab", "c"),
            field_context("account", "a", "bc")
        );
    }

    proptest! {
        #[test]
        fn round_trip(value in "\\PC{0,200}", ctx in proptest::collection::vec(any::<u8>(), 0..64)) {
            let v = vault();
            let opened = v.open(&v.seal(&value, &ctx), &ctx).unwrap();
            prop_assert_eq!(opened.value.expose_secret(), value.as_str());
            prop_assert!(!opened.sealed_with_previous);
        }

        #[test]
        fn tampering_is_detected(value in "\\PC{1,64}", at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let v = vault();
            let sealed = v.seal(&value, b"ctx");
            let mut raw = URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap();
            let i = at.index(raw.len());
            raw[i] ^= 1 << bit;
            let tampered = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
            prop_assert_eq!(v.open(&tampered, b"ctx").err(), Some(OpenError::Refused));
        }

        #[test]
        fn other_associated_data_is_refused(value in "\\PC{0,64}", a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
            prop_assume!(a != b);
            let v = vault();
            let sealed = v.seal(&value, &field_context("account", &a, "secret"));
            prop_assert_eq!(
                v.open(&sealed, &field_context("account", &b, "secret")).err(),
                Some(OpenError::Refused)
            );
            prop_assert_eq!(
                v.open(&sealed, &field_context("account", &a, "token")).err(),
                Some(OpenError::Refused)
            );
        }

        #[test]
        fn another_key_is_refused(value in "\\PC{0,64}") {
            let sealed = vault().seal(&value, b"ctx");
            prop_assert_eq!(vault().open(&sealed, b"ctx").err(), Some(OpenError::Refused));
        }

        #[test]
        fn garbage_never_panics(text in "\\PC{0,120}") {
            let _ = vault().open(&text, b"ctx");
            let _ = vault().open(&format!("{PREFIX}{text}"), b"ctx");
        }
    }
}
