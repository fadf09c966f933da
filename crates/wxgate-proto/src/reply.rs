//! Passive replies: the XML answered to a push within WeChat's 5-second window.
//!
//! A [`Reply`] comes from a rule in the configuration or from a business webhook's JSON
//! answer (`{"type":"text","content":"…"}`), so it deserializes from that shape with serde
//! and is validated on the way in (a news reply carries 1–8 articles). It renders the exact
//! XML WeChat expects, writing every string as CDATA and splitting any `]]>` inside a value
//! so that arbitrary text survives; [`Reply::parse_xml`] reads such XML back, for tests and
//! for the simulator that plays WeChat.

use serde::{Deserialize, Serialize};

use crate::xml::{push_cdata_element, push_plain_element, Fields, ParseError};

/// Most articles a news reply may carry.
pub const MAX_ARTICLES: usize = 8;

/// Why a reply cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A news reply must carry between 1 and 8 articles.
    #[error("a news reply needs 1 to 8 articles, got {0}")]
    ArticleCount(usize),
}

/// One article of a news (图文) reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Article {
    /// `Title`.
    #[serde(default)]
    pub title: String,
    /// `Description`.
    #[serde(default)]
    pub description: String,
    /// `PicUrl`, the cover image.
    #[serde(default)]
    pub pic_url: String,
    /// `Url`, opened on tap.
    #[serde(default)]
    pub url: String,
}

/// A passive reply, serialized/deserialized as `{"type": "...", ...}` with snake_case
/// fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawReply", into = "RawReply")]
pub enum Reply {
    /// `{"type":"text","content":"…"}`.
    Text {
        /// `Content`.
        content: String,
    },
    /// `{"type":"image","media_id":"…"}`.
    Image {
        /// `Image/MediaId`.
        media_id: String,
    },
    /// `{"type":"voice","media_id":"…"}`.
    Voice {
        /// `Voice/MediaId`.
        media_id: String,
    },
    /// `{"type":"video","media_id":"…","title":"…","description":"…"}`.
    Video {
        /// `Video/MediaId`.
        media_id: String,
        /// `Video/Title` (optional).
        title: Option<String>,
        /// `Video/Description` (optional).
        description: Option<String>,
    },
    /// `{"type":"music","title","description","music_url","hq_music_url","thumb_media_id"}`.
    Music {
        /// `Music/Title` (optional).
        title: Option<String>,
        /// `Music/Description` (optional).
        description: Option<String>,
        /// `Music/MusicUrl` (optional).
        music_url: Option<String>,
        /// `Music/HQMusicUrl` (optional; preferred on Wi-Fi).
        hq_music_url: Option<String>,
        /// `Music/ThumbMediaId`.
        thumb_media_id: String,
    },
    /// `{"type":"news","articles":[…]}` with 1–8 articles.
    News {
        /// The articles, in display order.
        articles: Vec<Article>,
    },
    /// `{"type":"transfer_customer_service","kf_account":"…"?}`: hand the message to the
    /// customer-service (客服) system, optionally to one agent.
    TransferCustomerService {
        /// `TransInfo/KfAccount` (optional).
        kf_account: Option<String>,
    },
}

/// The serde shape of [`Reply`], validated into it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawReply {
    Text {
        content: String,
    },
    Image {
        media_id: String,
    },
    Voice {
        media_id: String,
    },
    Video {
        media_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    Music {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        music_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hq_music_url: Option<String>,
        thumb_media_id: String,
    },
    News {
        articles: Vec<Article>,
    },
    TransferCustomerService {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kf_account: Option<String>,
    },
}

impl TryFrom<RawReply> for Reply {
    type Error = ReplyError;

