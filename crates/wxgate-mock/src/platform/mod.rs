//! The WeChat Open Platform third-party platform (开放平台 第三方平台), mocked.
//!
//! A platform ("component") gets its credentials from WeChat in a way unlike an account's: a
//! `component_verify_ticket` pushed (encrypted) to its event URL every 10 minutes is traded for
//! a `component_access_token`; merchants authorize it on WeChat's pages (the mock serves
//! stand-ins on its `mp_base` side), which yields an authorization code, traded for the
//! merchant's (the authorizer's) access token and refresh token. This module gives wxgate all of
//! it to talk to: the `cgi-bin/component/*` endpoints with WeChat's shapes and errcodes, the
//! authorization pages, the event pushes (ticket, authorized, updateauthorized, unauthorized)
//! with WXBizMsgCrypt ([`crypto`]), web login through a component, and the controls tests need
//! (push a ticket now, revoke, invalidate a refresh token, rotate refresh tokens, authorize
//! without a browser). An authorizer's access token works as its appid's on every account
//! endpoint of the mock.

mod api;
pub mod crypto;
mod model;
mod pages;
pub(crate) mod push;
pub(crate) mod routes;

use std::time::Duration;

pub(crate) use self::model::Platform;
pub(crate) use self::push::spawn_pusher;
use crate::MockWechat;

/// One mock third-party platform (component).
#[derive(Clone, PartialEq, Eq)]
pub struct MockComponent {
    /// The component_appid.
    pub appid: String,
    /// The component_appsecret.
    pub secret: String,
    /// The message verification Token (signatures of pushes).
    pub token: String,
    /// The 43-character EncodingAESKey pushes are encrypted with.
    pub encoding_aes_key: String,
    /// The authorization event URL (授权事件接收URL); without one, nothing is pushed.
    pub push_url: Option<String>,
    /// Push a fresh ticket this often (WeChat: every 10 minutes). Default: only once, at
    /// registration (and on `api_start_push_ticket` or [`MockWechat::push_ticket_now`]).
    pub ticket_every: Option<Duration>,
}

impl MockComponent {
    /// A component without push URL.
    pub fn new(
        appid: impl Into<String>,
        secret: impl Into<String>,
        token: impl Into<String>,
        encoding_aes_key: impl Into<String>,
    ) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            token: token.into(),
            encoding_aes_key: encoding_aes_key.into(),
            push_url: None,
            ticket_every: None,
        }
    }
}

impl std::fmt::Debug for MockComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockComponent")
            .field("appid", &self.appid)
            .field("push_url", &self.push_url)
            .field("ticket_every", &self.ticket_every)
            .finish_non_exhaustive()
    }
}

/// What the mock knows of an authorizer (a merchant's account that authorized a component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockAuthorizer {
    pub appid: String,
    pub component_appid: String,
    pub nick_name: String,
    /// The refresh token WeChat would accept now (None: invalidated or revoked).
    pub refresh_token: Option<String>,
    pub revoked: bool,
    pub func_ids: Vec<u32>,
    pub mini_program: bool,
}

/// A push's answer from the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAnswer {
    pub status: u16,
    pub body: String,
}

/// Why a push (or a platform control) could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    UnknownComponent,
    UnknownAuthorizer,
    /// The component has no push URL.
    NoPushUrl,
    /// The component's push URL does not parse.
    InvalidPushUrl,
    /// The component's EncodingAESKey is not 43 base64 characters.
    InvalidKey,
    /// The receiver could not be reached or its answer read.
    Transport(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::UnknownComponent => f.write_str("unknown component"),
            PushError::UnknownAuthorizer => f.write_str("unknown authorizer of this component"),
            PushError::NoPushUrl => f.write_str("the component has no push URL"),
            PushError::InvalidPushUrl => f.write_str("the component's push URL is invalid"),
            PushError::InvalidKey => f.write_str("the component's EncodingAESKey is invalid"),
            PushError::Transport(e) => write!(f, "push failed: {e}"),
        }
    }
}

impl std::error::Error for PushError {}

impl MockWechat {
    /// Registers (or replaces) a component. With a push URL, a `component_verify_ticket` is
    /// pushed at once and then every `ticket_every` (a background task that ends with the mock,
    /// on `reset` and when the component is registered again).
    pub fn add_component(&self, component: MockComponent) {
        let appid = component.appid.clone();
        let every = component.ticket_every;
        let pushes = component.push_url.is_some();
        let generation = self.shared.lock().platform.add_component(component);
        if pushes {
            push::spawn_pusher(&self.shared, appid, generation, every);
        }
    }

