//! The console's 发送测试消息: a message push built and sealed as WeChat sends it to a saved
//! server URL, and the reply checked as WeChat checks it.
//!
//! WeChat pushes a user's message or event to the account's URL with `signature`, `timestamp`,
//! `nonce` and `openid` in the query; in compatible and safe mode also `encrypt_type=aes` and
//! `msg_signature`, the body carrying `<Encrypt>` (alone in safe mode, beside the plain fields
//! in compatible mode; the receive id is the appid). The passive reply is empty or `success`
//! (no reply), or XML: in safe mode an envelope whose `MsgSignature` must verify and whose
//! plaintext must end with the appid, in plaintext mode plain XML, either in compatible mode;
//! and it must be addressed to the sender. Anything else is what makes WeChat show its user
//! "该公众号暂时无法提供服务，请稍后再试". The crypto is the mock's own ([`crypto`]).

use std::collections::HashMap;

use quick_xml::events::Event;
use rand::Rng;
use serde_json::{json, Value};

use crate::platform::crypto;
use crate::platform::push::{cdata, plain, unix_now};
use crate::state::console::{Mode, ServerConfig};
use crate::wire::wechat_id;

/// What the user sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushKind {
    /// A text message with this content.
    Text(String),
    /// A `subscribe` event (a new follower).
    Subscribe,
}

/// One push ready to be POSTed.
pub(crate) struct SealedPush {
    pub url: String,
    pub body: String,
    pub openid: String,
}

/// A reply WeChat accepted.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub msg_type: String,
    /// `Content` of a text reply.
    pub content: Option<String>,
    /// The reply's plaintext XML.
    pub xml: String,
    pub encrypted: bool,
}

impl Reply {
    pub fn to_json(&self) -> Value {
        json!({
            "msg_type": self.msg_type,
            "content": self.content,
            "xml": self.xml,
            "encrypted": self.encrypted,
        })
    }
}

/// The account's original id (`gh_` and 12 hex digits, derived from the appid), the
/// `ToUserName` of every push.
pub(crate) fn original_id(appid: &str) -> String {
    let id = wechat_id(&format!("gh|{appid}"));
    let hex: String = id
        .bytes()
        .skip(1)
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("gh_{hex}")
}

/// The sender of console pushes when none is given.
pub(crate) fn default_openid(appid: &str) -> String {
    crate::wire::openid_for(appid, "console-tester")
}

fn message_xml(appid: &str, kind: &PushKind, openid: &str, now: u64) -> String {
    let mut x = String::from("<xml>");
    cdata(&mut x, "ToUserName", &original_id(appid));
    cdata(&mut x, "FromUserName", openid);
    plain(&mut x, "CreateTime", now);
    match kind {
        PushKind::Text(content) => {
            cdata(&mut x, "MsgType", "text");
            cdata(&mut x, "Content", content);
            let msg_id: u64 = rand::thread_rng().gen_range(1..i64::MAX.unsigned_abs());
            plain(&mut x, "MsgId", msg_id);
        }
        PushKind::Subscribe => {
            cdata(&mut x, "MsgType", "event");
            cdata(&mut x, "Event", "subscribe");
            cdata(&mut x, "EventKey", "");
        }
    }
    x.push_str("</xml>");
    x
}

