//! Property tests: round trips hold for any content, and no parser panics on any input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use wxgate_proto::crypto::{self, pkcs7_pad, pkcs7_unpad};
use wxgate_proto::reply::Article;
use wxgate_proto::xml::{push_cdata_element, push_plain_element};
use wxgate_proto::{
    component_authorize_url, component_login_url, component_mobile_url, open_push, seal_reply,
    AesKey, AuthEvent, AuthInfo, Envelope, Fields, Grant, KeyRing, KeyUsed, Message, Reply, Scope,
};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn key() -> AesKey {
    AesKey::from_encoding_aes_key(KEY).unwrap()
}

/// Strings that like to contain CDATA terminators, markup and non-ASCII text.
fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("]]>".to_owned()),
            Just("]]".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just("&amp;".to_owned()),
            Just("<xml>".to_owned()),
            Just("中文🙂".to_owned()),
            any::<String>(),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// Byte soup biased towards XML syntax so the parser gets past the first byte.
fn xmlish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"<xml>".to_vec()),
            Just(b"</xml>".to_vec()),
            Just(b"<MsgType>".to_vec()),
            Just(b"</MsgType>".to_vec()),
            Just(b"<![CDATA[".to_vec()),
            Just(b"]]>".to_vec()),
            Just(b"<!DOCTYPE x [<!ENTITY a \"b\">]>".to_vec()),
            Just(b"&a;&amp;&#x20;&#0;".to_vec()),
            Just(b"<a/>".to_vec()),
            Just(b"<?xml version=\"1.0\"?>".to_vec()),
            Just(b"<!-- c -->".to_vec()),
            Just(b"<Encrypt>".to_vec()),
            Just(b"</Encrypt>".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn article() -> impl Strategy<Value = Article> {
    (
        tricky_string(),
        tricky_string(),
        tricky_string(),
        tricky_string(),
    )
        .prop_map(|(title, description, pic_url, url)| Article {
            title,
            description,
            pic_url,
            url,
        })
}

fn any_reply() -> impl Strategy<Value = Reply> {
    let opt = || prop::option::of(tricky_string());
    prop_oneof![
        tricky_string().prop_map(|content| Reply::Text { content }),
        tricky_string().prop_map(|media_id| Reply::Image { media_id }),
        tricky_string().prop_map(|media_id| Reply::Voice { media_id }),
        (tricky_string(), opt(), opt()).prop_map(|(media_id, title, description)| {
            Reply::Video {
                media_id,
                title,
                description,
            }
        }),
        (opt(), opt(), opt(), opt(), tricky_string()).prop_map(
            |(title, description, music_url, hq_music_url, thumb_media_id)| Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            }
        ),
        prop::collection::vec(article(), 1..=8).prop_map(|articles| Reply::News { articles }),
        opt().prop_map(|kf_account| Reply::TransferCustomerService { kf_account }),
    ]
}

/// A field value the authorization-event parser accepts: not blank once trimmed.
fn present_string() -> impl Strategy<Value = String> {
    tricky_string().prop_filter("blank", |s| !s.trim().is_empty())
}

/// What an authorization event's fields hold, before they are written as XML.
#[derive(Debug, Clone)]
enum EventInput {
    Ticket(String),
    Grant {
        update: bool,
        authorizer: String,
        code: String,
        expires: i64,
        pre_auth: Option<String>,
    },
    Revoked(String),
    Other(String),
}

fn event_input() -> impl Strategy<Value = EventInput> {
    prop_oneof![
        present_string().prop_map(EventInput::Ticket),
        (
            any::<bool>(),
            present_string(),
            present_string(),
            any::<i64>(),
            prop::option::of(tricky_string()),
        )
            .prop_map(|(update, authorizer, code, expires, pre_auth)| {
                EventInput::Grant {
                    update,
                    authorizer,
                    code,
                    expires,
                    pre_auth,
                }
            }),
        present_string().prop_map(EventInput::Revoked),
        present_string()
            .prop_filter("a known InfoType", |t| {
                let t = t.trim();
                ![
                    "component_verify_ticket",
                    "authorized",
                    "updateauthorized",
                    "unauthorized",
                ]
                .iter()
                .any(|known| t.eq_ignore_ascii_case(known))
            })
            .prop_map(EventInput::Other),
    ]
}

