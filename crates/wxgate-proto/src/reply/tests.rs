//! Unit tests of the parent module, kept in their own file so the module reads short.

use super::*;

fn round_trip(reply: &Reply) -> Reply {
    let xml = reply.to_xml("oUser", "gh_1", 1_700_000_000).unwrap();
    let parsed = Reply::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(parsed.to_user, "oUser");
    assert_eq!(parsed.from_user, "gh_1");
    assert_eq!(parsed.create_time, 1_700_000_000);
    parsed.reply
}

#[test]
fn text_reply_xml_is_exact() {
    let xml = Reply::text("你好")
        .to_xml("oUser", "gh_1", 12345678)
        .unwrap();
    assert_eq!(
            xml,
            "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName>\
             <CreateTime>12345678</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[你好]]></Content></xml>"
        );
}

#[test]
fn cdata_terminator_in_content_survives() {
    let r = Reply::text("a]]>b<![CDATA[c]]]]>&amp;");
    let xml = r.to_xml("o", "g", 1).unwrap();
    assert!(xml.contains("]]]]><![CDATA[>"));
    assert_eq!(round_trip(&r), r);
    // And through the inbound parser too.
    let m = crate::message::Message::parse(xml.as_bytes()).unwrap();
    assert_eq!(m.text(), Some("a]]>b<![CDATA[c]]]]>&amp;"));
}

#[test]
fn every_reply_type_round_trips() {
    let all = vec![
        Reply::text("hi"),
        Reply::Image {
            media_id: "m1".into(),
        },
        Reply::Voice {
            media_id: "m2".into(),
        },
        Reply::Video {
            media_id: "m3".into(),
            title: Some("t".into()),
            description: Some("d".into()),
        },
        Reply::Video {
            media_id: "m3".into(),
            title: None,
            description: None,
        },
        Reply::Music {
            title: Some("t".into()),
            description: Some("d".into()),
            music_url: Some("http://m".into()),
            hq_music_url: Some("http://hq".into()),
            thumb_media_id: "th".into(),
        },
        Reply::News {
            articles: vec![
                Article {
                    title: "t1".into(),
                    description: "d1".into(),
                    pic_url: "p1".into(),
                    url: "u1".into(),
                },
                Article::default(),
            ],
        },
        Reply::TransferCustomerService { kf_account: None },
        Reply::TransferCustomerService {
            kf_account: Some("test1@test".into()),
        },
    ];
    for r in all {
        assert_eq!(round_trip(&r), r);
    }
}

#[test]
fn news_xml_shape() {
    let r = Reply::News {
        articles: vec![Article {
            title: "t".into(),
            description: "d".into(),
            pic_url: "p".into(),
            url: "u".into(),
        }],
    };
    let xml = r.to_xml("o", "g", 1).unwrap();
    assert!(xml.contains(
        "<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item>\
             <Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description>\
             <PicUrl><![CDATA[p]]></PicUrl><Url><![CDATA[u]]></Url></item></Articles></xml>"
    ));
}

#[test]
fn news_needs_one_to_eight_articles() {
    let none = Reply::News { articles: vec![] };
    assert_eq!(none.to_xml("o", "g", 1), Err(ReplyError::ArticleCount(0)));
    let nine = Reply::News {
        articles: vec![Article::default(); 9],
    };
    assert_eq!(nine.to_xml("o", "g", 1), Err(ReplyError::ArticleCount(9)));
    let eight = Reply::News {
        articles: vec![Article::default(); 8],
    };
    assert!(eight.to_xml("o", "g", 1).is_ok());
    assert!(serde_json::from_str::<Reply>(r#"{"type":"news","articles":[]}"#).is_err());
    let nine_json = format!(
        r#"{{"type":"news","articles":[{}]}}"#,
        [r#"{"title":"t"}"#; 9].join(",")
    );
    assert!(serde_json::from_str::<Reply>(&nine_json).is_err());
}

#[test]
fn deserializes_the_webhook_json_shapes() {
    let cases = [
        (r#"{"type":"text","content":"hello"}"#, Reply::text("hello")),
        (
            r#"{"type":"image","media_id":"M"}"#,
            Reply::Image {
                media_id: "M".into(),
            },
        ),
        (
            r#"{"type":"voice","media_id":"M"}"#,
            Reply::Voice {
                media_id: "M".into(),
            },
        ),
        (
            r#"{"type":"video","media_id":"M","title":"T","description":"D"}"#,
            Reply::Video {
                media_id: "M".into(),
                title: Some("T".into()),
                description: Some("D".into()),
            },
        ),
        (
            r#"{"type":"music","title":"T","description":"D","music_url":"U","hq_music_url":"H","thumb_media_id":"TM"}"#,
            Reply::Music {
                title: Some("T".into()),
                description: Some("D".into()),
                music_url: Some("U".into()),
                hq_music_url: Some("H".into()),
                thumb_media_id: "TM".into(),
            },
        ),
        (
            r#"{"type":"news","articles":[{"title":"T","description":"D","pic_url":"P","url":"U"}]}"#,
            Reply::News {
                articles: vec![Article {
                    title: "T".into(),
                    description: "D".into(),
                    pic_url: "P".into(),
                    url: "U".into(),
                }],
            },
        ),
        (
            r#"{"type":"transfer_customer_service"}"#,
            Reply::TransferCustomerService { kf_account: None },
        ),
        (
            r#"{"type":"transfer_customer_service","kf_account":"k@x"}"#,
            Reply::TransferCustomerService {
                kf_account: Some("k@x".into()),
            },
        ),
    ];
    for (json, expected) in cases {
        let r: Reply = serde_json::from_str(json).unwrap();
        assert_eq!(r, expected, "{json}");
        // Serializing gives the same shape back.
        let again: Reply = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
    assert!(serde_json::from_str::<Reply>(r#"{"type":"text"}"#).is_err());
    assert!(serde_json::from_str::<Reply>(r#"{"type":"fax","content":"x"}"#).is_err());
    assert_eq!(
        serde_json::to_value(Reply::text("x")).unwrap(),
        serde_json::json!({"type":"text","content":"x"})
    );
}

#[test]
fn parse_xml_errors() {
    assert!(Reply::parse_xml(b"<xml/>").is_err());
    let base =
        "<xml><ToUserName>o</ToUserName><FromUserName>g</FromUserName><CreateTime>1</CreateTime>";
    assert_eq!(
        Reply::parse_xml(format!("{base}<MsgType>fax</MsgType></xml>").as_bytes()),
        Err(ParseError::InvalidField("MsgType"))
    );
    assert_eq!(
        Reply::parse_xml(
            format!("{base}<MsgType>news</MsgType><ArticleCount>0</ArticleCount><Articles/></xml>")
                .as_bytes()
        ),
        Err(ParseError::InvalidField("ArticleCount"))
    );
    assert_eq!(
        Reply::parse_xml(format!("{base}<MsgType>image</MsgType></xml>").as_bytes()),
        Err(ParseError::MissingField("Image"))
    );
}
