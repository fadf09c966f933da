//! Signing `wx.config` for a page.
//!
//! [`sign_config`] is the whole service behind `GET /jssdk/{account}/config`: check the URL
//! against the account's `js_domains`, take the current jsapi_ticket from the credential manager
//! (one upstream fetch per validity window, however many pages ask), sign with a fresh nonce and
//! the current time. The tickets that signed earlier are remembered by the credential manager
//! when it fetches them (`credentials::history`), for `diagnose`; signing does no bookkeeping.

use serde::Serialize;

use super::page::PageUrl;
use crate::config::AccountSettings;
use crate::domain::{unix_now, CredentialKind};
use crate::http::{ApiError, ApiResult, AppState};

/// The `wx.config` parameters answered to the page (SPEC shape).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigAnswer {
    #[serde(rename = "appId")]
    pub app_id: String,
    pub timestamp: u64,
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    pub signature: String,
    #[serde(rename = "jsApiList")]
    pub js_api_list: Vec<String>,
    pub url: String,
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
pub fn check_domain(account: &AccountSettings, page: &PageUrl) -> ApiResult<()> {
    if page.allowed_by(&account.js_domains) {
        Ok(())
    } else {
        Err(ApiError::client(
            axum::http::StatusCode::FORBIDDEN,
            "domain_not_allowed",
            format!(
                "the host {:?} is not on the js_domains of account {:?}; add it there (and to the \
                 account's JS接口安全域名 in the WeChat console)",
                page.host(),
                account.name
            ),
        ))
    }
}

/// Signs `page` for `account` (already checked to exist) with a fresh nonce and the current time.
pub async fn sign_config(
    state: &AppState,
    account: &AccountSettings,
    page: &PageUrl,
    apis: Vec<String>,
) -> ApiResult<ConfigAnswer> {
    check_domain(account, page)?;
    let ticket = state
        .creds
        .get(&account.name, CredentialKind::jsapi())
        .await?;
    let nonce_str = wxgate_proto::jssdk::nonce_str();
    let timestamp = u64::try_from(unix_now()).unwrap_or(0);
    let signature = wxgate_proto::jssdk::sign(&ticket.value, &nonce_str, timestamp, page.signed());
    Ok(ConfigAnswer {
        app_id: account.appid.clone(),
        timestamp,
        nonce_str,
        signature,
        js_api_list: apis,
        url: page.signed().to_owned(),
    })
}
