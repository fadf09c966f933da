//! The mock's third-party platform (开放平台 第三方平台) over real HTTP: encrypted ticket and
//! authorization pushes opened by a local receiver with the mock's own crypto, the component
//! token rules (tickets, 12 h, grace), pre-auth codes, the authorization pages and the
//! merchant's click, code exchange, authorizer tokens with and without refresh-token rotation,
//! revocation, web login through a component, and authorizer tokens on account endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorization;
mod authorizers;
mod support;
mod tickets;