/// Byte soup biased towards the authorization events' own fields.
fn auth_eventish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"<xml>".to_vec()),
            Just(b"</xml>".to_vec()),
            Just(b"<AppId>wx1</AppId>".to_vec()),
            Just(b"<CreateTime>".to_vec()),
            Just(b"</CreateTime>".to_vec()),
            Just(b"<InfoType>".to_vec()),
            Just(b"</InfoType>".to_vec()),
            Just(b"component_verify_ticket".to_vec()),
            Just(b"authorized".to_vec()),
            Just(b"unauthorized".to_vec()),
            Just(b"<ComponentVerifyTicket>t</ComponentVerifyTicket>".to_vec()),
            Just(b"<AuthorizerAppid>wx2</AuthorizerAppid>".to_vec()),
            Just(b"<AuthorizationCode>".to_vec()),
            Just(b"</AuthorizationCode>".to_vec()),
            Just(b"<PreAuthCode/>".to_vec()),
            Just(b"<![CDATA[".to_vec()),
            Just(b"]]>".to_vec()),
            Just(b"<!DOCTYPE x [<!ENTITY a \"b\">]>".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// `url`'s query parameters (the part before `#`), in order, values percent-decoded.
fn query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .unwrap();
            (key.to_owned(), value.into_owned())
        })
        .collect()
}

