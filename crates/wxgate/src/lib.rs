//! wxgate: a self-hosted gateway for WeChat Official Accounts.
//!
//! The HTTP layer and the command line around the core ([`wxgate_core`]: config, registry,
//! store, credentials and the services) and the pure protocol crate ([`wxgate_proto`]):
//! the routes and their error mapping ([`http`]), the connections ([`server`]), start-up
//! ([`startup`]) and the commands ([`cli`]). `main.rs` only calls [`cli::main`]. The core's
//! modules are re-exported under their own names, so `wxgate::config` is `wxgate_core::config`.

pub use wxgate_core::{
    activity, admin, api_keys, config, console, credentials, database, domain, gateway, jssdk,
    metrics, miniprogram, mongo, oauth, platform, proxy, push, query, registry, scrub, store,
    tasks, upstream, users, vault,
};

pub mod cli;
pub mod http;
pub mod server;
pub mod startup;
