//! The authorization event URL: the checks of a push, tickets (newest wins, none older than
//! 12 h used, WeChat asked for one at most every 10 minutes), revocation.

use super::*;

#[tokio::test]
async fn the_event_url_checks_like_a_push() {
    let (_mock, app) = start_platform().await;
    let inner = format!(
        "<xml><AppId><![CDATA[{COMPONENT_APPID}]]></AppId><CreateTime>{}</CreateTime>\
         <InfoType><![CDATA[component_verify_ticket]]></InfoType>\
         <ComponentVerifyTicket><![CDATA[ticket@@@x]]></ComponentVerifyTicket></xml>",
        unix_now()
    );
    let code = |body: &str| -> String {
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A forged signature.
    let (query, body) = seal(&inner, COMPONENT_APPID, unix_now());
    let forged = query.replace("msg_signature=", "msg_signature=0");
    let (status, answer) =
        post_raw(&format!("{}?{forged}", event_url(&app.base)), body.clone()).await;
    assert_eq!((status, code(&answer).as_str()), (403, "invalid_signature"));
    // A replay from an hour ago.
    let (old_query, old_body) = seal(&inner, COMPONENT_APPID, unix_now() - 3600);
    let (status, answer) =
        post_raw(&format!("{}?{old_query}", event_url(&app.base)), old_body).await;
    assert_eq!((status, code(&answer).as_str()), (403, "stale_timestamp"));
    // Not an event once decrypted.
    let (q, b) = seal("<xml><Nothing/></xml>", COMPONENT_APPID, unix_now());
    let (status, answer) = post_raw(&format!("{}?{q}", event_url(&app.base)), b).await;
    assert_eq!((status, code(&answer).as_str()), (400, "invalid_message"));
    // Not even XML.
    let (status, answer) = post_raw(
        &format!("{}?{query}", event_url(&app.base)),
        "garbage".into(),
    )
    .await;
    assert_eq!((status, code(&answer).as_str()), (400, "invalid_message"));
    // Sealed for another appid.
    let (q, b) = seal(&inner, "wx9999999999999999", unix_now());
    let (status, _) = post_raw(&format!("{}?{q}", event_url(&app.base)), b).await;
    assert_eq!(status, 403);
    // Another platform's URL.
    let (status, answer) = post_raw(
        &format!("{}/wx/component/nobody?{query}", app.base),
        body.clone(),
    )
    .await;
    assert_eq!((status, code(&answer).as_str()), (404, "unknown_component"));
    // The genuine one.
    let (status, answer) = post_raw(&format!("{}?{query}", event_url(&app.base)), body).await;
    assert_eq!((status, answer.as_str()), (200, "success"));
    app.stop().await;
}

#[tokio::test]
async fn without_a_fresh_ticket_wechat_is_asked_once_and_the_token_waits_for_it() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let app = crate::helpers::spawn_app_full(&platform_config(addr), None, |_, _| {}).await;
    // The mock knows the platform but pushes nothing yet.
    mock.add_component(wxgate_mock::MockComponent::new(
        COMPONENT_APPID,
        COMPONENT_SECRET,
        COMPONENT_TOKEN,
        COMPONENT_KEY,
    ));
    // A ticket WeChat issued 13 hours ago is kept but not used.
    let stale = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{}</CreateTime>\
         <InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>old@@@t</ComponentVerifyTicket></xml>",
        unix_now() - 13 * 3600
    );
    assert_eq!(send_event(&app.base, &stale).await.0, 200);
    for _ in 0..3 {
        let (status, body) = get_api(&component_api(&app.base, "access_token")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "component_ticket_missing");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/wx/component/platform"));
    }
    assert_eq!(
        mock.calls("cgi-bin/component/api_start_push_ticket"),
        1,
        "asked once for the 10 minutes"
    );
    assert_eq!(mock.calls("cgi-bin/component/api_component_token"), 0);
    let (_, st) = get_api(&component_api(&app.base, "status")).await;
    assert_eq!(
        (
            st["ticket"]["present"].clone(),
            st["ticket"]["usable"].clone()
        ),
        (Value::Bool(true), Value::Bool(false))
    );

    // WeChat pushes a fresh one; an older push arriving after it changes nothing.
    let ticket = mock.issue_ticket(COMPONENT_APPID).unwrap();
    let fresh = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{}</CreateTime>\
         <InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>{ticket}</ComponentVerifyTicket></xml>",
        unix_now()
    );
    assert_eq!(send_event(&app.base, &fresh).await.0, 200);
    let older = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{}</CreateTime>\
         <InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>older@@@t</ComponentVerifyTicket></xml>",
        unix_now() - 60
    );
    assert_eq!(send_event(&app.base, &older).await.0, 200);
    let (status, body) = get_api(&component_api(&app.base, "access_token")).await;
    assert_eq!(status, 200, "the newest ticket is used: {body}");
    assert_eq!(mock.calls("cgi-bin/component/api_component_token"), 1);
    app.stop().await;
}

