//! Authenticating and opening what WeChat sends to `/wx/{account}`, before anything is done
//! with it.
//!
//! Guarantees: `signature` (over Token, timestamp, nonce) is checked on every request, in every
//! mode, in constant time; when `push.replay_window_s` is not 0 a timestamp further than that
//! from our clock is refused, so a captured request cannot be replayed later; in safe and
//! compatible mode (`encrypt_type=aes`) the ciphertext is authenticated by `msg_signature`
//! before it is decrypted, decrypted with the current EncodingAESKey or else the previous one,
//! and must name the account's own appid. XML is read by `wxgate_proto`, which refuses any
//! DOCTYPE (no entity is ever expanded); an account with `data_format = "json"` (a mini
//! program's choice) is read as JSON instead, into the same message, with the same checks. Every failure is a client error with a stable code,
//! never a panic.

use wxgate_proto::crypto::{open_envelope, CryptoError, KeyUsed};
use wxgate_proto::signature::verify_signature;
use wxgate_proto::{Envelope, Message, ParseError};

use super::runtime::push_token;
use super::PushError;
use crate::config::Account;
use crate::domain::DataFormat;

/// The query string of a push or URL verification, read leniently (bad percent-encoding is
/// replaced, never rejected: the signature check decides).
#[derive(Debug, Default)]
pub struct PushQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

impl PushQuery {
    pub fn parse(raw: Option<&str>) -> PushQuery {
        let mut q = PushQuery::default();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "signature" => &mut q.signature,
                "timestamp" => &mut q.timestamp,
                "nonce" => &mut q.nonce,
                "echostr" => &mut q.echostr,
                "encrypt_type" => &mut q.encrypt_type,
                "msg_signature" => &mut q.msg_signature,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        q
    }
}

fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, PushError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or(PushError::MissingParameter(name))
}

/// How the push was protected; the reply goes back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No `encrypt_type` (or `raw`): plaintext XML, plaintext reply.
    Plain,
    /// `encrypt_type=aes` (safe or compatible mode): the reply is sealed with this key.
    Encrypted(KeyUsed),
}

/// An authenticated, decrypted and parsed push.
pub struct Inbound {
    pub message: Message,
    pub mode: Mode,
}

fn stale(replay_window_s: u64, what: &'static str) -> PushError {
    PushError::Stale {
        replay_window_s,
        what,
    }
}

/// Checks `signature` and the timestamp's freshness; shared by GET and POST.
fn authenticate(
    account: &Account,
    q: &PushQuery,
    now: i64,
    replay_window_s: u64,
) -> Result<(), PushError> {
    let signature = required(&q.signature, "signature")?;
    let timestamp = required(&q.timestamp, "timestamp")?;
    let nonce = required(&q.nonce, "nonce")?;
    let token = push_token(account)?;
    if !verify_signature(token, timestamp, nonce, signature) {
        return Err(PushError::InvalidSignature(
            "signature does not match sha1(sort(token, timestamp, nonce)); check that `token` \
             equals the Token of the server configuration in the WeChat console",
        ));
    }
    check_fresh(timestamp, now, replay_window_s)
}

/// Refuses a timestamp further than `replay_window_s` from `now` (0 = no window).
pub fn check_fresh(timestamp: &str, now: i64, replay_window_s: u64) -> Result<(), PushError> {
    if replay_window_s > 0 {
        let fresh = timestamp
            .trim()
            .parse::<i64>()
            .ok()
            .is_some_and(|ts| now.abs_diff(ts) <= replay_window_s);
        if !fresh {
            return Err(stale(
                replay_window_s,
                "timestamp is too far from this server's clock",
            ));
        }
    }
    Ok(())
}

/// URL verification (`GET`): the `echostr` to answer when the request is authentic.
pub fn verify_url(
    account: &Account,
    q: &PushQuery,
    now: i64,
    replay_window_s: u64,
) -> Result<String, PushError> {
    let echostr = q
        .echostr
        .clone()
        .ok_or(PushError::MissingParameter("echostr"))?;
    authenticate(account, q, now, replay_window_s)?;
    Ok(echostr)
}

/// How a push says it is protected, read from its query alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Plaintext XML, authenticated by `signature` only (which does not cover the body).
    Plain,
    /// `encrypt_type=aes`: the body is authenticated by `msg_signature` and decrypted.
    Aes,
}

