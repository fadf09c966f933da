//! Signing `wx.config` for a page, and remembering which tickets signed recently.
//!
//! [`sign_config`] is the whole service behind `GET /jssdk/{account}/config`: check the URL
//! against the account's `js_domains`, take the current jsapi_ticket from the credential manager
//! (one upstream fetch per validity window, however many pages ask), sign with a fresh nonce and
//! the current time.
//!
//! The ticket history exists for `diagnose`: a signature made with a ticket that has since been
//! replaced no longer verifies against the current one, and the only way to say so is to have
//! kept the old ticket. The last [`HISTORY_LEN`] jsapi tickets of each account are kept in the
//! shared store (`jssdk:tickets:{account}`, 3 days) — the same store, and the same protection,
//! as the current ticket itself; they are never answered to anyone. Each process writes the
//! history once per ticket it signs with (a cheap in-memory check keeps the hot path free of
//! store calls); a lost write between racing instances only makes `diagnose` less specific.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::page::PageUrl;
use crate::config::AccountSettings;
use crate::domain::{unix_now, CredentialKind};
use crate::http::{ApiError, ApiResult, AppState};

/// How many jsapi tickets per account `diagnose` can recognise.
pub const HISTORY_LEN: usize = 4;
const HISTORY_TTL: Duration = Duration::from_secs(3 * 86_400);

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
    remember_ticket(state, &account.name, &ticket.value, ticket.expires_at).await;
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

/// One remembered ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastTicket {
    pub ticket: String,
    pub expires_at: i64,
    /// When this process first signed with it.
    pub seen_at: i64,
}

fn history_key(account: &str) -> String {
    format!("jssdk:tickets:{account}")
}

/// Per account, the ticket this gateway last added to the history, so signing touches the
/// store only when the ticket changes. Lives in the application state.
#[derive(Default)]
pub struct RecordedTickets(Mutex<HashMap<String, String>>);

impl RecordedTickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        crate::domain::lock(&self.0)
    }
}

/// Adds `ticket` to the account's history unless this process already did. Never fails the
/// request: a store error only costs `diagnose` some precision.
async fn remember_ticket(state: &AppState, account: &str, ticket: &str, expires_at: i64) {
    if state
        .jssdk_tickets
        .lock()
        .get(account)
        .is_some_and(|t| t == ticket)
    {
        return;
    }
    let mut history = ticket_history(state, account).await;
    if history.first().is_none_or(|p| p.ticket != ticket) {
        history.retain(|p| p.ticket != ticket);
        history.insert(
            0,
            PastTicket {
                ticket: ticket.to_owned(),
                expires_at,
                seen_at: unix_now(),
            },
        );
        history.truncate(HISTORY_LEN);
        let Ok(bytes) = serde_json::to_vec(&history) else {
            return;
        };
        if let Err(e) = state
            .store
            .put(&history_key(account), &bytes, Some(HISTORY_TTL))
            .await
        {
            tracing::warn!(account, error = %e, "cannot record the jsapi ticket history");
            return;
        }
    }
    state
        .jssdk_tickets
        .lock()
        .insert(account.to_owned(), ticket.to_owned());
}

/// The account's recent jsapi tickets, newest first (empty when unknown or unreadable).
pub async fn ticket_history(state: &AppState, account: &str) -> Vec<PastTicket> {
    match state.store.get(&history_key(account)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(account, error = %e, "cannot read the jsapi ticket history");
            Vec::new()
        }
    }
}
