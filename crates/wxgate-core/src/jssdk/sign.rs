//! Signing `wx.config` for a page.
//!
//! [`sign_config`] is the whole service behind the config route: check the URL against the
//! account's `js_domains`, take the current jsapi_ticket from the credential manager (one
//! upstream fetch per validity window, however many pages ask), sign with a fresh nonce and the
//! current time. The tickets that signed earlier are remembered by the credential manager when
//! it fetches them (`credentials::history`), for `diagnose`; signing does no bookkeeping.

use serde::Serialize;
use wxgate_proto::jssdk::NonceStr;
use wxgate_proto::signature::Sha1Hex;

use super::page::PageUrl;
use super::JssdkError;
use crate::activity::{Step, StepOutcome};
use crate::config::Account;
use crate::credentials::Credential;
use crate::domain::{unix_now, CredentialKind};
use crate::gateway::Gateway;

/// The `wx.config` parameters answered to the page (SPEC shape, as serialized); the account's
/// appid and the page URL are borrowed, not copied.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigAnswer<'a> {
    #[serde(rename = "appId")]
    pub app_id: &'a str,
    pub timestamp: u64,
    #[serde(rename = "nonceStr")]
    pub nonce_str: NonceStr,
    pub signature: Sha1Hex,
    #[serde(rename = "jsApiList")]
    pub js_api_list: Vec<String>,
    pub url: &'a str,
}

/// `apis=a,b,c` → `["a","b","c"]` (blank entries dropped; absent or empty → `[]`).
pub fn api_list(apis: Option<&str>) -> Vec<String> {
    apis.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Refuses pages whose host is not on the account's `js_domains`.
pub fn check_domain(account: &Account, page: &PageUrl) -> Result<(), JssdkError> {
    if page.allowed_by(&account.js_domains) {
        Ok(())
    } else {
        Err(JssdkError::DomainNotAllowed {
            host: page.host().to_owned(),
            account: account.name.clone(),
        })
    }
}

/// Signs `page` for `account` with a fresh nonce and the current time.
pub async fn sign_config<'a>(
    gateway: &Gateway,
    account: &'a Account,
    page: &'a PageUrl,
    apis: Vec<String>,
) -> Result<ConfigAnswer<'a>, JssdkError> {
    if let Err(e) = check_domain(account, page) {
        gateway.activity.step(
            &account.name,
            Step::JssdkSigned,
            StepOutcome::Failed {
                errcode: None,
                message: e.to_string(),
                hint: Some(format!(
                    "add {} to the account's `js_domains` (and to the JS接口安全域名 of \
                     WeChat's console, 设置与开发 → 公众号设置 → 功能设置)",
                    page.host()
                )),
            },
        );
        return Err(e);
    }
    let nonce_str = wxgate_proto::jssdk::nonce_str();
    let sign = |ticket: &Credential, now: i64| {
        let timestamp = u64::try_from(now).unwrap_or(0);
        let signature =
            wxgate_proto::jssdk::sign(&ticket.value, &nonce_str, timestamp, page.signed());
        (timestamp, signature)
    };
    // The ticket cached in this instance, lent without a lock (the case of nearly every request);
    // else the credential manager's full path (store, single flight, fetch).
    let now = unix_now();
    let cached = gateway
        .creds
        .with_cached(&account.name, CredentialKind::jsapi(), now, |t| {
            sign(t, now)
        });
    let (timestamp, signature) = match cached {
        Some(signed) => signed,
        None => {
            let ticket = gateway
                .creds
                .get(&account.name, CredentialKind::jsapi())
                .await?;
            sign(&ticket, unix_now())
        }
    };
    gateway
        .activity
        .reached(&account.name, Step::JssdkSigned, || {
            Some(page.host().to_owned())
        });
    Ok(ConfigAnswer {
        app_id: &account.appid,
        timestamp,
        nonce_str,
        signature,
        js_api_list: apis,
        url: page.signed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_has_the_spec_shape() {
        let answer = ConfigAnswer {
            app_id: "wx1234567890abcdef",
            timestamp: 1_700_000_000,
            nonce_str: NonceStr::new("abcdefghijklmnop").unwrap(),
            signature: wxgate_proto::jssdk::sign("ticket", "nonce", 1, "https://h5.example.com/"),
            js_api_list: vec!["scanQRCode".to_owned(), "chooseImage".to_owned()],
            url: "https://h5.example.com/a?b=%E4%B8%AD&c=中",
        };
        let json = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"appId":"wx1234567890abcdef","timestamp":1700000000,"nonceStr":"abcdefghijklmnop","signature":"{}","jsApiList":["scanQRCode","chooseImage"],"url":"https://h5.example.com/a?b=%E4%B8%AD&c=中"}}"#,
                &*answer.signature
            )
        );
    }

    #[test]
    fn api_lists_drop_blank_entries() {
        assert_eq!(api_list(Some(" a, ,b,")), ["a", "b"]);
        assert!(api_list(Some("")).is_empty());
        assert!(api_list(None).is_empty());
    }
}
