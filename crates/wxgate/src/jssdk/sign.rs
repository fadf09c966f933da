//! Signing `wx.config` for a page.
//!
//! [`sign_config`] is the whole service behind `GET /jssdk/{account}/config`: check the URL
//! against the account's `js_domains`, take the current jsapi_ticket from the credential manager
//! (one upstream fetch per validity window, however many pages ask), sign with a fresh nonce and
//! the current time. The tickets that signed earlier are remembered by the credential manager
//! when it fetches them (`credentials::history`), for `diagnose`; signing does no bookkeeping.

use axum::response::Response;
use serde::Serialize;
use wxgate_proto::jssdk::NonceStr;
use wxgate_proto::signature::Sha1Hex;

use super::page::PageUrl;
use crate::config::Account;
use crate::credentials::Credential;
use crate::domain::{unix_now, CredentialKind};
use crate::http::json::{ascii_len_unescaped, json_response, string_len_unescaped, JsonObject};
use crate::http::{ApiError, ApiResult, AppState};

/// The `wx.config` parameters answered to the page (SPEC shape); the account's appid and the
/// page URL are borrowed, not copied.
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

impl ConfigAnswer<'_> {
    /// The JSON answer ([`Self::to_json`]).
    pub fn into_response(self) -> Response {
        json_response(self.to_json())
    }

    /// The JSON object, written directly ([`JsonObject`]) into a buffer of exactly its length
    /// when nothing needs escaping (page URLs reach wxgate percent-encoded); the same object
    /// `serde_json` would write for this struct.
    pub fn to_json(&self) -> Vec<u8> {
        const PUNCTUATION: &str =
            r#"{"appId":,"timestamp":,"nonceStr":,"signature":,"jsApiList":[],"url":}"#;
        let commas = self.js_api_list.len().saturating_sub(1);
        let apis: usize = self
            .js_api_list
            .iter()
            .map(|a| string_len_unescaped(a))
            .sum();
        let timestamp_digits = self
            .timestamp
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
        let len = PUNCTUATION.len()
            + string_len_unescaped(self.app_id)
            + timestamp_digits
            + ascii_len_unescaped(&self.nonce_str)
            + ascii_len_unescaped(&self.signature)
            + apis
            + commas
            + string_len_unescaped(self.url);
        let mut json = JsonObject::with_capacity(len);
        json.string("appId", self.app_id)
            .number("timestamp", self.timestamp)
            .ascii("nonceStr", &self.nonce_str)
            .ascii("signature", &self.signature)
            .strings("jsApiList", self.js_api_list.iter().map(String::as_str))
            .string("url", self.url);
        json.finish()
    }
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
pub fn check_domain(account: &Account, page: &PageUrl) -> ApiResult<()> {
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
pub async fn sign_config<'a>(
    state: &AppState,
    account: &'a Account,
    page: &'a PageUrl,
    apis: Vec<String>,
) -> ApiResult<ConfigAnswer<'a>> {
    check_domain(account, page)?;
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
    let cached = state
        .creds
        .with_cached(&account.name, CredentialKind::jsapi(), now, |t| {
            sign(t, now)
        });
    let (timestamp, signature) = match cached {
        Some(signed) => signed,
        None => {
            let ticket = state
                .creds
                .get(&account.name, CredentialKind::jsapi())
                .await?;
            sign(&ticket, unix_now())
        }
    };
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
    use crate::http::json::answer_body;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written answer is byte for byte what `serde_json` writes for the struct,
        /// whatever the page URL and the api names hold (quotes, backslashes, control
        /// characters, non-ASCII).
        #[test]
        fn the_answer_is_the_json_serde_writes(
            app_id in "wx[0-9a-f]{16}",
            timestamp: u64,
            nonce_str in "[a-zA-Z0-9]{16}",
            signature in "[0-9a-f]{40}",
            js_api_list in proptest::collection::vec("\\PC*|[\\x00-\\x7f]*", 0..4),
            url in "\\PC*|[\\x00-\\x7f]*",
        ) {
            let answer = ConfigAnswer {
                app_id: &app_id,
                timestamp,
                nonce_str: NonceStr::new(&nonce_str).unwrap(),
                signature: Sha1Hex::new(&signature).unwrap(),
                js_api_list,
                url: &url,
            };
            let expected = serde_json::to_vec(&answer).unwrap();
            let json = answer.to_json();
            // Sized exactly unless the URL or an api name has something to escape.
            let plain = |s: &str| serde_json::to_string(s).unwrap().len() == s.len() + 2;
            if plain(answer.url) && answer.js_api_list.iter().all(|a| plain(a)) {
                prop_assert_eq!(json.len(), json.capacity(), "the buffer is as long as the object");
            }
            let response = answer.into_response();
            prop_assert_eq!(
                response.headers().get(axum::http::header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            prop_assert_eq!(answer_body(response), expected);
        }
    }

    #[test]
    fn a_usual_answer_fills_its_buffer_exactly() {
        let answer = ConfigAnswer {
            app_id: "wx1234567890abcdef",
            timestamp: 1_700_000_000,
            nonce_str: wxgate_proto::jssdk::nonce_str(),
            signature: wxgate_proto::jssdk::sign("ticket", "nonce", 1, "https://h5.example.com/"),
            js_api_list: vec!["scanQRCode".to_owned(), "chooseImage".to_owned()],
            url: "https://h5.example.com/a?b=%E4%B8%AD&c=中",
        };
        let json = answer.to_json();
        assert_eq!(json.len(), json.capacity());
        assert_eq!(json, serde_json::to_vec(&answer).unwrap());
    }
}
