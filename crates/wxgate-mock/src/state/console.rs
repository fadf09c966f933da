//! What an account's owner has set in WeChat's console (mp.weixin.qq.com → 设置与开发), as the
//! mock's console (`/__mock/console/{appid}`) saved it, and WeChat's rules for those values.
//!
//! A gateway's onboarding is tested "from nothing": the operator pastes values into WeChat's
//! console, and from then on WeChat behaves differently — it pushes to the saved server URL,
//! refuses token calls from IPs outside the whitelist (40164) and OAuth redirects outside the
//! web-authorization domain (10003). This module keeps those settings per appid and checks the
//! values the way WeChat's forms do (Token 3–32 letters or digits, a 43-character
//! EncodingAESKey, a domain without scheme or path, plain IP addresses), with WeChat's wording.
//! It is synchronous and does no I/O: the console's routes do the fetching and pushing. Nothing
//! here is set unless a test uses the console, so the mock's other behaviour is unchanged.

use std::collections::HashMap;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::platform::crypto;
use crate::wire::WxErr;

/// 消息加解密方式.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 明文模式: plain XML, signed with `signature`.
    Plaintext,
    /// 兼容模式: plain fields and `<Encrypt>`; the reply may be either.
    Compatible,
    /// 安全模式: only `<Encrypt>`; the reply must be encrypted.
    Safe,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Plaintext, Mode::Compatible, Mode::Safe];

    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "plaintext" => Some(Mode::Plaintext),
            "compatible" => Some(Mode::Compatible),
            "safe" => Some(Mode::Safe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::Compatible => "compatible",
            Mode::Safe => "safe",
        }
    }

    /// The label of WeChat's radio button.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Plaintext => "明文模式",
            Mode::Compatible => "兼容模式",
            Mode::Safe => "安全模式（推荐）",
        }
    }
}

/// 服务器配置 as submitted (checked, not yet verified against the URL).
#[derive(Clone)]
pub(crate) struct ServerConfig {
    pub url: String,
    pub token: String,
    /// Empty in plaintext mode when none was given.
    pub encoding_aes_key: String,
    /// The AES key of `encoding_aes_key` (None when it is empty).
    pub key: Option<[u8; 32]>,
    pub mode: Mode,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("url", &self.url)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// One account's console settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppConsole {
    pub server: Option<ServerConfig>,
    /// JS接口安全域名 (`host[:port]`).
    pub js_domain: Option<String>,
    /// 网页授权域名 (`host[:port]`).
    pub oauth_domain: Option<String>,
    /// IP白名单; empty: no check.
    pub ip_whitelist: Vec<IpAddr>,
}

/// Every account's console settings. Kept across `/__mock/reset`, like accounts.
#[derive(Debug, Default)]
pub(crate) struct ConsoleState {
    apps: HashMap<String, AppConsole>,
}

impl ConsoleState {
    /// The settings of `appid` (all unset when never touched).
    pub fn app(&self, appid: &str) -> AppConsole {
        self.apps.get(appid).cloned().unwrap_or_default()
    }

    pub fn app_mut(&mut self, appid: &str) -> &mut AppConsole {
        self.apps.entry(appid.to_owned()).or_default()
    }

    /// 40164 for a caller outside the saved whitelist of `appid` (no whitelist: no check). A
    /// caller whose address is unknown (the router served without connection info) is outside.
    pub fn check_ip(&self, appid: &str, caller: Option<IpAddr>) -> Result<(), WxErr> {
        let Some(app) = self.apps.get(appid) else {
            return Ok(());
        };
        if app.ip_whitelist.is_empty() {
            return Ok(());
        }
        let caller = caller.map(|ip| ip.to_canonical());
        if caller.is_some_and(|ip| app.ip_whitelist.contains(&ip)) {
            return Ok(());
        }
        Err(ip_refusal(caller))
    }

    /// The saved 网页授权域名 of `appid`.
    pub fn oauth_domain(&self, appid: &str) -> Option<&str> {
        self.apps.get(appid)?.oauth_domain.as_deref()
    }
}

/// WeChat's 40164: `invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist`.
fn ip_refusal(caller: Option<IpAddr>) -> WxErr {
    let shown = match caller {
        Some(IpAddr::V4(v4)) => format!("{v4} ipv6 ::ffff:{v4}"),
        Some(IpAddr::V6(v6)) => format!("{v6} ipv6 {v6}"),
        None => "unknown ipv6 unknown".to_owned(),
    };
    WxErr(40164, format!("invalid ip {shown}, not in whitelist"))
}

/// Checks a 服务器配置 submission as WeChat's form does; the error is WeChat's sentence.
pub(crate) fn check_server(
    url: &str,
    token: &str,
    encoding_aes_key: &str,
    mode: Mode,
) -> Result<ServerConfig, String> {
    let url = url.trim();
    let parsed = url::Url::parse(url).map_err(|_| "URL格式错误".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("URL格式错误（必须以 http:// 或 https:// 开头）".into());
    }
    let token_ok =
        (3..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric());
    if !token_ok {
        return Err("Token 格式错误（必须为英文或数字，长度为3-32字符）".into());
    }
    let key = if encoding_aes_key.is_empty() && mode == Mode::Plaintext {
        None
    } else {
        let alnum = encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric());
        match crypto::aes_key(encoding_aes_key) {
            Ok(key) if alnum => Some(key),
            _ => return Err(
                "EncodingAESKey 格式错误（消息加解密密钥由43位字符组成，字符范围为A-Z，a-z，0-9）"
                    .into(),
            ),
        }
    };
    Ok(ServerConfig {
        url: url.to_owned(),
        token: token.to_owned(),
        encoding_aes_key: encoding_aes_key.to_owned(),
        key,
        mode,
    })
}

const CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The code of the account's domain verification file (16 letters or digits, derived from the
/// appid so a test can know it in advance).
pub(crate) fn verify_code(appid: &str) -> String {
    Sha1::digest(format!("mp_verify|{appid}").as_bytes())
        .iter()
        .take(16)
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect()
}

/// `MP_verify_<code>.txt`, the file WeChat wants at the root of a domain before saving it.
pub(crate) fn verify_file_name(appid: &str) -> String {
    format!("MP_verify_{}.txt", verify_code(appid))
}

/// A domain as WeChat's domain forms take it, `host[:port]` (lower case; the mock accepts IP
/// addresses and ports, which real WeChat refuses, because tests serve on 127.0.0.1:PORT).
pub(crate) fn check_domain(domain: &str) -> Result<String, String> {
    let domain = domain.trim();
    let domain = domain.strip_suffix('/').unwrap_or(domain);
    if domain.contains("://") {
        return Err("域名格式错误（请勿填写 http:// 或 https:// 协议头）".into());
    }
    let invalid = || "域名格式错误（只填写域名，如 www.qq.com，不含路径）".to_owned();
    if domain.is_empty() || domain.contains(['/', '?', '#', '@', '\\']) {
        return Err(invalid());
    }
    let parsed = url::Url::parse(&format!("http://{domain}/")).map_err(|_| invalid())?;
    authority(&parsed).ok_or_else(invalid)
}

/// `host[:port]` of a URL (the port only when not the scheme's default).
pub(crate) fn authority(url: &url::Url) -> Option<String> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The most addresses one whitelist holds.
pub(crate) const MAX_WHITELIST: usize = 200;

/// IP addresses separated by new lines, spaces, commas or semicolons.
pub(crate) fn parse_ips<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<IpAddr>, String> {
    let mut ips = Vec::new();
    for entry in entries {
        for part in entry.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
            if part.is_empty() {
                continue;
            }
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("IP地址格式错误：{part}"))?;
            let ip = ip.to_canonical();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    if ips.len() > MAX_WHITELIST {
        return Err(format!("IP白名单最多{MAX_WHITELIST}个"));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn server_fields_are_checked_like_wechats_form() {
        let ok = check_server(" http://127.0.0.1:9/wx/a ", "tok123", KEY, Mode::Safe).unwrap();
        assert_eq!(ok.url, "http://127.0.0.1:9/wx/a");
        assert!(ok.key.is_some());
        assert!(check_server("ftp://x/", "tok123", KEY, Mode::Safe)
            .unwrap_err()
            .starts_with("URL格式错误"));
        assert!(check_server("http://x/", "t!", KEY, Mode::Safe)
            .unwrap_err()
            .starts_with("Token 格式错误"));
        assert!(check_server("http://x/", &"t".repeat(33), KEY, Mode::Safe).is_err());
        for key in ["", "short", &"+".repeat(43)] {
            assert!(check_server("http://x/", "tok123", key, Mode::Safe)
                .unwrap_err()
                .starts_with("EncodingAESKey 格式错误"));
        }
        let plain = check_server("http://x/", "tok123", "", Mode::Plaintext).unwrap();
        assert!(plain.key.is_none());
    }

    #[test]
    fn domains_are_host_and_port_only() {
        assert_eq!(check_domain("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(check_domain("WWW.Example.com/").unwrap(), "www.example.com");
        assert_eq!(check_domain("example.com:80").unwrap(), "example.com");
        for bad in ["http://a.com", "a.com/path", "", "a b", "user@a.com"] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_whitelist_refuses_others_with_wechats_errmsg() {
        let mut console = ConsoleState::default();
        let caller: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(console.check_ip("wx1", Some(caller)).is_ok());
        console.app_mut("wx1").ip_whitelist = parse_ips(["10.0.0.1\n::ffff:127.0.0.2"]).unwrap();
        let err = console.check_ip("wx1", Some(caller)).unwrap_err();
        assert_eq!(
            err,
            WxErr(
                40164,
                "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist".into()
            )
        );
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert!(console.check_ip("wx1", Some(mapped)).is_ok());
        assert!(console.check_ip("wx1", None).is_err());
        assert!(console.check_ip("wx2", Some(caller)).is_ok());
        assert!(parse_ips(["1.2.3.4, nope"]).unwrap_err().contains("nope"));
    }

    #[test]
    fn the_verify_file_is_fixed_per_appid() {
        let name = verify_file_name("wx1");
        assert_eq!(name, verify_file_name("wx1"));
        assert_ne!(name, verify_file_name("wx2"));
        assert_eq!(verify_code("wx1").len(), 16);
        assert!(name.starts_with("MP_verify_") && name.ends_with(".txt"));
    }
}
