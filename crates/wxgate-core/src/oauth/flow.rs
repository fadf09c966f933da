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

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wxgate_proto::oauth::Scope;

use super::redirect;
use super::state_token::{self, Login, Refusal, MAX_REDIRECT_LEN};
use super::{OauthError, StateProblem};
use secrecy::SecretString;

use crate::activity::{Step, StepOutcome};
use crate::config::{Account, Component, TokenSource};
use crate::domain::{unix_now, CredentialKind};
use crate::gateway::Gateway;
use crate::upstream::OAuthToken;
use crate::users::{LoginProfile, UserRecord};

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
    crate::domain::random_alnum(SECRET_LEN)
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

/// What the first callback of a state answered; repeated callbacks answer the same. Kept in
/// the store as JSON, so it is plain data: where to send the browser, or the error answer as the
/// HTTP layer wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// 302 to this URL.
    Redirect { location: String },
    /// This error answer (status and JSON body).
    Failed { status: u16, body: Value },
}

/// A started login: where to send the browser, and the login cookie to set (a `Set-Cookie`
/// value).
#[derive(Debug, Clone)]
pub struct Started {
    pub authorize: String,
    pub set_cookie: String,
}

/// A redeemed `wxgate_code`: the login record with the user as stored now (`None` for snapshot
/// users).
#[derive(Debug, Clone, Serialize)]
pub struct Redeemed {
    pub openid: String,
    pub unionid: Option<String>,
    pub scope: Scope,
    pub snapshot: bool,
    pub logged_in_at: i64,
    pub account: String,
    pub user: Option<UserRecord>,
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

/// Whether the login cookie is `__Host-` and `Secure`: when browsers reach the gateway by https.
pub fn secure_cookies(gateway: &Gateway) -> bool {
    let url = gateway.settings.server.public_url.as_bytes();
    url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://")
}

/// Checks the redirect and answers WeChat's authorize URL and the login cookie. Writes nothing
/// to the store.
pub async fn start(
    gateway: &Gateway,
    account: &Account,
    redirect_to: &str,
    scope: Scope,
) -> Result<Started, OauthError> {
    if redirect_to.len() > MAX_REDIRECT_LEN {
        return Err(OauthError::RedirectTooLong {
            len: redirect_to.len(),
        });
    }
    if !redirect::allowed(&account.oauth_redirects, redirect_to) {
        return Err(OauthError::RedirectNotAllowed {
            redirect: redirect_to.to_owned(),
            account: account.name.clone(),
        });
    }
    let key = gateway.oauth_keys.key(gateway.store.as_ref()).await?;
    let secure = secure_cookies(gateway);
    let login = Login {
        account: account.name.clone(),
        redirect: redirect_to.to_owned(),
        scope,
        expires_at: unix_now().saturating_add(state_token::STATE_TTL_SECS),
    };
    let issued = state_token::issue(&key, &login, secure);
    let redirect_uri = format!(
        "{}/oauth/{}/callback",
        gateway.settings.server.public_url, account.name
    );
    let open_base = &gateway.settings.upstream.open_base;
    let authorize = match &account.token_source {
        // An authorizer's users log in through its platform.
        TokenSource::Authorizer {
            component_appid, ..
        } => wxgate_proto::oauth::component_authorize_url(
            open_base,
            &account.appid,
            &redirect_uri,
            scope,
            &issued.state,
            component_appid,
        ),
        _ => wxgate_proto::oauth::authorize_url(
            open_base,
            &account.appid,
            &redirect_uri,
            scope,
            &issued.state,
        ),
    };
    Ok(Started {
        authorize,
        set_cookie: issued.set_cookie(secure),
    })
}

/// Handles WeChat's redirect back: see the module documentation. `code` is `None` when the
/// user refused; the browser then goes back with `wxgate_error=access_denied`.
/// `cookie_headers` are the request's `Cookie` header values. When the first callback of a
/// state fails, `answer_failure` (the HTTP layer's) writes the error answer, which is kept for
/// the callbacks that repeat it.
pub async fn callback<F, A>(
    gateway: &Gateway,
    account: &Account,
    code: Option<&str>,
    login_state: Option<&str>,
    cookie_headers: &[&str],
    answer_failure: F,
) -> Result<Outcome, OauthError>
where
    F: FnOnce(OauthError) -> A,
    A: Future<Output = Outcome>,
{
    let returned = Returned {
        owner: &account.name,
        redirects: &account.oauth_redirects,
        code,
        state: login_state,
        cookie_headers,
    };
    once_per_state(
        gateway,
        returned,
        |login, code| async move { complete(gateway, account, &login, code.as_deref()).await },
        answer_failure,
    )
    .await
}

/// A browser sent back to a callback with a state this gateway issued for `owner` (an account's
/// name for web login; the platform's credential name for a platform's authorization).
pub struct Returned<'a> {
    pub owner: &'a str,
    /// The allowlist the state's redirect must still be under.
    pub redirects: &'a [String],
    /// The code WeChat added (`None`: the user refused).
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub cookie_headers: &'a [&'a str],
}

