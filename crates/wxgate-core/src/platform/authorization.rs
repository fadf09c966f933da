//! Recording and revoking authorizers: the one place an authorization code is exchanged.
//!
//! WeChat reports one authorization twice — the merchant's browser comes back to the callback
//! with `auth_code`, and the `authorized` event carries the same code as `AuthorizationCode` —
//! and retries each. The code may be exchanged only once, so the exchange is claimed in the
//! store under a digest of the code (`component:<c>:code:<h>`): the first request exchanges
//! and records, and every other (on any instance) waits for its result, the authorizer's appid.
//! A failed exchange releases the claim, so WeChat's retry (or the merchant's reload) tries
//! again.
//!
//! Recording writes the refresh token to the database (sealed) before anything else, then keeps
//! the access token the exchange answered (so the first request for the authorizer fetches
//! nothing), then reads and records the authorizer's profile (best effort).

use std::time::Duration;

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::PlatformError;
use crate::config::Component;
use crate::credentials::{Again, Fresh, NotRetried};
use crate::domain::{unix_now, unix_now_ms};
use crate::gateway::Gateway;
use crate::registry::platform_secrets::SealedPlatformSecrets;
use crate::registry::{AuthorizerGrant, AuthorizerProfile};
use crate::upstream::{Authorization, UpstreamError};

/// How long an exchanged code's result is kept for the other report of the same authorization.
const EXCHANGED_TTL: Duration = Duration::from_secs(3600);
/// How long a claim holds before another request may try (an exchange takes a few seconds).
const CLAIM_TTL: Duration = Duration::from_secs(60);
/// How long a request waits for another one's exchange of the same code.
const WAIT_FOR_EXCHANGE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);
const DONE_PREFIX: &str = "done:";

fn code_key(component: &str, code: &str) -> String {
    let digest = hex::encode(Sha256::digest(code.as_bytes()));
    format!("component:{component}:code:{digest}")
}

/// Exchanges `code` (once, see the module documentation) and records the authorizer; answers
/// its appid. `event_at` is when WeChat says the authorization happened (an `authorized`
/// event's CreateTime, or 0 when unknown).
pub async fn record(
    gateway: &Gateway,
    component: &Component,
    code: &str,
    event_at: i64,
) -> Result<String, PlatformError> {
    let key = code_key(&component.name, code);
    let deadline = tokio::time::Instant::now() + WAIT_FOR_EXCHANGE;
    loop {
        if let Some(seen) = gateway.store.get(&key).await? {
            if let Some(appid) = seen.strip_prefix(DONE_PREFIX.as_bytes()) {
                return Ok(String::from_utf8_lossy(appid).into_owned());
            }
        } else if gateway
            .store
            .put_if_absent(&key, b"pending", Some(CLAIM_TTL))
            .await?
        {
            return match exchange_and_record(gateway, component, code, event_at).await {
                Ok(appid) => {
                    let done = format!("{DONE_PREFIX}{appid}");
                    gateway
                        .store
                        .put(&key, done.as_bytes(), Some(EXCHANGED_TTL))
                        .await?;
                    Ok(appid)
                }
                Err(e) => {
                    if let Err(release) = gateway.store.delete(&key).await {
                        tracing::warn!(component = %component.name, error = %release,
                            "cannot release the claim of a failed code exchange");
                    }
                    Err(e)
                }
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PlatformError::ExchangeInProgress);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn exchange_and_record(
    gateway: &Gateway,
    component: &Component,
    code: &str,
    event_at: i64,
) -> Result<String, PlatformError> {
    let vault = gateway.registry.vault().ok_or(PlatformError::NoMasterKey)?;
    let started_ms = unix_now_ms();
    let client = &gateway.client;
    let name = &component.credentials.name;
    let component_appid = &component.appid;
    let auth: Authorization = with_component_token(gateway, component, |token| async move {
        client.query_auth(name, component_appid, &token, code).await
    })
    .await?;
    let appid = auth.authorizer_appid.clone();
    let sealed = SealedPlatformSecrets::seal(vault, &component.name, &appid, &auth.refresh_token);
    let func_info = auth.func_info.to_string();
    let now = unix_now();
    gateway
        .authorizers
        .grant_authorizer(AuthorizerGrant {
            component: &component.name,
            appid: &appid,
            profile: None,
            func_info: &func_info,
            refresh_token: &sealed,
            event_at,
            now,
        })
        .await?;
    tracing::info!(component = %component.name, appid = %appid, "authorizer recorded");
    gateway.follow_registry().await?;
    gateway
        .creds
        .keep_issued_token(&appid, &auth.access_token, started_ms)
        .await?;
    record_profile(gateway, component, &appid).await;
    Ok(appid)
}

/// Reads the authorizer's profile (`api_get_authorizer_info`) and records it; a failure is
/// logged (the authorization itself is recorded already).
async fn record_profile(gateway: &Gateway, component: &Component, appid: &str) {
    let client = &gateway.client;
    let name = &component.credentials.name;
    let component_appid = &component.appid;
    let info = with_component_token(gateway, component, |token| async move {
        client
            .authorizer_info(name, component_appid, &token, appid)
            .await
    })
    .await;
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(component = %component.name, appid, error = %e,
                "cannot read the authorizer's profile; it is recorded without one");
            return;
        }
    };
    let profile = AuthorizerProfile {
        nick_name: &info.nick_name,
        principal_name: &info.principal_name,
    };
    match gateway
        .authorizers
        .set_authorizer_profile(&component.name, appid, profile, unix_now())
        .await
    {
        Ok(_) => {}
        Err(e) => tracing::warn!(appid, error = %e, "cannot record the authorizer's profile"),
    }
}

/// Runs `call` with the platform's component_access_token; a token WeChat rejects is refreshed
/// (guarded) and the call runs once more.
pub(super) async fn with_component_token<T, F>(
    gateway: &Gateway,
    component: &Component,
    call: impl FnMut(SecretString) -> F,
) -> Result<T, PlatformError>
where
    F: std::future::Future<Output = Result<T, UpstreamError>>,
{
    let rejected =
        |r: &Result<T, UpstreamError>| r.as_ref().is_err_and(UpstreamError::is_token_invalid);
    match gateway
        .creds
        .with_fresh_token(&component.credentials.name, Again::Always, call, rejected)
        .await?
    {
        Fresh::First(r) | Fresh::Retried { second: r, .. } => Ok(r?),
        Fresh::NotRetried {
            why: NotRetried::RefreshFailed(e),
            ..
        } => Err(e.into()),
        Fresh::NotRetried { first, .. } => Ok(first?),
    }
}

/// The merchant withdrew the authorization: the authorizer is marked revoked (unless an event
/// later than `event_at` changed it), its credentials dropped everywhere, and it is served no
/// more. `true` when it changed.
pub async fn revoke(
    gateway: &Gateway,
    component: &Component,
    appid: &str,
    event_at: i64,
) -> Result<bool, PlatformError> {
    let changed = gateway
        .authorizers
        .revoke_authorizer(&component.name, appid, event_at, unix_now())
        .await?;
    if changed {
        tracing::info!(component = %component.name, appid, "authorizer revoked");
        gateway.creds.drop_cached(appid).await;
        gateway.follow_registry().await?;
    }
    Ok(changed)
}
