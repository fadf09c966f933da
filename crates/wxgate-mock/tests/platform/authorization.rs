//! A merchant's authorization: pre-auth codes, the pages and the click, the `authorized`
//! push, the single-use authorization code, and web login through a component.

use super::support::*;

#[tokio::test]
async fn pre_auth_codes_need_the_component_token_of_the_named_component() {
    let e = env().await;
    let token = e.component_token().await;
    let v = e
        .api(
            "api_create_preauthcode",
            &token,
            json!({"component_appid": COMPONENT}),
        )
        .await;
    assert_eq!(v["expires_in"], 1800);
    let v = e
        .api(
            "api_create_preauthcode",
            "nope",
            json!({"component_appid": COMPONENT}),
        )
        .await;
    assert_errcode(&v, 40001);
    let v = e
        .api(
            "api_create_preauthcode",
            &token,
            json!({"component_appid": "wx2"}),
        )
        .await;
    assert_errcode(&v, 61011);
    let v = e
        .post(
            "/cgi-bin/component/api_create_preauthcode",
            &[],
            &json!({"component_appid": COMPONENT}),
        )
        .await;
    assert_errcode(&v, 41001);
    // The newer documentation's `access_token` parameter works too.
    let v = e
        .post(
            "/cgi-bin/component/api_create_preauthcode",
            &[("access_token", &token)],
            &json!({"component_appid": COMPONENT}),
        )
        .await;
    assert!(v["pre_auth_code"].is_string(), "{v}");
}

