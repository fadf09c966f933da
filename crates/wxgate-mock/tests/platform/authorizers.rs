//! Authorizers: their access tokens on account endpoints, refresh tokens with and without
//! rotation, the account profile, revocation, and ten thousand of them.

use super::support::*;

#[tokio::test]
async fn authorizer_tokens_work_on_account_endpoints_until_invalidated_or_expired() {
    let e = env().await;
    let token = e.component_token().await;
    let appid = "wx6666666666666661";
    let (access, _) = e.authorized(&token, appid).await;

    let v = e.getticket(&access).await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert!(v["ticket"].is_string());
    let v = e
        .get_json("/cgi-bin/getcallbackip", &[("access_token", &access)])
        .await;
    assert_eq!(v["ip_list"], json!(["127.0.0.1"]));
    let v = e
        .post(
            "/cgi-bin/message/custom/send",
            &[("access_token", &access)],
            &json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let v = e
        .post(
            "/cgi-bin/menu/create",
            &[("access_token", &access)],
            &json!({"button": []}),
        )
        .await;
    assert_eq!(v["path"], "/cgi-bin/menu/create");
    assert_eq!(e.mock.current_access_tokens(appid), vec![access.clone()]);

    e.mock.advance_clock(Duration::from_secs(7200));
    assert_errcode(&e.getticket(&access).await, 42001);

    let token = e.component_token().await;
    let (access, _) = e.authorized(&token, "wx6666666666666662").await;
    e.mock.invalidate_access_tokens("wx6666666666666662");
    assert_errcode(&e.getticket(&access).await, 40001);
}

#[tokio::test]
async fn refresh_tokens_are_stable_without_rotation_and_single_use_with_it() {
    let e = env().await;
    let token = e.component_token().await;
    let appid = "wx7777777777777771";
    let (first_access, refresh) = e.authorized(&token, appid).await;

    let mut previous = first_access;
    for _ in 0..5 {
        let v = e.refresh(&token, appid, &refresh).await;
        assert_eq!(v["authorizer_refresh_token"], refresh.as_str(), "{v}");
        assert_eq!(v["expires_in"], 7200);
        let access = v["authorizer_access_token"].as_str().unwrap().to_owned();
        assert_ne!(access, previous);
        previous = access;
    }
    assert_eq!(e.mock.calls("/cgi-bin/component/api_authorizer_token"), 5);
    assert_eq!(e.mock.authorizer_token_calls(appid), 6);
    assert_errcode(&e.refresh(&token, appid, "refreshtoken@@@old").await, 61023);
    assert_errcode(
        &e.refresh(&token, "wx0000000000000009", &refresh).await,
        61003,
    );

    // Rotation, switched on over HTTP: each answer carries a new refresh token.
    let resp = e
        .http
        .post(format!("{}/__mock/component/rotation", e.base))
        .json(&json!({"component_appid": COMPONENT, "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = e.refresh(&token, appid, &refresh).await;
    let rotated = v["authorizer_refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh);
    assert_errcode(&e.refresh(&token, appid, &refresh).await, 61023);
    let v = e.refresh(&token, appid, &rotated).await;
    let rotated_again = v["authorizer_refresh_token"].as_str().unwrap().to_owned();
    assert_errcode(&e.refresh(&token, appid, &rotated).await, 61023);
    assert_eq!(
        e.mock.authorizer(appid).unwrap().refresh_token.as_deref(),
        Some(rotated_again.as_str())
    );

    e.mock.set_refresh_token_rotation(COMPONENT, false);
    e.mock.invalidate_refresh_token(appid);
    assert_errcode(&e.refresh(&token, appid, &rotated_again).await, 61023);
    // The previous access token still works until its end: only the refresh token went.
    assert_eq!(errcode(&e.getticket(&previous).await), 0);
}

#[tokio::test]
async fn authorizer_info_describes_the_account_and_its_grants() {
    let e = env().await;
    let token = e.component_token().await;
    let appid = "wx8888888888888881";
    let (_, refresh) = e.authorized(&token, appid).await;
    let v = e
        .api(
            "api_get_authorizer_info",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": appid}),
        )
        .await;
    let info = &v["authorizer_info"];
    assert_eq!(info["nick_name"], "小店");
    assert_eq!(info["principal_name"], "小店 有限公司");
    assert_eq!(info["service_type_info"], json!({"id": 2}));
    assert_eq!(info["verify_type_info"], json!({"id": 0}));
    assert!(info["user_name"].as_str().unwrap().starts_with("gh_"));
    assert_eq!(info["business_info"]["open_pay"], 0);
    assert!(info["head_img"].is_string() && info["qrcode_url"].is_string());
    let auth = &v["authorization_info"];
    assert_eq!(auth["authorizer_appid"], appid);
    assert_eq!(auth["authorizer_refresh_token"], refresh.as_str());
    assert!(auth["func_info"].as_array().unwrap().len() > 2);
    let v = e
        .api(
            "api_get_authorizer_info",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": "wx0000000000000009"}),
        )
        .await;
    assert_errcode(&v, 61003);
}

#[tokio::test]
async fn revoking_pushes_unauthorized_and_stops_every_credential() {
    let mut e = env().await;
    let token = e.component_token().await;
    let appid = "wx9999999999999991";
    let (access, refresh) = e.authorized(&token, appid).await;
    let answer = e.mock.revoke_authorizer(COMPONENT, appid).await.unwrap();
    assert_eq!(answer.map(|a| a.status), Some(200));
    let event = e.next_push().await;
    assert_eq!(field(&event, "InfoType"), "unauthorized");
    assert_eq!(field(&event, "AuthorizerAppid"), appid);

    assert_errcode(&e.getticket(&access).await, 40001);
    assert_errcode(&e.refresh(&token, appid, &refresh).await, 61023);
    let v = e
        .api(
            "api_get_authorizer_info",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": appid}),
        )
        .await;
    assert_errcode(&v, 61003);
    assert!(e.mock.authorizer(appid).unwrap().revoked);
    assert_eq!(
        e.mock
            .revoke_authorizer(COMPONENT, "wx0000000000000009")
            .await,
        Err(PushError::UnknownAuthorizer)
    );

    // Authorizing again brings it back with a new refresh token.
    let (access, new_refresh) = e.authorized(&token, appid).await;
    assert_ne!(new_refresh, refresh);
    assert_eq!(errcode(&e.getticket(&access).await), 0);
}

#[tokio::test]
async fn ten_thousand_authorizers_stay_cheap() {
    let e = env().await;
    let token = e.component_token().await;
    let started = std::time::Instant::now();
    let mut codes = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let appid = format!("wx{i:016x}");
        codes.push(
            e.mock
                .authorize_directly(COMPONENT, &appid, "店", false)
                .unwrap(),
        );
    }
    // Generous for a debug build on a shared machine; a scan per call would be far slower.
    assert!(started.elapsed() < Duration::from_secs(20));
    let appid = format!("wx{:016x}", 9_999);
    let body = json!({"component_appid": COMPONENT, "authorization_code": codes[9_999]});
    let v = e.api("api_query_auth", &token, body).await;
    let access = v["authorization_info"]["authorizer_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(errcode(&e.getticket(&access).await), 0);
    assert_eq!(e.mock.authorizer_token_calls(&appid), 1);
    assert_eq!(
        e.mock.authorize_directly("wxunknown", &appid, "x", false),
        Err(PushError::UnknownComponent)
    );
}
