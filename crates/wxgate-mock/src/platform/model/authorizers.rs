//! The authorizers' side of the platform: merchants' authorizations, authorization codes,
//! authorizer access tokens and refresh tokens (with optional rotation), revocation and the
//! account profile `api_get_authorizer_info` answers.
//!
//! A child of [`super`] so it shares the records' private fields; split off only to keep each
//! file readable. Every operation is a hash-map access keyed by appid, token or code.

use std::time::Duration;

use serde_json::{json, Value};

use super::{default_func_ids, field, Authorization, AuthorizerRec, CodeRec, Platform, TokenRec};
use super::{AUTH_CODE_TTL_S, KEEP};
use crate::platform::MockAuthorizer;
use crate::wire::WxErr;

impl Platform {
    pub(crate) fn is_active_authorizer(&self, appid: &str, component: &str) -> bool {
        self.authorizers
            .get(appid)
            .is_some_and(|a| a.component == component && !a.revoked)
    }

    /// The authorizer a token belongs to, or WeChat's error for it (as for account tokens).
    pub(crate) fn check_authorizer_token(
        &self,
        token: &str,
        now: Duration,
    ) -> Result<String, WxErr> {
        let rec = self
            .authorizer_tokens
            .get(token)
            .ok_or(WxErr::code(40001))?;
        let valid_from = self
            .authorizers
            .get(&rec.owner)
            .map_or(u64::MAX, |a| a.valid_from_seq);
        if rec.seq < valid_from || rec.invalid_at.is_some_and(|t| t <= now) {
            return Err(WxErr::code(40001));
        }
        if rec.expires_at <= now {
            return Err(WxErr::code(42001));
        }
        Ok(rec.owner.clone())
    }

    /// Every token of authorizer `appid` issued so far answers 40001.
    pub(crate) fn invalidate_authorizer_tokens(&mut self, appid: &str) {
        if let Some(a) = self.authorizers.get_mut(appid) {
            a.valid_from_seq = self.seq;
        }
    }