/// The push of `kind` from `openid` to the saved server, signed (and encrypted) per its mode.
pub(crate) fn seal(
    appid: &str,
    server: &ServerConfig,
    kind: &PushKind,
    openid: &str,
) -> Result<SealedPush, String> {
    let mut url = url::Url::parse(&server.url).map_err(|_| "URL格式错误".to_owned())?;
    let now = unix_now();
    let timestamp = now.to_string();
    let nonce = rand::thread_rng()
        .gen_range(100_000_000u32..2_000_000_000)
        .to_string();
    let xml = message_xml(appid, kind, openid, now);
    url.query_pairs_mut()
        .append_pair(
            "signature",
            &crypto::signature(&server.token, &timestamp, &nonce),
        )
        .append_pair("timestamp", &timestamp)
        .append_pair("nonce", &nonce)
        .append_pair("openid", openid);
    let body = match (server.mode, server.key.as_ref()) {
        (Mode::Plaintext, _) => xml,
        (_, None) => return Err("EncodingAESKey 格式错误".into()),
        (mode, Some(key)) => {
            let encrypt = crypto::encrypt(key, &xml, appid);
            url.query_pairs_mut()
                .append_pair("encrypt_type", "aes")
                .append_pair(
                    "msg_signature",
                    &crypto::msg_signature(&server.token, &timestamp, &nonce, &encrypt),
                );
            let mut envelope = if mode == Mode::Compatible {
                // The plain fields, then `<Encrypt>`.
                xml.trim_end_matches("</xml>").to_owned()
            } else {
                let mut e = String::from("<xml>");
                cdata(&mut e, "ToUserName", &original_id(appid));
                e
            };
            cdata(&mut envelope, "Encrypt", &encrypt);
            envelope.push_str("</xml>");
            envelope
        }
    };
    Ok(SealedPush {
        url: url.into(),
        body,
        openid: openid.to_owned(),
    })
}

const UNAVAILABLE: &str = "该公众号暂时无法提供服务，请稍后再试";

fn refuse(why: &str) -> String {
    format!("{why}（用户将看到“{UNAVAILABLE}”）")
}

/// Checks the answer to a push as WeChat does: `Ok(None)` for no reply (empty or `success`).
pub(crate) fn open_reply(
    appid: &str,
    server: &ServerConfig,
    openid: &str,
    answer: &str,
) -> Result<Option<Reply>, String> {
    let answer = answer.trim();
    if answer.is_empty() || answer == "success" {
        return Ok(None);
    }
    let fields = xml_fields(answer).map_err(|e| refuse(&format!("回复不是合法的XML：{e}")))?;
    let (xml, encrypted) = match fields.get("Encrypt") {
        Some(encrypt) => {
            let key = match (server.mode, server.key.as_ref()) {
                (Mode::Plaintext, _) | (_, None) => {
                    return Err(refuse("明文模式下回复了密文"));
                }
                (_, Some(key)) => key,
            };
            let field = |name: &str| {
                fields
                    .get(name)
                    .map(String::as_str)
                    .ok_or_else(|| refuse(&format!("加密回复缺少 <{name}>")))
            };
            let (signature, timestamp, nonce) =
                (field("MsgSignature")?, field("TimeStamp")?, field("Nonce")?);
            if crypto::msg_signature(&server.token, timestamp, nonce, encrypt) != signature {
                return Err(refuse("回复的 MsgSignature 校验失败"));
            }
            let xml = crypto::decrypt_for(key, encrypt, appid).map_err(|e| match e {
                crypto::CryptoError::ReceiveIdMismatch => refuse("回复解密后的 appid 不一致"),
                other => refuse(&format!("回复解密失败：{other}")),
            })?;
            (xml, true)
        }
        None if server.mode == Mode::Safe => {
            return Err(refuse("安全模式下回复必须加密"));
        }
        None => (answer.to_owned(), false),
    };
    let inner = xml_fields(&xml).map_err(|e| refuse(&format!("回复不是合法的XML：{e}")))?;
    let Some(msg_type) = inner.get("MsgType").filter(|t| !t.is_empty()) else {
        return Err(refuse("回复缺少 MsgType"));
    };
    if inner.get("ToUserName").map(String::as_str) != Some(openid) {
        return Err(refuse("回复的 ToUserName 不是发送消息的用户"));
    }
    Ok(Some(Reply {
        msg_type: msg_type.clone(),
        content: inner.get("Content").cloned(),
        xml,
        encrypted,
    }))
}