/// Everything about a push that its query decides, checked *before* its body is read, so an
/// unauthenticated caller cannot make wxgate read (and hold) a body at all: `encrypt_type`,
/// `signature`, the timestamp's freshness, and — for an account with an EncodingAESKey — that
/// the push is encrypted. A plaintext push's `signature` covers only Token, timestamp and nonce,
/// never the body: anyone who saw one signed query string could post any XML with it for the
/// whole replay window. So an account that has a key accepts only `encrypt_type=aes`, unless it
/// sets `accept_plaintext = true` (for the minutes of a switch-over in WeChat's console).
pub fn check_query(
    account: &Account,
    q: &PushQuery,
    now: i64,
    replay_window_s: u64,
) -> Result<Protection, PushError> {
    let protection = match q.encrypt_type.as_deref().map(str::trim) {
        None | Some("") => Protection::Plain,
        Some(t) if t.eq_ignore_ascii_case("raw") => Protection::Plain,
        Some(t) if t.eq_ignore_ascii_case("aes") => Protection::Aes,
        Some(_) => return Err(PushError::InvalidEncryptType),
    };
    let signed = q.signature.as_deref().is_some_and(|s| !s.is_empty());
    if protection == Protection::Aes && !signed && account.component().is_some() {
        // A third-party platform's pushes are authenticated by `msg_signature` (over Token,
        // timestamp, nonce and the ciphertext), checked with the body; SPEC.md does not
        // promise `signature` on them.
        required(&q.nonce, "nonce")?;
        required(&q.msg_signature, "msg_signature")?;
        check_fresh(required(&q.timestamp, "timestamp")?, now, replay_window_s)?;
    } else {
        authenticate(account, q, now, replay_window_s)?;
    }
    if protection == Protection::Plain && account.keyring.is_some() && !account.accept_plaintext {
        return Err(PushError::EncryptionRequired {
            account: account.name.clone(),
        });
    }
    Ok(protection)
}

/// Decrypts (when [`Protection::Aes`]) and parses a push body whose query [`check_query`]
/// accepted. A push whose `CreateTime` lies more than the replay window ahead of this clock is
/// refused like a stale timestamp: a forged future time would otherwise make every later real
/// subscribe/unsubscribe "older" than the recorded one and freeze the follower record.
pub fn open(
    account: &Account,
    q: &PushQuery,
    protection: Protection,
    body: &[u8],
    now: i64,
    replay_window_s: u64,
) -> Result<Inbound, PushError> {
    let inbound = match protection {
        Protection::Plain => Inbound {
            message: parse_message(account, body).map_err(PushError::invalid_body)?,
            mode: Mode::Plain,
        },
        Protection::Aes => open_encrypted(account, q, body)?,
    };
    if replay_window_s > 0 {
        let ahead = inbound.message.create_time().saturating_sub(now);
        if ahead > 0 && ahead.unsigned_abs() > replay_window_s {
            return Err(stale(
                replay_window_s,
                "the message's CreateTime lies in the future",
            ));
        }
    }
    Ok(inbound)
}

fn open_encrypted(account: &Account, q: &PushQuery, body: &[u8]) -> Result<Inbound, PushError> {
    let (plaintext, key_used) = open_sealed(account, q, body)?;
    let message = parse_message(account, plaintext.as_bytes()).map_err(|e| {
        PushError::InvalidMessage(format!("the decrypted message is not a valid push: {e}"))
    })?;
    Ok(Inbound {
        message,
        mode: Mode::Encrypted(key_used),
    })
}

/// Authenticates an encrypted body by `msg_signature` and decrypts it with the account's key
/// ring; the ciphertext must name [`Account::receive_id`]. Also opens a third-party platform's
/// authorization events (with the platform's credential account).
pub fn open_sealed(
    account: &Account,
    q: &PushQuery,
    body: &[u8],
) -> Result<(String, KeyUsed), PushError> {
    let msg_signature = required(&q.msg_signature, "msg_signature")?;
    let keyring = account
        .keyring
        .as_ref()
        .ok_or_else(|| PushError::EncryptionNotConfigured {
            account: account.name.clone(),
        })?;
    let token = push_token(account)?;
    let timestamp = required(&q.timestamp, "timestamp")?;
    let nonce = required(&q.nonce, "nonce")?;
    let envelope = match account.data_format {
        DataFormat::Xml => Envelope::parse(body),
        DataFormat::Json => Envelope::parse_json(body),
    }
    .map_err(PushError::invalid_body)?;
    let opened = open_envelope(
        keyring,
        token,
        timestamp,
        nonce,
        msg_signature,
        envelope,
        Some(account.receive_id()),
    )
    .map_err(crypto_error)?;
    Ok((opened.plaintext, opened.key_used))
}

/// A push's message in the account's `data_format` (XML, or a mini program's JSON).
fn parse_message(account: &Account, bytes: &[u8]) -> Result<Message, ParseError> {
    match account.data_format {
        DataFormat::Xml => Message::parse(bytes),
        DataFormat::Json => Message::parse_json(bytes),
    }
}

fn crypto_error(e: CryptoError) -> PushError {
    match e {
        CryptoError::InvalidXml(p) => PushError::invalid_body(p),
        CryptoError::InvalidSignature => PushError::InvalidSignature(
            "msg_signature does not match sha1(sort(token, timestamp, nonce, Encrypt))",
        ),
        CryptoError::AppIdMismatch => PushError::InvalidSignature(
            "the ciphertext was made for another appid than this account's `appid`",
        ),
        other => PushError::InvalidMessage(format!(
            "the ciphertext cannot be decrypted ({other}, WXBizMsgCrypt {}); check that \
             `encoding_aes_key` (or `encoding_aes_key_previous`) is the console's EncodingAESKey",
            other.code()
        )),
    }
}