    fn try_from(raw: RawReply) -> Result<Reply, ReplyError> {
        let reply = match raw {
            RawReply::Text { content } => Reply::Text { content },
            RawReply::Image { media_id } => Reply::Image { media_id },
            RawReply::Voice { media_id } => Reply::Voice { media_id },
            RawReply::Video {
                media_id,
                title,
                description,
            } => Reply::Video {
                media_id,
                title,
                description,
            },
            RawReply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            },
            RawReply::News { articles } => Reply::News { articles },
            RawReply::TransferCustomerService { kf_account } => {
                Reply::TransferCustomerService { kf_account }
            }
        };
        reply.validate()?;
        Ok(reply)
    }
}

impl From<Reply> for RawReply {
    fn from(reply: Reply) -> RawReply {
        match reply {
            Reply::Text { content } => RawReply::Text { content },
            Reply::Image { media_id } => RawReply::Image { media_id },
            Reply::Voice { media_id } => RawReply::Voice { media_id },
            Reply::Video {
                media_id,
                title,
                description,
            } => RawReply::Video {
                media_id,
                title,
                description,
            },
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => RawReply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            },
            Reply::News { articles } => RawReply::News { articles },
            Reply::TransferCustomerService { kf_account } => {
                RawReply::TransferCustomerService { kf_account }
            }
        }
    }
}

/// A reply read back from XML, with its addressing header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// `ToUserName` (the follower's openid).
    pub to_user: String,
    /// `FromUserName` (the account's original id).
    pub from_user: String,
    /// `CreateTime`.
    pub create_time: i64,
    /// The reply.
    pub reply: Reply,
}

impl Reply {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Reply {
        Reply::Text {
            content: content.into(),
        }
    }

    /// The `MsgType` this reply is sent as.
    pub fn msg_type(&self) -> &'static str {
        match self {
            Reply::Text { .. } => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News { .. } => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// Checks what WeChat would refuse: a news reply needs 1–8 articles.
    pub fn validate(&self) -> Result<(), ReplyError> {
        match self {
            Reply::News { articles } if articles.is_empty() || articles.len() > MAX_ARTICLES => {
                Err(ReplyError::ArticleCount(articles.len()))
            }
            _ => Ok(()),
        }
    }

    /// Renders the passive-reply XML. `to_user` is the follower's openid (the push's
    /// `FromUserName`), `from_user` the account's id (the push's `ToUserName`).
    pub fn to_xml(
        &self,
        to_user: &str,
        from_user: &str,
        create_time: i64,
    ) -> Result<String, ReplyError> {
        self.validate()?;
        let mut out = String::with_capacity(256);
        out.push_str("<xml>");
        push_cdata_element(&mut out, "ToUserName", to_user);
        push_cdata_element(&mut out, "FromUserName", from_user);
        push_plain_element(&mut out, "CreateTime", create_time);
        push_cdata_element(&mut out, "MsgType", self.msg_type());
        match self {
            Reply::Text { content } => push_cdata_element(&mut out, "Content", content),
            Reply::Image { media_id } => {
                out.push_str("<Image>");
                push_cdata_element(&mut out, "MediaId", media_id);
                out.push_str("</Image>");
            }
            Reply::Voice { media_id } => {
                out.push_str("<Voice>");
                push_cdata_element(&mut out, "MediaId", media_id);
                out.push_str("</Voice>");
            }
            Reply::Video {
                media_id,
                title,
                description,
            } => {
                out.push_str("<Video>");
                push_cdata_element(&mut out, "MediaId", media_id);
                push_optional(&mut out, "Title", title);
                push_optional(&mut out, "Description", description);
                out.push_str("</Video>");
            }
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                out.push_str("<Music>");
                push_optional(&mut out, "Title", title);
                push_optional(&mut out, "Description", description);
                push_optional(&mut out, "MusicUrl", music_url);
                push_optional(&mut out, "HQMusicUrl", hq_music_url);
                push_cdata_element(&mut out, "ThumbMediaId", thumb_media_id);
                out.push_str("</Music>");
            }
            Reply::News { articles } => {
                push_plain_element(&mut out, "ArticleCount", articles.len());
                out.push_str("<Articles>");
                for a in articles {
                    out.push_str("<item>");
                    push_cdata_element(&mut out, "Title", &a.title);
                    push_cdata_element(&mut out, "Description", &a.description);
                    push_cdata_element(&mut out, "PicUrl", &a.pic_url);
                    push_cdata_element(&mut out, "Url", &a.url);
                    out.push_str("</item>");
                }
                out.push_str("</Articles>");
            }
            Reply::TransferCustomerService { kf_account } => {
                if let Some(kf) = kf_account {
                    out.push_str("<TransInfo>");
                    push_cdata_element(&mut out, "KfAccount", kf);
                    out.push_str("</TransInfo>");
                }
            }
        }
        out.push_str("</xml>");
        Ok(out)
    }

