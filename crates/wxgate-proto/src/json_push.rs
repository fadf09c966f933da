//! Pushes in JSON (数据格式 JSON), which a mini program may choose in its console instead of XML.
//!
//! WeChat sends the same message fields as in XML, as one JSON object (`ToUserName`,
//! `FromUserName`, `CreateTime` as a number, `MsgType`, …); in safe mode the body is
//! `{"ToUserName": …, "Encrypt": "…"}` and the ciphertext is the very same WXBizMsgCrypt
//! envelope, whose plaintext is the JSON message. A passive reply is answered in JSON too, and
//! an encrypted one as `{"Encrypt","MsgSignature","TimeStamp","Nonce"}`.
//!
//! Rather than a second message model, the JSON object is read into the same ordered
//! [`Fields`] as XML (strings as text, numbers and booleans as their text, objects nested,
//! arrays as repeated fields, `null` left out), so [`Message::from_fields`] dispatches it, its
//! de-duplication key and webhook JSON are the XML ones, and rules match it unchanged. Replies
//! are rendered to XML as always and turned into JSON by [`reply_to_json`]. The JSON parser
//! bounds nesting (serde_json: 128 levels), so no input makes this recurse without bound or
//! panic.

use serde_json::Value;

use crate::crypto::EncryptedReply;
use crate::message::{Envelope, Message};
use crate::xml::{FieldValue, Fields, ParseError};

/// The JSON fields given as numbers in [`reply_to_json`]'s output.
const NUMERIC_REPLY_FIELDS: &[&str] = &["CreateTime"];

/// Reads a JSON push body (or the decrypted content of one) into fields. Errors when it is not
/// a JSON object.
pub fn parse_fields(json: &[u8]) -> Result<Fields, ParseError> {
    let value: Value = serde_json::from_slice(json).map_err(|e| ParseError::Json(e.to_string()))?;
    match value {
        Value::Object(object) => Ok(object_fields(object)),
        _ => Err(ParseError::Json("the push is not a JSON object".into())),
    }
}

fn object_fields(object: serde_json::Map<String, Value>) -> Fields {
    let mut fields = Fields::new();
    for (name, value) in object {
        push_value(&mut fields, name, value);
    }
    fields
}

fn push_value(fields: &mut Fields, name: String, value: Value) {
    match value {
        Value::Null => {}
        Value::String(s) => fields.push(name, FieldValue::Text(s)),
        Value::Number(n) => fields.push(name, FieldValue::Text(n.to_string())),
        Value::Bool(b) => fields.push(name, FieldValue::Text(b.to_string())),
        Value::Object(o) => fields.push(name, FieldValue::Nested(object_fields(o))),
        Value::Array(items) => {
            for item in items {
                push_value(fields, name.clone(), item);
            }
        }
    }
}

impl Message {
    /// Parses a plaintext JSON push (or the decrypted content of a safe-mode one); the same
    /// rules as [`Message::parse`] once read.
    pub fn parse_json(json: &[u8]) -> Result<Message, ParseError> {
        Message::from_fields(parse_fields(json)?)
    }
}

impl Envelope {
    /// Reads an encrypted JSON push body. Errors when it is not a JSON object with `Encrypt`.
    pub fn parse_json(json: &[u8]) -> Result<Envelope, ParseError> {
        let fields = parse_fields(json)?;
        let encrypt = fields
            .text("Encrypt")
            .ok_or(ParseError::MissingField("Encrypt"))?
            .trim()
            .to_owned();
        Ok(Envelope {
            to_user: fields.text("ToUserName").map(str::to_owned),
            encrypt,
        })
    }
}

/// A passive reply rendered as XML ([`crate::Reply::to_xml`]) in WeChat's JSON form: the same
/// names, `CreateTime` a number, nested elements objects.
pub fn reply_to_json(reply_xml: &str) -> Result<String, ParseError> {
    let (_root, fields) = Fields::parse_document(reply_xml.as_bytes())?;
    Ok(fields.to_json(NUMERIC_REPLY_FIELDS).to_string())
}