/// The text of each child element of the root `<xml>` (CDATA or escaped text).
pub(crate) fn xml_fields(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut fields = HashMap::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if path.is_empty() && name != "xml" {
                    return Err(format!("the root element is <{name}>, not <xml>"));
                }
                path.push(name);
                text.clear();
            }
            Event::End(_) => {
                if let (2, Some(name)) = (path.len(), path.last()) {
                    fields.insert(name.clone(), std::mem::take(&mut text));
                }
                path.pop();
            }
            Event::Empty(e) if path.len() == 1 => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                fields.insert(name, String::new());
            }
            Event::Text(t) if path.len() == 2 => {
                text.push_str(&t.unescape().map_err(|e| e.to_string())?);
            }
            Event::CData(c) if path.len() == 2 => {
                text.push_str(&String::from_utf8_lossy(&c.into_inner()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if fields.is_empty() {
        return Err("no <xml> element".into());
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::console::check_server;

    const APPID: &str = "wx0000000000000001";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn server(mode: Mode) -> ServerConfig {
        check_server("http://127.0.0.1:1/wx?x=1", "tok123", KEY, mode).unwrap()
    }

    fn query(url: &str) -> HashMap<String, String> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[test]
    fn a_safe_push_carries_only_the_envelope() {
        let s = server(Mode::Safe);
        let push = seal(APPID, &s, &PushKind::Text("hello".into()), "oUser").unwrap();
        let q = query(&push.url);
        assert_eq!(q["x"], "1");
        assert_eq!(q["encrypt_type"], "aes");
        assert_eq!(q["openid"], "oUser");
        let f = xml_fields(&push.body).unwrap();
        assert_eq!(f.len(), 2, "{}", push.body);
        let encrypt = &f["Encrypt"];
        assert_eq!(
            crypto::msg_signature("tok123", &q["timestamp"], &q["nonce"], encrypt),
            q["msg_signature"]
        );
        let inner = crypto::decrypt_for(&s.key.unwrap(), encrypt, APPID).unwrap();
        let inner = xml_fields(&inner).unwrap();
        assert_eq!(inner["Content"], "hello");
        assert_eq!(inner["FromUserName"], "oUser");
    }

    #[test]
    fn compatible_and_plain_pushes_carry_the_plain_fields() {
        let compat = seal(APPID, &server(Mode::Compatible), &PushKind::Subscribe, "o1").unwrap();
        let f = xml_fields(&compat.body).unwrap();
        assert_eq!(f["Event"], "subscribe");
        assert!(f.contains_key("Encrypt"));
        let plain = seal(APPID, &server(Mode::Plaintext), &PushKind::Subscribe, "o1").unwrap();
        assert!(!plain.body.contains("Encrypt"));
        assert!(!query(&plain.url).contains_key("encrypt_type"));
    }

    #[test]
    fn replies_are_checked_as_wechat_does() {
        let safe = server(Mode::Safe);
        let key = safe.key.unwrap();
        let xml = "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh]]></FromUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi &amp; bye]]></Content></xml>";
        let encrypt = crypto::encrypt(&key, xml, APPID);
        let sig = crypto::msg_signature("tok123", "1", "2", &encrypt);
        let envelope = format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature><TimeStamp>1</TimeStamp><Nonce><![CDATA[2]]></Nonce></xml>");
        let reply = open_reply(APPID, &safe, "oUser", &envelope)
            .unwrap()
            .unwrap();
        assert_eq!(reply.content.as_deref(), Some("hi &amp; bye"));
        assert!(reply.encrypted);
        assert!(open_reply(APPID, &safe, "oOther", &envelope).is_err());
        assert!(open_reply("wxother", &safe, "oUser", &envelope)
            .unwrap_err()
            .contains("appid"));
        let forged = envelope.replace(&sig, &"0".repeat(40));
        assert!(open_reply(APPID, &safe, "oUser", &forged)
            .unwrap_err()
            .contains("MsgSignature"));
        assert!(open_reply(APPID, &safe, "oUser", xml).is_err());
        let compat = server(Mode::Compatible);
        assert!(open_reply(APPID, &compat, "oUser", xml).unwrap().is_some());
        assert!(open_reply(APPID, &safe, "oUser", " success ")
            .unwrap()
            .is_none());
        assert!(open_reply(APPID, &safe, "oUser", "").unwrap().is_none());
        assert!(open_reply(APPID, &safe, "oUser", "{\"json\":1}").is_err());
    }
}
