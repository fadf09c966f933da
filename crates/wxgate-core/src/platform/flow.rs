//! The authorization pages' flow: a merchant is sent to WeChat's authorization page
//! (`GET /component/{c}/authorize`) and comes back (`GET /component/{c}/callback`).
//!
//! It follows web login's discipline exactly ([`crate::oauth::flow`]): starting writes
//! nothing to the store — the pending authorization travels in the `state` (bound to the
//! platform's credential name, so a web-login state is never accepted here) and the browser's
//! cookie; the redirect must be under the platform's `auth_redirects` (the same parser and
//! rules as `oauth_redirects`), at the start and again at the callback; the first callback of a
//! state does the work and every repeat gets the same answer
//! ([`crate::oauth::flow::once_per_state`]). The work is [`super::authorization::record`]:
//! the code exchanged once, the authorizer recorded. A `pre_auth_code` is fetched for every
//! start (WeChat binds one page to one).

use std::future::Future;

use secrecy::ExposeSecret;
use wxgate_proto::oauth::Scope;
use wxgate_proto::{component_login_url, component_mobile_url};

use super::authorization::{self, with_component_token};
use super::{component, PlatformError};
use crate::domain::unix_now;
use crate::gateway::Gateway;
use crate::oauth::flow::{once_per_state, secure_cookies, Outcome, Returned};
use crate::oauth::redirect;
use crate::oauth::state_token::{self, Login, MAX_REDIRECT_LEN, STATE_TTL_SECS};
use crate::oauth::OauthError;

/// The page a merchant is sent to, and the cookie that binds the state to their browser.
#[derive(Debug, Clone)]
pub struct Started {
    pub location: String,
    pub set_cookie: String,
}

/// How a merchant authorizes: which page, and what may be authorized.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageOptions {
    /// WeChat's mobile page (`safe/bindcomponent`) instead of the PC one.
    pub mobile: bool,
    /// `auth_type`: 1 Official Accounts only, 2 mini programs only, 3 both.
    pub auth_type: Option<u8>,
}

/// Starts an authorization: checks the redirect, fetches a `pre_auth_code` and answers where to
/// send the merchant.
pub async fn start(
    gateway: &Gateway,
    name: &str,
    redirect_to: &str,
    options: PageOptions,
) -> Result<Started, PlatformError> {
    let component = component(gateway, name)?;
    if redirect_to.len() > MAX_REDIRECT_LEN {
        return Err(OauthError::RedirectTooLong {
            len: redirect_to.len(),
        }
        .into());
    }
    if !redirect::allowed(&component.auth_redirects, redirect_to) {
        return Err(PlatformError::RedirectNotAllowed {
            redirect: redirect_to.to_owned(),
            component: component.name.clone(),
        });
    }
    if options.auth_type.is_some_and(|t| !(1..=3).contains(&t)) {
        return Err(PlatformError::InvalidParameter {
            name: "auth_type",
            problem: "must be 1 (Official Accounts), 2 (mini programs) or 3 (both)",
        });
    }
    let client = &gateway.client;
    let credential_name = &component.credentials.name;
    let appid = &component.appid;
    let pre_auth_code = with_component_token(gateway, &component, |token| async move {
        client
            .create_preauthcode(credential_name, appid, &token)
            .await
    })
    .await?;
    let key = gateway
        .oauth_keys
        .key(gateway.store.as_ref())
        .await
        .map_err(OauthError::from)?;
    let secure = secure_cookies(gateway);
    let login = Login {
        account: credential_name.clone(),
        redirect: redirect_to.to_owned(),
        scope: Scope::Base,
        expires_at: unix_now().saturating_add(STATE_TTL_SECS),
    };
    let issued = state_token::issue(&key, &login, secure);
    let redirect_uri = format!(
        "{}/component/{}/callback?state={}",
        gateway.settings.server.public_url, component.name, issued.state
    );
    let page = if options.mobile {
        component_mobile_url
    } else {
        component_login_url
    };
    let location = page(
        &gateway.settings.upstream.mp_base,
        &component.appid,
        pre_auth_code.expose_secret(),
        &redirect_uri,
        options.auth_type,
    );
    Ok(Started {
        location,
        set_cookie: issued.set_cookie(secure),
    })
}

/// WeChat's redirect back with `auth_code`: the code exchanged and the authorizer recorded
/// (once), then the merchant sent to the start's redirect with `wxgate_authorizer=<appid>`.
/// `answer_failure` (the HTTP layer's) writes the error answer kept for repeated callbacks.
pub async fn callback<F, A>(
    gateway: &Gateway,
    name: &str,
    auth_code: Option<&str>,
    state: Option<&str>,
    cookie_headers: &[&str],
    answer_failure: F,
) -> Result<Outcome, PlatformError>
where
    F: FnOnce(PlatformError) -> A,
    A: Future<Output = Outcome>,
{
    let component = component(gateway, name)?;
    let Some(auth_code) = auth_code.filter(|c| !c.is_empty()) else {
        return Err(PlatformError::MissingParameter("auth_code"));
    };
    let returned = Returned {
        owner: &component.credentials.name,
        redirects: &component.auth_redirects,
        code: Some(auth_code),
        state,
        cookie_headers,
    };
    let component = &component;
    let outcome = once_per_state(
        gateway,
        returned,
        |login, code| async move {
            let code = code.unwrap_or_default();
            // WeChat's time of the authorization is not known here (0; see AuthorizerGrant).
            let appid = authorization::record(gateway, component, &code, 0).await?;
            Ok(redirect::with_param(
                &login.redirect,
                "wxgate_authorizer",
                &appid,
            ))
        },
        answer_failure,
    )
    .await?;
    Ok(outcome)
}
