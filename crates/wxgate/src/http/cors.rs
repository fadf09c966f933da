//! CORS for the browser-facing JS-SDK routes (`config`, `diagnose`; [`super::jssdk`]).
//!
//! A page on one of the account's `js_domains` may call `config` and `diagnose` from its own
//! origin; any other origin gets no `Access-Control-Allow-Origin`, so its browser keeps the
//! answer from the page. When `js_domains` is empty every origin is allowed (matching "empty =
//! any page may be signed"). The origin is echoed, never `*`, and every answer carries
//! `Vary: Origin` so caches keep the answers per origin apart. Error answers are decorated too,
//! so a page on an allowed origin can read why its request failed. Origins are read by the same
//! rules as page URLs (`jssdk::page`).

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::config::DomainPattern;
use crate::jssdk::page::{domain_allowed, host_and_port};

/// The request's `Origin` when it is allowed by `js_domains`.
pub fn allowed_origin<'h>(
    js_domains: &[DomainPattern],
    headers: &'h HeaderMap,
) -> Option<&'h HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    if js_domains.is_empty() {
        return Some(origin);
    }
    let (host, port) = host_and_port(origin.to_str().ok()?)?;
    domain_allowed(js_domains, &host, port).then_some(origin)
}

/// Adds `Vary: Origin` and, for an allowed origin, `Access-Control-Allow-Origin`.
pub fn decorate(mut response: Response, origin: Option<&HeaderValue>) -> Response {
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
}

/// Answers a preflight: 204 with the allow headers for an allowed origin, 403
/// `domain_not_allowed` (without CORS headers) otherwise.
pub fn preflight(js_domains: &[DomainPattern], headers: &HeaderMap) -> Response {
    let Some(origin) = allowed_origin(js_domains, headers) else {
        let refused = ApiError::client(
            StatusCode::FORBIDDEN,
            "domain_not_allowed",
            "this origin is not on the account's js_domains",
        );
        return decorate(refused.into_response(), None);
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    let requested = headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("content-type"));
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested);
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    decorate(response, Some(origin))
}
