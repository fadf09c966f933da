//! The admin console (`/admin`, enabled by `admin.keys`): server-rendered pages (minijinja
//! templates, auto-escaped) with htmx for the partial updates, over the core's
//! [`crate::console`], [`crate::admin`] and [`crate::activity`] services. No Node build step:
//! the templates, the stylesheet, a small script and the vendored htmx are compiled into the
//! binary.
//!
//! Every page is sent with a strict Content-Security-Policy (scripts and styles from this
//! origin only; no inline script or style anywhere), `no-store` caching and no framing.
//! Signing in, sessions and the CSRF check are [`session`]'s; the pages are split by area:
//! [`pages`] (overview, account), [`wizard`] (onboarding, platforms), [`keys`].

mod chart;
mod keys;
mod pages;
pub mod session;
mod view;
mod wizard;

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;

use super::AppState;
use crate::admin::AdminError;
use crate::console::ConsoleError;

/// `/admin` and its pages.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin/overview", get(pages::overview))
        .route("/admin/accounts/{name}", get(pages::account))
        .route("/admin/accounts/{name}/quota", post(pages::quota))
        .route(
            "/admin/accounts/{name}/settings",
            post(pages::save_settings),
        )
        .route(
            "/admin/accounts/{name}/verify-file",
            post(pages::upload_verify_file),
        )
        .route("/admin/onboard", get(wizard::form).post(wizard::create))
        .route("/admin/onboard/{name}", get(wizard::page))
        .route("/admin/onboard/{name}/checklist", get(wizard::checklist))
        .route(
            "/admin/onboard/{name}/check-token",
            post(wizard::check_token),
        )
        .route("/admin/onboard/{name}/regenerate", post(wizard::regenerate))
        .route("/admin/components/{name}", get(wizard::component))
        .route("/admin/keys", get(keys::page).post(keys::create))
        .route("/admin/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/sign-out", post(session::sign_out))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .route("/admin", get(session::home))
        .route("/admin/", get(session::home))
        .route(
            "/admin/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/admin/static/{file}", get(asset))
        .merge(signed_in)
        .route_layer(middleware::from_fn_with_state(state, session::enabled))
        .route_layer(middleware::map_response(secure_headers))
}

/// Every template, by name, compiled into the binary.
const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("overview.html", include_str!("templates/overview.html")),
    (
        "overview_table.html",
        include_str!("templates/overview_table.html"),
    ),
    ("account.html", include_str!("templates/account.html")),
    ("quota.html", include_str!("templates/quota.html")),
    (
        "onboard_form.html",
        include_str!("templates/onboard_form.html"),
    ),
    ("wizard.html", include_str!("templates/wizard.html")),
    ("checklist.html", include_str!("templates/checklist.html")),
    ("component.html", include_str!("templates/component.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("message.html", include_str!("templates/message.html")),
];

/// The console's templates, parsed once.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are part of the binary; one that does not parse fails the
            // console's tests, and is reported (not panicked on) when rendered.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "console template does not parse");
            }
        }
        env
    })
}

/// A page from `template` with `ctx`, answered with `status`.
fn render(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    let html = templates()
        .get_template(template)
        .and_then(|t| t.render(ctx));
    match html {
        Ok(html) => (
            status,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(
                template,
                error = format!("{e:#}"),
                "console page failed to render"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the console could not draw this page; see the server log",
            )
                .into_response()
        }
    }
}

/// A page that only says something (an error, a refusal), in the console's frame.
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(
        status,
        "message.html",
        minijinja::context! { title => title, text => text },
    )
}

/// The answer to a console error: a page with the status a client mistake deserves.
fn failure(e: ConsoleError) -> Response {
    let text = e.to_string();
    let status = match &e {
        ConsoleError::WrongKey => StatusCode::UNAUTHORIZED,
        ConsoleError::Exists(_) | ConsoleError::Admin(AdminError::ReadOnly(_)) => {
            StatusCode::CONFLICT
        }
        ConsoleError::InvalidField { .. }
        | ConsoleError::Admin(AdminError::InvalidAccount(_) | AdminError::InvalidKey { .. }) => {
            StatusCode::BAD_REQUEST
        }
        ConsoleError::Admin(AdminError::UnknownAccount(_) | AdminError::UnknownKey(_)) => {
            StatusCode::NOT_FOUND
        }
        ConsoleError::Admin(
            AdminError::NoMasterKey | AdminError::Contended | AdminError::Database(_),
        )
        | ConsoleError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    message(status, "That did not work", &text)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every console answer carries.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        // Not `no-referrer`: with it, browsers send `Origin: null` on form posts, which the
        // same-origin check must then refuse.
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    if !h.contains_key(axum::http::header::CACHE_CONTROL) {
        h.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// The files under `static/`, compiled in.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match file.as_str() {
        "console.css" => (
            include_bytes!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_bytes!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx.min.js" => (
            include_bytes!("static/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx-LICENSE.txt" => (
            include_bytes!("static/htmx-LICENSE.txt"),
            "text/plain; charset=utf-8",
        ),
        _ => return message(StatusCode::NOT_FOUND, "Not found", "no such file"),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = templates();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name} does not parse");
        }
    }
}
