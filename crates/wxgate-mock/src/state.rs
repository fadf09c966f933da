//! The mock's memory: accounts, issued tokens, tickets, OAuth codes, call counters and queued
//! faults, plus the WeChat rules that decide each answer.
//!
//! Everything here is synchronous and runs under one mutex held for microseconds, never across
//! an `.await`. Time is a mock clock (real elapsed time plus an offset tests can advance), so
//! expiry, the classic-token grace period and the force-refresh limits can be tested without
//! waiting. Errors are `(errcode, errmsg)` pairs with WeChat's own wording ([`super::wire`]);
//! the HTTP layer adds the `rid`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub(crate) mod console;
mod miniprogram;
mod web_login;

use super::platform::Platform;
use super::wire::{random_token, WxErr};
use super::{Fault, MockConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenApiKind {
    Classic,
    Stable,
}

#[derive(Debug, Clone)]
struct TokenRec {
    appid: String,
    kind: TokenApiKind,
    expires_at: Duration,
    /// From this mock time on the token answers 40001 (replaced, force-refreshed, invalidated).
    invalid_at: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
struct ForceRefresh {
    day: u64,
    count: u32,
    last: Option<Duration>,
}

#[derive(Debug, Clone)]
struct CodeRec {
    appid: String,
    /// The component it was issued through (`component_appid` on the authorize URL): such a
    /// code is exchanged only at `sns/oauth2/component/access_token`, the others only at
    /// `sns/oauth2/access_token`.
    component: Option<String>,
    user: User,
    issued_at: Duration,
    used: bool,
}

#[derive(Debug, Clone)]
struct User {
    openid: String,
    unionid: Option<String>,
    name: String,
    scope: String,
    snapshot: bool,
}

#[derive(Debug, Clone)]
struct WebTokenRec {
    appid: String,
    user: User,
    expires_at: Duration,
}

pub(crate) struct Inner {
    config: MockConfig,
    started: Instant,
    clock_offset: Duration,
    pub latency: Duration,
    pub down: bool,
    pub calls: BTreeMap<String, u64>,
    faults: HashMap<String, VecDeque<Fault>>,
    accounts: HashMap<String, String>,
    tokens: HashMap<String, TokenRec>,
    stable_current: HashMap<String, String>,
    /// When expired tokens were last forgotten (see `prune`).
    pruned_at: Option<Duration>,
    force: HashMap<String, ForceRefresh>,
    tickets: HashMap<(String, &'static str), (String, Duration)>,
    codes: HashMap<String, CodeRec>,
    web_tokens: HashMap<String, WebTokenRec>,
    refresh_tokens: HashMap<String, WebTokenRec>,
    pub custom_messages: Vec<Value>,
    /// The appid whose access token sent each of `custom_messages`.
    pub custom_senders: Vec<String>,
    /// Uploaded media (kept across `reset`, like issued tokens).
    pub media: Vec<super::MockMedia>,
    /// The third-party platform (开放平台) side.
    pub platform: Platform,
    /// Calls made with a valid access token, per appid and path (`openapi/quota/get`'s `used`).
    pub quota_used: HashMap<(String, String), u64>,
    /// What tests set in the mock's WeChat console (kept across `reset`, like accounts).
    pub console: console::ConsoleState,
    /// Mini programs' login codes, sessions and phone-number codes.
    mini: miniprogram::MiniState,
}

/// Endpoint labels are paths without the leading `/`.
pub(crate) fn label(endpoint: &str) -> String {
    endpoint.trim_start_matches('/').to_owned()
}

impl Inner {
    pub fn new(config: MockConfig) -> Self {
        let accounts = config
            .accounts
            .iter()
            .map(|a| (a.appid.clone(), a.secret.clone()))
            .collect();
        let mut platform = Platform::default();
        for c in &config.components {
            platform.add_component(c.clone());
        }
        Self {
            latency: config.latency,
            config,
            started: Instant::now(),
            clock_offset: Duration::ZERO,
            down: false,
            calls: BTreeMap::new(),
            faults: HashMap::new(),
            accounts,
            tokens: HashMap::new(),
            stable_current: HashMap::new(),
            pruned_at: None,
            force: HashMap::new(),
            tickets: HashMap::new(),
            codes: HashMap::new(),
            web_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            custom_messages: Vec::new(),
            custom_senders: Vec::new(),
            media: Vec::new(),
            platform,
            quota_used: HashMap::new(),
            console: console::ConsoleState::default(),
            mini: Default::default(),
        }
    }

    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    pub(crate) fn config_mut(&mut self) -> &mut MockConfig {
        &mut self.config
    }

    /// Mock time: real time since start plus what tests advanced.
    pub fn now(&self) -> Duration {
        self.started.elapsed() + self.clock_offset
    }

    pub fn advance(&mut self, by: Duration) {
        self.clock_offset += by;
    }

    pub fn set_token_ttl(&mut self, secs: u64) {
        self.config.token_ttl_s = secs;
    }

    pub fn set_ticket_ttl(&mut self, secs: u64) {
        self.config.ticket_ttl_s = secs;
    }

    pub fn set_classic_grace(&mut self, secs: u64) {
        self.config.classic_grace_s = secs;
    }

    pub fn add_account(&mut self, appid: &str, secret: &str) {
        self.accounts.insert(appid.to_owned(), secret.to_owned());
    }

    pub fn appids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.accounts.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn count_call(&mut self, endpoint: &str) {
        *self.calls.entry(label(endpoint)).or_default() += 1;
    }

    pub fn push_fault(&mut self, endpoint: &str, fault: Fault) {
        self.faults
            .entry(label(endpoint))
            .or_default()
            .push_back(fault);
    }

    pub fn pop_fault(&mut self, endpoint: &str) -> Option<Fault> {
        self.faults.get_mut(&label(endpoint))?.pop_front()
    }

    /// Forgets counters, faults, latency, down mode, force-refresh counters and recorded
    /// messages. Issued tokens, tickets and codes stay valid, so a gateway holding them is not
    /// disturbed by a test resetting the mock between cases.
    pub fn reset(&mut self) {
        self.calls.clear();
        self.quota_used.clear();
        self.faults.clear();
        self.latency = self.config.latency;
        self.down = false;
        self.force.clear();
        self.custom_messages.clear();
        self.custom_senders.clear();
        self.platform.reset();
    }

    fn check_app(&self, appid: Option<&str>, secret: Option<&str>) -> Result<String, WxErr> {
        let appid = appid.filter(|s| !s.is_empty()).ok_or(WxErr::code(41002))?;
        let expected = self.accounts.get(appid).ok_or(WxErr::code(40013))?;
        let secret = secret.filter(|s| !s.is_empty()).ok_or(WxErr::code(41004))?;
        if secret != expected {
            return Err(WxErr::code(40125));
        }
        Ok(appid.to_owned())
    }

    fn issue_token(&mut self, appid: &str, kind: TokenApiKind) -> (String, u64) {
        let token = random_token(136);
        let ttl = self.config.token_ttl_s;
        let expires_at = self.now() + Duration::from_secs(ttl);
        self.tokens.insert(
            token.clone(),
            TokenRec {
                appid: appid.to_owned(),
                kind,
                expires_at,
                invalid_at: None,
            },
        );
        (token, ttl)
    }

    /// Forgets tokens expired for more than a day, so a long-running mock stays small. At most
    /// once a minute: it walks every token, and a scale run issues 100 000 of them.
    fn prune(&mut self) {
        let now = self.now();
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_sub(at) < Duration::from_secs(60))
        {
            return;
        }
        self.pruned_at = Some(now);
        let day = Duration::from_secs(86_400);
        self.tokens.retain(|_, t| t.expires_at + day > now);
        self.web_tokens.retain(|_, t| t.expires_at + day > now);
        self.codes.retain(|_, c| c.issued_at + day > now);
    }

    /// `cgi-bin/token`: every call issues a new token; the previous ones stay valid for the
    /// grace period (5 minutes on WeChat).
    pub fn classic_token(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        if q.get("grant_type").map(String::as_str) != Some("client_credential") {
            return Err(WxErr::code(40002));
        }
        let appid = self.check_app(
            q.get("appid").map(String::as_str),
            q.get("secret").map(String::as_str),
        )?;
        self.prune();
        let cutoff = self.now() + Duration::from_secs(self.config.classic_grace_s);
        for rec in self.tokens.values_mut() {
            if rec.appid == appid && rec.kind == TokenApiKind::Classic {
                rec.invalid_at = Some(rec.invalid_at.map_or(cutoff, |t| t.min(cutoff)));
            }
        }
        let (token, ttl) = self.issue_token(&appid, TokenApiKind::Classic);
        Ok(json!({"access_token": token, "expires_in": ttl}))
    }

    /// `cgi-bin/stable_token`: idempotent in normal mode (a new token once 300 s or less
    /// remain, the old one valid to its end); `force_refresh` issues a new token and retires
    /// the previous ones at once, at most `force_refresh_daily_limit` a day and
    /// `force_refresh_interval_s` apart.
    pub fn stable_token(&mut self, body: &Value) -> Result<Value, WxErr> {
        if !body.is_object() {
            return Err(WxErr::code(47001));
        }
        if body.get("grant_type").and_then(Value::as_str) != Some("client_credential") {
            return Err(WxErr::code(40002));
        }
        let appid = self.check_app(
            body.get("appid").and_then(Value::as_str),
            body.get("secret").and_then(Value::as_str),
        )?;
        let force = match body.get("force_refresh") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(WxErr::code(47001)),
        };
        let now = self.now();
        if force {
            // Days are counted on the mock clock from the mock's start (not at midnight
            // Beijing time like WeChat), so tests do not depend on the wall clock.
            let day = now.as_secs() / 86_400;
            let limit = self.config.force_refresh_daily_limit;
            let interval = Duration::from_secs(self.config.force_refresh_interval_s);
            let state = self.force.entry(appid.clone()).or_default();
            if state.day != day {
                *state = ForceRefresh {
                    day,
                    count: 0,
                    last: state.last,
                };
            }
            if state.count >= limit {
                return Err(WxErr::code(45009));
            }
            if state.last.is_some_and(|last| now < last + interval) {
                return Err(WxErr::code(45011));
            }
            state.count += 1;
            state.last = Some(now);
            for rec in self.tokens.values_mut() {
                if rec.appid == appid && rec.kind == TokenApiKind::Stable {
                    rec.invalid_at = Some(rec.invalid_at.map_or(now, |t| t.min(now)));
                }
            }
        } else if let Some(current) = self.stable_current.get(&appid) {
            if let Some(rec) = self.tokens.get(current) {
                let usable = !matches!(rec.invalid_at, Some(t) if t <= now);
                let remaining = rec.expires_at.saturating_sub(now);
                if usable && remaining > Duration::from_secs(300) {
                    return Ok(json!({"access_token": current, "expires_in": remaining.as_secs()}));
                }
            }
        }
        self.prune();
        let (token, ttl) = self.issue_token(&appid, TokenApiKind::Stable);
        self.stable_current.insert(appid, token.clone());
        Ok(json!({"access_token": token, "expires_in": ttl}))
    }

    /// The account a global access_token belongs to, or WeChat's error for it. An
    /// authorizer's access token (third-party platform) is the access token of its appid.
    pub fn check_access_token(&self, token: Option<&str>) -> Result<String, WxErr> {
        let token = token.filter(|t| !t.is_empty()).ok_or(WxErr::code(41001))?;
        let now = self.now();
        let Some(rec) = self.tokens.get(token) else {
            return self.platform.check_authorizer_token(token, now);
        };
        if rec.invalid_at.is_some_and(|t| t <= now) {
            return Err(WxErr::code(40001));
        }
        if rec.expires_at <= now {
            return Err(WxErr::code(42001));
        }
        Ok(rec.appid.clone())
    }

    /// Every token of `appid` answers 40001 from now on.
    pub fn invalidate_access_tokens(&mut self, appid: &str) {
        let now = self.now();
        for rec in self.tokens.values_mut() {
            if rec.appid == appid {
                rec.invalid_at = Some(rec.invalid_at.map_or(now, |t| t.min(now)));
            }
        }
        self.platform.invalidate_authorizer_tokens(appid);
    }

    /// The tokens of `appid` WeChat would accept right now (classic, stable, authorizer).
    pub fn current_access_tokens(&self, appid: &str) -> Vec<String> {
        let mut tokens: Vec<String> = self
            .tokens
            .iter()
            .filter(|(t, rec)| rec.appid == appid && self.check_access_token(Some(t)).is_ok())
            .map(|(t, _)| t.clone())
            .collect();
        tokens.extend(self.platform.authorizer_tokens_of(appid, self.now()));
        tokens.sort();
        tokens
    }

    /// `cgi-bin/ticket/getticket`: the same ticket while valid (with its remaining
    /// lifetime), a new one after it expired.
    pub fn ticket(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let appid = self.check_access_token(q.get("access_token").map(String::as_str))?;
        let kind: &'static str = match q.get("type").map(String::as_str) {
            Some("jsapi") => "jsapi",
            Some("wx_card") => "wx_card",
            _ => return Err(WxErr::code(40097)),
        };
        let now = self.now();
        let key = (appid, kind);
        if let Some((ticket, expires_at)) = self.tickets.get(&key) {
            if *expires_at > now {
                let remaining = expires_at.saturating_sub(now).as_secs();
                return Ok(
                    json!({"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": remaining}),
                );
            }
        }
        let ticket = random_token(86);
        let ttl = self.config.ticket_ttl_s;
        self.tickets
            .insert(key, (ticket.clone(), now + Duration::from_secs(ttl)));
        Ok(json!({"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": ttl}))
    }

    pub fn known_appid(&self, appid: &str) -> bool {
        self.accounts.contains_key(appid)
    }
}