    /// Refresh-token rotation for `component_appid` (off by default): when on, every
    /// `api_authorizer_token` answers a new refresh token and the one used stops working.
    pub fn set_refresh_token_rotation(&self, component_appid: &str, on: bool) {
        self.shared
            .lock()
            .platform
            .set_rotation(component_appid, on);
    }

    /// The authorizer's current refresh token answers 61023 from now on.
    pub fn invalidate_refresh_token(&self, authorizer_appid: &str) {
        if let Some(a) = self
            .shared
            .lock()
            .platform
            .authorizers
            .get_mut(authorizer_appid)
        {
            a.refresh_token = None;
        }
    }

    /// Issues a ticket and pushes it to the component's URL, waiting for the answer.
    pub async fn push_ticket_now(&self, component_appid: &str) -> Result<PushAnswer, PushError> {
        {
            let s = self.shared.lock();
            let c = s
                .platform
                .components
                .get(component_appid)
                .ok_or(PushError::UnknownComponent)?;
            if c.config.push_url.is_none() {
                return Err(PushError::NoPushUrl);
            }
        }
        let sealed =
            push::ticket_push(&self.shared, component_appid)?.ok_or(PushError::NoPushUrl)?;
        push::deliver(sealed).await
    }

    /// Issues a ticket without pushing it (as if pushed; see [`MockWechat::current_ticket`]).
    pub fn issue_ticket(&self, component_appid: &str) -> Option<String> {
        let mut s = self.shared.lock();
        let now = s.now();
        s.platform.issue_ticket(component_appid, now)
    }

    /// The newest ticket issued for the component.
    pub fn current_ticket(&self, component_appid: &str) -> Option<String> {
        self.shared
            .lock()
            .platform
            .components
            .get(component_appid)
            .and_then(|c| c.newest_ticket.clone())
    }

    /// The merchant withdraws its authorization: its refresh token and access tokens stop
    /// working, and `unauthorized` is pushed (awaited). `Ok(None)`: revoked, but the component
    /// has no push URL.
    pub async fn revoke_authorizer(
        &self,
        component_appid: &str,
        authorizer_appid: &str,
    ) -> Result<Option<PushAnswer>, PushError> {
        {
            let mut s = self.shared.lock();
            if !s.platform.components.contains_key(component_appid) {
                return Err(PushError::UnknownComponent);
            }
            if !s.platform.revoke(component_appid, authorizer_appid) {
                return Err(PushError::UnknownAuthorizer);
            }
        }
        let inner = push::unauthorized_event(component_appid, authorizer_appid);
        match push::event_push(&self.shared, component_appid, &inner)? {
            Some(sealed) => push::deliver(sealed).await.map(Some),
            None => Ok(None),
        }
    }

    /// A merchant authorizes the component without the pages (for scale tests): records the
    /// authorizer (an Official Account with the default permission sets) and returns its
    /// authorization code; with `push_event`, `authorized` is pushed in the background.
    pub fn authorize_directly(
        &self,
        component_appid: &str,
        authorizer_appid: &str,
        nick_name: &str,
        push_event: bool,
    ) -> Result<String, PushError> {
        let auth = {
            let mut s = self.shared.lock();
            if !s.platform.components.contains_key(component_appid) {
                return Err(PushError::UnknownComponent);
            }
            let now = s.now();
            s.platform.authorize(
                component_appid,
                authorizer_appid,
                nick_name,
                None,
                false,
                now,
            )
        };
        if push_event {
            let inner = push::authorized_event(
                component_appid,
                auth.info_type,
                authorizer_appid,
                &auth.code,
                "",
            );
            if let Some(sealed) = push::event_push(&self.shared, component_appid, &inner)? {
                push::deliver_later(sealed);
            }
        }
        Ok(auth.code)
    }

    /// Authorizer access tokens issued for `authorizer_appid` (`api_query_auth` and
    /// `api_authorizer_token`) since the start or the last `reset`.
    pub fn authorizer_token_calls(&self, authorizer_appid: &str) -> u64 {
        self.shared
            .lock()
            .platform
            .authorizers
            .get(authorizer_appid)
            .map_or(0, |a| a.token_calls)
    }

    /// What the mock knows of an authorizer.
    pub fn authorizer(&self, authorizer_appid: &str) -> Option<MockAuthorizer> {
        self.shared.lock().platform.authorizer(authorizer_appid)
    }

    /// The component_access_tokens of the component WeChat would accept now.
    pub fn current_component_tokens(&self, component_appid: &str) -> Vec<String> {
        let s = self.shared.lock();
        s.platform.component_tokens_of(component_appid, s.now())
    }

    /// Lifetime of component_access_tokens issued from now on.
    pub fn set_component_token_ttl(&self, secs: u64) {
        self.shared.lock().set_component_token_ttl(secs);
    }
}
