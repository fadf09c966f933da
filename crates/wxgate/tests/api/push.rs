//! Message push end to end over HTTP: a real gateway (in-process, or two of them on Redis) is
//! sent what WeChat sends — signed, and in safe/compatible mode encrypted, with the helpers
//! in [`support`] playing WeChat — and its answers are checked byte for byte where the protocol fixes
//! them. Webhooks are small axum servers in this process that count calls and check the HMAC
//! header; late replies are read back from the mock WeChat API's customer-service endpoint;
//! follower records are read from the gateway's own database (SQLite, and PostgreSQL when
//! `WXGATE_TEST_POSTGRES_URL` is set).
//!
//! Each topic is a module of its own: URL verification, the three modes, bad input,
//! de-duplication, the webhook, rules, follower records, fuzzing and `wxgate simulate`.

mod bad_input;
mod dedup;
mod followers;
mod fuzz;
mod modes;
mod rules;
mod simulate;
mod support;
mod verification;
mod webhook;
