//! WeChat's daily quota of an account's main APIs (`cgi-bin/openapi/quota/get`), fetched on
//! demand for the account page and cached in the store for [`QUOTA_CACHE`] per account and
//! path (`act:quota:{account}:{path}`), so reloading the page costs WeChat nothing. The call
//! uses the account's access_token with the one guarded refresh-and-retry of the credential
//! manager ([`CredentialManager::with_fresh_token`](crate::credentials::CredentialManager::with_fresh_token)).

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::Account;
use crate::credentials::{Again, CredentialError, Fresh, NotRetried};
use crate::domain::unix_now_ms;
use crate::gateway::Gateway;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// How long a fetched quota is answered from the store.
pub const QUOTA_CACHE: Duration = Duration::from_secs(300);
/// Most paths asked at once.
pub const PATHS_MAX: usize = 16;
/// Longest path accepted.
const PATH_MAX_LEN: usize = 128;
/// The APIs the account page shows by default.
pub const MAIN_PATHS: [&str; 5] = [
    "/cgi-bin/message/custom/send",
    "/cgi-bin/message/template/send",
    "/cgi-bin/user/info",
    "/cgi-bin/user/get",
    "/cgi-bin/media/upload",
];

/// One API's daily quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub cgi_path: String,
    pub daily_limit: u64,
    pub used: u64,
    pub remain: u64,
    /// Unix milliseconds when WeChat answered it.
    pub fetched_at: i64,
}

/// Why the quotas could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// A path is empty, does not start with `/`, is too long, or too many were asked.
    #[error("invalid cgi_path {0:?}: at most {PATHS_MAX} paths, each starting with `/`, at most {PATH_MAX_LEN} characters")]
    InvalidPath(String),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

fn key(account: &str, cgi_path: &str) -> String {
    format!("act:quota:{account}:{cgi_path}")
}

/// The cache keys of [`MAIN_PATHS`] (dropped with the account).
pub(super) fn keys(account: &str) -> Vec<String> {
    MAIN_PATHS.iter().map(|p| key(account, p)).collect()
}

/// The daily quota of each path, in order: from the store when fetched in the last
/// [`QUOTA_CACHE`], else from WeChat (then cached).
pub async fn quota(
    gateway: &Gateway,
    account: &Account,
    cgi_paths: &[&str],
) -> Result<Vec<Quota>, QuotaError> {
    if cgi_paths.len() > PATHS_MAX {
        return Err(QuotaError::InvalidPath(format!(
            "{} paths",
            cgi_paths.len()
        )));
    }
    if let Some(bad) = cgi_paths
        .iter()
        .find(|p| !p.starts_with('/') || p.len() > PATH_MAX_LEN || p.chars().any(char::is_control))
    {
        return Err(QuotaError::InvalidPath((*bad).to_owned()));
    }
    let keys: Vec<String> = cgi_paths.iter().map(|p| key(&account.name, p)).collect();
    let cached = gateway.store.get_many(&keys).await?;
    let mut answers = Vec::with_capacity(cgi_paths.len());
    for ((path, key), cached) in cgi_paths.iter().zip(&keys).zip(cached) {
        if let Some(q) = cached.and_then(|b| serde_json::from_slice::<Quota>(&b).ok()) {
            answers.push(q);
            continue;
        }
        let fetched = fetch(gateway, &account.name, path).await?;
        let bytes = serde_json::to_vec(&fetched).map_err(|e| StoreError::Backend(e.to_string()))?;
        gateway.store.put(key, &bytes, Some(QUOTA_CACHE)).await?;
        answers.push(fetched);
    }
    Ok(answers)
}

async fn fetch(gateway: &Gateway, account: &str, cgi_path: &str) -> Result<Quota, QuotaError> {
    let client = &gateway.client;
    let call =
        |token: SecretString| async move { client.quota_get(account, &token, cgi_path).await };
    let rejected =
        |r: &Result<_, UpstreamError>| r.as_ref().is_err_and(UpstreamError::is_token_invalid);
    let answer = match gateway
        .creds
        .with_fresh_token(account, Again::IfTokenChanged, call, rejected)
        .await?
    {
        Fresh::First(r) | Fresh::Retried { second: r, .. } => r,
        Fresh::NotRetried {
            why: NotRetried::RefreshFailed(e),
            ..
        } => return Err(e.into()),
        Fresh::NotRetried { first, .. } => first,
    }?;
    Ok(Quota {
        cgi_path: cgi_path.to_owned(),
        daily_limit: answer.daily_limit,
        used: answer.used,
        remain: answer.remain,
        fetched_at: unix_now_ms(),
    })
}
