//! JS-SDK for browsers, the service: `wx.config` signatures for pages on an account's
//! `js_domains` ([`sign`]), and a diagnosis of signatures that fail ([`diagnose`]), over the page
//! URL and allowlist rules both follow ([`page`]).
//!
//! The config answer signs the page URL byte for byte (fragment removed, nothing decoded or
//! re-encoded) with the account's current jsapi_ticket, a fresh nonce and the current time, and
//! only for pages on the account's `js_domains`. The diagnosis tries the tickets this instance
//! holds, never fetching one for it. The routes, the browser script and CORS are the HTTP
//! layer's (`http::jssdk`, `http::cors`); errors are [`JssdkError`].

pub mod diagnose;
mod error;
pub mod page;
pub mod sign;

use self::diagnose::{Diagnosis, KnownTicket, Presented};
use self::page::PageUrl;
use crate::config::Account;
use crate::domain::CredentialKind;
use crate::gateway::Gateway;

pub use self::error::JssdkError;

/// At most this many other accounts are tried by `diagnose` ("signed for the wrong account"),
/// and only with the tickets this instance already holds (never fetched for `diagnose`).
const MAX_OTHER_ACCOUNTS: usize = 16;
/// Longest page URL `config` signs and `diagnose` examines. Both routes are anonymous, and
/// `diagnose` hashes a dozen variants of the URL with every known ticket: the bound keeps the
/// work per request small and fixed. Real page URLs are far shorter (WeChat's own share links
/// included).
pub const MAX_PAGE_URL_BYTES: usize = 4096;
/// Longest `nonceStr` / `signature` `diagnose` takes (wx.config's are 16-32 and 40 characters).
pub const MAX_DIAGNOSE_FIELD: usize = 64;

/// The page URL a caller asks to sign (as given, decoded once out of the query), checked for
/// length and parsed.
pub fn page_url(raw: String) -> Result<PageUrl, JssdkError> {
    check_page_len(&raw)?;
    Ok(PageUrl::parse(raw)?)
}

fn check_page_len(url: &str) -> Result<(), JssdkError> {
    if url.len() > MAX_PAGE_URL_BYTES {
        return Err(JssdkError::PageUrlTooLong { len: url.len() });
    }
    Ok(())
}

/// What a page passed to `wx.config`, as given (decoded once out of the query).
#[derive(Debug, Clone)]
pub struct DiagnoseRequest {
    pub url: String,
    pub signature: String,
    /// Unix seconds, still as text: refused here when it is not a number.
    pub timestamp: String,
    pub nonce_str: String,
}

/// Why the signature of `request` does (or does not) verify for a page of `account`, tried with
/// every ticket this instance knows ([`diagnose::diagnose`]).
pub async fn diagnose_page(
    gateway: &Gateway,
    account: &Account,
    request: &DiagnoseRequest,
) -> Result<Diagnosis, JssdkError> {
    check_page_len(&request.url)?;
    if request.signature.len() > MAX_DIAGNOSE_FIELD || request.nonce_str.len() > MAX_DIAGNOSE_FIELD
    {
        return Err(JssdkError::FieldTooLong);
    }
    let timestamp: u64 = request
        .timestamp
        .trim()
        .parse()
        .map_err(|_| JssdkError::InvalidTimestamp)?;
    let tickets = known_tickets(gateway, account).await?;
    let presented = Presented {
        url: &request.url,
        signature: &request.signature,
        timestamp,
        nonce_str: &request.nonce_str,
    };
    Ok(diagnose::diagnose(
        &account.name,
        &account.js_domains,
        &presented,
        &tickets,
    ))
}

/// The account's current ticket first, then its remembered ones, then the other accounts' that
/// this instance holds in its cache.
async fn known_tickets(
    gateway: &Gateway,
    account: &Account,
) -> Result<Vec<KnownTicket>, JssdkError> {
    let current = gateway
        .creds
        .get(&account.name, CredentialKind::jsapi())
        .await?;
    let mut tickets = vec![KnownTicket {
        account: account.name.clone(),
        appid: account.appid.clone(),
        ticket: current.value.clone(),
        replaced_since: None,
    }];
    push_history(gateway, account, &current.value, &mut tickets).await;
    let snapshot = gateway.registry.snapshot();
    let others = snapshot
        .accounts
        .iter()
        .filter(|a| a.name != account.name)
        .take(MAX_OTHER_ACCOUNTS);
    for other in others {
        // Only tickets this instance already holds: an anonymous diagnose must not make wxgate
        // fetch (or wait for) up to 16 other accounts' credentials, nor read them from the store.
        let now = crate::domain::unix_now();
        let Some(ticket) =
            gateway
                .creds
                .with_cached(&other.name, CredentialKind::jsapi(), now, |c| {
                    c.value.clone()
                })
        else {
            continue;
        };
        tickets.push(KnownTicket {
            account: other.name.clone(),
            appid: other.appid.clone(),
            ticket: ticket.clone(),
            replaced_since: None,
        });
        push_history(gateway, other, &ticket, &mut tickets).await;
    }
    Ok(tickets)
}

async fn push_history(
    gateway: &Gateway,
    account: &Account,
    current: &str,
    out: &mut Vec<KnownTicket>,
) {
    let history = gateway
        .creds
        .history(&account.name, CredentialKind::jsapi())
        .await;
    // Newest first: a ticket's successor was fetched when it stopped being current.
    let mut successor_fetched_at = None;
    for past in history {
        if past.value != current {
            out.push(KnownTicket {
                account: account.name.clone(),
                appid: account.appid.clone(),
                ticket: past.value,
                replaced_since: Some(successor_fetched_at.unwrap_or(past.fetched_at)),
            });
        }
        successor_fetched_at = Some(past.fetched_at);
    }
}