    /// Reads passive-reply XML back (tests, simulators). Never panics.
    pub fn parse_xml(xml: &[u8]) -> Result<ParsedReply, ParseError> {
        let (_root, f) = Fields::parse_document(xml)?;
        let text = |name: &'static str| f.text(name).ok_or(ParseError::MissingField(name));
        let to_user = text("ToUserName")?.to_owned();
        let from_user = text("FromUserName")?.to_owned();
        let create_time = text("CreateTime")?
            .trim()
            .parse::<i64>()
            .map_err(|_| ParseError::InvalidField("CreateTime"))?;
        let msg_type = text("MsgType")?;
        let block = |name: &'static str| f.nested(name).ok_or(ParseError::MissingField(name));
        let inner = |b: &Fields, name: &'static str| {
            b.text(name)
                .map(str::to_owned)
                .ok_or(ParseError::MissingField(name))
        };
        let opt = |b: &Fields, name: &str| b.text(name).map(str::to_owned);
        let reply = match msg_type {
            "text" => Reply::Text {
                content: text("Content")?.to_owned(),
            },
            "image" => Reply::Image {
                media_id: inner(block("Image")?, "MediaId")?,
            },
            "voice" => Reply::Voice {
                media_id: inner(block("Voice")?, "MediaId")?,
            },
            "video" => {
                let b = block("Video")?;
                Reply::Video {
                    media_id: inner(b, "MediaId")?,
                    title: opt(b, "Title"),
                    description: opt(b, "Description"),
                }
            }
            "music" => {
                let b = block("Music")?;
                Reply::Music {
                    title: opt(b, "Title"),
                    description: opt(b, "Description"),
                    music_url: opt(b, "MusicUrl"),
                    hq_music_url: opt(b, "HQMusicUrl"),
                    thumb_media_id: inner(b, "ThumbMediaId")?,
                }
            }
            "news" => {
                // An empty <Articles/> reads as a leaf; that is zero articles.
                let articles = match f.get("Articles") {
                    None => return Err(ParseError::MissingField("Articles")),
                    Some(value) => value
                        .as_nested()
                        .map(|list| {
                            list.get_all("item")
                                .map(|item| {
                                    let item = item.as_nested().cloned().unwrap_or_default();
                                    Article {
                                        title: opt(&item, "Title").unwrap_or_default(),
                                        description: opt(&item, "Description").unwrap_or_default(),
                                        pic_url: opt(&item, "PicUrl").unwrap_or_default(),
                                        url: opt(&item, "Url").unwrap_or_default(),
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                };
                let declared = f.text("ArticleCount").and_then(|c| c.trim().parse().ok());
                if declared != Some(articles.len()) {
                    return Err(ParseError::InvalidField("ArticleCount"));
                }
                Reply::News { articles }
            }
            "transfer_customer_service" => Reply::TransferCustomerService {
                kf_account: f.nested("TransInfo").and_then(|b| opt(b, "KfAccount")),
            },
            _ => return Err(ParseError::InvalidField("MsgType")),
        };
        if reply.validate().is_err() {
            return Err(ParseError::InvalidField("ArticleCount"));
        }
        Ok(ParsedReply {
            to_user,
            from_user,
            create_time,
            reply,
        })
    }
}

fn push_optional(out: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        push_cdata_element(out, name, v);
    }
}

#[cfg(test)]
mod tests;
