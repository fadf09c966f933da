//! Rules: events, event keys, keywords and regexes matched, with every reply type.

use serde_json::{json, Value};
use wxgate_proto::Reply;

use crate::helpers::AES_KEY;

use super::support::*;

#[tokio::test]
async fn rules_match_events_event_keys_keywords_and_regexes_with_every_reply_type() {
    let tail = r#"
[[accounts.rules]]
event = "subscribe"
reply = { type = "text", content = "welcome" }
[[accounts.rules]]
event = "CLICK"
event_key = "IMG"
reply = { type = "image", media_id = "img-1" }
[[accounts.rules]]
event = "click"
event_key = "VOICE"
reply = { type = "voice", media_id = "voice-1" }
[[accounts.rules]]
keyword = "video"
reply = { type = "video", media_id = "vid-1", title = "V", description = "a video" }
[[accounts.rules]]
keyword = "music"
reply = { type = "music", title = "M", description = "song", music_url = "http://m/1.mp3", hq_music_url = "http://m/1hq.mp3", thumb_media_id = "th-1" }
[[accounts.rules]]
regex = "^news( please)?$"
reply = { type = "news", articles = [{ title = "A", description = "B", pic_url = "http://p/1.jpg", url = "http://u/1" }, { title = "C" }] }
[[accounts.rules]]
regex = "(?i)human|agent"
reply = { type = "transfer_customer_service" }
[[accounts.rules]]
keyword = "news please"
reply = { type = "text", content = "never: the regex above matches first" }
"#;
    let (app, _) = app_with(&aes_mixed_extra(), tail).await;
    let wx = Wechat::new(&app);
    let cases: Vec<(String, Value)> = vec![
        (
            event_xml("oK", "subscribe", None, now()),
            json!({"type": "text", "content": "welcome"}),
        ),
        (
            event_xml("oK2", "CLICK", Some("IMG"), now()),
            json!({"type": "image", "media_id": "img-1"}),
        ),
        (
            event_xml("oK3", "CLICK", Some("VOICE"), now()),
            json!({"type": "voice", "media_id": "voice-1"}),
        ),
        (
            text_xml("oK", "video", msg_id()),
            json!({"type": "video", "media_id": "vid-1", "title": "V", "description": "a video"}),
        ),
        (
            text_xml("oK", "music", msg_id()),
            json!({"type": "music", "title": "M", "description": "song", "music_url": "http://m/1.mp3", "hq_music_url": "http://m/1hq.mp3", "thumb_media_id": "th-1"}),
        ),
        (
            text_xml("oK", "news please", msg_id()),
            json!({"type": "news", "articles": [
            {"title": "A", "description": "B", "pic_url": "http://p/1.jpg", "url": "http://u/1"},
            {"title": "C", "description": "", "pic_url": "", "url": ""}]}),
        ),
        (
            text_xml("oK", "I want a HUMAN", msg_id()),
            json!({"type": "transfer_customer_service"}),
        ),
    ];
    for (xml, expected) in cases {
        let expected: Reply = serde_json::from_value(expected).unwrap();
        let (s, _, body) = wx.send(&wx.plain(&xml)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(plain_reply(&body).reply, expected, "plain {xml}");
        // Same through safe mode (a new message so it is not a retry).
        // (Another sender makes an event new; a CreateTime far ahead would be refused.)
        let xml2 = xml
            .replace("<MsgId>", "<MsgId>1")
            .replace("<FromUserName><![CDATA[", "<FromUserName><![CDATA[x");
        let (_, _, body) = wx.send(&wx.safe(&xml2)).await;
        assert_eq!(
            open_encrypted(&body, AES_KEY).0.reply,
            expected,
            "safe {xml2}"
        );
    }
    // A CLICK with another key matches nothing.
    let (_, _, body) = wx
        .send(&wx.plain(&event_xml("oK", "CLICK", Some("OTHER"), now())))
        .await;
    assert_eq!(body, "success");
    app.stop().await;
}
