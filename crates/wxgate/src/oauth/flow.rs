//! The web-login flow: start, WeChat's callback, and the one-time code a backend redeems.
//!
//! Starting a login writes nothing: the pending login travels in the `state` token and the
//! browser's login cookie ([`super::state_token`]), so anonymous `login` calls cannot grow the
//! store. From the callback on, everything in flight lives in the shared
//! [`Store`](crate::store::Store), so a login started on one wxgate instance can come back to
//! another (the state key is shared through the store or `server.state_secret`):
//!
//! - `oauth:claim:{h(state)}` — written with `put_if_absent` by the first callback that arrives
//!   for a state, holding the account and a hash of the code: exactly one request exchanges the
//!   code, however many arrive at once.
//! - `oauth:done:{h(state)}` — the outcome of that callback (the redirect, or the error answer),
//!   10 minutes. A repeated callback with the same state and code from the same browser
//!   (browsers and WeChat do repeat it) waits for and gets the very same answer, without a
//!   second code exchange (WeChat answers 40163 to a reused code); the same state with a
//!   different code is refused, and so is any other browser.
//! - `oauth:login:{account}:{h(code)}` — the login record behind a `wxgate_code`, 5 minutes,
//!   redeemed with `take` (single use, also across instances).
//!
//! The callback writes only for a state this gateway issued, brought back by the browser that
//! started it, within its 10 minutes. Keys hold SHA-256 digests of states and codes, never the
//! values, so a store dump gives neither away. Snapshot-page users (`is_snapshotuser`, virtual
//! identities) are not written to the user database; their login record says
//! `"snapshot": true` and carries no user.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wxgate_proto::oauth::Scope;

use super::redirect;
use super::state_token::{self, Login, Refusal, MAX_REDIRECT_LEN};
use crate::config::Account;
use crate::domain::unix_now;
use crate::http::{ApiError, ApiResult, AppState};
use crate::users::LoginProfile;

/// How long a started login may take to come back (SPEC: 10 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(state_token::STATE_TTL_SECS.unsigned_abs());
/// How long a `wxgate_code` may wait to be redeemed (SPEC: 5 minutes).
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(300);
/// Length of states and `wxgate_code`s: 32 of 62 symbols ≈ 190 bits.
const SECRET_LEN: usize = 32;
/// How long a repeated callback waits for the first one to finish.
const FOLLOW_WAIT: Duration = Duration::from_secs(30);
const FOLLOW_POLL: Duration = Duration::from_millis(25);

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

fn digest(kind: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

/// The store key of the login record behind a `wxgate_code` (public for tests that age it).
pub fn login_store_key(account: &str, code: &str) -> String {
    login_key(account, code)
}

fn claim_key(state: &str) -> String {
    format!("oauth:claim:{}", digest("state", state))
}
fn done_key(state: &str) -> String {
    format!("oauth:done:{}", digest("state", state))
}
fn login_key(account: &str, code: &str) -> String {
    format!("oauth:login:{account}:{}", digest("code", code))
}

/// What the first callback of a state answered; repeated callbacks answer the same.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// 302 to this URL.
    Redirect { location: String },
    /// This error answer (status and JSON body).
    Failed { status: u16, body: Value },
}

/// A login record behind a `wxgate_code`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRecord {
    pub account: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub scope: Scope,
    pub snapshot: bool,
    pub logged_in_at: i64,
}

fn invalid_state(message: &str) -> ApiError {
    ApiError::bad_request("invalid_state", format!("{message}; start the login again"))
}

/// Whether the login cookie is `__Host-` and `Secure`: when browsers reach the gateway by https.
fn secure_cookies(state: &AppState) -> bool {
    let url = state.settings.server.public_url.as_bytes();
    url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://")
}

