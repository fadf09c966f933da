//! Mini programs (小程序), the service: log a user in with a `wx.login` code, read the phone
//! number a `getPhoneNumber` button stands for, check a login state and decrypt open data.
//!
//! A mini program is an account with `kind = "miniprogram"`: its access_token is fetched,
//! cached and shared exactly as an Official Account's (one per validity window across every
//! instance), and the proxy serves it. What differs is here. A login
//! ([`login`]: `sns/jscode2session`) records the user for that account — with the unionid, so
//! `users::UserDb::find_by_unionid` recognises the same person across the company's accounts —
//! and keeps the user's `session_key` in the shared store ([`session`]: sealed, bounded
//! lifetime, never answered nor logged), because the later calls need it: [`check_session`]
//! (`wxa/checksession`, signed with it) and [`decrypt`] (open data, AES-128-CBC with it, the
//! watermark checked against the account's appid; `wxgate_proto::miniprogram`).
//! [`phone_number`] and [`check_session`] run with the current access token and the one
//! guarded refresh-and-retry of the credential manager when WeChat rejects it.
//!
//! Every refusal is a [`MiniprogramError`] whose message says what happened (WeChat's 40029,
//! 45011 and 40226 each have their own); the HTTP layer (`http::miniprogram`) maps it once.

mod error;
pub mod session;

use std::future::Future;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};
use wxgate_proto::miniprogram::{decrypt_open_data, session_signature};

pub use self::error::MiniprogramError;
use crate::config::Account;
use crate::credentials::{Again, CredentialError, Fresh, NotRetried};
use crate::domain::{unix_now, AccountKind};
use crate::gateway::Gateway;
use crate::upstream::{PhoneNumber, UpstreamError};
use crate::users::{LoginProfile, UserRecord};

/// The longest code accepted (WeChat's are 32 characters); longer is refused before any call.
pub const MAX_CODE_LEN: usize = 256;
/// The longest openid accepted (WeChat's are 28 characters).
pub const MAX_OPENID_LEN: usize = 128;
/// The longest `encryptedData` accepted (base64); open data is a few kilobytes at most.
pub const MAX_ENCRYPTED_DATA_LEN: usize = 64 * 1024;

/// What a login answers: never the session_key.
#[derive(Debug, Serialize)]
pub struct Login {
    pub openid: String,
    pub unionid: Option<String>,
    pub user: UserRecord,
}

/// What [`check_session`] found.
#[derive(Debug, Serialize)]
pub struct SessionCheck {
    /// WeChat confirmed that the kept session_key is the user's current login state.
    pub valid: bool,
}

fn require_miniprogram(account: &Account) -> Result<(), MiniprogramError> {
    if account.kind == AccountKind::Miniprogram {
        Ok(())
    } else {
        Err(MiniprogramError::NotMiniprogram {
            account: account.name.clone(),
        })
    }
}

/// A value of the body: non-empty, at most `max` bytes, printable ASCII without spaces (what
/// WeChat's codes and openids are).
fn token_like(name: &str, value: &str, max: usize) -> Result<(), MiniprogramError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MiniprogramError::InvalidParameter(format!(
            "`{name}` must be 1-{max} printable ASCII characters, as WeChat gives it"
        )));
    }
    Ok(())
}

/// Exchanges a `wx.login` code: records the user (with its unionid) for `account`, keeps the
/// session_key, and answers who logged in.
pub async fn login(
    gateway: &Gateway,
    account: &Account,
    code: &str,
) -> Result<Login, MiniprogramError> {
    require_miniprogram(account)?;
    token_like("code", code, MAX_CODE_LEN)?;
    let session = gateway
        .client
        .jscode2session(&account.name, &account.appid, &account.secret, code)
        .await
        .map_err(|e| MiniprogramError::from_code_call(e, "wx.login"))?;
    session::keep(
        gateway.store.as_ref(),
        account,
        &session.openid,
        &session.session_key,
    )
    .await?;
    let users = gateway.users.for_account(&account.name);
    let profile = LoginProfile {
        openid: session.openid.clone(),
        unionid: session.unionid.clone(),
        nickname: None,
        headimgurl: None,
    };
    users.record_login(&profile, unix_now()).await?;
    let user = users.get(&session.openid).await?.ok_or_else(|| {
        crate::users::UserDbError::Backend("the user just recorded cannot be read back".into())
    })?;
    tracing::info!(account = %account.name, openid = %session.openid, "miniprogram: user logged in");
    Ok(Login {
        openid: session.openid,
        unionid: session.unionid,
        user,
    })
}

