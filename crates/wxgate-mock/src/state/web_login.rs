//! Web login (网页授权) in the mock's memory: OAuth codes issued by the authorize page, their
//! exchange for a web access token (once), its refresh and check, and the user profile — kept
//! apart from the account tokens and tickets of `state.rs`, which it shares only the clock and
//! the accounts with.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{CodeRec, Inner, User, WebTokenRec};
use crate::wire::{openid_for, random_token, unionid_for, wechat_id, WxErr};

impl Inner {
    /// Issues an OAuth code for `user` (the `mock_openid` parameter), through `component`
    /// when the authorize URL named one.
    pub fn issue_code(
        &mut self,
        appid: &str,
        user_name: &str,
        scope: &str,
        snapshot: bool,
        component: Option<&str>,
    ) -> String {
        let user = if snapshot {
            User {
                openid: openid_for(appid, &format!("snapshot|{user_name}")),
                unionid: None,
                name: user_name.to_owned(),
                scope: scope.to_owned(),
                snapshot: true,
            }
        } else {
            User {
                openid: openid_for(appid, user_name),
                unionid: Some(unionid_for(user_name)),
                name: user_name.to_owned(),
                scope: scope.to_owned(),
                snapshot: false,
            }
        };
        let code = random_token(32).replace(['-', '_'], "0");
        self.codes.insert(
            code.clone(),
            CodeRec {
                appid: appid.to_owned(),
                component: component.map(str::to_owned),
                user,
                issued_at: self.now(),
                used: false,
            },
        );
        code
    }

    fn web_token_json(&mut self, appid: &str, user: &User, refresh_token: &str) -> Value {
        let token = random_token(110);
        let now = self.now();
        self.web_tokens.insert(
            token.clone(),
            WebTokenRec {
                appid: appid.to_owned(),
                user: user.clone(),
                expires_at: now + Duration::from_secs(7200),
            },
        );
        let mut answer = json!({
            "access_token": token,
            "expires_in": 7200,
            "refresh_token": refresh_token,
            "openid": user.openid,
            "scope": user.scope,
        });
        if let Some(unionid) = &user.unionid {
            answer["unionid"] = json!(unionid);
        }
        if user.snapshot {
            answer["is_snapshotuser"] = json!(1);
        }
        answer
    }

    /// `sns/oauth2/access_token`: a code works once, for `code_ttl_s`, on its own account.
    pub fn exchange_code(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let appid = self.check_app(
            q.get("appid").map(String::as_str),
            q.get("secret").map(String::as_str),
        )?;
        self.redeem_code(&appid, None, q)
    }

    /// The exchange of an OAuth code issued for `appid` through `component` (or directly):
    /// a code issued through the other door is unknown there (40029).
    pub(crate) fn redeem_code(
        &mut self,
        appid: &str,
        component: Option<&str>,
        q: &HashMap<String, String>,
    ) -> Result<Value, WxErr> {
        if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err(WxErr::code(40002));
        }
        let code = q
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or(WxErr::code(41008))?;
        let now = self.now();
        let ttl = Duration::from_secs(self.config.code_ttl_s);
        let rec = self
            .codes
            .get_mut(code)
            .filter(|c| c.appid == appid && c.component.as_deref() == component)
            .ok_or(WxErr::code(40029))?;
        if rec.used {
            return Err(WxErr::code(40163));
        }
        if now >= rec.issued_at + ttl {
            return Err(WxErr::code(42003));
        }
        rec.used = true;
        let user = rec.user.clone();
        let refresh_token = random_token(110);
        self.refresh_tokens.insert(
            refresh_token.clone(),
            WebTokenRec {
                appid: appid.to_owned(),
                user: user.clone(),
                expires_at: now + Duration::from_secs(30 * 86_400),
            },
        );
        Ok(self.web_token_json(appid, &user, &refresh_token))
    }

    /// `sns/oauth2/refresh_token`: a new web token for a valid refresh_token (no secret).
    pub fn refresh_web_token(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let appid = q
            .get("appid")
            .filter(|a| !a.is_empty())
            .ok_or(WxErr::code(41002))?;
        if !self.known_appid(appid) {
            return Err(WxErr::code(40013));
        }
        let appid = appid.clone();
        self.refresh_web_token_of(&appid, q)
    }

    /// The refresh of a web token of `appid` (already checked by the caller).
    pub(crate) fn refresh_web_token_of(
        &mut self,
        appid: &str,
        q: &HashMap<String, String>,
    ) -> Result<Value, WxErr> {
        if q.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return Err(WxErr::code(40002));
        }
        let token = q.get("refresh_token").ok_or(WxErr::code(40030))?;
        let rec = self
            .refresh_tokens
            .get(token)
            .filter(|r| r.appid == appid)
            .cloned()
            .ok_or(WxErr::code(40030))?;
        if rec.expires_at <= self.now() {
            return Err(WxErr::code(42002));
        }
        Ok(self.web_token_json(appid, &rec.user, token))
    }

    fn check_web_token(&self, q: &HashMap<String, String>) -> Result<&WebTokenRec, WxErr> {
        let token = q
            .get("access_token")
            .filter(|t| !t.is_empty())
            .ok_or(WxErr::code(41001))?;
        let rec = self.web_tokens.get(token).ok_or(WxErr::code(40001))?;
        if rec.expires_at <= self.now() {
            return Err(WxErr::code(42001));
        }
        if q.get("openid") != Some(&rec.user.openid) {
            return Err(WxErr::code(40003));
        }
        Ok(rec)
    }

    /// `sns/auth`: is this web token valid for this openid?
    pub fn check_web_auth(&self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        self.check_web_token(q)?;
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// `sns/userinfo`: the profile, for snsapi_userinfo web tokens only.
    pub fn userinfo(&self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let rec = self.check_web_token(q)?;
        let user = &rec.user;
        if user.scope != "snsapi_userinfo" {
            return Err(WxErr::code(48001));
        }
        let (nickname, headimgurl) = if user.snapshot {
            (
                "微信用户".to_owned(),
                "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132".to_owned(),
            )
        } else {
            let img = wechat_id(&format!("headimg|{}", user.name));
            (
                format!("测试用户{}", user.name),
                format!("https://thirdwx.qlogo.cn/mmopen/vi_32/{img}/132"),
            )
        };
        let mut answer = json!({
            "openid": user.openid,
            "nickname": nickname,
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": headimgurl,
            "privilege": [],
        });
        if let Some(unionid) = &user.unionid {
            answer["unionid"] = json!(unionid);
        }
        Ok(answer)
    }
}
