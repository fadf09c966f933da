//! Unit tests of the parent module, kept in their own file so the module reads short.

use super::*;
use crate::crypto::{open_push, seal_reply, CryptoError, KeyRing};

const COMPONENT: &str = "wx5d4c3b2a19f8e7d6";
const AUTHORIZER: &str = "wxf8b4f85f3a794e77";
const TICKET: &str = "ticket@@@lEHjsBEi_TPDey0IZxw4Zbb7JRYLOtEf9ksvDpSwzkwog3R6xEpdaK0yIee7JOyOXM0V7cp0dpM58GKmb8FJKA";
const CODE: &str = "queryauthcode@@@cntx3V6ELvd9EdQhL8EnxoMqy1zEtiLFLGgZKhjOXwq7eTkHpjtk0ndFlEDAQCQEVTYLWobp2AH-L0zl-MThfw";
const PRE_AUTH: &str =
    "preauthcode@@@ejSOGQ8Sy9cgtNYf3KzlAbtyxzBV_KJqPxKd2pQnvk1RVLt4tQ9sD7qgxnU7KNtS";

/// The documented sample, field names and order as in WeChat's docs.
#[test]
fn the_verify_ticket_sample_parses() {
    let xml = b"<xml><AppId>some_appid</AppId><CreateTime>1413192605</CreateTime>\
                <InfoType>component_verify_ticket</InfoType>\
                <ComponentVerifyTicket>some_verify_ticket</ComponentVerifyTicket></xml>";
    let event = AuthEvent::parse(xml).unwrap();
    assert_eq!(
        event,
        AuthEvent {
            component_appid: "some_appid".into(),
            create_time: 1413192605,
            info: AuthInfo::VerifyTicket {
                ticket: "some_verify_ticket".into()
            },
        }
    );
    assert_eq!(event.info.info_type(), "component_verify_ticket");
    assert_eq!(event.info.authorizer_appid(), None);
}

#[test]
fn a_pretty_printed_cdata_ticket_parses_trimmed() {
    let xml = format!(
        "<xml>\n  <AppId><![CDATA[{COMPONENT}]]></AppId>\n  <CreateTime>1700000000</CreateTime>\n  \
         <InfoType><![CDATA[component_verify_ticket]]></InfoType>\n  \
         <ComponentVerifyTicket>\n    <![CDATA[{TICKET}]]>\n  </ComponentVerifyTicket>\n</xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert_eq!(event.component_appid, COMPONENT);
    assert_eq!(event.create_time, 1_700_000_000);
    assert_eq!(
        event.info,
        AuthInfo::VerifyTicket {
            ticket: TICKET.into()
        }
    );
}

fn grant_xml(info_type: &str, pre_auth: &str) -> String {
    format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>1413192760</CreateTime>\
         <InfoType><![CDATA[{info_type}]]></InfoType>\
         <AuthorizerAppid><![CDATA[{AUTHORIZER}]]></AuthorizerAppid>\
         <AuthorizationCode><![CDATA[{CODE}]]></AuthorizationCode>\
         <AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime>\
         {pre_auth}</xml>"
    )
}

fn expected_grant(pre_auth_code: Option<&str>) -> Grant {
    Grant {
        authorizer_appid: AUTHORIZER.into(),
        authorization_code: CODE.into(),
        code_expires_at: 1413196360,
        pre_auth_code: pre_auth_code.map(str::to_owned),
    }
}

#[test]
fn authorized_and_updateauthorized_carry_the_grant() {
    let pre = format!("<PreAuthCode><![CDATA[{PRE_AUTH}]]></PreAuthCode>");
    let event = AuthEvent::parse(grant_xml("authorized", &pre).as_bytes()).unwrap();
    assert_eq!(event.component_appid, COMPONENT);
    assert_eq!(event.create_time, 1413192760);
    assert_eq!(
        event.info,
        AuthInfo::Authorized(expected_grant(Some(PRE_AUTH)))
    );
    assert_eq!(event.info.authorizer_appid(), Some(AUTHORIZER));

    let event = AuthEvent::parse(grant_xml("updateauthorized", &pre).as_bytes()).unwrap();
    assert_eq!(
        event.info,
        AuthInfo::UpdateAuthorized(expected_grant(Some(PRE_AUTH)))
    );
    assert_eq!(event.info.info_type(), "updateauthorized");
}

