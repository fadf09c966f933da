//! wxgate: a self-hosted gateway for WeChat Official Accounts.
//!
//! The service around the pure protocol crate [`wxgate_proto`]: configuration, the shared
//! store, the WeChat API client, the credential manager, the HTTP routes and the
//! command line. `main.rs` only calls [`cli::main`].

pub mod admin;
pub mod api_keys;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod gateway;
pub mod http;
pub mod jssdk;
pub mod metrics;
pub mod oauth;
pub mod proxy;
pub mod push;
pub mod query;
pub mod registry;
pub mod scrub;
pub mod server;
pub mod startup;
pub mod store;
pub mod tasks;
pub mod upstream;
pub mod users;
pub mod vault;
