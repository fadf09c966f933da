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
//! * [`jssdk`] — `wx.config` and `card_ext` signatures (the signature and nonce held inline,
//!   [`inline_ascii`]);
//! * [`oauth`] — the web-authorization redirect URL;
//! * [`json_push`] — pushes and replies in JSON (a mini program's choice), read into the
//!   same fields as XML;
//! * [`miniprogram`] — open-data decryption with the session_key and the `checksession`
//!   signature;
//! * [`component`] — the third-party platform: authorization events ([`AuthEvent`]) and the
//!   authorization links.
//!
//! A typical safe-mode push: [`open_push`] → [`Message::parse`] → choose a [`Reply`] →
//! [`Reply::to_xml`] → [`seal_reply`] with `keyring.key(opened.key_used)` →
//! [`EncryptedReply::to_xml`]:
//!
//! ```
//! use wxgate_proto::{open_push, seal_reply, KeyRing, Message, Reply};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = KeyRing::from_encoding_aes_keys("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", None)?;
//! let (token, appid) = ("pamtest", "wxb11529c136998cb6");
//! # let push = seal_reply(&ring.current, token, appid,
//! #     "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
//! #      <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
//! #      <Content><![CDATA[help]]></Content><MsgId>1</MsgId></xml>", Some(1700000000), Some("42"));
//! # let (timestamp, nonce, msg_signature, body) =
//! #     (push.timestamp.as_str(), push.nonce.as_str(), push.msg_signature.as_str(), push.to_xml());
//! // timestamp, nonce, msg_signature come from the query string, body from the POST.
//! let opened = open_push(&ring, token, timestamp, nonce, msg_signature, body.as_bytes(), Some(appid))?;
//! let message = Message::parse(opened.plaintext.as_bytes())?;
//! assert_eq!(message.text(), Some("help"));
//! let reply_xml = Reply::text("How can we help?")
//!     .to_xml(message.from_user(), message.to_user(), 1700000001)?;
//! let sealed = seal_reply(ring.key(opened.key_used), token, appid, &reply_xml, None, None);
//! let response_body = sealed.to_xml();
//! # assert!(response_body.starts_with("<xml><Encrypt>"));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod component;
pub mod crypto;
pub mod inline_ascii;
pub mod json_push;
pub mod jssdk;
pub mod message;
pub mod miniprogram;
pub mod oauth;
pub mod reply;
pub mod signature;
pub mod xml;

pub use component::{component_login_url, component_mobile_url, AuthEvent, AuthInfo, Grant};
pub use crypto::{
    decrypt, encrypt, open_push, seal_reply, seal_reply_derived, AesKey, CryptoError, Decrypted,
    EncryptedReply, KeyRing, KeyUsed, OpenedPush,
};
pub use message::{Envelope, Event, Message, MessageKind};
pub use oauth::{authorize_url, component_authorize_url, Scope};
pub use reply::{Article, ParsedReply, Reply, ReplyError};
pub use xml::{FieldValue, Fields, ParseError};
