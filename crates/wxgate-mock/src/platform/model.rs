//! The platform's memory: components, tickets, component tokens, pre-auth and authorization
//! codes, authorizers with their tokens and refresh tokens, and the rules of each answer.
//!
//! Kept apart from the account state ([`crate::state`]) because it is a second product with
//! its own credentials; the two meet in one place: an authorizer's access token is accepted
//! wherever an account's is ([`Platform::check_authorizer_token`]). It must stay cheap with
//! 10 000 authorizers: every lookup is a hash map access, nothing scans all authorizers or
//! tokens on a WeChat call (only `/__mock/*` listings and `reset` do). Expired records are
//! forgotten in issue order ([`Expiring`]). Token rotation works like classic tokens: a new
//! token gives the previous one `classic_grace_s`; an invalidation retires every token issued
//! so far through a sequence number, without visiting them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use super::crypto;
use super::MockComponent;
use crate::wire::WxErr;

mod authorizers;

/// A `component_verify_ticket` works for 12 hours.
pub(crate) const TICKET_TTL: Duration = Duration::from_secs(12 * 3600);
/// Lifetime of a pre_auth_code (WeChat: 1800 s).
pub(crate) const PRE_AUTH_CODE_TTL_S: u64 = 1800;
/// Lifetime of an authorization code (WeChat: 3600 s).
pub(crate) const AUTH_CODE_TTL_S: u64 = 3600;
/// Records are kept a day past their end, so late uses get "expired" rather than "invalid".
const KEEP: Duration = Duration::from_secs(86_400);

/// A map whose entries are forgotten in insertion order once their time has passed: O(1)
/// amortised, no scan (entries are inserted with non-decreasing `forget_at`).
pub(crate) struct Expiring<T> {
    map: HashMap<String, T>,
    queue: VecDeque<(Duration, String)>,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            queue: VecDeque::new(),
        }
    }
}

impl<T> Expiring<T> {
    fn insert(&mut self, key: String, value: T, forget_at: Duration, now: Duration) {
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, old)) = self.queue.pop_front() {
                self.map.remove(&old);
            }
        }
        self.queue.push_back((forget_at, key.clone()));
        self.map.insert(key, value);
    }

    fn get(&self, key: &str) -> Option<&T> {
        self.map.get(key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        self.map.get_mut(key)
    }
}

struct TokenRec {
    owner: String,
    seq: u64,
    expires_at: Duration,
    /// From this mock time on the token answers 40001 (a newer one was issued).
    invalid_at: Option<Duration>,
}

impl TokenRec {
    fn retire_at(&mut self, at: Duration) {
        self.invalid_at = Some(self.invalid_at.map_or(at, |t| t.min(at)));
    }
}

pub(crate) struct ComponentRec {
    pub(crate) config: MockComponent,
    pub(crate) key: Option<[u8; 32]>,
    pub(crate) newest_ticket: Option<String>,
    rotation: bool,
    /// Bumped to stop the periodic ticket pusher (re-registration, `reset`).
    pub(crate) pusher_gen: u64,
    current_token: Option<String>,
}

pub(crate) struct AuthorizerRec {
    pub(crate) component: String,
    pub(crate) nick_name: String,
    pub(crate) mini_program: bool,
    pub(crate) func_ids: Vec<u32>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) revoked: bool,
    pub(crate) token_calls: u64,
    current_token: Option<String>,
    /// Tokens with a smaller sequence number answer 40001 (invalidated, revoked).
    valid_from_seq: u64,
}

struct CodeRec {
    component: String,
    authorizer: String,
    issued_at: Duration,
    used: bool,
}

/// What a merchant's authorization produced.
pub(crate) struct Authorization {
    pub(crate) code: String,
    /// `authorized`, or `updateauthorized` when it was already an active authorizer.
    pub(crate) info_type: &'static str,
}

#[derive(Default)]
pub(crate) struct Platform {
    pub(crate) components: HashMap<String, ComponentRec>,
    /// ticket → (component appid, issued at).
    tickets: Expiring<(String, Duration)>,
    component_tokens: Expiring<TokenRec>,
    /// pre_auth_code → record (`authorizer` empty).
    pre_auth_codes: Expiring<CodeRec>,
    auth_codes: Expiring<CodeRec>,
    pub(crate) authorizers: HashMap<String, AuthorizerRec>,
    authorizer_tokens: Expiring<TokenRec>,
    seq: u64,
}

/// A request's field as a non-empty string.
pub(crate) fn field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Permission sets granted on authorization: an Official Account's (message, users, account,
/// web login, …) or a mini program's (account, development, customer service, …).
pub(crate) fn default_func_ids(mini_program: bool) -> Vec<u32> {
    if mini_program {
        vec![17, 18, 19, 25, 30, 31]
    } else {
        vec![1, 15, 2, 3, 4, 6, 7, 11]
    }
}

impl Platform {
    /// Registers (or replaces) a component; returns the generation its pusher must carry.
    pub(crate) fn add_component(&mut self, config: MockComponent) -> u64 {
        let key = crypto::aes_key(&config.encoding_aes_key).ok();
        match self.components.get_mut(&config.appid) {
            Some(rec) => {
                rec.config = config;
                rec.key = key;
                rec.pusher_gen += 1;
                rec.pusher_gen
            }
            None => {
                self.components.insert(
                    config.appid.clone(),
                    ComponentRec {
                        config,
                        key,
                        newest_ticket: None,
                        rotation: false,
                        pusher_gen: 0,
                        current_token: None,
                    },
                );
                0
            }
        }
    }

    pub(crate) fn pusher_gen(&self, component: &str) -> Option<u64> {
        self.components.get(component).map(|c| c.pusher_gen)
    }

