//! Unit tests of the parent module, kept in their own file so the module reads short.

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
    let m = Message::parse(&wrap("<MsgType><![CDATA[text]]></MsgType><MsgId>1</MsgId>")).unwrap();
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
    let safe =
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>";
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
