//! The component endpoints' glue to the mock's state: the mock clock and lifetimes, the
//! component_access_token check every `cgi-bin/component/*` call (and web login through a
//! component) starts with, and the hand-over to [`Platform`](super::Platform)'s rules.
//!
//! Apart from the rules because it joins the two halves of the state ([`Inner`]): the
//! account side's clock, settings and OAuth codes, and the platform's records.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::model::field;
use crate::state::Inner;
use crate::wire::WxErr;

type Query = HashMap<String, String>;

impl Inner {
    fn lifetimes(&self) -> (Duration, u64, u64) {
        let c = self.config();
        (self.now(), c.token_ttl_s, c.classic_grace_s)
    }

    pub(crate) fn set_component_token_ttl(&mut self, secs: u64) {
        self.config_mut().component_token_ttl_s = secs;
    }

    /// `api_component_token` (no token: appid, secret and a ticket the mock issued).
    pub(crate) fn api_component_token(&mut self, body: &Value) -> Result<Value, WxErr> {
        let now = self.now();
        let ttl = self.config().component_token_ttl_s;
        let grace = self.config().classic_grace_s;
        self.platform.component_token(body, now, ttl, grace)
    }

    /// The component a call is made for: its component_access_token (query
    /// `component_access_token`, or `access_token` as the newer documentation writes it) must
    /// be valid, and `component_appid` must name the token's component (else 61011).
    fn component_of(&self, q: &Query, component_appid: Option<&str>) -> Result<String, WxErr> {
        let token = q
            .get("component_access_token")
            .or_else(|| q.get("access_token"))
            .map(String::as_str);
        let owner = self.platform.check_component_token(token, self.now())?;
        match component_appid {
            None => Err(WxErr::code(41002)),
            Some(c) if c != owner => Err(WxErr::code(61011)),
            Some(_) => Ok(owner),
        }
    }

    pub(crate) fn api_create_preauthcode(
        &mut self,
        q: &Query,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let component = self.component_of(q, field(body, "component_appid"))?;
        let now = self.now();
        Ok(self.platform.create_pre_auth_code(&component, now))
    }

    pub(crate) fn api_query_auth(&mut self, q: &Query, body: &Value) -> Result<Value, WxErr> {
        let component = self.component_of(q, field(body, "component_appid"))?;
        let (now, ttl, grace) = self.lifetimes();
        self.platform.query_auth(&component, body, now, ttl, grace)
    }

    pub(crate) fn api_authorizer_token(&mut self, q: &Query, body: &Value) -> Result<Value, WxErr> {
        let component = self.component_of(q, field(body, "component_appid"))?;
        let (now, ttl, grace) = self.lifetimes();
        self.platform
            .authorizer_token(&component, body, now, ttl, grace)
    }

    pub(crate) fn api_authorizer_info(&self, q: &Query, body: &Value) -> Result<Value, WxErr> {
        let component = self.component_of(q, field(body, "component_appid"))?;
        self.platform.authorizer_info(&component, body)
    }

    /// `api_start_push_ticket`: the component, once its appid and secret are checked.
    pub(crate) fn api_start_push_ticket(&self, body: &Value) -> Result<String, WxErr> {
        let appid = field(body, "component_appid").ok_or(WxErr::code(41002))?;
        let c = self
            .platform
            .components
            .get(appid)
            .ok_or(WxErr::code(40013))?;
        let secret = field(body, "component_secret").ok_or(WxErr::code(41004))?;
        if secret != c.config.secret {
            return Err(WxErr::code(40125));
        }
        Ok(appid.to_owned())
    }

    /// `sns/oauth2/component/access_token`: a code issued with `component_appid` for an
    /// authorizer of that component (40029 for a code issued without, or for another one).
    pub(crate) fn component_oauth_exchange(&mut self, q: &Query) -> Result<Value, WxErr> {
        let component = self.component_of(q, q.get("component_appid").map(String::as_str))?;
        let appid = q
            .get("appid")
            .filter(|a| !a.is_empty())
            .cloned()
            .ok_or(WxErr::code(41002))?;
        self.redeem_code(&appid, Some(&component), q)
    }

    /// `sns/oauth2/component/refresh_token`.
    pub(crate) fn component_oauth_refresh(&mut self, q: &Query) -> Result<Value, WxErr> {
        let component = self.component_of(q, q.get("component_appid").map(String::as_str))?;
        let appid = q
            .get("appid")
            .filter(|a| !a.is_empty())
            .cloned()
            .ok_or(WxErr::code(41002))?;
        if !self.platform.is_active_authorizer(&appid, &component) {
            return Err(WxErr::code(40013));
        }
        self.refresh_web_token_of(&appid, q)
    }
}
