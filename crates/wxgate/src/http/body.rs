//! Reading request bodies under `server.max_body_bytes`, with the SPEC's 413 `body_too_large`
//! instead of the framework's plain-text rejection.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;

use super::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (checked up front from
/// `Content-Length`, and while reading for chunked bodies).
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, limit_usize).await {
        Ok(b) => Ok(b),
        Err(e) if is_length_limit(&e) => Err(ApiError::BodyTooLarge(limit)),
        Err(e) => Err(ApiError::client(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_body",
            format!("could not read the request body: {e}"),
        )),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
