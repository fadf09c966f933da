//! The web-login `state`: a self-contained, authenticated token, and the browser cookie it is
//! bound to. Starting a login writes nothing to the store.
//!
//! WeChat echoes `state` back unchanged but allows only `a-zA-Z0-9` and at most 128 bytes, so
//! the token cannot carry a redirect of up to [`MAX_REDIRECT_LEN`] bytes. The design therefore
//! splits what a login needs between the two things the browser brings back:
//!
//! - the **state** (108 hex characters): a version, the expiry (issue time + 10 minutes), the
//!   scope, a 96-bit random nonce, and an HMAC-SHA256 over those, the account, the cookie's
//!   binding value and a SHA-256 digest of the redirect;
//! - the **cookie** `wxgate_login_<nonce>` (`__Host-wxgate_login_<nonce>` with `Secure` when
//!   `server.public_url` is https), `HttpOnly; SameSite=Lax; Path=/; Max-Age=600`, holding a
//!   128-bit random binding value and the redirect (base64url).
//!
//! The callback recomputes the MAC from the state, the account of its path and the cookie: a
//! forged or altered state, a state of another account, an altered redirect, a missing cookie
//! or another browser's cookie all fail it (400 `invalid_state`), which is also what stops login
//! CSRF — an attacker's callback URL opened in a victim's browser finds no matching cookie.
//! A cookie per nonce (rather than one per browser) lets several logins run at once in one
//! browser (two tabs). The redirect is checked against `oauth_redirects` again at the callback.
//!
//! The MAC key is derived (HMAC-SHA256 with a fixed label) from `server.state_secret` when set,
//! otherwise from 32 random bytes kept in the shared store under [`SECRET_STORE_KEY`] (written
//! once with `put_if_absent` and no expiry, then read back, so every instance sharing the store
//! derives the same key). A configured key is derived once; a stored one is read again at most
//! every [`STORED_KEY_REREAD`], so when that store entry is lost (a flushed or evicting Redis)
//! the first instance to re-read writes a new one and every instance follows within that time:
//! logins in flight then fail once, and none stays split between instances. Single use is not the token's job: the callback's claim record enforces it
//! ([`super::flow`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;
use sha2::{Digest, Sha256};

use wxgate_proto::oauth::Scope;

/// A redirect longer than this is refused at login (400 `redirect_too_long`); it has to fit in
/// the cookie (browsers keep about 4 KB per cookie).
pub const MAX_REDIRECT_LEN: usize = 2048;
pub use crate::login_keys::SECRET_STORE_KEY;
/// How long a started login is valid, and the cookie's `Max-Age` (SPEC: 10 minutes).
pub const STATE_TTL_SECS: i64 = 600;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const BINDING_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// Version, expiry, scope, nonce: the part of the token the MAC covers as is.
const HEAD_LEN: usize = 1 + 8 + 1 + NONCE_LEN;
const TOKEN_LEN: usize = HEAD_LEN + MAC_LEN;
/// Length of a state in characters (hex): 108, within WeChat's 128.
pub const STATE_LEN: usize = TOKEN_LEN * 2;
const _: () = assert!(STATE_LEN <= 128, "WeChat echoes at most 128 bytes of state");
const SECURE_PREFIX: &str = "__Host-wxgate_login_";
const PLAIN_PREFIX: &str = "wxgate_login_";

use crate::login_keys::HmacSha256;
pub use crate::login_keys::{StateKey, StateKeys, STORED_KEY_REREAD};

/// What a login needs back at its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub account: String,
    pub redirect: String,
    pub scope: Scope,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A started login: the `state` for WeChat and the cookie for the browser.
#[derive(Debug, Clone)]
pub struct Issued {
    pub state: String,
    pub cookie_name: String,
    pub cookie_value: String,
}

impl Issued {
    /// The `Set-Cookie` header value (see the module documentation).
    pub fn set_cookie(&self, secure: bool) -> String {
        format!(
            "{}={}; Path=/; Max-Age={STATE_TTL_SECS}; HttpOnly; SameSite=Lax{}",
            self.cookie_name,
            self.cookie_value,
            if secure { "; Secure" } else { "" }
        )
    }
}

/// Why a callback's state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a state this gateway issues (wrong length, characters or version).
    Malformed,
    /// The browser did not bring the login's cookie back.
    NoCookie,
    /// The MAC does not verify: forged, altered, another account's, or another browser's cookie.
    Mismatch,
}