impl EncryptedReply {
    /// The reply body of a JSON account:
    /// `{"Encrypt":"…","MsgSignature":"…","TimeStamp":…,"Nonce":"…"}` (the time a number, as
    /// WeChat's JSON pushes give times).
    pub fn to_json(&self) -> String {
        let timestamp = self
            .timestamp
            .parse::<i64>()
            .map_or_else(|_| Value::from(self.timestamp.as_str()), Value::from);
        serde_json::json!({
            "Encrypt": self.encrypt,
            "MsgSignature": self.msg_signature,
            "TimeStamp": timestamp,
            "Nonce": self.nonce,
        })
        .to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::message::MessageKind;
    use crate::Reply;

    #[test]
    fn a_customer_service_text_reads_like_its_xml() {
        let json = br#"{"ToUserName":"gh_mini","FromUserName":"oUser","CreateTime":1700000000,
            "MsgType":"text","Content":"hello","MsgId":23456789012345678}"#;
        let m = Message::parse_json(json).unwrap();
        assert_eq!(m.text(), Some("hello"));
        assert_eq!(m.create_time(), 1_700_000_000);
        assert_eq!(m.msg_id(), Some(23456789012345678));
        let xml = "<xml><ToUserName>gh_mini</ToUserName><FromUserName>oUser</FromUserName>\
            <CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hello</Content>\
            <MsgId>23456789012345678</MsgId></xml>";
        let from_xml = Message::parse(xml.as_bytes()).unwrap();
        assert_eq!(m.dedup_key(), from_xml.dedup_key());
        assert_eq!(m.to_json(), from_xml.to_json());
    }

    #[test]
    fn a_mini_program_page_card_keeps_every_field() {
        let json = br#"{"ToUserName":"gh_mini","FromUserName":"oUser","CreateTime":1700000000,
            "MsgType":"miniprogrampage","MsgId":1,"Title":"t","AppId":"wx1","PagePath":"p",
            "ThumbUrl":"u","ThumbMediaId":"m"}"#;
        let m = Message::parse_json(json).unwrap();
        assert_eq!(m.kind(), &MessageKind::Unknown);
        assert_eq!(m.field("PagePath"), Some("p"));
        assert_eq!(m.to_json()["MsgType"], "miniprogrampage");
    }

    #[test]
    fn what_is_not_a_push_object_is_refused() {
        for body in [&b"[1,2]"[..], b"\"x\"", b"{", b"", b"<xml></xml>"] {
            assert!(Message::parse_json(body).is_err(), "{body:?}");
        }
        assert_eq!(
            Message::parse_json(br#"{"ToUserName":"a","FromUserName":"b","MsgType":"text"}"#),
            Err(ParseError::MissingField("CreateTime"))
        );
        assert_eq!(
            Envelope::parse_json(br#"{"ToUserName":"a"}"#),
            Err(ParseError::MissingField("Encrypt"))
        );
    }

    #[test]
    fn the_transfer_reply_is_wechats_json() {
        let xml = Reply::TransferCustomerService { kf_account: None }
            .to_xml("oUser", "gh_mini", 1700000001)
            .unwrap();
        let json: Value = serde_json::from_str(&reply_to_json(&xml).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ToUserName": "oUser", "FromUserName": "gh_mini",
                "CreateTime": 1700000001, "MsgType": "transfer_customer_service"})
        );
    }

    #[test]
    fn an_encrypted_reply_has_the_four_json_fields() {
        let sealed = EncryptedReply {
            encrypt: "abc=".into(),
            msg_signature: "f".repeat(40),
            timestamp: "1700000000".into(),
            nonce: "42".into(),
        };
        let json: Value = serde_json::from_str(&sealed.to_json()).unwrap();
        assert_eq!(json["Encrypt"], "abc=");
        assert_eq!(json["TimeStamp"], 1700000000);
        assert_eq!(json["Nonce"], "42");
        assert_eq!(json["MsgSignature"], "f".repeat(40));
    }
}