/// Checks the redirect and answers WeChat's authorize URL and the login cookie (a
/// `Set-Cookie` value). Writes nothing to the store.
pub async fn start(
    state: &AppState,
    account: &Account,
    redirect_to: &str,
    scope: Scope,
) -> ApiResult<(String, String)> {
    if redirect_to.len() > MAX_REDIRECT_LEN {
        return Err(ApiError::bad_request(
            "redirect_too_long",
            format!(
                "the redirect is {} bytes long; at most {MAX_REDIRECT_LEN} are accepted",
                redirect_to.len()
            ),
        ));
    }
    if !redirect::allowed(&account.oauth_redirects, redirect_to) {
        return Err(ApiError::bad_request(
            "redirect_not_allowed",
            format!(
                "{redirect_to:?} does not start with any of the oauth_redirects of account {:?}",
                account.name
            ),
        ));
    }
    let key = state.oauth_keys.key(state.store.as_ref()).await?;
    let secure = secure_cookies(state);
    let login = Login {
        account: account.name.clone(),
        redirect: redirect_to.to_owned(),
        scope,
        expires_at: unix_now().saturating_add(state_token::STATE_TTL_SECS),
    };
    let issued = state_token::issue(&key, &login, secure);
    let redirect_uri = format!(
        "{}/oauth/{}/callback",
        state.settings.server.public_url, account.name
    );
    let authorize = wxgate_proto::oauth::authorize_url(
        &state.settings.upstream.open_base,
        &account.appid,
        &redirect_uri,
        scope,
        &issued.state,
    );
    Ok((authorize, issued.set_cookie(secure)))
}

/// Handles WeChat's redirect back: see the module documentation. `code` is `None` when the
/// user refused; the browser then goes back with `wxgate_error=access_denied`.
/// `cookie_headers` are the request's `Cookie` header values.
pub async fn callback(
    state: &AppState,
    account: &Account,
    code: Option<&str>,
    login_state: Option<&str>,
    cookie_headers: &[&str],
) -> ApiResult<Outcome> {
    let malformed = || invalid_state("the `state` parameter is missing or malformed");
    let login_state = login_state
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(malformed)?;
    let key = state.oauth_keys.key(state.store.as_ref()).await?;
    let login = match state_token::open(
        &key,
        &account.name,
        login_state,
        cookie_headers,
        secure_cookies(state),
    ) {
        Ok(login) => login,
        Err(Refusal::Malformed) => return Err(malformed()),
        Err(Refusal::NoCookie) => {
            return Err(invalid_state(
                "this login must be finished in the browser that started it, and that \
                 browser's login cookie is missing (another browser or app, cookies blocked, \
                 or more than 10 minutes)",
            ))
        }
        Err(Refusal::Mismatch) => {
            return Err(invalid_state(
                "this login state is not valid here: it was altered, issued for another \
                 account, or the login was started in another browser (it must be finished \
                 in the browser that started it)",
            ))
        }
    };
    let code = code.filter(|c| !c.is_empty());
    let claim = format!(
        "{}|{}",
        account.name,
        code.map_or_else(|| "denied".to_owned(), |c| digest("code", c))
    );
    // An expired state may only replay the answer its first callback got (`follow`).
    if login.expires_at > unix_now() {
        if !redirect::allowed(&account.oauth_redirects, &login.redirect) {
            return Err(ApiError::bad_request(
                "redirect_not_allowed",
                "this login's redirect is no longer in the account's oauth_redirects",
            ));
        }
        let won = state
            .store
            .put_if_absent(&claim_key(login_state), claim.as_bytes(), Some(STATE_TTL))
            .await?;
        if won {
            let outcome = match complete(state, account, &login, code).await {
                Ok(location) => Outcome::Redirect { location },
                Err(e) => failed(e.for_public()).await,
            };
            let bytes =
                serde_json::to_vec(&outcome).map_err(|e| ApiError::Internal(e.to_string()))?;
            state
                .store
                .put(&done_key(login_state), &bytes, Some(STATE_TTL))
                .await?;
            return Ok(outcome);
        }
    }
    follow(state, login_state, &claim).await
}