fn scope_byte(scope: Scope) -> u8 {
    match scope {
        Scope::Base => 0,
        Scope::UserInfo => 1,
    }
}

fn cookie_name(secure: bool, nonce_hex: &str) -> String {
    let prefix = if secure { SECURE_PREFIX } else { PLAIN_PREFIX };
    format!("{prefix}{nonce_hex}")
}

fn tag(key: &StateKey, head: &[u8], account: &str, binding: &[u8], redirect: &str) -> HmacSha256 {
    let mut mac = key.mac();
    mac.update(head);
    let account_len = u32::try_from(account.len()).unwrap_or(u32::MAX);
    mac.update(&account_len.to_be_bytes());
    mac.update(account.as_bytes());
    mac.update(binding);
    mac.update(&Sha256::digest(redirect.as_bytes()));
    mac
}

/// Seals `login` with a fresh nonce and binding value.
pub fn issue(key: &StateKey, login: &Login, secure: bool) -> Issued {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let binding: [u8; BINDING_LEN] = rand::random();
    seal(key, login, nonce, binding, secure)
}

/// Seals `login` with the given nonce and binding value.
fn seal(
    key: &StateKey,
    login: &Login,
    nonce: [u8; NONCE_LEN],
    binding: [u8; BINDING_LEN],
    secure: bool,
) -> Issued {
    let mut token = Vec::with_capacity(TOKEN_LEN);
    token.push(VERSION);
    token.extend_from_slice(&login.expires_at.to_be_bytes());
    token.push(scope_byte(login.scope));
    token.extend_from_slice(&nonce);
    let mac = tag(key, &token, &login.account, &binding, &login.redirect);
    token.extend_from_slice(&mac.finalize().into_bytes());
    Issued {
        state: hex::encode(&token),
        cookie_name: cookie_name(secure, &hex::encode(nonce)),
        cookie_value: format!(
            "{}.{}",
            hex::encode(binding),
            URL_SAFE_NO_PAD.encode(login.redirect.as_bytes())
        ),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn find_cookie<'h>(cookie_headers: &[&'h str], name: &str) -> Option<&'h str> {
    cookie_headers
        .iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Checks a callback's `state` for `account` against the browser's cookies. Does not look at
