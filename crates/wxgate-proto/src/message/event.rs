//! The events of an `event` push, typed: [`Event`] and the menu payloads it carries, and the
//! phase-two dispatch on `Event` that builds them (kept apart from [`super`], which reads the
//! common header and the ordinary message types).

use super::{number, optional, owned};
use crate::xml::{FieldValue, Fields};

/// A scan result attached to `scancode_push` / `scancode_waitmsg` (`ScanCodeInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanCodeInfo {
    /// `ScanType`, usually `qrcode` or `barcode`.
    pub scan_type: String,
    /// `ScanResult`, the decoded content.
    pub scan_result: String,
}

/// Photos sent through a `pic_*` menu button (`SendPicsInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendPicsInfo {
    /// `Count` as sent (0 when absent or not a number).
    pub count: u32,
    /// `PicList/item/PicMd5Sum`, in order.
    pub pic_md5_sums: Vec<String>,
}

/// The place chosen through a `location_select` menu button (`SendLocationInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendLocationInfo {
    /// `Location_X`, latitude.
    pub latitude: String,
    /// `Location_Y`, longitude.
    pub longitude: String,
    /// `Scale`.
    pub scale: String,
    /// `Label`.
    pub label: String,
    /// `Poiname`.
    pub poi_name: Option<String>,
}

/// The typed content of an `event` push, chosen by `Event`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `subscribe`; through a parametric QR code `EventKey` is `qrscene_<scene>` and `Ticket`
    /// is set.
    Subscribe {
        /// `EventKey` (absent or empty for a plain follow).
        event_key: Option<String>,
        /// `Ticket` of the QR code.
        ticket: Option<String>,
    },
    /// `unsubscribe`.
    Unsubscribe,
    /// `SCAN`: a follower scanned a parametric QR code; `EventKey` is the scene itself.
    Scan {
        /// `EventKey`, the scene id / scene string.
        event_key: String,
        /// `Ticket`.
        ticket: Option<String>,
    },
    /// `LOCATION`: periodic location report.
    Location {
        /// `Latitude`.
        latitude: String,
        /// `Longitude`.
        longitude: String,
        /// `Precision`.
        precision: String,
    },
    /// `CLICK` on a menu button.
    Click {
        /// `EventKey`, the button key.
        event_key: String,
    },
    /// `VIEW`: a menu link was opened.
    View {
        /// `EventKey`, the URL.
        event_key: String,
        /// `MenuId` (personalised menus).
        menu_id: Option<String>,
    },
    /// `view_miniprogram`: a menu opened a mini program.
    ViewMiniprogram {
        /// `EventKey`, the page path.
        event_key: String,
        /// `MenuId`.
        menu_id: Option<String>,
    },
    /// `scancode_push`.
    ScanCodePush {
        /// `EventKey`.
        event_key: String,
        /// `ScanCodeInfo`.
        scan: ScanCodeInfo,
    },
    /// `scancode_waitmsg`.
    ScanCodeWaitMsg {
        /// `EventKey`.
        event_key: String,
        /// `ScanCodeInfo`.
        scan: ScanCodeInfo,
    },
    /// `pic_sysphoto`.
    PicSysPhoto {
        /// `EventKey`.
        event_key: String,
        /// `SendPicsInfo`.
        pics: SendPicsInfo,
    },
    /// `pic_photo_or_album`.
    PicPhotoOrAlbum {
        /// `EventKey`.
        event_key: String,
        /// `SendPicsInfo`.
        pics: SendPicsInfo,
    },
    /// `pic_weixin`.
    PicWeixin {
        /// `EventKey`.
        event_key: String,
        /// `SendPicsInfo`.
        pics: SendPicsInfo,
    },
    /// `location_select`.
    LocationSelect {
        /// `EventKey`.
        event_key: String,
        /// `SendLocationInfo`.
        location: SendLocationInfo,
    },
    /// `TEMPLATESENDJOBFINISH`: delivery report of a template message.
    TemplateSendJobFinish {
        /// `MsgID` of the template message.
        msg_id: Option<u64>,
        /// `Status` (`success`, `failed:user block`, …).
        status: String,
    },
    /// `MASSSENDJOBFINISH`: report of a mass send.
    MassSendJobFinish {
        /// `MsgID` of the mass send.
        msg_id: Option<u64>,
        /// `Status` (`send success`, `err(…)`, …).
        status: String,
        /// `TotalCount`.
        total_count: Option<u64>,
        /// `FilterCount`.
        filter_count: Option<u64>,
        /// `SentCount`.
        sent_count: Option<u64>,
        /// `ErrorCount`.
        error_count: Option<u64>,
    },
    /// Any other event (or a known one missing a field it needs); see [`Message::fields`](crate::Message::fields).
    Unknown {
        /// The `Event` value as sent.
        event: String,
    },
}