    /// The tokens of authorizer `appid` WeChat would accept now (a scan: controls only).
    pub(crate) fn authorizer_tokens_of(&self, appid: &str, now: Duration) -> Vec<String> {
        self.authorizer_tokens
            .map
            .iter()
            .filter(|(t, rec)| rec.owner == appid && self.check_authorizer_token(t, now).is_ok())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Records a merchant's authorization and issues its authorization code. A new
    /// authorization gives a new refresh token (the previous one stops working).
    pub(crate) fn authorize(
        &mut self,
        component: &str,
        appid: &str,
        nick_name: &str,
        func_ids: Option<Vec<u32>>,
        mini_program: bool,
        now: Duration,
    ) -> Authorization {
        let refresh_token = format!("refreshtoken@@@{}", crate::wire::random_token(43));
        let func_ids = func_ids.unwrap_or_else(|| default_func_ids(mini_program));
        let info_type = match self.authorizers.get_mut(appid) {
            Some(a) => {
                let update = a.component == component && !a.revoked;
                a.component = component.to_owned();
                a.nick_name = nick_name.to_owned();
                a.mini_program = mini_program;
                a.func_ids = func_ids;
                a.refresh_token = Some(refresh_token);
                a.revoked = false;
                if update {
                    "updateauthorized"
                } else {
                    "authorized"
                }
            }
            None => {
                self.authorizers.insert(
                    appid.to_owned(),
                    AuthorizerRec {
                        component: component.to_owned(),
                        nick_name: nick_name.to_owned(),
                        mini_program,
                        func_ids,
                        refresh_token: Some(refresh_token),
                        revoked: false,
                        token_calls: 0,
                        current_token: None,
                        valid_from_seq: 0,
                    },
                );
                "authorized"
            }
        };
        let code = format!("queryauthcode@@@{}", crate::wire::random_token(64));
        let rec = CodeRec {
            component: component.to_owned(),
            authorizer: appid.to_owned(),
            issued_at: now,
            used: false,
        };
        let forget = now + Duration::from_secs(AUTH_CODE_TTL_S) + KEEP;
        self.auth_codes.insert(code.clone(), rec, forget, now);
        Authorization { code, info_type }
    }

    /// Marks `appid` revoked: its refresh token and every token issued so far stop working.
    pub(crate) fn revoke(&mut self, component: &str, appid: &str) -> bool {
        match self.authorizers.get_mut(appid) {
            Some(a) if a.component == component => {
                a.revoked = true;
                a.refresh_token = None;
                a.valid_from_seq = self.seq;
                true
            }
            _ => false,
        }
    }

    fn issue_authorizer_token(
        &mut self,
        appid: &str,
        now: Duration,
        ttl: u64,
        grace: u64,
    ) -> String {
        let token = crate::wire::random_token(136);
        let seq = self.seq;
        self.seq += 1;
        let previous = self.authorizers.get_mut(appid).and_then(|a| {
            a.token_calls += 1;
            a.current_token.replace(token.clone())
        });
        if let Some(rec) = previous.and_then(|p| self.authorizer_tokens.get_mut(&p)) {
            rec.retire_at(now + Duration::from_secs(grace));
        }
        let rec = TokenRec {
            owner: appid.to_owned(),
            seq,
            expires_at: now + Duration::from_secs(ttl),
            invalid_at: None,
        };
        let forget = now + Duration::from_secs(ttl) + KEEP;
        self.authorizer_tokens
            .insert(token.clone(), rec, forget, now);
        token
    }

    fn func_info(ids: &[u32]) -> Value {
        ids.iter()
            .map(|id| json!({"funcscope_category": {"id": id}}))
            .collect()
    }

    /// `api_query_auth`: an authorization code works once, for an hour, for its component.
    /// Unknown code: 61009 (code is invalid); used or expired: 61010 (code is expired).
    pub(crate) fn query_auth(
        &mut self,
        component: &str,
        body: &Value,
        now: Duration,
        ttl: u64,
        grace: u64,
    ) -> Result<Value, WxErr> {
        let code = field(body, "authorization_code").ok_or(WxErr::code(61009))?;
        let rec = self
            .auth_codes
            .get_mut(code)
            .filter(|r| r.component == component)
            .ok_or(WxErr::code(61009))?;
        if rec.used || rec.issued_at + Duration::from_secs(AUTH_CODE_TTL_S) <= now {
            return Err(WxErr::code(61010));
        }
        rec.used = true;
        let appid = rec.authorizer.clone();
        let active = self.is_active_authorizer(&appid, component);
        if !active {
            return Err(WxErr::code(61010));
        }
        let token = self.issue_authorizer_token(&appid, now, ttl, grace);
        let a = self.authorizers.get_mut(&appid).ok_or(WxErr::code(61010))?;
        let refresh = a
            .refresh_token
            .get_or_insert_with(|| format!("refreshtoken@@@{}", crate::wire::random_token(43)))
            .clone();
        Ok(json!({"authorization_info": {
            "authorizer_appid": appid,
            "authorizer_access_token": token,
            "expires_in": ttl,
            "authorizer_refresh_token": refresh,
            "func_info": Self::func_info(&a.func_ids),
        }}))
    }

    /// `api_authorizer_token`: a new access token for the current refresh token (61023 for
    /// any other); with rotation on, a new refresh token replaces the one used at once.
    pub(crate) fn authorizer_token(
        &mut self,
        component: &str,
        body: &Value,
        now: Duration,
        ttl: u64,
        grace: u64,
    ) -> Result<Value, WxErr> {
        let appid = field(body, "authorizer_appid").ok_or(WxErr::code(41002))?;
        let given = field(body, "authorizer_refresh_token").ok_or(WxErr::code(61023))?;
        let rotation = self.components.get(component).is_some_and(|c| c.rotation);
        let a = self
            .authorizers
            .get_mut(appid)
            .filter(|a| a.component == component)
            .ok_or(WxErr::code(61003))?;
        if a.revoked || a.refresh_token.as_deref() != Some(given) {
            return Err(WxErr::code(61023));
        }
        if rotation {
            a.refresh_token = Some(format!("refreshtoken@@@{}", crate::wire::random_token(43)));
        }
        let refresh = a.refresh_token.clone().unwrap_or_default();
        let appid = appid.to_owned();
        let token = self.issue_authorizer_token(&appid, now, ttl, grace);
        Ok(json!({
            "authorizer_access_token": token,
            "expires_in": ttl,
            "authorizer_refresh_token": refresh,
        }))
    }

    /// `api_get_authorizer_info`: the account's profile and what it granted.
    pub(crate) fn authorizer_info(&self, component: &str, body: &Value) -> Result<Value, WxErr> {
        let appid = field(body, "authorizer_appid").ok_or(WxErr::code(41002))?;
        let a = self
            .authorizers
            .get(appid)
            .filter(|a| a.component == component && !a.revoked)
            .ok_or(WxErr::code(61003))?;
        let digest = crate::wire::wechat_id(&format!("authorizer|{appid}"));
        let user_name = format!("gh_{}", &hex::encode(digest.as_bytes())[..12]);
        let mut info = json!({
            "nick_name": a.nick_name,
            "head_img": format!("http://wx.qlogo.cn/mmopen/{}/0", &digest[1..]),
            "service_type_info": {"id": if a.mini_program { 0 } else { 2 }},
            "verify_type_info": {"id": 0},
            "user_name": user_name,
            "principal_name": format!("{} 有限公司", a.nick_name),
            "alias": "",
            "qrcode_url": format!("http://mmbiz.qpic.cn/mmbiz_jpg/{}/0", &digest[1..]),
            "business_info": {
                "open_pay": 0, "open_shake": 0, "open_scan": 0, "open_card": 0, "open_store": 0,
            },
        });
        if a.mini_program {
            info["MiniProgramInfo"] = json!({"network": {"RequestDomain": [], "WsRequestDomain": [], "UploadDomain": [], "DownloadDomain": []}, "categories": [], "visit_status": 0});
        }
        Ok(json!({
            "authorizer_info": info,
            "authorization_info": {
                "authorizer_appid": appid,
                "authorizer_refresh_token": a.refresh_token.clone().unwrap_or_default(),
                "func_info": Self::func_info(&a.func_ids),
            },
        }))
    }

    pub(crate) fn authorizer(&self, appid: &str) -> Option<MockAuthorizer> {
        self.authorizers.get(appid).map(|a| MockAuthorizer {
            appid: appid.to_owned(),
            component_appid: a.component.clone(),
            nick_name: a.nick_name.clone(),
            refresh_token: a.refresh_token.clone(),
            revoked: a.revoked,
            func_ids: a.func_ids.clone(),
            mini_program: a.mini_program,
        })
    }
}
