//! Web login (OAuth2 网页授权) for H5 pages, the service.
//!
//! A login starts by sending the browser to WeChat's authorize page; WeChat sends it back with
//! a code, which is exchanged, the user recorded, and the browser sent on to the page's
//! `redirect` with a one-time `wxgate_code`; the page's backend redeems that code for the login
//! record — the browser never sees an openid it could forge, nor an API key. The flow, its store
//! keys and its guarantees are in [`flow`]; the state token and the login cookie that binds it
//! to the browser in [`state_token`]; the redirect allowlist in [`redirect`]. The routes, and
//! how a result becomes a redirect, a cookie or an error answer, are the HTTP layer's
//! (`http::oauth`); errors are [`OauthError`].

mod error;
pub mod flow;
pub mod redirect;
pub mod state_token;

pub use self::error::{OauthError, StateProblem};
