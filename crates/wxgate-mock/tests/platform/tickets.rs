//! Tickets: encrypted, signed pushes (on registration, on demand, periodically, on
//! `api_start_push_ticket`), the component token rules, and the components' HTTP controls.

use super::support::*;

#[tokio::test]
async fn tickets_are_pushed_encrypted_and_signed_on_registration_and_on_demand() {
    let mut e = env_with(true, None).await;
    let first = e.next_push().await;
    assert_eq!(field(&first, "InfoType"), "component_verify_ticket");
    let ticket = field(&first, "ComponentVerifyTicket");
    assert!(ticket.starts_with("ticket@@@"), "{ticket}");
    assert_eq!(e.mock.current_ticket(COMPONENT).as_deref(), Some(&*ticket));

    let answer = e.mock.push_ticket_now(COMPONENT).await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    let second = field(&e.next_push().await, "ComponentVerifyTicket");
    assert_ne!(second, ticket);
    assert_eq!(e.mock.current_ticket(COMPONENT), Some(second));
    // Without periodic pushes configured, nothing else comes.
    e.no_push_within(Duration::from_millis(300)).await;
    assert_eq!(
        e.mock.push_ticket_now("wxunknown").await,
        Err(PushError::UnknownComponent)
    );
}

#[tokio::test]
async fn periodic_ticket_pushes_stop_on_reset() {
    let mut e = env_with(true, Some(Duration::from_millis(100))).await;
    for _ in 0..3 {
        let inner = e.next_push().await;
        assert_eq!(field(&inner, "InfoType"), "component_verify_ticket");
    }
    e.mock.reset();
    // One push may have been under way when the reset came.
    tokio::time::sleep(Duration::from_millis(150)).await;
    while e.pushes.try_recv().is_ok() {}
    e.no_push_within(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn start_push_ticket_checks_the_secret_and_pushes_a_new_ticket() {
    let mut e = env().await;
    let before = e.mock.current_ticket(COMPONENT);
    let path = "/cgi-bin/component/api_start_push_ticket";
    let bad = json!({"component_appid": COMPONENT, "component_secret": "wrong"});
    assert_errcode(&e.post(path, &[], &bad).await, 40125);
    let unknown = json!({"component_appid": "wx1111111111111111", "component_secret": SECRET});
    assert_errcode(&e.post(path, &[], &unknown).await, 40013);
    let good = json!({"component_appid": COMPONENT, "component_secret": SECRET});
    assert_eq!(
        e.post(path, &[], &good).await,
        json!({"errcode": 0, "errmsg": "ok"})
    );
    let ticket = field(&e.next_push().await, "ComponentVerifyTicket");
    assert_ne!(Some(ticket), before);
    assert_eq!(e.mock.calls(path), 3);
}

#[tokio::test]
async fn component_tokens_need_a_ticket_younger_than_12_hours() {
    let e = env().await;
    let ticket = e.mock.current_ticket(COMPONENT).unwrap();
    let v = e.component_token_with(&ticket).await;
    assert_eq!(v["expires_in"], 7200);
    let t1 = v["component_access_token"].as_str().unwrap().to_owned();

    // Each call issues a new token; the previous one works during the grace period.
    let t2 = e.component_token().await;
    assert_ne!(t1, t2);
    assert!(e.pre_auth_code(&t1).await.starts_with("preauthcode@@@"));
    assert_eq!(e.mock.current_component_tokens(COMPONENT).len(), 2);
    e.mock.advance_clock(Duration::from_secs(301));
    let v = e
        .api(
            "api_create_preauthcode",
            &t1,
            json!({"component_appid": COMPONENT}),
        )
        .await;
    assert_errcode(&v, 40001);

    assert_errcode(&e.component_token_with("ticket@@@forged").await, 61006);
    let body = json!({"component_appid": "wx1111111111111111", "component_appsecret": SECRET,
                      "component_verify_ticket": ticket});
    let path = "/cgi-bin/component/api_component_token";
    assert_errcode(&e.post(path, &[], &body).await, 40013);
    let body = json!({"component_appid": COMPONENT, "component_appsecret": "wrong",
                      "component_verify_ticket": ticket});
    assert_errcode(&e.post(path, &[], &body).await, 40125);

    // A ticket of another component is not this one's.
    let mut other = component(None);
    other.appid = "wxd0d0d0d0d0d0d0d1".into();
    e.mock.add_component(other);
    let foreign = e.mock.issue_ticket("wxd0d0d0d0d0d0d0d1").unwrap();
    assert_errcode(&e.component_token_with(&foreign).await, 61006);

    // 12 hours on the mock clock: the ticket expired; a new one works again.
    e.mock.advance_clock(Duration::from_secs(12 * 3600));
    assert_errcode(&e.component_token_with(&ticket).await, 61005);
    let fresh = e.mock.issue_ticket(COMPONENT).unwrap();
    let t3 = e.component_token_with(&fresh).await["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    e.mock.advance_clock(Duration::from_secs(7200));
    let v = e
        .api(
            "api_create_preauthcode",
            &t3,
            json!({"component_appid": COMPONENT}),
        )
        .await;
    assert_errcode(&v, 42001);
    assert_eq!(e.mock.calls(path), 8);
}

#[tokio::test]
async fn components_and_controls_over_http() {
    let mut e = env_with(false, None).await;
    let resp = e
        .http
        .post(format!("{}/__mock/components", e.base))
        .json(
            &json!({"appid": COMPONENT, "secret": SECRET, "token": TOKEN,
                      "encoding_aes_key": KEY, "push_url": e.push_url}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ticket = field(&e.next_push().await, "ComponentVerifyTicket");
    let v = e
        .get_json(
            "/__mock/component/ticket",
            &[("component_appid", COMPONENT)],
        )
        .await;
    assert_eq!(v["ticket"], ticket.as_str());
    let info = e.get_json("/__mock/info", &[]).await;
    assert_eq!(info["mp_base"], "http://mp.mock.test");
    assert_eq!(info["component_appids"], json!([COMPONENT]));

    let bad = e
        .http
        .post(format!("{}/__mock/components", e.base))
        .json(&json!({"appid": "wx1", "secret": "s", "token": "t", "encoding_aes_key": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let resp = e
        .http
        .post(format!("{}/__mock/component/push_ticket", e.base))
        .json(&json!({"component_appid": COMPONENT}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["status"].as_u64(), v["body"].as_str()),
        (Some(200), Some("success"))
    );
    assert_eq!(
        field(&e.next_push().await, "ComponentVerifyTicket"),
        v["ticket"].as_str().unwrap()
    );

    let resp = e
        .http
        .post(format!("{}/__mock/component/authorize_directly", e.base))
        .json(
            &json!({"component_appid": COMPONENT, "authorizer_appid": "wxbbbbbbbbbbbbbbb1",
                      "nick_name": "直授", "push": true}),
        )
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    let event = e.next_push().await;
    assert_eq!(field(&event, "InfoType"), "authorized");
    assert_eq!(
        field(&event, "AuthorizationCode"),
        v["authorization_code"].as_str().unwrap()
    );
    let a = e
        .get_json(
            "/__mock/component/authorizer",
            &[("authorizer_appid", "wxbbbbbbbbbbbbbbb1")],
        )
        .await;
    assert_eq!(
        (a["nick_name"].as_str(), a["token_calls"].as_u64()),
        (Some("直授"), Some(0))
    );
    // Controls are not WeChat calls.
    assert_eq!(e.mock.total_calls(), 0);
}

#[tokio::test]
async fn components_of_the_config_push_their_first_ticket_on_start() {
    let (push_url, mut pushes) = receiver().await;
    let config = MockConfig {
        components: vec![component(Some(push_url))],
        ..MockConfig::default()
    };
    let (mock, _) = MockWechat::start(config).await.unwrap();
    let push = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
        .await
        .unwrap()
        .unwrap();
    let key = wxgate_mock::crypto::aes_key(KEY).unwrap();
    let inner =
        wxgate_mock::crypto::decrypt_for(&key, &field(&push.body, "Encrypt"), COMPONENT).unwrap();
    assert_eq!(
        Some(field(&inner, "ComponentVerifyTicket")),
        mock.current_ticket(COMPONENT)
    );
}