/// A callback that is not the first for its state: the same answer as the first, when it
/// carried the same code.
async fn follow(state: &AppState, login_state: &str, claim: &str) -> ApiResult<Outcome> {
    let Some(claimed) = state.store.get(&claim_key(login_state)).await? else {
        return Err(invalid_state(
            "this login state is unknown or expired (logins must complete within 10 minutes)",
        ));
    };
    if claimed != claim.as_bytes() {
        return Err(invalid_state("this login state was already used"));
    }
    let deadline = tokio::time::Instant::now() + FOLLOW_WAIT;
    loop {
        if let Some(bytes) = state.store.get(&done_key(login_state)).await? {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Internal(format!("unreadable login outcome: {e}")));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "login_in_progress",
                "another request is still completing this login; reload the page in a moment",
            ));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The error answer of `e`, kept so a repeated callback answers it again.
async fn failed(e: ApiError) -> Outcome {
    let response = e.into_response();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"error": {"code": "internal", "message": "login failed"}}));
    Outcome::Failed { status, body }
}

/// The first callback's work: exchange the code, learn the profile, record the user, issue a
/// `wxgate_code`. Answers where to send the browser.
async fn complete(
    state: &AppState,
    account: &Account,
    pending: &Login,
    code: Option<&str>,
) -> ApiResult<String> {
    let Some(code) = code else {
        return Ok(redirect::with_param(
            &pending.redirect,
            "wxgate_error",
            "access_denied",
        ));
    };
    let token = state
        .client
        .oauth_exchange_code(&account.name, &account.appid, &account.secret, code)
        .await
        .map_err(ApiError::Upstream)?;
    let scope = if token.scope.contains("snsapi_userinfo") {
        Scope::UserInfo
    } else if token.scope.contains("snsapi_base") {
        Scope::Base
    } else {
        pending.scope
    };
    let now = unix_now();
    let mut profile = LoginProfile {
        openid: token.openid.clone(),
        unionid: token.unionid.clone(),
        nickname: None,
        headimgurl: None,
    };
    if !token.is_snapshotuser {
        if scope == Scope::UserInfo {
            let info = state
                .client
                .oauth_userinfo(&account.name, &token.access_token, &token.openid)
                .await
                .map_err(ApiError::Upstream)?;
            profile.unionid = info.unionid.or(profile.unionid);
            profile.nickname = Some(info.nickname).filter(|n| !n.is_empty());
            profile.headimgurl = Some(info.headimgurl).filter(|h| !h.is_empty());
        }
        state
            .users
            .for_account(&account.name)
            .record_login(&profile, now)
            .await
            .map_err(|e| ApiError::Unavailable(format!("user database: {e}")))?;
    }
    let record = LoginRecord {
        account: account.name.clone(),
        openid: profile.openid,
        unionid: profile.unionid,
        scope,
        snapshot: token.is_snapshotuser,
        logged_in_at: now,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    let login_code = loop {
        let candidate = random_secret();
        if state
            .store
            .put_if_absent(
                &login_key(&account.name, &candidate),
                &bytes,
                Some(LOGIN_CODE_TTL),
            )
            .await?
        {
            break candidate;
        }
    };
    Ok(redirect::with_param(
        &pending.redirect,
        "wxgate_code",
        &login_code,
    ))
}

/// Redeems a `wxgate_code` once: the login record with the user as stored now (`null` for
/// snapshot users).
pub async fn redeem(state: &AppState, account: &Account, code: &str) -> ApiResult<Value> {
    let invalid = || {
        ApiError::not_found(
            "invalid_code",
            "this login code is unknown, expired (5 minutes) or already used",
        )
    };
    if code.is_empty() || code.len() > 128 {
        return Err(invalid());
    }
    let bytes = state
        .store
        .take(&login_key(&account.name, code))
        .await?
        .ok_or_else(invalid)?;
    let record: LoginRecord = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let user = if record.snapshot {
        None
    } else {
        state
            .users
            .for_account(&account.name)
            .get(&record.openid)
            .await
            .map_err(|e| ApiError::Unavailable(format!("user database: {e}")))?
    };
    Ok(json!({
        "openid": record.openid,
        "unionid": record.unionid,
        "scope": record.scope,
        "snapshot": record.snapshot,
        "logged_in_at": record.logged_in_at,
        "account": record.account,
        "user": user,
    }))
}
