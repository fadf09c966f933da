//! Signing in to the console, the session cookie, and the checks every signed-in request
//! passes: a live session ([`require`]), and for anything that changes state the CSRF token
//! of the session plus a same-origin request (`Sec-Fetch-Site`, `Origin`).
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, 12 h, and named `__Host-wxgate_console`
//! (with `Secure`) when `server.public_url` is https. The CSRF token comes in the
//! `X-CSRF-Token` header (htmx sends it from `hx-headers`), a `csrf` form field, or — for the
//! one multipart form, whose body is not read here — the `csrf` query parameter.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use cookie::{Cookie, SameSite};

use super::{failure, message, render};
use crate::console::sessions::{self, Session, SESSION_TTL};
use crate::console::ConsoleError;
use crate::http::AppState;
use crate::oauth::flow;
use crate::query;

/// The signed-in session and its cookie token, for handlers.
#[derive(Clone)]
pub struct SignedIn {
    pub session: Session,
    token: String,
}

/// Served over https: the web login's rule ([`flow::secure_cookies`]), one for every cookie.
fn https(state: &AppState) -> bool {
    flow::secure_cookies(state)
}

fn cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-wxgate_console"
    } else {
        "wxgate_console"
    }
}

fn session_cookie(state: &AppState, value: String, max_age_s: i64) -> HeaderValue {
    let cookie = Cookie::build((cookie_name(state), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https(state))
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

fn token_of(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    crate::http::oauth::cookie_headers(headers)
        .into_iter()
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

pub fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/admin")),
        )],
    )
        .into_response()
}

/// The console exists only when `admin.keys` is set.
pub async fn enabled(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.admin_keys.is_empty() {
        return message(
            StatusCode::NOT_FOUND,
            "The console is off",
            "Set at least one key in [admin] keys to use the console.",
        );
    }
    next.run(request).await
}

/// A cross-site request: the browser says so (`Sec-Fetch-Site`), or its `Origin` is not
/// this host.
fn cross_site(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return true;
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    match (headers.get(axum::http::header::ORIGIN), host) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            origin == "null" || origin_host != host
        }
        _ => false,
    }
}

/// Signed-in pages: a live session, and for a state change its CSRF token from this origin.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let found = match current(&state, request.headers()).await {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let Some(SignedIn { session, token }) = found else {
        return if request.method() == Method::GET {
            see_other("/admin/sign-in")
        } else {
            message(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Your session has ended: sign in again.",
            )
        };
    };
    let mut request = request;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        if cross_site(request.headers()) {
            return message(
                StatusCode::FORBIDDEN,
                "Refused",
                "A console form was sent from another site.",
            );
        }
        let (presented, rebuilt) = match csrf_of(&state, request).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        if !presented.is_some_and(|p| session.csrf_matches(&p)) {
            return message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is missing its CSRF token or it is stale: reload the page and try again.",
            );
        }
        request = rebuilt;
    }
    request.extensions_mut().insert(SignedIn { session, token });
    next.run(request).await
}

/// The CSRF token a request presents, and the request to go on with (its body read back in
/// when it was a form).
async fn csrf_of(
    state: &AppState,
    request: Request,
) -> Result<(Option<String>, Request), Response> {
    if let Some(v) = request.headers().get("x-csrf-token") {
        let presented = v.to_str().ok().map(str::to_owned);
        return Ok((presented, request));
    }
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let (parts, body) = request.into_parts();
        let bytes = crate::http::body::read_limited(
            &parts.headers,
            body,
            state.settings.server.max_body_bytes,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        let presented = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|form| query::param(Some(form), "csrf"))
            .and_then(Result::ok);
        return Ok((presented, Request::from_parts(parts, Body::from(bytes))));
    }
    let presented = query::param(request.uri().query(), "csrf").and_then(Result::ok);
    Ok((presented, request))
}

/// `/admin`: the overview when signed in, else the sign-in page.
/// The live session of the request's cookie, if any.
async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<SignedIn>, ConsoleError> {
    let Some(token) = token_of(state, headers) else {
        return Ok(None);
    };
    Ok(sessions::session(state, &token)
        .await?
        .map(|session| SignedIn { session, token }))
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = matches!(current(&state, &headers).await, Ok(Some(_)));
    see_other(if signed_in {
        "/admin/overview"
    } else {
        "/admin/sign-in"
    })
}

pub async fn sign_in_page() -> Response {
    render(StatusCode::OK, "sign_in.html", minijinja::context! {})
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
}

/// Opens a session for an admin key. A wrong key is refused with 401 and writes nothing.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if cross_site(&headers) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "The sign-in form was sent from another site.",
        );
    }
    match sessions::sign_in(&state, &form.key).await {
        Ok((token, _)) => {
            let max_age = i64::try_from(SESSION_TTL.as_secs()).unwrap_or(43_200);
            let mut response = see_other("/admin/overview");
            response
                .headers_mut()
                .insert(SET_COOKIE, session_cookie(&state, token, max_age));
            response
        }
        Err(ConsoleError::WrongKey) => render(
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            minijinja::context! { error => "That is not an admin key of this gateway." },
        ),
        Err(e) => failure(e),
    }
}

/// Ends the session everywhere and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
) -> Response {
    if let Err(e) = sessions::sign_out(&state, &me.token).await {
        return failure(e);
    }
    let mut response = see_other("/admin/sign-in");
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, String::new(), 0));
    response
}
