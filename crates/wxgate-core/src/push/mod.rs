//! Message push: the service behind the server URL that WeChat calls (`/wx/{account}`; its
//! routes and handlers are the HTTP layer's `push` module).
//!
//! WeChat verifies the URL with a signed `GET` and then POSTs every message and event there,
//! in plaintext, compatible or safe (AES) mode, expecting a passive reply or `success` within
//! 5 s and retrying otherwise. This module authenticates each request (`signature` always,
//! `msg_signature` and the appid when encrypted, a replay window on the timestamp), answers
//! each push once however often WeChat retries (the answer is kept in the shared store, so
//! this holds across instances), keeps follower records current from subscribe/unsubscribe
//! events, and picks the reply from the configured rules or the business webhook, whose late
//! answers go out through the customer-service API instead.
//!
//! A push is checked in two steps so that its body is read only for an authentic query:
//! [`check`] (Token, signature, timestamp, protection mode), then — once the HTTP layer has read
//! the body under `server.max_body_bytes` — [`receive`], which opens it and returns the
//! [`Answer`] as plain data. Failures are [`PushError`]s; the HTTP layer maps them to the
//! SPEC's JSON bodies: 404 `unknown_account`, 403 `push_disabled` (no `token` configured), 400
//! `missing_parameter` / `invalid_parameter` / `invalid_message` / `encryption_required` /
//! `encryption_not_configured`, 403 `invalid_signature` / `stale_timestamp`, 413
//! `body_too_large`, and 503 `unavailable` only when the follower record cannot be written (so
//! that WeChat retries).

mod dedup;
mod error;
mod inbound;
mod observed;
mod runtime;
mod service;
pub mod webhook;

pub use self::dedup::Answer;
pub use self::error::PushError;
pub use self::inbound::{check_fresh, open_sealed, PushQuery};
pub use self::service::{check, receive, verify_url, Checked, ANSWER_BUDGET};

/// The content type of a URL verification's echostr (and of `success`).
pub const TEXT_CONTENT_TYPE: &str = dedup::TEXT;
