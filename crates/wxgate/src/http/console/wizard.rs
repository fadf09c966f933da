//! The onboarding wizard: a new Official Account from its name, AppID and AppSecret, then
//! each value to paste into WeChat's console in that console's order, and a checklist that
//! turns green by itself as wxgate observes each step ([`crate::activity`]'s steps; the
//! checklist is re-read by htmx every 2 s). Also the platform page: a third-party platform's
//! two URLs and the "authorize a merchant" link.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::session::{see_other, SignedIn};
use super::{failure, message, render, view};
use crate::activity::{Step, StepState};
use crate::admin;
use crate::console::onboard::{self, Generated, NewAccount};
use crate::console::ConsoleError;
use crate::domain::CredentialKind;
use crate::http::AppState;
use crate::query;

fn public_host(state: &AppState) -> (String, String) {
    let url = &state.settings.server.public_url;
    let parsed = url::Url::parse(url).ok();
    let scheme = parsed.as_ref().map_or("https", |u| u.scheme()).to_owned();
    let host = parsed
        .as_ref()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_default();
    (scheme, host)
}

/// `GET /admin/onboard`.
pub async fn form(State(state): State<AppState>, Extension(me): Extension<SignedIn>) -> Response {
    let (scheme, host) = public_host(&state);
    render(
        StatusCode::OK,
        "onboard_form.html",
        view::page(
            &me.session.csrf,
            "Onboard an account",
            json!({ "h5_domain": host, "scheme": scheme, "can_store": state.registry.vault().is_some() }),
        ),
    )
}

#[derive(serde::Deserialize)]
pub struct OnboardForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    h5_domain: String,
    #[serde(default)]
    scheme: String,
}

/// `POST /admin/onboard`: creates the account, asks WeChat for its first token (the first
/// checklist step), and shows the generated values once.
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Form(form): Form<OnboardForm>,
) -> Response {
    let scheme = if form.scheme == "http" {
        "http"
    } else {
        "https"
    };
    let new = NewAccount {
        name: &form.name,
        appid: &form.appid,
        secret: &form.secret,
        h5_domain: &form.h5_domain,
        scheme,
    };
    match onboard::create(&state, &new).await {
        Ok((_, generated)) => {
            let name = form.name.trim();
            let _ = state.creds.get(name, CredentialKind::AccessToken).await;
            let _ = state.activity.flush_steps().await;
            wizard(&state, &me, name, Some(&generated), false).await
        }
        Err(e) => failure(e),
    }
}

/// `GET /admin/onboard/{name}`: the wizard without the secrets (they were shown once).
pub async fn page(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let uploaded = query::param(raw.as_deref(), "uploaded").is_some();
    wizard(&state, &me, &name, None, uploaded).await
}

/// `POST /admin/onboard/{name}/regenerate`: a new Token and EncodingAESKey, shown once.
pub async fn regenerate(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
) -> Response {
    match onboard::regenerate(&state, &name).await {
        Ok((_, generated)) => wizard(&state, &me, &name, Some(&generated), false).await,
        Err(e) => failure(e),
    }
}

/// `POST /admin/onboard/{name}/check-token`: asks for the access token again (after the
/// operator fixed the secret or the whitelist).
pub async fn check_token(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if state.account(&name).is_none() {
        return failure(ConsoleError::Admin(admin::AdminError::UnknownAccount(name)));
    }
    let _ = state.creds.get(&name, CredentialKind::AccessToken).await;
    let _ = state.activity.flush_steps().await;
    see_other(&format!("/admin/onboard/{name}"))
}

