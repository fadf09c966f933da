//! Inbound pushes (messages and events) as typed values.
//!
//! Phase two of the XML handling described in [`crate::xml`]: the ordered field map of the
//! `<xml>` root is dispatched on `MsgType` and, for events, on `Event`. Every ordinary
//! message type and the common events get their own variant; anything else — new types
//! WeChat adds, or a known type missing one of its fields — becomes
//! [`MessageKind::Unknown`] / [`Event::Unknown`] with every field still available, never an
//! error. Only a document that is not XML or lacks the common header (`ToUserName`,
//! `FromUserName`, `CreateTime`, `MsgType`) is refused. The same field map gives the JSON
//! form forwarded to webhooks and the key used to deduplicate WeChat's retries.

mod event;

use self::event::classify_event;
pub use self::event::{Event, ScanCodeInfo, SendLocationInfo, SendPicsInfo};
use crate::xml::{Fields, ParseError};

/// Fields rendered as JSON numbers by [`Message::to_json`] when their text is an integer.
const NUMERIC_FIELDS: &[&str] = &["CreateTime", "MsgId", "MsgID"];

/// A push from WeChat: header, typed content and the raw fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    to_user: String,
    from_user: String,
    create_time: i64,
    msg_type: String,
    msg_id: Option<u64>,
    kind: MessageKind,
    fields: Fields,
}

/// The typed content of a [`Message`], chosen by `MsgType`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    /// `text`.
    Text {
        /// `Content`.
        content: String,
        /// `bizmsgmenuid`, set when the user tapped a menu in a customer-service message.
        biz_msg_menu_id: Option<String>,
    },
    /// `image`.
    Image {
        /// `PicUrl`.
        pic_url: String,
        /// `MediaId`.
        media_id: String,
    },
    /// `voice`.
    Voice {
        /// `MediaId`.
        media_id: String,
        /// `Format` (amr, speex, …).
        format: String,
        /// `Recognition`, the speech-to-text result when the account enabled it.
        recognition: Option<String>,
    },
    /// `video`.
    Video {
        /// `MediaId`.
        media_id: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `shortvideo`.
    ShortVideo {
        /// `MediaId`.
        media_id: String,
        /// `ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `location` (a location the user sent as a message).
    Location {
        /// `Location_X`, latitude.
        latitude: String,
        /// `Location_Y`, longitude.
        longitude: String,
        /// `Scale`, map zoom.
        scale: String,
        /// `Label`, place description.
        label: String,
    },
    /// `link`.
    Link {
        /// `Title`.
        title: String,
        /// `Description`.
        description: String,
        /// `Url`.
        url: String,
    },
    /// `event`.
    Event(Event),
    /// Any other `MsgType`, or a known one missing a field it needs; see [`Message::fields`].
    Unknown,
}

impl Message {
    /// Parses a plaintext push (or the decrypted content of a safe-mode push).
    ///
    /// Errors only for malformed XML (including any `<!DOCTYPE>`) or a missing/invalid
    /// common header; unknown types and events are returned as `Unknown`. Never panics.
    pub fn parse(xml: &[u8]) -> Result<Message, ParseError> {
        let (_root, fields) = Fields::parse_document(xml)?;
        Message::from_fields(fields)
    }

    /// Builds a message from an already-read field map (phase two alone).
    pub fn from_fields(fields: Fields) -> Result<Message, ParseError> {
        let to_user = required(&fields, "ToUserName")?.to_owned();
        let from_user = required(&fields, "FromUserName")?.to_owned();
        let create_time = required(&fields, "CreateTime")?
            .trim()
            .parse::<i64>()
            .map_err(|_| ParseError::InvalidField("CreateTime"))?;
        let msg_type = required(&fields, "MsgType")?.to_owned();
        let msg_id = match fields.text("MsgId").map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| ParseError::InvalidField("MsgId"))?,
            ),
        };
        let kind = classify(&msg_type, &fields).unwrap_or(MessageKind::Unknown);
        Ok(Message {
            to_user,
            from_user,
            create_time,
            msg_type,
            msg_id,
            kind,
            fields,
        })
    }

    /// `ToUserName`: the account's original id (`gh_…`).
    pub fn to_user(&self) -> &str {
        &self.to_user
    }

    /// `FromUserName`: the sender's openid.
    pub fn from_user(&self) -> &str {
        &self.from_user
    }

    /// `CreateTime`, unix seconds.
    pub fn create_time(&self) -> i64 {
        self.create_time
    }

    /// `MsgType` as sent.
    pub fn msg_type(&self) -> &str {
        &self.msg_type
    }

    /// `MsgId` (ordinary messages; events have none).
    pub fn msg_id(&self) -> Option<u64> {
        self.msg_id
    }

    /// The typed content.
    pub fn kind(&self) -> &MessageKind {
        &self.kind
    }

    /// The typed event, when this is an `event` push WeChat-known or not.
    pub fn as_event(&self) -> Option<&Event> {
        match &self.kind {
            MessageKind::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The raw `Event` field (as sent, e.g. `subscribe`, `CLICK`).
    pub fn event(&self) -> Option<&str> {
        self.fields.text("Event")
    }

    /// The raw `EventKey` field.
    pub fn event_key(&self) -> Option<&str> {
        self.fields.text("EventKey")
    }

    /// `Content` of a text message.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Text { content, .. } => Some(content),
            _ => None,
        }
    }

    /// Every field of the push in document order.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The text of the first top-level field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.text(name)
    }

    /// Key identifying one delivery across WeChat's retries: `id:<MsgId>` for messages,
    /// `ev:<FromUserName>|<CreateTime>|<Event>|<EventKey>` for pushes without a `MsgId`, with
    /// `|<MsgID>` appended when the event carries one (the delivery reports
    /// `TEMPLATESENDJOBFINISH` and `MASSSENDJOBFINISH` name the message they report on in
    /// `MsgID`, capital D: two reports for one user in one second are two pushes, not retries).
    pub fn dedup_key(&self) -> String {
        if let Some(id) = self.msg_id {
            return format!("id:{id}");
        }
        let mut key = format!(
            "ev:{}|{}|{}|{}",
            self.from_user,
            self.create_time,
            self.event().unwrap_or(""),
            self.event_key().unwrap_or("")
        );
        if let Some(reported) = self.fields.text("MsgID").map(str::trim) {
            if !reported.is_empty() {
                key.push('|');
                key.push_str(reported);
            }
        }
        key
    }

    /// The push as a JSON object for webhooks: XML element names as keys, values as strings
    /// except `CreateTime`, `MsgId` and `MsgID` which are numbers; nested elements become
    /// objects and repeated elements arrays.
    pub fn to_json(&self) -> serde_json::Value {
        self.fields.to_json(NUMERIC_FIELDS)
    }
}