    pub(crate) fn set_rotation(&mut self, component: &str, on: bool) -> bool {
        self.components
            .get_mut(component)
            .map(|c| c.rotation = on)
            .is_some()
    }

    /// Stops the periodic pushers and forgets the per-authorizer counters.
    pub(crate) fn reset(&mut self) {
        for c in self.components.values_mut() {
            c.pusher_gen += 1;
        }
        for a in self.authorizers.values_mut() {
            a.token_calls = 0;
        }
    }

    /// A new ticket for `component` (the newest wins; older ones work until their 12 h end).
    pub(crate) fn issue_ticket(&mut self, component: &str, now: Duration) -> Option<String> {
        let rec = self.components.get_mut(component)?;
        let ticket = format!("ticket@@@{}", crate::wire::random_token(86));
        rec.newest_ticket = Some(ticket.clone());
        self.tickets.insert(
            ticket.clone(),
            (component.to_owned(), now),
            now + TICKET_TTL + KEEP,
            now,
        );
        Some(ticket)
    }

    /// The component tokens of `component` WeChat would accept now (a scan: controls only).
    pub(crate) fn component_tokens_of(&self, component: &str, now: Duration) -> Vec<String> {
        let mut tokens: Vec<String> = self
            .component_tokens
            .map
            .iter()
            .filter(|(_, r)| {
                r.owner == component && r.expires_at > now && r.invalid_at.is_none_or(|t| t > now)
            })
            .map(|(t, _)| t.clone())
            .collect();
        tokens.sort();
        tokens
    }

    /// The component a component_access_token belongs to (40001 / 42001 like access tokens).
    pub(crate) fn check_component_token(
        &self,
        token: Option<&str>,
        now: Duration,
    ) -> Result<String, WxErr> {
        let token = token.filter(|t| !t.is_empty()).ok_or(WxErr::code(41001))?;
        let rec = self.component_tokens.get(token).ok_or(WxErr::code(40001))?;
        if rec.invalid_at.is_some_and(|t| t <= now) {
            return Err(WxErr::code(40001));
        }
        if rec.expires_at <= now {
            return Err(WxErr::code(42001));
        }
        Ok(rec.owner.clone())
    }

    /// `api_component_token`: every call issues a new token, the previous one keeps `grace`.
    pub(crate) fn component_token(
        &mut self,
        body: &Value,
        now: Duration,
        ttl: u64,
        grace: u64,
    ) -> Result<Value, WxErr> {
        let appid = field(body, "component_appid").ok_or(WxErr::code(41002))?;
        let comp = self.components.get(appid).ok_or(WxErr::code(40013))?;
        let secret = field(body, "component_appsecret").ok_or(WxErr::code(41004))?;
        if secret != comp.config.secret {
            return Err(WxErr::code(40125));
        }
        let ticket = field(body, "component_verify_ticket").ok_or(WxErr::code(61006))?;
        let (_, issued_at) = self
            .tickets
            .get(ticket)
            .filter(|(owner, _)| owner == appid)
            .ok_or(WxErr::code(61006))?;
        if *issued_at + TICKET_TTL <= now {
            return Err(WxErr::code(61005));
        }
        let appid = appid.to_owned();
        let token = crate::wire::random_token(128);
        let previous = self
            .components
            .get_mut(&appid)
            .and_then(|c| c.current_token.replace(token.clone()));
        if let Some(rec) = previous.and_then(|p| self.component_tokens.get_mut(&p)) {
            rec.retire_at(now + Duration::from_secs(grace));
        }
        let rec = TokenRec {
            owner: appid,
            seq: 0,
            expires_at: now + Duration::from_secs(ttl),
            invalid_at: None,
        };
        self.component_tokens.insert(
            token.clone(),
            rec,
            now + Duration::from_secs(ttl) + KEEP,
            now,
        );
        Ok(json!({"component_access_token": token, "expires_in": ttl}))
    }

    pub(crate) fn create_pre_auth_code(&mut self, component: &str, now: Duration) -> Value {
        let code = format!("preauthcode@@@{}", crate::wire::random_token(64));
        let rec = CodeRec {
            component: component.to_owned(),
            authorizer: String::new(),
            issued_at: now,
            used: false,
        };
        let forget = now + Duration::from_secs(PRE_AUTH_CODE_TTL_S) + KEEP;
        self.pre_auth_codes.insert(code.clone(), rec, forget, now);
        json!({"pre_auth_code": code, "expires_in": PRE_AUTH_CODE_TTL_S})
    }

    /// Is `code` a pre_auth_code of `component` that may still be used?
    pub(crate) fn check_pre_auth_code(
        &self,
        component: &str,
        code: &str,
        now: Duration,
    ) -> Result<(), &'static str> {
        let rec = self
            .pre_auth_codes
            .get(code)
            .filter(|r| r.component == component)
            .ok_or("the pre_auth_code is invalid")?;
        if rec.used {
            return Err("the pre_auth_code was used already");
        }
        if rec.issued_at + Duration::from_secs(PRE_AUTH_CODE_TTL_S) <= now {
            return Err("the pre_auth_code has expired");
        }
        Ok(())
    }

    pub(crate) fn consume_pre_auth_code(
        &mut self,
        component: &str,
        code: &str,
        now: Duration,
    ) -> Result<(), &'static str> {
        self.check_pre_auth_code(component, code, now)?;
        if let Some(rec) = self.pre_auth_codes.get_mut(code) {
            rec.used = true;
        }
        Ok(())
    }

    pub(crate) fn component_appids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.components.keys().cloned().collect();
        ids.sort();
        ids
    }
}
