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
mod tests {
    use super::*;

    fn wrap(body: &str) -> Vec<u8> {
        format!(
            "<xml><ToUserName><![CDATA[gh_123]]></ToUserName>\
             <FromUserName><![CDATA[oUser]]></FromUserName>\
             <CreateTime>1348831860</CreateTime>{body}</xml>"
        )
        .into_bytes()
    }

    fn event(name: &str, rest: &str) -> Message {
        Message::parse(&wrap(&format!(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>{rest}"
        )))
        .unwrap()
    }

    #[test]
    fn text_message_with_header_and_json() {
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content>\
             <MsgId>1234567890123456</MsgId>",
        ))
        .unwrap();
        assert_eq!(m.to_user(), "gh_123");
        assert_eq!(m.from_user(), "oUser");
        assert_eq!(m.create_time(), 1348831860);
        assert_eq!(m.msg_type(), "text");
        assert_eq!(m.msg_id(), Some(1234567890123456));
        assert_eq!(m.text(), Some("this is a test"));
        assert_eq!(m.dedup_key(), "id:1234567890123456");
        assert_eq!(
            m.to_json(),
            serde_json::json!({
                "ToUserName": "gh_123",
                "FromUserName": "oUser",
                "CreateTime": 1348831860,
                "MsgType": "text",
                "Content": "this is a test",
                "MsgId": 1234567890123456u64,
            })
        );
    }

    #[test]
    fn v12_plaintext_parses() {
        let xml = "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName><FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>";
        let m = Message::parse(xml.as_bytes()).unwrap();
        assert_eq!(m.text(), Some("hello"));
        assert_eq!(m.field("URL"), Some("http://wechat.laravel.so/server"));
        assert_eq!(m.msg_id(), Some(12345));
    }

    #[test]
    fn media_messages() {
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://p]]></PicUrl>\
             <MediaId><![CDATA[mid]]></MediaId><MsgId>1</MsgId>",
        ))
        .unwrap();
        assert_eq!(
            m.kind(),
            &MessageKind::Image {
                pic_url: "http://p".into(),
                media_id: "mid".into()
            }
        );
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId>\
             <Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition>\
             <MsgId>2</MsgId>",
        ))
        .unwrap();
        assert_eq!(
            m.kind(),
            &MessageKind::Voice {
                media_id: "m".into(),
                format: "amr".into(),
                recognition: Some("腾讯微信团队".into())
            }
        );
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId>\
             <Format><![CDATA[amr]]></Format><MsgId>2</MsgId>",
        ))
        .unwrap();
        assert!(matches!(
            m.kind(),
            MessageKind::Voice {
                recognition: None,
                ..
            }
        ));
        for (t, variant_is_video) in [("video", true), ("shortvideo", false)] {
            let m = Message::parse(&wrap(&format!(
                "<MsgType><![CDATA[{t}]]></MsgType><MediaId><![CDATA[m]]></MediaId>\
                 <ThumbMediaId><![CDATA[th]]></ThumbMediaId><MsgId>3</MsgId>"
            )))
            .unwrap();
            match (m.kind(), variant_is_video) {
                (
                    MessageKind::Video {
                        media_id,
                        thumb_media_id,
                    },
                    true,
                )
                | (
                    MessageKind::ShortVideo {
                        media_id,
                        thumb_media_id,
                    },
                    false,
                ) => {
                    assert_eq!(media_id, "m");
                    assert_eq!(thumb_media_id, "th");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn location_and_link_messages() {
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>\
             <Location_Y>113.358803</Location_Y><Scale>20</Scale>\
             <Label><![CDATA[位置信息]]></Label><MsgId>4</MsgId>",
        ))
        .unwrap();
        assert_eq!(
            m.kind(),
            &MessageKind::Location {
                latitude: "23.134521".into(),
                longitude: "113.358803".into(),
                scale: "20".into(),
                label: "位置信息".into()
            }
        );
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>\
             <Description><![CDATA[d]]></Description><Url><![CDATA[url]]></Url><MsgId>5</MsgId>",
        ))
        .unwrap();
        assert_eq!(
            m.kind(),
            &MessageKind::Link {
                title: "公众平台官网链接".into(),
                description: "d".into(),
                url: "url".into()
            }
        );
    }

    #[test]
    fn subscribe_plain_and_through_qr_code() {
        let m = event("subscribe", "");
        assert_eq!(
            m.as_event(),
            Some(&Event::Subscribe {
                event_key: None,
                ticket: None
            })
        );
        assert_eq!(m.dedup_key(), "ev:oUser|1348831860|subscribe|");
        let m = event(
            "subscribe",
            "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        );
        let e = m.as_event().unwrap();
        assert_eq!(e.qr_scene(), Some("123123"));
        assert_eq!(e.qr_scene_id(), Some(123123));
        assert_eq!(e.ticket(), Some("TICKET"));
        assert_eq!(m.event_key(), Some("qrscene_123123"));
        assert_eq!(
            m.dedup_key(),
            "ev:oUser|1348831860|subscribe|qrscene_123123"
        );
        let m = event(
            "subscribe",
            "<EventKey><![CDATA[qrscene_promo]]></EventKey><Ticket><![CDATA[T]]></Ticket>",
        );
        assert_eq!(m.as_event().unwrap().qr_scene(), Some("promo"));
        assert_eq!(m.as_event().unwrap().qr_scene_id(), None);
    }

    #[test]
    fn unsubscribe_scan_location_click_view() {
        assert_eq!(
            event("unsubscribe", "").as_event(),
            Some(&Event::Unsubscribe)
        );
        let m = event(
            "SCAN",
            "<EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[T]]></Ticket>",
        );
        assert_eq!(m.as_event().unwrap().qr_scene(), Some("SCENE_VALUE"));
        assert_eq!(m.as_event().unwrap().ticket(), Some("T"));
        let m = event(
            "LOCATION",
            "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude>\
             <Precision>119.385040</Precision>",
        );
        assert_eq!(
            m.as_event(),
            Some(&Event::Location {
                latitude: "23.137466".into(),
                longitude: "113.352425".into(),
                precision: "119.385040".into()
            })
        );
        let m = event("CLICK", "<EventKey><![CDATA[EVENTKEY]]></EventKey>");
        assert_eq!(
            m.as_event(),
            Some(&Event::Click {
                event_key: "EVENTKEY".into()
            })
        );
        let m = event(
            "VIEW",
            "<EventKey><![CDATA[www.qq.com]]></EventKey><MenuId>MENUID</MenuId>",
        );
        assert_eq!(
            m.as_event(),
            Some(&Event::View {
                event_key: "www.qq.com".into(),
                menu_id: Some("MENUID".into())
            })
        );
        let m = event(
            "view_miniprogram",
            "<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>",
        );
        assert!(
            matches!(m.as_event(), Some(Event::ViewMiniprogram { event_key, .. }) if event_key == "pages/index/index")
        );
    }

    #[test]
    fn scancode_events_read_nested_scan_code_info() {
        for name in ["scancode_push", "scancode_waitmsg"] {
            let m = event(
                name,
                "<EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>\
                 <ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>",
            );
            let expected = ScanCodeInfo {
                scan_type: "qrcode".into(),
                scan_result: "1".into(),
            };
            match m.as_event().unwrap() {
                Event::ScanCodePush { event_key, scan }
                | Event::ScanCodeWaitMsg { event_key, scan } => {
                    assert_eq!(event_key, "6");
                    assert_eq!(scan, &expected);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(m.to_json()["ScanCodeInfo"]["ScanResult"], "1");
        }
    }

    #[test]
    fn picture_events_read_the_pic_list() {
        for name in ["pic_sysphoto", "pic_photo_or_album", "pic_weixin"] {
            let m = event(
                name,
                "<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>2</Count><PicList>\
                 <item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item>\
                 <item><PicMd5Sum><![CDATA[abc]]></PicMd5Sum></item>\
                 </PicList></SendPicsInfo>",
            );
            let pics = match m.as_event().unwrap() {
                Event::PicSysPhoto { pics, .. }
                | Event::PicPhotoOrAlbum { pics, .. }
                | Event::PicWeixin { pics, .. } => pics,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(pics.count, 2);
            assert_eq!(
                pics.pic_md5_sums,
                ["1b5f7c23b5bf75682a53e7b6d163e185", "abc"]
            );
            assert_eq!(
                m.to_json()["SendPicsInfo"]["PicList"]["item"][1]["PicMd5Sum"],
                "abc"
            );
        }
    }

    #[test]
    fn location_select_reads_send_location_info() {
        let m = event(
            "location_select",
            "<EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X>\
             <Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale>\
             <Label><![CDATA[ 广州市海珠区]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
        );
        assert_eq!(
            m.as_event(),
            Some(&Event::LocationSelect {
                event_key: "6".into(),
                location: SendLocationInfo {
                    latitude: "23".into(),
                    longitude: "113".into(),
                    scale: "15".into(),
                    label: " 广州市海珠区".into(),
                    poi_name: None
                }
            })
        );
    }

    #[test]
    fn job_finish_events() {
        let m = event(
            "TEMPLATESENDJOBFINISH",
            "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
        );
        assert_eq!(
            m.as_event(),
            Some(&Event::TemplateSendJobFinish {
                msg_id: Some(200163836),
                status: "success".into()
            })
        );
        assert_eq!(m.msg_id(), None);
        assert_eq!(m.to_json()["MsgID"], 200163836);
        assert_eq!(
            m.dedup_key(),
            "ev:oUser|1348831860|TEMPLATESENDJOBFINISH||200163836",
            "the reported message's MsgID tells two reports in one second apart"
        );
        let m = event(
            "MASSSENDJOBFINISH",
            "<MsgID>1988</MsgID><Status><![CDATA[sendsuccess]]></Status><TotalCount>100</TotalCount>\
             <FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>\
             <CopyrightCheckResult><Count>2</Count><ResultList><item><ArticleIdx>1</ArticleIdx></item>\
             <item><ArticleIdx>2</ArticleIdx></item></ResultList><CheckState>2</CheckState></CopyrightCheckResult>",
        );
        assert_eq!(
            m.as_event(),
            Some(&Event::MassSendJobFinish {
                msg_id: Some(1988),
                status: "sendsuccess".into(),
                total_count: Some(100),
                filter_count: Some(80),
                sent_count: Some(75),
                error_count: Some(5)
            })
        );
        let json = m.to_json();
        assert_eq!(
            json["CopyrightCheckResult"]["ResultList"]["item"][1]["ArticleIdx"],
            "2"
        );
        assert_eq!(json["CopyrightCheckResult"]["CheckState"], "2");
    }

    #[test]
    fn unknown_types_and_events_keep_every_field() {
        let m = Message::parse(&wrap(
            "<MsgType><![CDATA[miniprogrampage]]></MsgType><Title><![CDATA[t]]></Title><MsgId>9</MsgId>",
        ))
        .unwrap();
        assert_eq!(m.kind(), &MessageKind::Unknown);
        assert_eq!(m.field("Title"), Some("t"));
        assert_eq!(m.to_json()["Title"], "t");
        let m = event("user_get_card", "<CardId><![CDATA[c]]></CardId>");
        assert_eq!(
            m.as_event(),
            Some(&Event::Unknown {
                event: "user_get_card".into()
            })
        );
        assert_eq!(m.field("CardId"), Some("c"));
        // A known type missing what it needs is Unknown, not an error.
        let m =
            Message::parse(&wrap("<MsgType><![CDATA[text]]></MsgType><MsgId>1</MsgId>")).unwrap();
        assert_eq!(m.kind(), &MessageKind::Unknown);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            Message::parse(b"<xml><MsgType>text</MsgType></xml>"),
            Err(ParseError::MissingField("ToUserName"))
        );
        assert_eq!(
            Message::parse(&wrap("<Content>x</Content>")),
            Err(ParseError::MissingField("MsgType"))
        );
        let bad_time = b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>\
            <CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>";
        assert_eq!(
            Message::parse(bad_time),
            Err(ParseError::InvalidField("CreateTime"))
        );
        assert_eq!(
            Message::parse(&wrap("<MsgType>text</MsgType><MsgId>x</MsgId>")),
            Err(ParseError::InvalidField("MsgId"))
        );
        assert!(Message::parse(b"not xml").is_err());
    }

    #[test]
    fn dtd_payloads_are_refused_and_never_expanded() {
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
            <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
            <xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>\
            <MsgType>text</MsgType><Content>&lol3;</Content></xml>";
        assert_eq!(Message::parse(laughs), Err(ParseError::Doctype));
        let xxe = b"<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
            <xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>\
            <MsgType>text</MsgType><Content>&xxe;</Content></xml>";
        assert_eq!(Message::parse(xxe), Err(ParseError::Doctype));
        assert_eq!(Envelope::parse(xxe), Err(ParseError::Doctype));
        // Without a DTD an entity reference is simply unknown: an error, not an expansion.
        let bare = wrap("<MsgType>text</MsgType><Content>&xxe;</Content>");
        assert!(matches!(Message::parse(&bare), Err(ParseError::Xml(_))));
    }

    #[test]
    fn envelope_reads_safe_and_compatible_bodies() {
        let safe = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>";
        assert_eq!(
            Envelope::parse(safe).unwrap(),
            Envelope {
                to_user: Some("gh_1".into()),
                encrypt: "abc=".into()
            }
        );
        let compatible = wrap(
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId>\
             <Encrypt><![CDATA[xyz=]]></Encrypt>",
        );
        assert_eq!(Envelope::parse(&compatible).unwrap().encrypt, "xyz=");
        assert_eq!(
            Envelope::parse(b"<xml><ToUserName>a</ToUserName></xml>"),
            Err(ParseError::MissingField("Encrypt"))
        );
    }
}