fn required<'a>(fields: &'a Fields, name: &'static str) -> Result<&'a str, ParseError> {
    fields.text(name).ok_or(ParseError::MissingField(name))
}

pub(super) fn owned(fields: &Fields, name: &str) -> Option<String> {
    fields.text(name).map(str::to_owned)
}

/// Optional text field; an empty element counts as absent.
pub(super) fn optional(fields: &Fields, name: &str) -> Option<String> {
    fields
        .text(name)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn number(fields: &Fields, name: &str) -> Option<u64> {
    fields.text(name).and_then(|s| s.trim().parse().ok())
}

/// Phase-two dispatch. `None` means "a known type without the fields it needs", which the
/// caller turns into `Unknown`.
fn classify(msg_type: &str, f: &Fields) -> Option<MessageKind> {
    let t = msg_type.trim();
    let is = |name: &str| t.eq_ignore_ascii_case(name);
    Some(if is("text") {
        MessageKind::Text {
            content: owned(f, "Content")?,
            biz_msg_menu_id: optional(f, "bizmsgmenuid"),
        }
    } else if is("image") {
        MessageKind::Image {
            pic_url: owned(f, "PicUrl").unwrap_or_default(),
            media_id: owned(f, "MediaId")?,
        }
    } else if is("voice") {
        MessageKind::Voice {
            media_id: owned(f, "MediaId")?,
            format: owned(f, "Format").unwrap_or_default(),
            recognition: optional(f, "Recognition"),
        }
    } else if is("video") {
        MessageKind::Video {
            media_id: owned(f, "MediaId")?,
            thumb_media_id: owned(f, "ThumbMediaId").unwrap_or_default(),
        }
    } else if is("shortvideo") {
        MessageKind::ShortVideo {
            media_id: owned(f, "MediaId")?,
            thumb_media_id: owned(f, "ThumbMediaId").unwrap_or_default(),
        }
    } else if is("location") {
        MessageKind::Location {
            latitude: owned(f, "Location_X")?,
            longitude: owned(f, "Location_Y")?,
            scale: owned(f, "Scale").unwrap_or_default(),
            label: owned(f, "Label").unwrap_or_default(),
        }
    } else if is("link") {
        MessageKind::Link {
            title: owned(f, "Title").unwrap_or_default(),
            description: owned(f, "Description").unwrap_or_default(),
            url: owned(f, "Url")?,
        }
    } else if is("event") {
        let event = f.text("Event").unwrap_or("");
        MessageKind::Event(classify_event(event, f).unwrap_or_else(|| Event::Unknown {
            event: event.to_owned(),
        }))
    } else {
        return None;
    })
}

/// The body of a compatible- or safe-mode push: the ciphertext and the account it is for.
///
/// In compatible mode the body also carries every plaintext field; only `Encrypt` is used
/// (it is the part `msg_signature` authenticates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `ToUserName` (the account's original id; WeCom: the corp id), when present.
    pub to_user: Option<String>,
    /// `Encrypt`, the base64 ciphertext.
    pub encrypt: String,
}

impl Envelope {
    /// Reads an encrypted push body. Errors when it is not XML or has no `Encrypt`.
    pub fn parse(xml: &[u8]) -> Result<Envelope, ParseError> {
        let (_root, fields) = Fields::parse_document(xml)?;
        let encrypt = required(&fields, "Encrypt")?.trim().to_owned();
        Ok(Envelope {
            to_user: owned(&fields, "ToUserName"),
            encrypt,
        })
    }
}

#[cfg(test)]
mod tests;