/// The callback discipline shared by web login and a platform's authorization: the state is
/// opened against the browser's cookie, the first callback of a state runs `work` (exactly
/// once across instances, claimed in the store) and its outcome — the redirect, or the error
/// answer `answer_failure` writes — is kept, so a repeated callback with the same state and code
/// gets the same answer without running `work` again.
pub async fn once_per_state<W, WF, E, F, A>(
    gateway: &Gateway,
    returned: Returned<'_>,
    work: W,
    answer_failure: F,
) -> Result<Outcome, OauthError>
where
    W: FnOnce(Login, Option<String>) -> WF,
    WF: Future<Output = Result<String, E>>,
    F: FnOnce(E) -> A,
    A: Future<Output = Outcome>,
{
    let invalid = OauthError::InvalidState;
    let login_state = returned
        .state
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or(invalid(StateProblem::Malformed))?;
    let key = gateway.oauth_keys.key(gateway.store.as_ref()).await?;
    let login = state_token::open(
        &key,
        returned.owner,
        login_state,
        returned.cookie_headers,
        secure_cookies(gateway),
    )
    .map_err(|refusal| {
        invalid(match refusal {
            Refusal::Malformed => StateProblem::Malformed,
            Refusal::NoCookie => StateProblem::NoCookie,
            Refusal::Mismatch => StateProblem::Mismatch,
        })
    })?;
    let code = returned.code.filter(|c| !c.is_empty());
    let claim = format!(
        "{}|{}",
        returned.owner,
        code.map_or_else(|| "denied".to_owned(), |c| digest("code", c))
    );
    // An expired state may only replay the answer its first callback got (`follow`).
    if login.expires_at > unix_now() {
        if !redirect::allowed(returned.redirects, &login.redirect) {
            return Err(OauthError::RedirectNoLongerAllowed);
        }
        let won = gateway
            .store
            .put_if_absent(&claim_key(login_state), claim.as_bytes(), Some(STATE_TTL))
            .await?;
        if won {
            let outcome = match work(login, code.map(str::to_owned)).await {
                Ok(location) => Outcome::Redirect { location },
                Err(e) => answer_failure(e).await,
            };
            let bytes =
                serde_json::to_vec(&outcome).map_err(|e| OauthError::Internal(e.to_string()))?;
            gateway
                .store
                .put(&done_key(login_state), &bytes, Some(STATE_TTL))
                .await?;
            return Ok(outcome);
        }
    }
    follow(gateway, login_state, &claim).await
}

