//! The WeChat Official Account protocol, pure: no I/O, no async runtime, no panics on input.
//!
//! `wxgate-proto` holds everything about talking to WeChat that can be decided from bytes
//! alone, apart from the service that does the networking, so that it can be unit-tested
//! against published vectors, property-tested and fuzzed:
//!
//! * [`signature`] — `signature` / `msg_signature` of the server URL, verified in constant
//!   time;
//! * [`crypto`] — the compatible/safe-mode message encryption (WXBizMsgCrypt), a two-key
//!   [`KeyRing`] for EncodingAESKey rotation, and [`open_push`] / [`seal_reply`] for whole
//!   encrypted pushes and replies;
//! * [`xml`] and [`message`] — inbound XML read in two phases into a typed [`Message`]
//!   (unknown types kept, DTDs refused), with its webhook JSON and deduplication key;
//! * [`reply`] — passive replies, from webhook JSON to WeChat's XML and back;
//! * [`jssdk`] — `wx.config` and `card_ext` signatures;
//! * [`oauth`] — the web-authorization redirect URL.
//!
//! A typical safe-mode push: [`open_push`] → [`Message::parse`] → choose a [`Reply`] →
//! [`Reply::to_xml`] → [`seal_reply`] with `keyring.key(opened.key_used)` →
//! [`EncryptedReply::to_xml`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
pub mod jssdk;
pub mod message;
pub mod oauth;
pub mod reply;
pub mod signature;
pub mod xml;

pub use crypto::{
    decrypt, encrypt, open_push, seal_reply, AesKey, CryptoError, Decrypted, EncryptedReply,
    KeyRing, KeyUsed, OpenedPush,
};
pub use message::{Envelope, Event, Message, MessageKind};
pub use oauth::{authorize_url, Scope};
pub use reply::{Article, ParsedReply, Reply, ReplyError};
pub use xml::{FieldValue, Fields, ParseError};