#[tokio::test]
async fn unauthorized_revokes_the_authorizer_and_a_new_authorization_brings_it_back() {
    let (mock, app) = start_platform().await;
    let merchant = authorizer_appid(3);
    authorize_by_event(&mock, &app.base, &merchant).await;
    let (status, body) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{body}");

    // WeChat's clock: one second after the authorization (a revocation wins only when later).
    let revoked_at = unix_now() + 1;
    let unauthorized = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{revoked_at}</CreateTime>\
         <InfoType>unauthorized</InfoType><AuthorizerAppid>{merchant}</AuthorizerAppid></xml>"
    );
    assert_eq!(
        send_event(&app.base, &unauthorized).await,
        (200, "success".into())
    );
    // WeChat retries: the same answer, nothing changes.
    assert_eq!(
        send_event(&app.base, &unauthorized).await,
        (200, "success".into())
    );
    for path in ["access_token", "tickets/jsapi", "status"] {
        let (status, body) = app.get_json(&format!("{merchant}/{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unknown_account");
    }
    let (status, _) = crate::helpers::http_client()
        .get(format!(
            "{}/jssdk/{merchant}/config?url={}",
            app.base,
            urlencode("https://h5.example.com/")
        ))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 404);
    let (_, list) = get_api(&component_api(&app.base, "authorizers")).await;
    assert_eq!(list["authorizers"][0]["status"], "revoked");
    let (_, st) = get_api(&component_api(&app.base, "status")).await;
    assert_eq!(st["authorizers"]["revoked"], 1);
    assert_eq!(st["authorizers"]["authorized"], 0);

    // The merchant authorizes again: served again.
    authorize_by_event(&mock, &app.base, &merchant).await;
    let (status, body) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = get_api(&component_api(&app.base, "authorizers")).await;
    assert_eq!(list["authorizers"][0]["status"], "authorized");
    // A late retry of the old `unauthorized` does not undo the new authorization.
    assert_eq!(
        send_event(&app.base, &unauthorized).await,
        (200, "success".into())
    );
    let (status, body) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_newest_ticket_survives_a_lost_store() {
    let (mock, addr) = crate::helpers::start_mock().await;
    let config = platform_config(addr);
    let first = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &first.base).await;
    first.stop().await;
    // Another instance, same database, an empty store (a flushed Redis, a new machine): the
    // ticket comes from the database, sealed there; WeChat is not asked for one.
    let second = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    let (status, body) = get_api(&component_api(&second.base, "access_token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.calls("cgi-bin/component/api_start_push_ticket"), 0);
    let ticket = mock.current_ticket(COMPONENT_APPID).unwrap();
    let db_path = config
        .database_url
        .strip_prefix("sqlite://")
        .unwrap()
        .to_owned();
    let mut bytes = std::fs::read(&db_path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{db_path}-wal")) {
        bytes.extend(wal);
    }
    let needle = ticket.as_bytes();
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the ticket is sealed in the database file"
    );
    second.stop().await;
}