/// A callback that is not the first for its state: the same answer as the first, when it
/// carried the same code.
async fn follow(gateway: &Gateway, login_state: &str, claim: &str) -> Result<Outcome, OauthError> {
    let Some(claimed) = gateway.store.get(&claim_key(login_state)).await? else {
        return Err(OauthError::InvalidState(StateProblem::Unknown));
    };
    if claimed != claim.as_bytes() {
        return Err(OauthError::InvalidState(StateProblem::AlreadyUsed));
    }
    let deadline = tokio::time::Instant::now() + FOLLOW_WAIT;
    loop {
        if let Some(bytes) = gateway.store.get(&done_key(login_state)).await? {
            return serde_json::from_slice(&bytes)
                .map_err(|e| OauthError::Internal(format!("unreadable login outcome: {e}")));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(OauthError::LoginInProgress);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The first callback's work: exchange the code, learn the profile, record the user, issue a
/// `wxgate_code`. Answers where to send the browser.
async fn complete(
    gateway: &Gateway,
    account: &Account,
    pending: &Login,
    code: Option<&str>,
) -> Result<String, OauthError> {
    let Some(code) = code else {
        return Ok(redirect::with_param(
            &pending.redirect,
            "wxgate_error",
            "access_denied",
        ));
    };
    let token = match exchange_code(gateway, account, code).await {
        Ok(token) => token,
        Err(e) => {
            if let OauthError::Upstream(u) = &e {
                gateway.activity.step(
                    &account.name,
                    Step::LoginCompleted,
                    StepOutcome::Failed {
                        errcode: u.wechat_errcode(),
                        message: u.to_string(),
                        hint: Some(u.hint()),
                    },
                );
            }
            return Err(e);
        }
    };
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
            let info = gateway
                .client
                .oauth_userinfo(&account.name, &token.access_token, &token.openid)
                .await
                .map_err(OauthError::Upstream)?;
            profile.unionid = info.unionid.or(profile.unionid);
            profile.nickname = Some(info.nickname).filter(|n| !n.is_empty());
            profile.headimgurl = Some(info.headimgurl).filter(|h| !h.is_empty());
        }
        gateway
            .users
            .for_account(&account.name)
            .record_login(&profile, now)
            .await?;
    }
    let record = LoginRecord {
        account: account.name.clone(),
        openid: profile.openid,
        unionid: profile.unionid,
        scope,
        snapshot: token.is_snapshotuser,
        logged_in_at: now,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| OauthError::Internal(e.to_string()))?;
    let login_code = loop {
        let candidate = random_secret();
        if gateway
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
    gateway
        .activity
        .reached(&account.name, Step::LoginCompleted, || None);
    Ok(redirect::with_param(
        &pending.redirect,
        "wxgate_code",
        &login_code,
    ))
}

/// Exchanges a web-login code: with the AppSecret, or for an authorizer of a third-party
/// platform through the platform (`sns/oauth2/component/access_token`, with the
/// component_access_token).
async fn exchange_code(
    gateway: &Gateway,
    account: &Account,
    code: &str,
) -> Result<OAuthToken, OauthError> {
    let client = &gateway.client;
    let TokenSource::Authorizer {
        component,
        component_appid,
        ..
    } = &account.token_source
    else {
        return client
            .oauth_exchange_code(&account.name, &account.appid, &account.secret, code)
            .await
            .map_err(OauthError::Upstream);
    };
    let token = gateway
        .creds
        .get(
            &Component::credential_name(component),
            CredentialKind::AccessToken,
        )
        .await
        .map_err(|e| OauthError::Credential(Box::new(e)))?;
    client
        .oauth_exchange_code_component(
            &account.name,
            &account.appid,
            code,
            component_appid,
            &SecretString::from(token.value.clone()),
        )
        .await
        .map_err(OauthError::Upstream)
}

/// Redeems a `wxgate_code` once: the login record with the user as stored now.
pub async fn redeem(
    gateway: &Gateway,
    account: &Account,
    code: &str,
) -> Result<Redeemed, OauthError> {
    if code.is_empty() || code.len() > 128 {
        return Err(OauthError::InvalidCode);
    }
    let bytes = gateway
        .store
        .take(&login_key(&account.name, code))
        .await?
        .ok_or(OauthError::InvalidCode)?;
    let record: LoginRecord =
        serde_json::from_slice(&bytes).map_err(|_| OauthError::InvalidCode)?;
    let user = if record.snapshot {
        None
    } else {
        gateway
            .users
            .for_account(&account.name)
            .get(&record.openid)
            .await?
    };
    Ok(Redeemed {
        openid: record.openid,
        unionid: record.unionid,
        scope: record.scope,
        snapshot: record.snapshot,
        logged_in_at: record.logged_in_at,
        account: record.account,
        user,
    })
}
