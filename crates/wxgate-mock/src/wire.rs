//! What the mock's answers look like on the wire: WeChat's errmsg for each errcode, request ids
//! (`rid`), random tokens, and the openids and unionids the mock derives for a test user.
//!
//! Kept apart from the mock's state ([`super::state`]) because none of it remembers anything:
//! the same input always gives the same errmsg or id (tokens and rids are random).

use rand::Rng;
use sha1::{Digest, Sha1};

/// A WeChat error answer: errcode and errmsg (without the `rid`, added when answering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WxErr(pub i64, pub String);

impl WxErr {
    pub fn code(code: i64) -> Self {
        WxErr(code, errmsg_for(code).to_owned())
    }
}

/// WeChat's wording for the errcodes the mock produces (or that tests inject).
pub(crate) fn errmsg_for(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => {
            "invalid credential, access_token is invalid or not latest, could get access_token \
             by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r"
        }
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40004 => "invalid media type",
        40007 => "invalid media_id",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40030 => "invalid refresh_token",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40163 => "code been used",
        40164 => "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
        40226 => "high risk level user, login blocked",
        40243 => "AppSecret已被冻结，请登录MP解冻后再次调用。",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41005 => "media data missing",
        41008 => "missing code",
        42001 => "access_token expired",
        42002 => "refresh_token expired",
        42003 => "code expired",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        47001 => "data format error",
        48001 => "api unauthorized",
        87009 => "invalid signature",
        61003 => "component is not authorized by this account",
        61004 => "access clientip is not registered",
        61005 => "component ticket is expired",
        61006 => "component ticket is invalid",
        61009 => "code is invalid",
        61010 => "code is expired",
        61011 => "invalid component",
        61023 => "refresh_token is invalid",
        76021 => "cgi_path not found, please check",
        76022 => "could not use this cgi_path，no permission",
        _ => "mock error",
    }
}

const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A random string over `[A-Za-z0-9_-]`.
pub(crate) fn random_token(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())]))
        .collect()
}

/// A request id shaped like WeChat's (`64f7f8b6-27a5f0a1-3b2c5e1d`).
pub(crate) fn random_rid() -> String {
    let mut rng = rand::thread_rng();
    let a: u32 = rng.gen();
    let b: u32 = rng.gen();
    let c: u32 = rng.gen();
    format!("{a:08x}-{b:08x}-{c:08x}")
}

/// A 28-character id starting with `o` (the shape of real openids and unionids), derived
/// deterministically from `seed`.
pub(crate) fn wechat_id(seed: &str) -> String {
    let first = Sha1::digest(seed.as_bytes());
    let second = Sha1::digest(first);
    let mut id = String::from("o");
    for b in first.iter().chain(second.iter()).take(27) {
        id.push(char::from(
            TOKEN_ALPHABET[usize::from(*b) % TOKEN_ALPHABET.len()],
        ));
    }
    id
}

/// The openid the mock gives `user` (the `mock_openid` authorize parameter) on `appid`.
pub(crate) fn openid_for(appid: &str, user: &str) -> String {
    wechat_id(&format!("openid|{appid}|{user}"))
}

/// The unionid of `user` (the same across accounts, like a real unionid).
pub(crate) fn unionid_for(user: &str) -> String {
    wechat_id(&format!("unionid|{user}"))
}
