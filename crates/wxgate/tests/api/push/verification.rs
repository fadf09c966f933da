//! URL verification: the signed GET WeChat sends when a server URL is saved, echoed for the
//! official vector and refused when stale, incomplete or for an unknown account.

use super::support::*;

#[tokio::test]
async fn url_verification_echoes_echostr_for_the_official_vector() {
    let tail = r#"
[[accounts]]
name = "official"
appid = "wx0000000000000001"
secret = "s"
token = "AAAAA"
[push]
replay_window_s = 0
"#;
    let (app, _) = app_with("", tail).await;
    let resp = app
        .http
        .get(format!(
            "{}/wx/official?signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(content_type(resp.headers()).starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "4375120948345356249");

    let resp = app
        .http
        .get(format!(
            "{}/wx/official?signature=f464b24fc39322e44b38aa78f5edd27bd1441697&timestamp=1714036504&nonce=1514711492&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(&resp.text().await.unwrap()), "invalid_signature");
    app.stop().await;
}

#[tokio::test]
async fn url_verification_refuses_stale_timestamps_missing_parameters_and_unknown_accounts() {
    let (app, _) = app_with("", "").await;
    let wx = Wechat::new(&app);
    let get = |query: String| {
        let http = app.http.clone();
        let url = format!("{}?{query}", wx.url());
        async move {
            let r = http.get(url).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.text().await.unwrap())
        }
    };
    let (q, _, _) = wx.signed_query_at(now());
    assert_eq!(
        get(format!("{q}&echostr=abc")).await,
        (200, "abc".to_owned())
    );
    let (q, _, _) = wx.signed_query_at(now() - 3600);
    let (s, body) = get(format!("{q}&echostr=abc")).await;
    assert_eq!((s, error_code(&body).as_str()), (403, "stale_timestamp"));
    let (s, body) = get(format!("timestamp={}&nonce=1&echostr=abc", now())).await;
    assert_eq!((s, error_code(&body).as_str()), (400, "missing_parameter"));
    let (q, _, _) = wx.signed_query_at(now());
    let (s, body) = get(q).await;
    assert_eq!((s, error_code(&body).as_str()), (400, "missing_parameter"));
    let r = app
        .http
        .get(format!(
            "{}/wx/nobody?signature=a&timestamp=1&nonce=1&echostr=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.text().await.unwrap()), "unknown_account");
    app.stop().await;
}
