//! Mini programs (小程序) in the mock's memory: login codes minted through
//! `/__mock/miniprogram/code` (what `wx.login` gives a mini program), their exchange at
//! `sns/jscode2session` (once, for 5 minutes, on their own appid; a "risky" user is refused
//! with 40226), the session_key each login issues, `wxa/checksession` against it, and
//! phone-number codes (`/__mock/miniprogram/phone_code`) for `wxa/business/getuserphonenumber`.
//! The user's openid is per appid and the unionid per user name, like the web-login users, so a
//! person who follows an Official Account and uses the mini program has one unionid in both.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;

use super::Inner;
use crate::wire::{openid_for, random_token, unionid_for, WxErr};

/// How long a `wx.login` code may be exchanged (WeChat: 5 minutes).
const LOGIN_CODE_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct LoginCode {
    appid: String,
    user: String,
    risky: bool,
    issued_at: Duration,
    used: bool,
}

#[derive(Debug, Clone)]
struct PhoneCode {
    appid: String,
    phone: String,
    used: bool,
}

/// What the mock keeps of mini programs.
#[derive(Debug, Default)]
pub(crate) struct MiniState {
    login_codes: HashMap<String, LoginCode>,
    /// The current session_key per (appid, openid).
    sessions: HashMap<(String, String), String>,
    phone_codes: HashMap<String, PhoneCode>,
}

fn new_code() -> String {
    random_token(32).replace(['-', '_'], "0")
}

impl Inner {
    /// Mints a `wx.login` code of `appid` for the user called `user`; a `risky` user's code is
    /// refused with 40226.
    pub fn mint_login_code(&mut self, appid: &str, user: &str, risky: bool) -> String {
        let code = new_code();
        let issued_at = self.now();
        self.mini.login_codes.insert(
            code.clone(),
            LoginCode {
                appid: appid.to_owned(),
                user: user.to_owned(),
                risky,
                issued_at,
                used: false,
            },
        );
        code
    }

    /// Mints a `getPhoneNumber` code of `appid` for `phone` (e.g. `13800138000`).
    pub fn mint_phone_code(&mut self, appid: &str, phone: &str) -> String {
        let code = new_code();
        self.mini.phone_codes.insert(
            code.clone(),
            PhoneCode {
                appid: appid.to_owned(),
                phone: phone.to_owned(),
                used: false,
            },
        );
        code
    }

    /// The session_key the last login of `openid` at `appid` issued.
    pub fn session_key(&self, appid: &str, openid: &str) -> Option<String> {
        self.mini
            .sessions
            .get(&(appid.to_owned(), openid.to_owned()))
            .cloned()
    }

    /// Replaces the user's session_key (as a new `wx.login` elsewhere would); the old one no
    /// longer passes `checksession`.
    pub fn renew_session(&mut self, appid: &str, openid: &str) -> bool {
        match self
            .mini
            .sessions
            .get_mut(&(appid.to_owned(), openid.to_owned()))
        {
            Some(key) => {
                *key = new_session_key();
                true
            }
            None => false,
        }
    }

    /// `sns/jscode2session`.
    pub fn jscode2session(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let appid = self.check_app(
            q.get("appid").map(String::as_str),
            q.get("secret").map(String::as_str),
        )?;
        if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err(WxErr::code(40002));
        }
        let code = q
            .get("js_code")
            .filter(|c| !c.is_empty())
            .ok_or(WxErr::code(41008))?;
        let now = self.now();
        let rec = self
            .mini
            .login_codes
            .get_mut(code)
            .filter(|c| c.appid == appid)
            .ok_or(WxErr::code(40029))?;
        if rec.used {
            return Err(WxErr::code(40163));
        }
        if now >= rec.issued_at + LOGIN_CODE_TTL {
            return Err(WxErr::code(40029));
        }
        rec.used = true;
        if rec.risky {
            return Err(WxErr::code(40226));
        }
        let openid = openid_for(&appid, &rec.user);
        let unionid = unionid_for(&rec.user);
        let session_key = new_session_key();
        self.mini
            .sessions
            .insert((appid, openid.clone()), session_key.clone());
        Ok(json!({"openid": openid, "session_key": session_key, "unionid": unionid}))
    }

    /// `wxa/checksession`: the signature must be `hmac_sha256(session_key, "")` of the user's
    /// current session_key (87009 otherwise).
    pub fn check_session(&mut self, q: &HashMap<String, String>) -> Result<Value, WxErr> {
        let appid = self.check_access_token(q.get("access_token").map(String::as_str))?;
        if q.get("sig_method").map(String::as_str) != Some("hmac_sha256") {
            return Err(WxErr::code(87009));
        }
        let openid = q.get("openid").ok_or(WxErr::code(40003))?;
        let signature = q.get("signature").ok_or(WxErr::code(87009))?;
        let current = self
            .mini
            .sessions
            .get(&(appid, openid.clone()))
            .ok_or(WxErr::code(87009))?;
        if &session_signature(current) != signature {
            return Err(WxErr::code(87009));
        }
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// `wxa/business/getuserphonenumber`: a code works once, on its own appid.
    pub fn user_phone_number(
        &mut self,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Result<Value, WxErr> {
        let appid = self.check_access_token(q.get("access_token").map(String::as_str))?;
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or(WxErr::code(41008))?;
        let rec = self
            .mini
            .phone_codes
            .get_mut(code)
            .filter(|c| c.appid == appid && !c.used)
            .ok_or(WxErr::code(40029))?;
        rec.used = true;
        let phone = rec.phone.clone();
        // Watermarks carry real time, whatever the mock clock says.
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": {"timestamp": timestamp, "appid": appid},
            }
        }))
    }
}

fn new_session_key() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `hmac_sha256(session_key, "")` in hex, the session_key's base64 text being the key.
fn session_signature(session_key: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(session_key.as_bytes()) {
        Ok(mac) => hex::encode(mac.finalize().into_bytes()),
        Err(_) => String::new(),
    }
}
