//! One integration-test binary: real gateways on port 0, the real mock WeChat API, real stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod credentials;
mod helpers;
mod log_secrets;
mod metrics_access;
mod multi_instance;
mod server_limits;
mod shutdown;