#[test]
fn the_grant_sample_with_plain_text_values_parses() {
    // The docs' sample has no CDATA; the values here are realistic ones.
    let xml = format!(
        "<xml><AppId>{COMPONENT}</AppId><CreateTime>1413192760</CreateTime>\
         <InfoType>authorized</InfoType><AuthorizerAppid>{AUTHORIZER}</AuthorizerAppid>\
         <AuthorizationCode>{CODE}</AuthorizationCode>\
         <AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime>\
         <PreAuthCode>{PRE_AUTH}</PreAuthCode></xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        event.info,
        AuthInfo::Authorized(expected_grant(Some(PRE_AUTH)))
    );
}

#[test]
fn a_missing_or_empty_pre_auth_code_is_none() {
    for pre in [
        "",
        "<PreAuthCode></PreAuthCode>",
        "<PreAuthCode><![CDATA[ ]]></PreAuthCode>",
    ] {
        let event = AuthEvent::parse(grant_xml("authorized", pre).as_bytes()).unwrap();
        assert_eq!(
            event.info,
            AuthInfo::Authorized(expected_grant(None)),
            "{pre}"
        );
    }
}

#[test]
fn unauthorized_names_the_account() {
    let xml = format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>1413192760</CreateTime>\
         <InfoType><![CDATA[unauthorized]]></InfoType>\
         <AuthorizerAppid><![CDATA[{AUTHORIZER}]]></AuthorizerAppid></xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        event.info,
        AuthInfo::Unauthorized {
            authorizer_appid: AUTHORIZER.into()
        }
    );
    assert_eq!(event.info.authorizer_appid(), Some(AUTHORIZER));
}

#[test]
fn an_unknown_info_type_is_other_not_an_error() {
    let xml = format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>1535442403</CreateTime>\
         <InfoType><![CDATA[notify_third_fasteregister]]></InfoType>\
         <appid><![CDATA[wx6e7b8c9d0a1b2c3d]]></appid><status>0</status>\
         <auth_code><![CDATA[xxxxx]]></auth_code><msg><![CDATA[OK]]></msg>\
         <info><name><![CDATA[company]]></name></info></xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        event.info,
        AuthInfo::Other {
            info_type: "notify_third_fasteregister".into()
        }
    );
    assert_eq!(event.info.info_type(), "notify_third_fasteregister");
}