/// The phone number a `getPhoneNumber` code stands for (`wxa/business/getuserphonenumber`).
pub async fn phone_number(
    gateway: &Gateway,
    account: &Account,
    code: &str,
) -> Result<PhoneNumber, MiniprogramError> {
    require_miniprogram(account)?;
    token_like("code", code, MAX_CODE_LEN)?;
    let client = &gateway.client;
    let name = account.name.as_str();
    let call =
        |token: SecretString| async move { client.user_phone_number(name, &token, code).await };
    with_token(gateway, account, call)
        .await?
        .map_err(|e| MiniprogramError::from_code_call(e, "the getPhoneNumber button"))
}

/// Asks WeChat whether the session_key kept for `openid` is still the user's login state
/// (`wxa/checksession`, signed with it): `valid: false` when WeChat says it is not (87009).
pub async fn check_session(
    gateway: &Gateway,
    account: &Account,
    openid: &str,
) -> Result<SessionCheck, MiniprogramError> {
    require_miniprogram(account)?;
    let session_key = kept_session(gateway, account, openid).await?;
    let signature = session_signature(session_key.expose_secret());
    let client = &gateway.client;
    let name = account.name.as_str();
    let signature = signature.as_str();
    let call = |token: SecretString| async move {
        client.check_session(name, &token, openid, signature).await
    };
    match with_token(gateway, account, call).await? {
        Ok(()) => Ok(SessionCheck { valid: true }),
        Err(e) if e.wechat_errcode() == Some(87009) => Ok(SessionCheck { valid: false }),
        Err(e) => Err(MiniprogramError::Upstream(e)),
    }
}

/// Decrypts open data (`encryptedData`, `iv`) of `openid` with its kept session_key; the
/// watermark must name the account's appid.
pub async fn decrypt(
    gateway: &Gateway,
    account: &Account,
    openid: &str,
    encrypted_data: &str,
    iv: &str,
) -> Result<Map<String, Value>, MiniprogramError> {
    require_miniprogram(account)?;
    if encrypted_data.len() > MAX_ENCRYPTED_DATA_LEN {
        return Err(MiniprogramError::InvalidParameter(format!(
            "`encrypted_data` is longer than {MAX_ENCRYPTED_DATA_LEN} characters"
        )));
    }
    let session_key = kept_session(gateway, account, openid).await?;
    Ok(decrypt_open_data(
        session_key.expose_secret(),
        encrypted_data,
        iv,
        &account.appid,
    )?)
}

async fn kept_session(
    gateway: &Gateway,
    account: &Account,
    openid: &str,
) -> Result<SecretString, MiniprogramError> {
    token_like("openid", openid, MAX_OPENID_LEN)?;
    session::read(gateway.store.as_ref(), account, openid)
        .await?
        .ok_or_else(|| MiniprogramError::NoSession {
            account: account.name.clone(),
            openid: openid.to_owned(),
            ttl_days: session::SESSION_TTL.as_secs() / 86_400,
        })
}

/// Runs `call` with the account's access token and the credential manager's one guarded
/// refresh-and-retry when WeChat rejects the token; answers the call's last result.
async fn with_token<T, F, Fut>(
    gateway: &Gateway,
    account: &Account,
    call: F,
) -> Result<Result<T, UpstreamError>, CredentialError>
where
    F: FnMut(SecretString) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let rejected =
        |r: &Result<T, UpstreamError>| r.as_ref().is_err_and(UpstreamError::is_token_invalid);
    match gateway
        .creds
        .with_fresh_token(&account.name, Again::Always, call, rejected)
        .await?
    {
        Fresh::First(result) => Ok(result),
        Fresh::Retried { second, .. } => Ok(second),
        Fresh::NotRetried {
            why: NotRetried::RefreshFailed(e),
            ..
        } => Err(e),
        Fresh::NotRetried { first, .. } => Ok(first),
    }
}