async fn wizard(
    state: &AppState,
    me: &SignedIn,
    name: &str,
    generated: Option<&Generated>,
    uploaded: bool,
) -> Response {
    let entry = match admin::account(state, name) {
        Ok(entry) => entry,
        Err(e) => return failure(e.into()),
    };
    let public = state.settings.server.public_url.trim_end_matches('/');
    let egress = state.activity.learned_egress_ip().await.ok().flatten();
    let checklist = match checklist_values(state, name).await {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let ctx = json!({
        "name": name,
        "appid": entry.account.appid,
        "editable": matches!(entry.source, crate::registry::record::Source::Database),
        "server_url": format!("{public}/wx/{name}"),
        "token": generated.map(|g| g.token.expose_secret().to_owned()),
        "encoding_aes_key": generated.map(|g| g.encoding_aes_key.expose_secret().to_owned()),
        "has_token": entry.settings.has_token,
        "has_encoding_aes_key": entry.settings.has_encoding_aes_key,
        "egress_ip": egress.map(|(ip, _)| ip),
        "js_domains": entry.settings.js_domains,
        "verify_files": entry.settings.verify_files.keys().collect::<Vec<_>>(),
        "demo": format!("/demo?account={name}"),
        "uploaded": uploaded,
        "checklist": checklist,
    });
    render(
        StatusCode::OK,
        "wizard.html",
        view::page(&me.session.csrf, &format!("Onboard {name}"), ctx),
    )
}

/// What each step proves and what to do while it is not reached.
fn step_text(step: Step) -> (&'static str, &'static str, &'static str) {
    match step {
        Step::TokenFetched => (
            "token",
            "An access token was fetched",
            "AppSecret and IP whitelist are right. Until then: check the AppSecret, and add this server's IP to the whitelist (基本配置 → IP白名单).",
        ),
        Step::VerifyAnswered => (
            "verify",
            "WeChat's verification request was answered",
            "The server URL and Token are right. Paste them in 基本配置 → 服务器配置 and press 提交 (Submit).",
        ),
        Step::EncryptedPushDecrypted => (
            "push",
            "An encrypted message was decrypted",
            "The EncodingAESKey is right and safe mode works. Send a message to the account (or enable the configuration and follow it).",
        ),
        Step::JssdkSigned => (
            "jssdk",
            "A JS-SDK signature was requested from your domain",
            "The JS-safe domain is right. Open one of your pages with wxgate.js (or the demo page).",
        ),
        Step::LoginCompleted => (
            "login",
            "A web login was completed",
            "The web-authorization domain is right. Log in once through /oauth/{account}/authorize.",
        ),
    }
}

fn step_value(s: &StepState) -> Value {
    let (id, title, explain) = step_text(s.step);
    json!({
        "id": id,
        "title": title,
        "explain": explain,
        "state": if s.reached_at.is_some() { "ok" } else if s.failed_at.is_some() { "failed" } else { "waiting" },
        "reached": s.reached_at.map(|ms| view::ago(ms / 1000)),
        "detail": s.detail,
        "failed": s.failed_at.map(|ms| view::ago(ms / 1000)),
        "errcode": s.errcode,
        "message": s.message,
        "hint": s.hint,
    })
}

async fn checklist_values(state: &AppState, name: &str) -> Result<Value, ConsoleError> {
    let steps = state.activity.steps(name).await?;
    let items: Vec<Value> = steps.entries.iter().map(step_value).collect();
    let done = steps
        .entries
        .iter()
        .filter(|s| s.reached_at.is_some())
        .count();
    Ok(json!({ "items": items, "done": done, "all": steps.entries.len(), "name": name }))
}

/// `GET /admin/onboard/{name}/checklist` (htmx, every 2 s).
pub async fn checklist(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
) -> Response {
    if state.account(&name).is_none() {
        return failure(ConsoleError::Admin(admin::AdminError::UnknownAccount(name)));
    }
    match checklist_values(&state, &name).await {
        Ok(checklist) => render(
            StatusCode::OK,
            "checklist.html",
            view::page(
                &me.session.csrf,
                "Checklist",
                json!({ "checklist": checklist }),
            ),
        ),
        Err(e) => failure(e),
    }
}

/// `GET /admin/components/{name}`: a platform's URLs, its ticket and token, its authorizers,
/// and the link that starts a merchant's authorization.
pub async fn component(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let snapshot = state.registry.snapshot();
    let Some(c) = snapshot.component(&name) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "No platform of that name.",
        );
    };
    let public = state.settings.server.public_url.trim_end_matches('/');
    let redirect = query::param(raw.as_deref(), "redirect")
        .and_then(Result::ok)
        .or_else(|| c.auth_redirects.first().cloned())
        .unwrap_or_default();
    let authorize = url::Url::parse_with_params(
        &format!("{public}/component/{name}/authorize"),
        [("redirect", redirect.as_str())],
    )
    .map(String::from)
    .unwrap_or_default();
    let token = state
        .creds
        .health(&c.credentials.name)
        .map(|h| view::health(&h));
    let authorizers = state
        .authorizers
        .count_authorizers(&name)
        .await
        .unwrap_or_default();
    let egress = state.activity.learned_egress_ip().await.ok().flatten();
    let ctx = json!({
        "name": name,
        "appid": c.appid,
        "event_url": format!("{public}/wx/component/{name}"),
        "message_url": format!("{public}/wx/component/{name}/$APPID$"),
        "auth_redirects": c.auth_redirects,
        "authorize": authorize,
        "token": token,
        "authorizers": authorizers,
        "egress_ip": egress.map(|(ip, _)| ip),
    });
    render(
        StatusCode::OK,
        "component.html",
        view::page(&me.session.csrf, &format!("Platform {name}"), ctx),
    )
}
