//! JSON answers written by `serde_json` straight into a buffer sized for the answer, for the
//! busiest routes: `GET /jssdk/{account}/config` (called on every page view) and the credential
//! answers of the business API (called by every service before each WeChat call).
//!
//! `axum::Json` starts its buffer at 128 bytes and lets it grow; a caller that knows about how
//! long its answer is sizes it once here. The bytes are `serde_json`'s, whatever the size.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiError;

/// A `200 OK` answer of `value` as JSON, with `Content-Type: application/json` (as
/// `axum::Json` gives), written into a buffer of `capacity` bytes (more when it needs more).
pub fn answer<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    if let Err(e) = serde_json::to_writer(&mut body, value) {
        return ApiError::Internal(format!("an answer could not be written as JSON: {e}"))
            .into_response();
    }
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn answers_serde_json_bytes_as_application_json() {
        let value = serde_json::json!({"a": "x\"y\\z\n\u{1}中", "n": u64::MAX, "l": ["p", "q"]});
        for capacity in [0, 8, 1024] {
            let response = answer(&value, capacity);
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            let body = futures::executor::block_on(response.into_body().collect())
                .unwrap()
                .to_bytes();
            assert_eq!(body, serde_json::to_vec(&value).unwrap());
        }
    }
}
