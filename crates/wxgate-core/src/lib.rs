//! wxgate's core: everything the gateway knows and does, without HTTP serving.
//!
//! Configuration and the validated account type, the runtime registry of accounts and API keys,
//! the shared store, the user database, the WeChat API client, the credential manager, and the
//! services of message push, JS-SDK signing, web login and the API proxy, each with its own
//! error type. This crate does not depend on axum (or any server framework): the `wxgate`
//! crate's HTTP layer calls these services and maps their errors to answers, once, so the
//! dependencies point one way — HTTP → core → protocol (`wxgate-proto`).

pub mod activity;
pub mod admin;
pub mod api_keys;
pub mod config;
pub mod console;
pub mod credentials;
pub mod database;
pub mod domain;
pub mod gateway;
pub mod jssdk;
pub mod login_keys;
pub mod metrics;
pub mod miniprogram;
pub mod mongo;
pub mod oauth;
pub(crate) mod pg;
pub mod platform;
pub mod proxy;
pub mod push;
pub mod query;
pub mod registry;
pub mod scrub;
pub mod store;
pub mod tasks;
pub mod upstream;
pub mod users;
pub mod vault;
