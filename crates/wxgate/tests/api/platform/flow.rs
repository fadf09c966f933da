//! The authorization flow: from the first ticket to a proxied call as the authorizer, the
//! authorize link's checks, and a callback repeated by the browser.

use super::*;
use crate::helpers::http_client;

#[tokio::test]
async fn the_whole_flow_from_the_first_ticket_to_a_proxied_call() {
    let (mock, app) = start_platform().await;
    let (status, st) = get_api(&component_api(&app.base, "status")).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["ticket"]["present"], true);
    assert_eq!(st["ticket"]["usable"], true);
    assert_eq!(st["authorizers"]["authorized"], 0);

    let merchant = authorizer_appid(1);
    let landed = authorize_through_pages(&mock, &app.base, &merchant).await;
    assert_eq!(landed, format!("{SAAS}?wxgate_authorizer={merchant}"));
    assert_eq!(mock.calls("cgi-bin/component/api_component_token"), 1);
    assert_eq!(mock.calls("cgi-bin/component/api_create_preauthcode"), 1);
    assert_eq!(mock.calls("cgi-bin/component/api_query_auth"), 1);
    assert_eq!(mock.calls("cgi-bin/component/api_get_authorizer_info"), 1);

    // The token the exchange answered is the authorizer's token: no fetch needed.
    let (status, token) = app.get_json(&format!("{merchant}/access_token")).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(mock.calls("cgi-bin/component/api_authorizer_token"), 0);
    assert_eq!(mock.authorizer_token_calls(&merchant), 1);
    assert!(token["expires_in"].as_i64().unwrap() > 7000);

    // A proxied call as the authorizer: its token is injected.
    let resp = app
        .http
        .get(app.api(&format!("{merchant}/wechat/cgi-bin/getcallbackip")))
        .bearer_auth(crate::helpers::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("errcode").is_none_or(|c| c == 0), "{body}");

    // JS-SDK tickets of the authorizer, with its token.
    let (status, ticket) = app.get_json(&format!("{merchant}/tickets/jsapi")).await;
    assert_eq!(status, 200, "{ticket}");
    let signed = http_client()
        .get(format!(
            "{}/jssdk/{merchant}/config?url={}",
            app.base,
            urlencode("https://h5.example.com/page")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.status(),
        200,
        "inherited js_domains sign the platform's pages"
    );
    let signed: Value = signed.json().await.unwrap();
    assert_eq!(signed["appId"], merchant.as_str());

    // Recorded with its profile.
    let (status, list) = get_api(&component_api(&app.base, "authorizers")).await;
    assert_eq!(status, 200, "{list}");
    let first = &list["authorizers"][0];
    assert_eq!(first["appid"], merchant.as_str());
    assert_eq!(first["status"], "authorized");
    assert_eq!(first["nick_name"], "Merchant");
    assert!(!first["principal_name"].as_str().unwrap().is_empty());
    assert!(!first["func_info"].as_array().unwrap().is_empty());
    assert!(list["next"].is_null());
    let (_, st) = get_api(&component_api(&app.base, "status")).await;
    assert_eq!(st["authorizers"]["authorized"], 1);
    assert_eq!(st["component_access_token"]["present"], true);

    // The component token itself, shaped like an access token.
    let (status, ct) = get_api(&component_api(&app.base, "access_token")).await;
    assert_eq!(status, 200, "{ct}");
    assert!(mock
        .current_component_tokens(COMPONENT_APPID)
        .contains(&ct["access_token"].as_str().unwrap().to_owned()));
    assert_eq!(mock.calls("cgi-bin/component/api_component_token"), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_same_callback_twice_and_the_authorized_event_exchange_the_code_once() {
    let (mock, app) = start_platform().await;
    let merchant = authorizer_appid(2);
    let http = crate::web_support::browser();
    let start = http
        .get(format!(
            "{}/component/{COMPONENT}/authorize?redirect={}",
            app.base,
            urlencode(SAAS)
        ))
        .send()
        .await
        .unwrap();
    let page = url::Url::parse(&location(&start)).unwrap();
    let q: std::collections::HashMap<String, String> = page.query_pairs().into_owned().collect();
    // The merchant confirms; WeChat also pushes `authorized` with the same code.
    let confirm = format!(
        "http://{}:{}/__mock/component/authorize",
        page.host_str().unwrap(),
        page.port().unwrap()
    );
    let confirmed = http
        .get(&confirm)
        .query(&[
            ("component_appid", q["component_appid"].as_str()),
            ("pre_auth_code", q["pre_auth_code"].as_str()),
            ("redirect_uri", q["redirect_uri"].as_str()),
            ("authorizer_appid", merchant.as_str()),
            ("push", "1"),
        ])
        .send()
        .await
        .unwrap();
    let back = location(&confirmed);
    let (first, second) = tokio::join!(http.get(&back).send(), http.get(&back).send());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (302, 302)
    );
    assert_eq!(location(&first), location(&second));
    assert_eq!(
        location(&first),
        format!("{SAAS}?wxgate_authorizer={merchant}")
    );
    // The pushed `authorized` event arrives too (in the background).
    assert!(
        eventually(Duration::from_secs(5), || async {
            mock.calls("cgi-bin/component/api_query_auth") >= 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mock.calls("cgi-bin/component/api_query_auth"),
        1,
        "one exchange for the callback, its repeat and the event"
    );
    // A third hit, later: still the same redirect.
    let third = http.get(&back).send().await.unwrap();
    assert_eq!(location(&third), location(&first));
    // Without the browser's cookie the state is refused.
    let stranger = http_client().get(&back).send().await.unwrap();
    assert_eq!(stranger.status(), 400);
    let body: Value = stranger.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_state");
    app.stop().await;
}

#[tokio::test]
async fn the_authorize_link_checks_its_parameters_and_offers_the_mobile_page() {
    let (mock, app) = start_platform().await;
    let get = |path: String| {
        let http = http_client();
        async move { http.get(path).send().await.unwrap() }
    };
    let refused = get(format!(
        "{}/component/{COMPONENT}/authorize?redirect={}",
        app.base,
        urlencode("https://evil.example.com/")
    ))
    .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "redirect_not_allowed");
    let missing = get(format!("{}/component/{COMPONENT}/authorize", app.base)).await;
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_parameter");
    let bad_type = get(format!(
        "{}/component/{COMPONENT}/authorize?auth_type=9&redirect={}",
        app.base,
        urlencode(SAAS)
    ))
    .await;
    assert_eq!(bad_type.status(), 400);
    let unknown = get(format!(
        "{}/component/nobody/authorize?redirect={}",
        app.base,
        urlencode(SAAS)
    ))
    .await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_component");
    assert_eq!(
        mock.calls("cgi-bin/component/api_create_preauthcode"),
        0,
        "refused requests fetch nothing"
    );

    let mobile = get(format!(
        "{}/component/{COMPONENT}/authorize?mobile=1&auth_type=3&redirect={}",
        app.base,
        urlencode(SAAS)
    ))
    .await;
    assert_eq!(mobile.status(), 302);
    let to = location(&mobile);
    assert!(to.ends_with("#wechat_redirect"), "{to}");
    let page = url::Url::parse(&to).unwrap();
    assert_eq!(page.path(), "/safe/bindcomponent");
    let q: std::collections::HashMap<String, String> = page.query_pairs().into_owned().collect();
    assert_eq!(q["action"], "bindcomponent");
    assert_eq!(q["no_scan"], "1");
    assert_eq!(q["auth_type"], "3");
    assert!(q["redirect_uri"].starts_with(&format!(
        "{}/component/{COMPONENT}/callback?state=",
        app.base
    )));
    let pc = get(format!(
        "{}/component/{COMPONENT}/authorize?redirect={}",
        app.base,
        urlencode(SAAS)
    ))
    .await;
    let pc_q: std::collections::HashMap<String, String> = url::Url::parse(&location(&pc))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_ne!(
        pc_q["pre_auth_code"], q["pre_auth_code"],
        "one code per page"
    );
    assert_eq!(mock.calls("cgi-bin/component/api_create_preauthcode"), 2);
    app.stop().await;
}

#[tokio::test]
async fn authorizers_are_recorded_on_postgresql_too() {
    crate::helpers::in_fresh_pg_schema("platform_pg", authorizers_are_recorded).await;
}

#[tokio::test]
async fn authorizers_are_recorded_on_mongodb_too() {
    crate::helpers::in_fresh_mongo_db("platform_mongo", authorizers_are_recorded).await;
}

/// The refresh tokens as the database holds them, read behind wxgate's back.
async fn stored_refresh_tokens(database_url: &str) -> Vec<String> {
    if database_url.starts_with("mongodb://") {
        use futures::TryStreamExt as _;
        let client = crate::helpers::mongo_client(database_url).await;
        let db = client.default_database().unwrap();
        let docs: Vec<mongodb::bson::Document> = db
            .collection("wxgate_authorizers")
            .find(mongodb::bson::doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        return docs
            .iter()
            .map(|d| d.get_str("refresh_token").unwrap().to_owned())
            .collect();
    }
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(database_url)
        .await
        .unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT refresh_token FROM wxgate_authorizers")
        .fetch_all(&mut db)
        .await
        .unwrap();
    rows.into_iter().map(|(t,)| t).collect()
}

/// Authorizations, a rotated refresh token, a revocation, paging and counts on the database of
/// `url`, with the refresh tokens sealed there.
async fn authorizers_are_recorded(url: String) {
    let (mock, addr) = crate::helpers::start_mock().await;
    let mut config = platform_config(addr);
    config.database_url = url;
    let app = crate::helpers::spawn_app_full(&config, None, |_, _| {}).await;
    register(&mock, &app.base).await;
    mock.set_refresh_token_rotation(COMPONENT_APPID, true);
    let merchants: Vec<String> = (100..103).map(authorizer_appid).collect();
    for m in &merchants {
        let landed = authorize_through_pages(&mock, &app.base, m).await;
        assert!(landed.ends_with(m.as_str()));
    }
    // A rotated refresh token replaces the stored one (conditional on its version).
    let (status, body) = app
        .post_json(&format!("{}/access_token/refresh", merchants[0]), None)
        .await;
    assert_eq!(status, 200, "{body}");
    app.state
        .store
        .delete(&format!("force:{}:access_token", merchants[0]))
        .await
        .unwrap();
    let (status, body) = app
        .post_json(&format!("{}/access_token/refresh", merchants[0]), None)
        .await;
    assert_eq!(
        status, 200,
        "the replaced token is the one used next: {body}"
    );
    // Paging by appid, every status.
    let revoke = format!(
        "<xml><AppId>{COMPONENT_APPID}</AppId><CreateTime>{}</CreateTime>\
         <InfoType>unauthorized</InfoType><AuthorizerAppid>{}</AuthorizerAppid></xml>",
        unix_now() + 1,
        merchants[1]
    );
    assert_eq!(send_event(&app.base, &revoke).await.0, 200);
    let (status, page) = get_api(&component_api(&app.base, "authorizers?limit=2")).await;
    assert_eq!(status, 200, "{page}");
    let appids: Vec<&str> = page["authorizers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["appid"].as_str().unwrap())
        .collect();
    assert_eq!(appids, [merchants[0].as_str(), merchants[1].as_str()]);
    assert_eq!(page["authorizers"][1]["status"], "revoked");
    assert_eq!(page["next"], merchants[1].as_str());
    let (_, rest) = get_api(&component_api(
        &app.base,
        &format!("authorizers?limit=2&after={}", merchants[1]),
    ))
    .await;
    assert_eq!(rest["authorizers"][0]["appid"], merchants[2].as_str());
    assert!(rest["next"].is_null());
    let (status, _) = get_api(&component_api(&app.base, "authorizers?limit=0")).await;
    assert_eq!(status, 400);
    let (_, st) = get_api(&component_api(&app.base, "status")).await;
    assert_eq!(st["authorizers"]["authorized"], 2);
    assert_eq!(st["authorizers"]["revoked"], 1);
    // The refresh tokens are sealed in the database, never in plain text.
    let rows = stored_refresh_tokens(&config.database_url).await;
    assert_eq!(rows.len(), 3);
    let live: Vec<String> = merchants
        .iter()
        .filter_map(|m| mock.authorizer(m).and_then(|a| a.refresh_token))
        .collect();
    assert!(!live.is_empty());
    for sealed in &rows {
        assert!(!sealed.contains("refreshtoken"), "sealed: {sealed}");
        assert!(live.iter().all(|t| !sealed.contains(t.as_str())));
    }
    assert_eq!(
        rows.iter().filter(|s| s.is_empty()).count(),
        1,
        "the revoked one's is erased"
    );
    app.stop().await;
}