#[tokio::test]
async fn the_page_authorizes_redirects_with_the_code_and_pushes_the_event() {
    let mut e = env().await;
    let token = e.component_token().await;
    let pre = e.pre_auth_code(&token).await;
    let redirect = "https://saas.example.com/component/platform/callback?state=s1";
    let page = e
        .get(
            "/cgi-bin/componentloginpage",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", redirect),
                ("auth_type", "3"),
            ],
        )
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"id="authorize""#), "{html}");
    assert!(html.contains(r#"action="../__mock/component/authorize""#));
    let appid = between(&html, r#"name="authorizer_appid" value=""#, "\"").to_owned();
    assert!(appid.starts_with("wx") && appid.len() == 18, "{appid}");
    assert!(html.contains(&format!(r#"name="pre_auth_code" value="{pre}""#)));

    // What the browser sends when the button is clicked.
    let resp = e
        .get(
            "/__mock/component/authorize",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", redirect),
                ("auth_type", "3"),
                ("authorizer_appid", &appid),
                ("nick_name", "小店"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/component/platform/callback");
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s1");
    assert_eq!(q["expires_in"], "3600");
    let code = q["auth_code"].clone();
    assert!(code.starts_with("queryauthcode@@@"), "{code}");

    let event = e.next_push().await;
    assert_eq!(field(&event, "InfoType"), "authorized");
    assert_eq!(field(&event, "AuthorizerAppid"), appid);
    assert_eq!(field(&event, "AuthorizationCode"), code);
    assert_eq!(field(&event, "PreAuthCode"), pre);
    let expire: u64 = field(&event, "AuthorizationCodeExpiredTime")
        .parse()
        .unwrap();
    let create: u64 = field(&event, "CreateTime").parse().unwrap();
    assert_eq!(expire - create, 3600);
    let a = e.mock.authorizer(&appid).unwrap();
    assert_eq!((a.nick_name.as_str(), a.revoked), ("小店", false));
    assert_eq!(&a.func_ids[..2], &[1, 15]);

    // The pre_auth_code is spent: neither the page nor the route take it again.
    let again = e
        .get(
            "/__mock/component/authorize",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", redirect),
            ],
        )
        .await;
    assert_eq!(again.status(), 400);
    let page = e
        .get(
            "/cgi-bin/componentloginpage",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", redirect),
            ],
        )
        .await;
    assert!(page.text().await.unwrap().starts_with("Oops!"));

    // The mobile page; authorizing the same account again is `updateauthorized`.
    let pre = e.pre_auth_code(&token).await;
    let mobile = [
        ("action", "bindcomponent"),
        ("no_scan", "1"),
        ("component_appid", COMPONENT),
        ("pre_auth_code", pre.as_str()),
        ("redirect_uri", "https://saas.example.com/back"),
        ("auth_type", "1"),
        ("biz_appid", appid.as_str()),
    ];
    let html = e
        .get("/safe/bindcomponent", &mobile)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(r#"name="authorizer_appid" value="{appid}""#)));
    let resp = e
        .get(
            "/__mock/component/authorize",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", "https://saas.example.com/back"),
                ("authorizer_appid", &appid),
            ],
        )
        .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(field(&e.next_push().await, "InfoType"), "updateauthorized");
    assert_eq!(e.mock.calls("/cgi-bin/componentloginpage"), 2);
    assert_eq!(e.mock.calls("/safe/bindcomponent"), 1);
}

#[tokio::test]
async fn an_authorization_code_is_exchanged_once() {
    let e = env().await;
    let token = e.component_token().await;
    let code = e.authorize(&token, "wx5555555555555551").await;
    let body = json!({"component_appid": COMPONENT, "authorization_code": code});
    let v = e.api("api_query_auth", &token, body.clone()).await;
    let info = &v["authorization_info"];
    assert_eq!(info["authorizer_appid"], "wx5555555555555551");
    assert_eq!(info["expires_in"], 7200);
    assert!(info["authorizer_refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("refreshtoken@@@"));
    assert_eq!(
        info["func_info"][0],
        json!({"funcscope_category": {"id": 1}})
    );
    assert_eq!(e.mock.authorizer_token_calls("wx5555555555555551"), 1);

    assert_errcode(&e.api("api_query_auth", &token, body).await, 61010);
    let unknown = json!({"component_appid": COMPONENT, "authorization_code": "queryauthcode@@@x"});
    assert_errcode(&e.api("api_query_auth", &token, unknown).await, 61009);

    // An unused code expires after an hour.
    let late = e.authorize(&token, "wx5555555555555552").await;
    e.mock.advance_clock(Duration::from_secs(3600));
    let token = e.component_token().await;
    let body = json!({"component_appid": COMPONENT, "authorization_code": late});
    assert_errcode(&e.api("api_query_auth", &token, body).await, 61010);
}

#[tokio::test]
async fn web_login_through_a_component_uses_its_own_exchange() {
    let e = env().await;
    let token = e.component_token().await;
    let appid = "wxaaaaaaaaaaaaaaa1";
    e.authorized(&token, appid).await;
    // The same appid also known as a plain account, to show the doors are separate.
    e.mock.add_account(appid, "own-secret");

    let authorize = |component: Option<&'static str>| {
        let mut q = vec![
            ("appid", appid),
            ("redirect_uri", "https://saas.example.com/oauth"),
            ("response_type", "code"),
            ("scope", "snsapi_base"),
            ("state", "x"),
        ];
        if let Some(c) = component {
            q.push(("component_appid", c));
        }
        let e = &e;
        async move {
            let resp = e.get("/connect/oauth2/authorize", &q).await;
            assert_eq!(resp.status(), 302);
            let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
            q["code"].clone()
        }
    };
    let exchange_component = |code: String, ctoken: String| {
        let e = &e;
        async move {
            e.get_json(
                "/sns/oauth2/component/access_token",
                &[
                    ("appid", appid),
                    ("code", &code),
                    ("grant_type", "authorization_code"),
                    ("component_appid", COMPONENT),
                    ("component_access_token", &ctoken),
                ],
            )
            .await
        }
    };
    let exchange_plain = |code: String| {
        let e = &e;
        async move {
            e.get_json(
                "/sns/oauth2/access_token",
                &[
                    ("appid", appid),
                    ("secret", "own-secret"),
                    ("code", &code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await
        }
    };

    let code = authorize(Some(COMPONENT)).await;
    assert_errcode(&exchange_plain(code.clone()).await, 40029);
    assert_errcode(&exchange_component(code.clone(), "bad".into()).await, 40001);
    let v = exchange_component(code.clone(), token.clone()).await;
    assert_eq!(v["openid"], MockWechat::openid_for(appid, "mock-user"));
    assert_eq!(v["scope"], "snsapi_base");
    assert!(v["access_token"].is_string() && v["refresh_token"].is_string());
    assert_errcode(&exchange_component(code, token.clone()).await, 40163);

    let plain = authorize(None).await;
    assert_errcode(
        &exchange_component(plain.clone(), token.clone()).await,
        40029,
    );
    assert_eq!(errcode(&exchange_plain(plain).await), 0);

    // Another component's authorize URL for this appid is refused.
    let resp = e
        .get(
            "/connect/oauth2/authorize",
            &[
                ("appid", appid),
                ("redirect_uri", "https://saas.example.com/oauth"),
                ("response_type", "code"),
                ("scope", "snsapi_base"),
                ("component_appid", "wxd0d0d0d0d0d0d0d1"),
            ],
        )
        .await;
    assert!(resp.text().await.unwrap().contains("10016"));
    assert_eq!(e.mock.calls("/sns/oauth2/component/access_token"), 4);
}

#[tokio::test]
async fn the_authorize_route_fills_in_what_the_form_left_empty() {
    let e = env().await;
    let token = e.component_token().await;
    let pre = e.pre_auth_code(&token).await;
    let resp = e
        .get(
            "/__mock/component/authorize",
            &[
                ("component_appid", COMPONENT),
                ("pre_auth_code", &pre),
                ("redirect_uri", "https://saas.example.com/back?a=1#frag"),
                ("auth_type", "2"),
                ("authorizer_appid", "商户号甲乙"),
                ("push", "0"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://saas.example.com/back?a=1&auth_code="),
        "{location}"
    );
    assert!(location.ends_with("&expires_in=3600#frag"), "{location}");
    let a = e.mock.authorizer("商户号甲乙").unwrap();
    assert_eq!(a.nick_name, "测试商户户号甲乙");
    assert!(a.mini_program);
    assert_eq!(a.func_ids, vec![17, 18, 19, 25, 30, 31]);

    let bad = [
        ("component_appid", "wx0000000000000000"),
        ("pre_auth_code", pre.as_str()),
        ("redirect_uri", "https://saas.example.com/back"),
    ];
    assert_eq!(
        e.get("/__mock/component/authorize", &bad).await.status(),
        400
    );
    let pre = e.pre_auth_code(&token).await;
    let bad = [
        ("component_appid", COMPONENT),
        ("pre_auth_code", pre.as_str()),
        ("redirect_uri", "ftp://saas.example.com/back"),
    ];
    assert_eq!(
        e.get("/__mock/component/authorize", &bad).await.status(),
        400
    );
    // An expired pre_auth_code (30 minutes) is refused.
    e.mock.advance_clock(Duration::from_secs(1800));
    let late = [
        ("component_appid", COMPONENT),
        ("pre_auth_code", pre.as_str()),
        ("redirect_uri", "https://saas.example.com/back"),
    ];
    assert_eq!(
        e.get("/__mock/component/authorize", &late).await.status(),
        400
    );
}
