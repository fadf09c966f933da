//! One integration-test binary: real gateways on port 0, the real mock WeChat API, real stores.
//! Each area is a module; all share the harness in `helpers` (and `web_support` for the
//! browser-facing routes). Tests run side by side in this one process, so none may change
//! process-wide state (environment, current directory, a global subscriber) or measure this
//! process's memory: what a test must observe alone runs as a `wxgate serve` child process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod activity;
mod activity_http;
mod admin;
mod browser;
mod console;
mod credential_sync;
mod credentials;
mod db_cli;
mod helpers;
mod jssdk;
mod log_secrets;
mod metrics_access;
mod miniprogram;
mod mock_wechat;
mod mongo_db;
mod multi_instance;
mod multi_instance_postgres;
mod oauth;
mod oauth_state;
mod platform;
mod proxy;
mod public_errors;
mod push;
mod registry_db;
mod sandbox;
mod sentinel;
mod server_limits;
mod shutdown;
mod store;
mod store_notices;
mod store_postgres;
mod upstream_client;
mod upstream_limits;
mod users;
mod web_support;
