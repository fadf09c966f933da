//! wxgate: a self-hosted gateway for WeChat Official Accounts.
//!
//! The service around the pure protocol crate [`wxgate_proto`]: configuration, the shared
//! store, the WeChat API client and its mock, the credential manager and the HTTP routes.

pub mod domain;
pub mod metrics;
pub mod mock;
pub mod store;
pub mod upstream;