/// the expiry: the caller decides what an expired but authentic state may still do.
pub fn open(
    key: &StateKey,
    account: &str,
    state: &str,
    cookie_headers: &[&str],
    secure: bool,
) -> Result<Login, Refusal> {
    if state.len() != STATE_LEN {
        return Err(Refusal::Malformed);
    }
    let token = hex::decode(state).map_err(|_| Refusal::Malformed)?;
    let (head, mac) = token.split_at(HEAD_LEN);
    if head[0] != VERSION {
        return Err(Refusal::Malformed);
    }
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&head[1..9]);
    let scope = match head[9] {
        0 => Scope::Base,
        1 => Scope::UserInfo,
        _ => return Err(Refusal::Malformed),
    };
    let nonce_hex = &state[2 * (HEAD_LEN - NONCE_LEN)..2 * HEAD_LEN];
    let cookie =
        find_cookie(cookie_headers, &cookie_name(secure, nonce_hex)).ok_or(Refusal::NoCookie)?;
    let (binding, redirect) = cookie.split_once('.').ok_or(Refusal::Mismatch)?;
    let binding = hex::decode(binding).map_err(|_| Refusal::Mismatch)?;
    let redirect = URL_SAFE_NO_PAD
        .decode(redirect)
        .ok()
        .and_then(|r| String::from_utf8(r).ok())
        .ok_or(Refusal::Mismatch)?;
    if binding.len() != BINDING_LEN {
        return Err(Refusal::Mismatch);
    }
    tag(key, head, account, &binding, &redirect)
        .verify_slice(mac)
        .map_err(|_| Refusal::Mismatch)?;
    Ok(Login {
        account: account.to_owned(),
        redirect,
        scope,
        expires_at: i64::from_be_bytes(expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[tokio::test(start_paused = true)]
    async fn instances_follow_a_lost_stored_secret_within_the_reread_time() {
        let store = crate::store::connect("memory://", "").await.unwrap();
        let store = store.as_ref();
        let (a, b) = (StateKeys::new(None), StateKeys::new(None));
        let first = a.key(store).await.unwrap().0;
        assert_eq!(b.key(store).await.unwrap().0, first, "one secret for both");
        // The store loses the secret (a flush); instance b writes a new one first.
        store.delete(SECRET_STORE_KEY).await.unwrap();
        tokio::time::advance(STORED_KEY_REREAD).await;
        let second = b.key(store).await.unwrap().0;
        assert_ne!(second, first);
        // a still holds the old key until its own re-read, then agrees again.
        assert_eq!(a.key(store).await.unwrap().0, second);
    }

    #[tokio::test]
    async fn a_configured_secret_is_used_without_the_store() {
        let store = crate::store::connect("memory://", "").await.unwrap();
        let store = store.as_ref();
        let keys = StateKeys::new(Some(SecretString::from("x".repeat(32))));
        let key = keys.key(store).await.unwrap();
        assert_eq!(key.0, StateKey::derive("x".repeat(32).as_bytes()).0);
        assert!(store.get(SECRET_STORE_KEY).await.unwrap().is_none());
    }

    fn login() -> Login {
        Login {
            account: "main".into(),
            redirect: "https://h5.example.com/app/?x=1".into(),
            scope: Scope::UserInfo,
            expires_at: 1_900_000_000,
        }
    }

    fn cookie_header(issued: &Issued) -> String {
        format!(
            "other=1; {}={}; last=2",
            issued.cookie_name, issued.cookie_value
        )
    }

    #[test]
    fn a_state_fits_wechats_alphabet_and_length_and_opens_with_its_cookie() {
        let key = StateKey::derive(b"a secret of at least thirty-two characters");
        let issued = issue(&key, &login(), false);
        assert_eq!(issued.state.len(), STATE_LEN);
        assert!(issued.state.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(issued.cookie_name.starts_with("wxgate_login_"));
        let header = cookie_header(&issued);
        assert_eq!(
            open(&key, "main", &issued.state, &[&header], false),
            Ok(login())
        );
        let secure = issue(&key, &login(), true);
        assert!(secure.cookie_name.starts_with("__Host-wxgate_login_"));
        assert!(secure.set_cookie(true).ends_with("; Secure"));
        assert_eq!(
            open(
                &key,
                "main",
                &secure.state,
                &[&cookie_header(&secure)],
                true
            ),
            Ok(login())
        );
    }

    #[test]
    fn anything_altered_is_refused() {
        let key = StateKey::derive(b"a secret of at least thirty-two characters");
        let issued = issue(&key, &login(), false);
        let header = cookie_header(&issued);
        assert_eq!(
            open(&key, "other", &issued.state, &[&header], false),
            Err(Refusal::Mismatch)
        );
        let other_key = StateKey::derive(b"another secret of thirty-two characters!");
        assert_eq!(
            open(&other_key, "main", &issued.state, &[&header], false),
            Err(Refusal::Mismatch)
        );
        // Every byte of the MAC and of the expiry/scope matters.
        for i in (2..STATE_LEN).step_by(7) {
            if (20..44).contains(&i) {
                continue; // the nonce names the cookie: altered, the cookie is not found
            }
            let mut bytes = issued.state.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(bytes).unwrap();
            assert!(
                open(&key, "main", &altered, &[&header], false).is_err(),
                "{i}"
            );
        }
        let mut nonce_altered = issued.state.clone().into_bytes();
        nonce_altered[30] = if nonce_altered[30] == b'a' {
            b'b'
        } else {
            b'a'
        };
        let nonce_altered = String::from_utf8(nonce_altered).unwrap();
        assert_eq!(
            open(&key, "main", &nonce_altered, &[&header], false),
            Err(Refusal::NoCookie)
        );
        // Another redirect in the cookie.
        let evil = format!(
            "{}={}.{}",
            issued.cookie_name,
            issued.cookie_value.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode("https://evil.example/")
        );
        assert_eq!(
            open(&key, "main", &issued.state, &[&evil], false),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            open(&key, "main", &issued.state, &[], false),
            Err(Refusal::NoCookie)
        );
        for bad in [
            "",
            "abc",
            &"g".repeat(STATE_LEN),
            &issued.state[..STATE_LEN - 2],
        ] {
            assert_eq!(
                open(&key, "main", bad, &[&header], false),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }
    }
}