impl Event {
    /// The QR-code scene of a `subscribe` (the part after `qrscene_`) or `SCAN` (the whole
    /// `EventKey`) event.
    pub fn qr_scene(&self) -> Option<&str> {
        match self {
            Event::Subscribe {
                event_key: Some(key),
                ..
            } => key.strip_prefix("qrscene_"),
            Event::Scan { event_key, .. } => Some(event_key),
            _ => None,
        }
    }

    /// [`Event::qr_scene`] as a numeric scene id (`scene_id` QR codes), if it is one.
    pub fn qr_scene_id(&self) -> Option<u64> {
        self.qr_scene().and_then(|s| s.parse().ok())
    }

    /// The `Ticket` of a QR-code `subscribe` / `SCAN` event.
    pub fn ticket(&self) -> Option<&str> {
        match self {
            Event::Subscribe { ticket, .. } | Event::Scan { ticket, .. } => ticket.as_deref(),
            _ => None,
        }
    }
}

pub(super) fn classify_event(event: &str, f: &Fields) -> Option<Event> {
    let e = event.trim();
    let is = |name: &str| e.eq_ignore_ascii_case(name);
    let key = || owned(f, "EventKey");
    Some(if is("subscribe") {
        Event::Subscribe {
            event_key: optional(f, "EventKey"),
            ticket: optional(f, "Ticket"),
        }
    } else if is("unsubscribe") {
        Event::Unsubscribe
    } else if is("SCAN") {
        Event::Scan {
            event_key: key()?,
            ticket: optional(f, "Ticket"),
        }
    } else if is("LOCATION") {
        Event::Location {
            latitude: owned(f, "Latitude")?,
            longitude: owned(f, "Longitude")?,
            precision: owned(f, "Precision").unwrap_or_default(),
        }
    } else if is("CLICK") {
        Event::Click {
            event_key: key().unwrap_or_default(),
        }
    } else if is("VIEW") {
        Event::View {
            event_key: key().unwrap_or_default(),
            menu_id: optional(f, "MenuId"),
        }
    } else if is("view_miniprogram") {
        Event::ViewMiniprogram {
            event_key: key().unwrap_or_default(),
            menu_id: optional(f, "MenuId"),
        }
    } else if is("scancode_push") {
        Event::ScanCodePush {
            event_key: key().unwrap_or_default(),
            scan: scan_code_info(f)?,
        }
    } else if is("scancode_waitmsg") {
        Event::ScanCodeWaitMsg {
            event_key: key().unwrap_or_default(),
            scan: scan_code_info(f)?,
        }
    } else if is("pic_sysphoto") {
        Event::PicSysPhoto {
            event_key: key().unwrap_or_default(),
            pics: send_pics_info(f),
        }
    } else if is("pic_photo_or_album") {
        Event::PicPhotoOrAlbum {
            event_key: key().unwrap_or_default(),
            pics: send_pics_info(f),
        }
    } else if is("pic_weixin") {
        Event::PicWeixin {
            event_key: key().unwrap_or_default(),
            pics: send_pics_info(f),
        }
    } else if is("location_select") {
        Event::LocationSelect {
            event_key: key().unwrap_or_default(),
            location: send_location_info(f)?,
        }
    } else if is("TEMPLATESENDJOBFINISH") {
        Event::TemplateSendJobFinish {
            msg_id: number(f, "MsgID").or_else(|| number(f, "MsgId")),
            status: owned(f, "Status").unwrap_or_default(),
        }
    } else if is("MASSSENDJOBFINISH") {
        Event::MassSendJobFinish {
            msg_id: number(f, "MsgID").or_else(|| number(f, "MsgId")),
            status: owned(f, "Status").unwrap_or_default(),
            total_count: number(f, "TotalCount"),
            filter_count: number(f, "FilterCount"),
            sent_count: number(f, "SentCount"),
            error_count: number(f, "ErrorCount"),
        }
    } else {
        return None;
    })
}

fn scan_code_info(f: &Fields) -> Option<ScanCodeInfo> {
    let info = f.nested("ScanCodeInfo")?;
    Some(ScanCodeInfo {
        scan_type: owned(info, "ScanType").unwrap_or_default(),
        scan_result: owned(info, "ScanResult")?,
    })
}

fn send_pics_info(f: &Fields) -> SendPicsInfo {
    let Some(info) = f.nested("SendPicsInfo") else {
        return SendPicsInfo::default();
    };
    let pic_md5_sums = info
        .nested("PicList")
        .map(|list| {
            list.get_all("item")
                .filter_map(|item| match item {
                    FieldValue::Nested(item) => owned(item, "PicMd5Sum"),
                    FieldValue::Text(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    SendPicsInfo {
        count: info
            .text("Count")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0),
        pic_md5_sums,
    }
}

fn send_location_info(f: &Fields) -> Option<SendLocationInfo> {
    let info = f.nested("SendLocationInfo")?;
    Some(SendLocationInfo {
        latitude: owned(info, "Location_X")?,
        longitude: owned(info, "Location_Y")?,
        scale: owned(info, "Scale").unwrap_or_default(),
        label: owned(info, "Label").unwrap_or_default(),
        poi_name: optional(info, "Poiname"),
    })
}