fn query_names(url: &str) -> Vec<String> {
    query(url).into_iter().map(|(key, _)| key).collect()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn auth_event_parse_never_panics(
        data in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), auth_eventish_bytes()],
    ) {
        if let Ok(event) = AuthEvent::parse(&data) {
            // Whatever parses has its required fields and renders again.
            prop_assert!(!event.component_appid.is_empty());
            let _ = format!("{event:?}");
            prop_assert_eq!(AuthEvent::parse(event.to_xml().as_bytes()), Ok(event));
        }
    }

    #[test]
    fn an_auth_event_of_any_field_values_round_trips(
        component in present_string(),
        create_time in any::<i64>(),
        input in event_input(),
    ) {
        let mut xml = String::from("<xml>");
        push_cdata_element(&mut xml, "AppId", &component);
        push_plain_element(&mut xml, "CreateTime", create_time);
        let expected = match &input {
            EventInput::Ticket(ticket) => {
                push_cdata_element(&mut xml, "InfoType", "component_verify_ticket");
                push_cdata_element(&mut xml, "ComponentVerifyTicket", ticket);
                AuthInfo::VerifyTicket { ticket: ticket.trim().to_owned() }
            }
            EventInput::Grant { update, authorizer, code, expires, pre_auth } => {
                let info_type = if *update { "updateauthorized" } else { "authorized" };
                push_cdata_element(&mut xml, "InfoType", info_type);
                push_cdata_element(&mut xml, "AuthorizerAppid", authorizer);
                push_cdata_element(&mut xml, "AuthorizationCode", code);
                push_plain_element(&mut xml, "AuthorizationCodeExpiredTime", expires);
                if let Some(pre_auth) = pre_auth {
                    push_cdata_element(&mut xml, "PreAuthCode", pre_auth);
                }
                let grant = Grant {
                    authorizer_appid: authorizer.trim().to_owned(),
                    authorization_code: code.trim().to_owned(),
                    code_expires_at: *expires,
                    pre_auth_code: pre_auth
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                };
                if *update { AuthInfo::UpdateAuthorized(grant) } else { AuthInfo::Authorized(grant) }
            }
            EventInput::Revoked(authorizer) => {
                push_cdata_element(&mut xml, "InfoType", "unauthorized");
                push_cdata_element(&mut xml, "AuthorizerAppid", authorizer);
                AuthInfo::Unauthorized { authorizer_appid: authorizer.trim().to_owned() }
            }
            EventInput::Other(info_type) => {
                push_cdata_element(&mut xml, "InfoType", info_type);
                AuthInfo::Other { info_type: info_type.trim().to_owned() }
            }
        };
        xml.push_str("</xml>");
        let event = AuthEvent::parse(xml.as_bytes()).unwrap();
        prop_assert_eq!(&event.component_appid, component.trim());
        prop_assert_eq!(event.create_time, create_time);
        prop_assert_eq!(&event.info, &expected);
        // The crate's own writer gives an event that reads back the same.
        prop_assert_eq!(AuthEvent::parse(event.to_xml().as_bytes()), Ok(event));
    }

    #[test]
    fn authorization_links_carry_every_value_intact(
        base in "https?://[a-z.]{1,20}/{0,2}",
        component in "\\PC{0,20}",
        pre_auth in "\\PC{0,40}",
        redirect in tricky_string(),
        auth_type in prop::option::of(any::<u8>()),
    ) {
        let trimmed_base = base.trim_end_matches('/');
        for (url, path, prefix, suffix) in [
            (
                component_login_url(&base, &component, &pre_auth, &redirect, auth_type),
                "/cgi-bin/componentloginpage?",
                &[][..],
                "",
            ),
            (
                component_mobile_url(&base, &component, &pre_auth, &redirect, auth_type),
                "/safe/bindcomponent?",
                &["action", "no_scan"][..],
                "#wechat_redirect",
            ),
        ] {
            prop_assert!(url.starts_with(&format!("{trimmed_base}{path}")), "{}", url);
            prop_assert!(url.ends_with(suffix), "{}", url);
            prop_assert_eq!(url.matches('#').count(), suffix.matches('#').count());
            let mut names: Vec<&str> = prefix.to_vec();
            names.extend(["component_appid", "pre_auth_code", "redirect_uri"]);
            if auth_type.is_some() {
                names.push("auth_type");
            }
            prop_assert_eq!(query_names(&url), names);
            prop_assert_eq!(query_value(&url, "component_appid"), Some(component.clone()));
            prop_assert_eq!(query_value(&url, "pre_auth_code"), Some(pre_auth.clone()));
            prop_assert_eq!(query_value(&url, "redirect_uri"), Some(redirect.clone()));
            prop_assert_eq!(query_value(&url, "auth_type"), auth_type.map(|t| t.to_string()));
        }
    }

    #[test]
    fn the_component_authorize_url_carries_every_value_intact(
        appid in "\\PC{0,20}",
        redirect in tricky_string(),
        state in "\\PC{0,20}",
        component in "\\PC{0,20}",
        userinfo in any::<bool>(),
    ) {
        let scope = if userinfo { Scope::UserInfo } else { Scope::Base };
        let url = component_authorize_url(
            "https://open.weixin.qq.com/", &appid, &redirect, scope, &state, &component,
        );
        prop_assert!(url.starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?"));
        prop_assert!(url.ends_with("#wechat_redirect"));
        prop_assert_eq!(url.matches('#').count(), 1);
        prop_assert_eq!(
            query_names(&url),
            ["appid", "redirect_uri", "response_type", "scope", "state", "component_appid"]
        );
        prop_assert_eq!(query_value(&url, "appid"), Some(appid));
        prop_assert_eq!(query_value(&url, "redirect_uri"), Some(redirect));
        prop_assert_eq!(query_value(&url, "scope"), Some(scope.as_str().to_owned()));
        prop_assert_eq!(query_value(&url, "state"), Some(state));
        prop_assert_eq!(query_value(&url, "component_appid"), Some(component));
    }

    #[test]
    fn encrypt_then_decrypt_returns_the_message(
        msg in prop::collection::vec(any::<u8>(), 0..2048),
        appid in "[ -~]{0,40}|\\PC{0,20}",
        random in prop::option::of(any::<[u8; 16]>()),
    ) {
        let k = key();
        let enc = crypto::encrypt(&k, &msg, &appid, random);
        let d = crypto::decrypt(&k, &enc, Some(&appid)).unwrap();
        prop_assert_eq!(&d.message, &msg);
        prop_assert_eq!(&d.appid, &appid);
        if let Some(r) = random {
            prop_assert_eq!(d.random, r);
        }
        // Ciphertext is whole 32-byte blocks: 16 random + 4 length + msg + appid + 1..=32 pad.
        let raw_len = 16 + 4 + msg.len() + appid.len();
        let cipher_len = enc.len() / 4 * 3 - enc.matches('=').count();
        prop_assert_eq!(cipher_len % 32, 0);
        prop_assert!(cipher_len > raw_len && cipher_len <= raw_len + 32);
    }

    #[test]
    fn any_raw_key_round_trips(raw in any::<[u8; 32]>(), msg in any::<String>()) {
        let k = AesKey::from_bytes(raw);
        let enc = crypto::encrypt(&k, msg.as_bytes(), "wxid", None);
        let d = crypto::decrypt(&k, &enc, Some("wxid")).unwrap();
        prop_assert_eq!(d.message_str().unwrap(), msg.as_str());
    }

    #[test]
    fn padding_is_always_1_to_32_bytes_to_a_multiple_of_32(
        data in prop::collection::vec(any::<u8>(), 0..300)
    ) {
        let mut buf = data.clone();
        pkcs7_pad(&mut buf);
        prop_assert_eq!(buf.len() % 32, 0);
        let pad = buf.len() - data.len();
        prop_assert!((1..=32).contains(&pad));
        prop_assert!(buf[data.len()..].iter().all(|&b| usize::from(b) == pad));
        prop_assert_eq!(pkcs7_unpad(&buf).unwrap(), &data[..]);
    }

    #[test]
    fn seal_then_open_round_trips_through_the_key_ring(
        xml in tricky_string(),
        token in "[A-Za-z0-9]{3,32}",
        timestamp in any::<u64>(),
        nonce in "[0-9A-Za-z]{1,16}",
        use_previous in any::<bool>(),
    ) {
        let old = AesKey::from_bytes([9u8; 32]);
        let ring = KeyRing::new(key(), Some(old));
        let used = if use_previous { KeyUsed::Previous } else { KeyUsed::Current };
        let sealed = seal_reply(ring.key(used), &token, "wxappid", &xml, Some(timestamp), Some(&nonce));
        let opened = open_push(
            &ring, &token, &sealed.timestamp, &sealed.nonce, &sealed.msg_signature,
            sealed.to_xml().as_bytes(), Some("wxappid"),
        ).unwrap();
        prop_assert_eq!(opened.plaintext, xml);
        prop_assert_eq!(opened.key_used, used);
    }

    #[test]
    fn a_derived_seal_opens_to_the_reply_and_depends_on_the_push(
        xml in tricky_string(),
        token in "[A-Za-z0-9]{3,32}",
        timestamp in any::<u64>(),
        push in prop::collection::vec(any::<u8>(), 0..64),
        other in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let ring = KeyRing::new(key(), None);
        let sealed = crypto::seal_reply_derived(&key(), &token, "wxappid", &xml, timestamp, &push);
        let opened = open_push(
            &ring, &token, &sealed.timestamp, &sealed.nonce, &sealed.msg_signature,
            sealed.to_xml().as_bytes(), Some("wxappid"),
        ).unwrap();
        prop_assert_eq!(&opened.plaintext, &xml);
        prop_assert_eq!(&sealed.timestamp, &timestamp.to_string());
        prop_assert!(sealed.nonce.len() == 10 && sealed.nonce.bytes().all(|b| b.is_ascii_digit()));
        let again = crypto::seal_reply_derived(&key(), &token, "wxappid", &xml, timestamp, &push);
        prop_assert_eq!(&again, &sealed);
        if other != push {
            let elsewhere =
                crypto::seal_reply_derived(&key(), &token, "wxappid", &xml, timestamp, &other);
            let random = |s: &crypto::EncryptedReply| {
                crypto::decrypt(&key(), &s.encrypt, Some("wxappid")).unwrap().random
            };
            prop_assert_ne!(random(&elsewhere), random(&sealed));
        }
    }

    #[test]
    fn a_sealed_reply_survives_its_compact_form_byte_for_byte(
        xml in tricky_string(),
        token in "[A-Za-z0-9]{3,32}",
        timestamp in any::<u64>(),
        nonce in "\\PC{1,32}",
        random in any::<[u8; 16]>(),
    ) {
        let sealed = crypto::seal_reply_with_random(
            &key(), &token, "wxappid", &xml, Some(timestamp), Some(&nonce), Some(random),
        );
        let compact = sealed.to_compact().unwrap();
        prop_assert!(compact.len() * 10 < sealed.to_xml().len() * 7, "{} vs {}", compact.len(), sealed.to_xml().len());
        let back = crypto::EncryptedReply::from_compact(&compact).unwrap();
        prop_assert_eq!(back.to_xml(), sealed.to_xml());
        prop_assert_eq!(back, sealed);
    }

    #[test]
    fn reading_a_compact_reply_never_panics(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            // Mostly the format's version byte, then short length prefixes, so that many
            // inputs get past the header and are read as a reply.
            (0u8..40, 0u8..40, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(t, n, rest)| {
                let mut v = vec![1, t];
                v.extend(std::iter::repeat_n(b'1', usize::from(t)));
                v.push(n);
                v.extend(std::iter::repeat_n(b'n', usize::from(n)));
                v.extend(rest);
                v
            }),
        ],
    ) {
        if let Some(reply) = crypto::EncryptedReply::from_compact(&bytes) {
            // Whatever it reads encodes back to the same bytes.
            prop_assert_eq!(reply.to_compact(), Some(bytes));
        }
    }

    #[test]
    fn reply_to_xml_parses_back_to_the_same_reply(
        reply in any_reply(),
        to in tricky_string(),
        from in tricky_string(),
        time in any::<i64>(),
    ) {
        let xml = reply.to_xml(&to, &from, time).unwrap();
        let parsed = Reply::parse_xml(xml.as_bytes()).unwrap();
        prop_assert_eq!(parsed.reply, reply.clone());
        prop_assert_eq!(parsed.to_user, to.clone());
        prop_assert_eq!(parsed.from_user, from.clone());
        prop_assert_eq!(parsed.create_time, time);
        // The inbound parser reads the same header and text.
        let m = Message::parse(xml.as_bytes()).unwrap();
        prop_assert_eq!(m.to_user(), to.as_str());
        prop_assert_eq!(m.from_user(), from.as_str());
        if let Reply::Text { content } = &reply {
            prop_assert_eq!(m.text(), Some(content.as_str()));
            let json = m.to_json();
            prop_assert_eq!(json["Content"].as_str(), Some(content.as_str()));
        }
        // And the JSON shape round-trips too.
        let json = serde_json::to_string(&reply).unwrap();
        prop_assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
    }

    #[test]
    fn message_parse_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::parse(&data);
        let _ = Envelope::parse(&data);
        let _ = Reply::parse_xml(&data);
        let _ = Fields::parse_document(&data);
    }

    #[test]
    fn message_parse_never_panics_on_xmlish_input(data in xmlish_bytes()) {
        if let Ok(m) = Message::parse(&data) {
            let _ = m.to_json();
            let _ = m.dedup_key();
        }
        let _ = Envelope::parse(&data);
        let _ = Reply::parse_xml(&data);
    }

    #[test]
    fn decrypt_never_panics(s in "[A-Za-z0-9+/=]{0,200}|\\PC{0,64}") {
        let k = key();
        let _ = crypto::decrypt(&k, &s, None);
        let _ = crypto::decrypt(&k, &s, Some("wxb11529c136998cb6"));
    }

    #[test]
    fn decrypt_of_random_ciphertext_blocks_never_panics(
        blocks in prop::collection::vec(any::<[u8; 16]>(), 0..12),
        raw in any::<[u8; 32]>(),
    ) {
        use base64::Engine as _;
        let bytes: Vec<u8> = blocks.concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let _ = crypto::decrypt(&AesKey::from_bytes(raw), &b64, None);
    }

    #[test]
    fn open_push_never_panics(
        body in xmlish_bytes(),
        sig in "[0-9a-f]{0,40}",
        ts in "\\PC{0,12}",
    ) {
        let ring = KeyRing::new(key(), None);
        let _ = open_push(&ring, "token", &ts, "nonce", &sig, &body, None);
    }

    #[test]
    fn aes_key_never_panics(s in "\\PC{0,60}|[A-Za-z0-9]{43}") {
        let _ = AesKey::from_encoding_aes_key(&s);
    }

    #[test]
    fn any_43_alphanumerics_make_a_key(s in "[A-Za-z0-9]{43}") {
        prop_assert!(AesKey::from_encoding_aes_key(&s).is_ok());
    }

    #[test]
    fn message_with_arbitrary_text_round_trips(content in tricky_string(), from in tricky_string()) {
        let xml = Reply::text(content.clone()).to_xml("gh_1", &from, 1).unwrap();
        let m = Message::parse(xml.as_bytes()).unwrap();
        prop_assert_eq!(m.text(), Some(content.as_str()));
        prop_assert_eq!(m.from_user(), from.as_str());
    }

    #[test]
    fn sorted_signatures_match_a_plain_sort_for_any_number_of_parts(
        parts in prop::collection::vec("\\PC{0,12}", 0..8),
        separator in "|&",
    ) {
        // The reference: sort a copy, join, SHA-1, hex — what WeChat's docs describe.
        let mut sorted = parts.clone();
        sorted.sort();
        let expected = wxgate_proto::signature::sha1_hex(sorted.join(&separator).as_bytes());
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        prop_assert_eq!(
            wxgate_proto::signature::sha1_sorted_joined(&refs, &separator),
            expected
        );
    }

    #[test]
    fn lower_hex_matches_the_hex_crate(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(wxgate_proto::signature::lower_hex(&bytes), hex::encode(&bytes));
    }

    #[test]
    fn signature_verification_is_case_insensitive_and_exact(
        token in "[A-Za-z0-9]{1,32}",
        ts in "[0-9]{1,10}",
        nonce in "[0-9]{1,10}",
        flip in 0usize..40,
    ) {
        use wxgate_proto::signature::{signature, verify_signature};
        let good = signature(&token, &ts, &nonce);
        prop_assert!(verify_signature(&token, &ts, &nonce, &good));
        prop_assert!(verify_signature(&token, &ts, &nonce, &good.to_ascii_uppercase()));
        // Any one hex digit changed, or one dropped, fails.
        let mut bad = good.clone().into_bytes();
        bad[flip] = if bad[flip] == b'0' { b'1' } else { b'0' };
        prop_assert!(!verify_signature(&token, &ts, &nonce, std::str::from_utf8(&bad).unwrap()));
        prop_assert!(!verify_signature(&token, &ts, &nonce, &good[..39]));
    }
}