#[test]
fn info_type_is_matched_ignoring_case_and_surrounding_space() {
    let xml = format!(
        "<xml><AppId>{COMPONENT}</AppId><CreateTime>1</CreateTime>\
         <InfoType> UnAuthorized\n</InfoType><AuthorizerAppid>{AUTHORIZER}</AuthorizerAppid></xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert!(matches!(event.info, AuthInfo::Unauthorized { .. }));
}

#[test]
fn required_fields_missing_or_blank_are_named() {
    let cases: &[(&str, &str)] = &[
        (
            "<xml><CreateTime>1</CreateTime><InfoType>component_verify_ticket</InfoType>\
             <ComponentVerifyTicket>t</ComponentVerifyTicket></xml>",
            "AppId",
        ),
        (
            "<xml><AppId><![CDATA[ ]]></AppId><InfoType>component_verify_ticket</InfoType>\
             <ComponentVerifyTicket>t</ComponentVerifyTicket></xml>",
            "AppId",
        ),
        (
            "<xml><AppId>wx1</AppId><CreateTime>1</CreateTime></xml>",
            "InfoType",
        ),
        ("<xml><AppId>wx1</AppId><InfoType/></xml>", "InfoType"),
        (
            "<xml><AppId>wx1</AppId><InfoType>component_verify_ticket</InfoType></xml>",
            "ComponentVerifyTicket",
        ),
        (
            "<xml><AppId>wx1</AppId><InfoType>component_verify_ticket</InfoType>\
             <ComponentVerifyTicket></ComponentVerifyTicket></xml>",
            "ComponentVerifyTicket",
        ),
        (
            "<xml><AppId>wx1</AppId><InfoType>authorized</InfoType>\
             <AuthorizationCode>c</AuthorizationCode></xml>",
            "AuthorizerAppid",
        ),
        (
            "<xml><AppId>wx1</AppId><InfoType>updateauthorized</InfoType>\
             <AuthorizerAppid>wx2</AuthorizerAppid><AuthorizationCode> </AuthorizationCode></xml>",
            "AuthorizationCode",
        ),
        (
            "<xml><AppId>wx1</AppId><InfoType>unauthorized</InfoType></xml>",
            "AuthorizerAppid",
        ),
        (
            // A nested element is not a text field.
            "<xml><AppId>wx1</AppId><InfoType>unauthorized</InfoType>\
             <AuthorizerAppid><a>wx2</a></AuthorizerAppid></xml>",
            "AuthorizerAppid",
        ),
    ];
    for (xml, field) in cases {
        let err = AuthEvent::parse(xml.as_bytes()).unwrap_err();
        assert_eq!(err, ParseError::MissingField(field), "{xml}");
        assert_eq!(err.to_string(), format!("missing field <{field}>"));
    }
}

#[test]
fn create_time_and_code_expiry_fall_back_to_zero() {
    let xml = format!(
        "<xml><AppId>{COMPONENT}</AppId><CreateTime>soon</CreateTime>\
         <InfoType>authorized</InfoType><AuthorizerAppid>{AUTHORIZER}</AuthorizerAppid>\
         <AuthorizationCode>{CODE}</AuthorizationCode></xml>"
    );
    let event = AuthEvent::parse(xml.as_bytes()).unwrap();
    assert_eq!(event.create_time, 0);
    let AuthInfo::Authorized(grant) = event.info else {
        panic!("not a grant: {:?}", event.info);
    };
    assert_eq!(grant.code_expires_at, 0);
    let without = format!(
        "<xml><AppId>{COMPONENT}</AppId><InfoType>component_verify_ticket</InfoType>\
         <ComponentVerifyTicket>{TICKET}</ComponentVerifyTicket></xml>"
    );
    assert_eq!(AuthEvent::parse(without.as_bytes()).unwrap().create_time, 0);
}

#[test]
fn malformed_xml_and_doctypes_are_refused() {
    assert_eq!(
        AuthEvent::parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><xml><AppId>&a;</AppId></xml>"),
        Err(ParseError::Doctype)
    );
    assert_eq!(AuthEvent::parse(b""), Err(ParseError::NoRoot));
    assert!(AuthEvent::parse(b"<xml><AppId>wx1</xml>").is_err());
}

#[test]
fn debug_hides_the_ticket_and_the_codes() {
    let ticket = AuthEvent {
        component_appid: COMPONENT.into(),
        create_time: 1,
        info: AuthInfo::VerifyTicket {
            ticket: TICKET.into(),
        },
    };
    let shown = format!("{ticket:?}");
    assert!(!shown.contains(TICKET), "{shown}");
    assert!(shown.contains(COMPONENT), "{shown}");
    assert!(
        shown.contains(&format!("\"tick…({} chars)\"", TICKET.len())),
        "{shown}"
    );

    let grant = AuthInfo::UpdateAuthorized(expected_grant(Some(PRE_AUTH)));
    let shown = format!("{grant:?}");
    assert!(
        !shown.contains(CODE) && !shown.contains(PRE_AUTH),
        "{shown}"
    );
    assert!(
        shown.contains("\"quer…(") && shown.contains("\"prea…("),
        "{shown}"
    );
    assert!(shown.starts_with("UpdateAuthorized(Grant {"), "{shown}");
    assert!(
        shown.contains(AUTHORIZER) && shown.contains("1413196360"),
        "{shown}"
    );
    let pretty = format!("{:#?}", expected_grant(None));
    assert!(pretty.contains("pre_auth_code: None"), "{pretty}");
    // Non-ASCII secrets are cut on character boundaries.
    let odd = AuthInfo::VerifyTicket {
        ticket: "票据票据票据".into(),
    };
    assert_eq!(
        format!("{odd:?}"),
        "VerifyTicket { ticket: \"票据票据…(6 chars)\" }"
    );
}

#[test]
fn to_xml_parses_back_to_the_same_event() {
    let events = [
        AuthInfo::VerifyTicket {
            ticket: TICKET.into(),
        },
        AuthInfo::Authorized(expected_grant(Some(PRE_AUTH))),
        AuthInfo::UpdateAuthorized(expected_grant(None)),
        AuthInfo::Unauthorized {
            authorizer_appid: AUTHORIZER.into(),
        },
        AuthInfo::Other {
            info_type: "notify_third_fasteregister".into(),
        },
    ];
    for info in events {
        let event = AuthEvent {
            component_appid: COMPONENT.into(),
            create_time: 1413192605,
            info,
        };
        assert_eq!(
            AuthEvent::parse(event.to_xml().as_bytes()),
            Ok(event.clone())
        );
    }
}

/// The encrypted body of an authorization event: `AppId` instead of `ToUserName`. It opens
/// with the component's Token and key, the component appid expected.
#[test]
fn an_encrypted_authorization_event_opens_and_parses() {
    let ring = KeyRing::from_encoding_aes_keys("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", None)
        .unwrap();
    let token = "componenttoken";
    let plaintext = format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>1413192605</CreateTime>\
         <InfoType><![CDATA[component_verify_ticket]]></InfoType>\
         <ComponentVerifyTicket><![CDATA[{TICKET}]]></ComponentVerifyTicket></xml>"
    );
    let sealed = seal_reply(
        &ring.current,
        token,
        COMPONENT,
        &plaintext,
        Some(1413192605),
        Some("1320562132"),
    );
    let mut body = String::from("<xml>");
    push_cdata_element(&mut body, "AppId", COMPONENT);
    push_cdata_element(&mut body, "Encrypt", &sealed.encrypt);
    body.push_str("</xml>");

    let open = |expected: &str| {
        open_push(
            &ring,
            token,
            &sealed.timestamp,
            &sealed.nonce,
            &sealed.msg_signature,
            body.as_bytes(),
            Some(expected),
        )
    };
    let opened = open(COMPONENT).unwrap();
    assert_eq!(opened.appid, COMPONENT);
    assert_eq!(opened.to_user, None);
    assert_eq!(opened.plaintext, plaintext);
    let event = AuthEvent::parse(opened.plaintext.as_bytes()).unwrap();
    assert_eq!(event.component_appid, COMPONENT);
    assert_eq!(
        event.info,
        AuthInfo::VerifyTicket {
            ticket: TICKET.into()
        }
    );
    // Sealed for the component, so an authorizer's appid does not match.
    assert_eq!(open(AUTHORIZER), Err(CryptoError::AppIdMismatch));
}

#[test]
fn the_pc_login_page_link() {
    assert_eq!(
        component_login_url(
            "https://mp.weixin.qq.com/",
            COMPONENT,
            "preauthcode@@@abc-_.~",
            "https://saas.example.com/component/platform/callback?state=Ab1&x=中",
            Some(3),
        ),
        "https://mp.weixin.qq.com/cgi-bin/componentloginpage?component_appid=wx5d4c3b2a19f8e7d6\
         &pre_auth_code=preauthcode%40%40%40abc-_.~\
         &redirect_uri=https%3A%2F%2Fsaas.example.com%2Fcomponent%2Fplatform%2Fcallback%3Fstate%3DAb1%26x%3D%E4%B8%AD\
         &auth_type=3"
    );
    assert_eq!(
        component_login_url("http://mock", "wxc", "pre", "http://r/", None),
        "http://mock/cgi-bin/componentloginpage?component_appid=wxc&pre_auth_code=pre\
         &redirect_uri=http%3A%2F%2Fr%2F"
    );
}

#[test]
fn the_mobile_bind_page_link() {
    assert_eq!(
        component_mobile_url(
            "https://mp.weixin.qq.com//",
            COMPONENT,
            "pre1",
            "https://saas.example.com/cb?state=s",
            Some(1),
        ),
        "https://mp.weixin.qq.com/safe/bindcomponent?action=bindcomponent&no_scan=1\
         &component_appid=wx5d4c3b2a19f8e7d6&pre_auth_code=pre1\
         &redirect_uri=https%3A%2F%2Fsaas.example.com%2Fcb%3Fstate%3Ds\
         &auth_type=1#wechat_redirect"
    );
    assert_eq!(
        component_mobile_url("http://mock", "wxc", "pre", "http://r/", None),
        "http://mock/safe/bindcomponent?action=bindcomponent&no_scan=1&component_appid=wxc\
         &pre_auth_code=pre&redirect_uri=http%3A%2F%2Fr%2F#wechat_redirect"
    );
}
