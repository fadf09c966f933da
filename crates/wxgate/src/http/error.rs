//! The one error type of every HTTP route, and its stable JSON shape.
//!
//! Clients branch on `error.code` (SPEC.md lists them), people read `error.message`, and when
//! WeChat caused the failure its `errcode` and `rid` travel along so an operator can look the
//! call up. Internal details (store errors, causes) are logged once here and never sent.
//!
//! Anonymous routes (`/jssdk/…`, `/oauth/…`) answer [`ApiError::for_public`]: an upstream
//! failure keeps its `code`, status, `wechat_errcode` and `wechat_rid` (SPEC.md's error shape),
//! but its message is generic, because the operator's hint (the egress IP to whitelist, "the
//! AppSecret is wrong", …) is for the operator, not for any browser. The hint stays in the
//! authenticated API's answers, in `status` and in the log line written here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::credentials::CredentialError;
use crate::upstream::UpstreamError;

#[derive(Debug)]
pub enum ApiError {
    UnknownAccount(String),
    Unauthorized,
    ApiDisabled,
    MissingParameter(&'static str),
    /// Any other client mistake: a code from SPEC.md (or a documented addition) and a sentence.
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    BodyTooLarge(u64),
    Upstream(UpstreamError),
    /// An upstream failure answered to an anonymous caller: see [`ApiError::for_public`].
    PublicUpstream(UpstreamError),
    /// A credential fetch failed moments ago and is not retried before `retry_in` passes.
    UpstreamBackoff {
        error: UpstreamError,
        retry_in: std::time::Duration,
        /// Answered to an anonymous caller: no operator hint (see [`ApiError::for_public`]).
        public: bool,
    },
    /// Storage or database unavailable, or waiting for another instance timed out.
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    /// This error as answered on an anonymous route: upstream failures without the operator's
    /// hint (see the module documentation); everything else unchanged.
    pub fn for_public(self) -> Self {
        match self {
            ApiError::Upstream(e) => ApiError::PublicUpstream(e),
            ApiError::UpstreamBackoff {
                error, retry_in, ..
            } => ApiError::UpstreamBackoff {
                error,
                retry_in,
                public: true,
            },
            other => other,
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::UnknownAccount(a) => ApiError::UnknownAccount(a),
            CredentialError::Upstream(u) => ApiError::Upstream(u),
            CredentialError::Backoff { error, retry_in } => ApiError::UpstreamBackoff {
                error,
                retry_in,
                public: false,
            },
            CredentialError::Store(s) => ApiError::Unavailable(format!("credential store: {s}")),
            CredentialError::TicketMissing { .. } => ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "component_ticket_missing",
                e.to_string(),
            ),
            // WeChat's own words for it, so clients see `wechat_errcode` 61023 (SPEC.md).
            CredentialError::AuthorizationLost { .. } => ApiError::Upstream(UpstreamError::wechat(
                crate::credentials::REFRESH_TOKEN_INVALID,
                e.to_string(),
            )),
            CredentialError::Records(reason) => {
                ApiError::Unavailable(format!("refresh tokens: {reason}"))
            }
            CredentialError::WaitTimeout => ApiError::Unavailable(
                "timed out waiting for another caller or wxgate instance to fetch the credential"
                    .into(),
            ),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Unavailable(format!("store: {e}"))
    }
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::UnknownAccount(a) => body(
                StatusCode::NOT_FOUND,
                "unknown_account",
                &format!("no account named {a:?} is configured"),
            ),
            ApiError::Unauthorized => body(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send one of the configured API keys as `Authorization: Bearer <key>`",
            ),
            ApiError::ApiDisabled => body(
                StatusCode::FORBIDDEN,
                "api_disabled",
                "the business API is disabled: configure at least one key in [api] keys",
            ),
            ApiError::MissingParameter(p) => body(
                StatusCode::BAD_REQUEST,
                "missing_parameter",
                &format!("the query parameter `{p}` is required"),
            ),
            ApiError::Client {
                status,
                code,
                message,
            } => body(status, code, &message),
            ApiError::BodyTooLarge(limit) => body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!(
                    "the request body exceeds the limit of {limit} bytes (server.max_body_bytes)"
                ),
            ),
            ApiError::Upstream(e) => upstream_response(&e, true),
            ApiError::PublicUpstream(e) => upstream_response(&e, false),
            ApiError::UpstreamBackoff {
                error,
                retry_in,
                public,
            } => backoff_response(&error, retry_in, !public),
            ApiError::Unavailable(reason) => {
                tracing::error!(%reason, "service unavailable");
                body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "wxgate cannot reach its storage right now; try again shortly",
                )
            }
            ApiError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "wxgate failed unexpectedly; the cause is in its log",
                )
            }
        }
    }
}

/// The answer to an upstream failure; `detailed` makes the message the operator's hint
/// (authenticated callers only), otherwise it is generic.
fn upstream_response(e: &UpstreamError, detailed: bool) -> Response {
    let (status, code) = match e {
        UpstreamError::WeChat { .. } if !e.is_transient() => {
            (StatusCode::BAD_GATEWAY, "upstream_rejected")
        }
        UpstreamError::WeChat { .. } => (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
        UpstreamError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_unavailable"),
        UpstreamError::HttpStatus(_) | UpstreamError::Unparseable(_) => {
            (StatusCode::BAD_GATEWAY, "upstream_unavailable")
        }
        UpstreamError::Transport(_) | UpstreamError::Saturated => {
            (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable")
        }
    };
    tracing::warn!(error = %e, hint = %e.hint(), code, public = !detailed,
        "upstream failure answered to the client");
    let message = if detailed {
        e.hint()
    } else if code == "upstream_rejected" {
        format!("WeChat refused the request; {FOR_THE_OPERATOR}")
    } else {
        format!("WeChat could not be reached; try again shortly ({FOR_THE_OPERATOR})")
    };
    (status, Json(upstream_body(e, code, message))).into_response()
}

/// What an anonymous caller is told instead of the operator's hint.
const FOR_THE_OPERATOR: &str = "the operator can see the cause in the gateway's log and status";

/// The error body of an upstream failure. WeChat's errcode and rid are part of the error shape
/// everywhere (SPEC.md): they name what WeChat said, not what the operator should do about it.
fn upstream_body(e: &UpstreamError, code: &str, message: String) -> serde_json::Value {
    let mut err = json!({"code": code, "message": message});
    if let Some(errcode) = e.wechat_errcode() {
        err["wechat_errcode"] = json!(errcode);
    }
    if let Some(rid) = e.wechat_rid() {
        err["wechat_rid"] = json!(rid);
    }
    json!({ "error": err })
}

/// A remembered failure: `upstream_unavailable` at once, saying so and when to come back.
fn backoff_response(e: &UpstreamError, retry_in: std::time::Duration, detailed: bool) -> Response {
    let secs = retry_in.as_secs().saturating_add(1);
    let cause = if detailed {
        e.hint()
    } else {
        FOR_THE_OPERATOR.to_owned()
    };
    let message = format!(
        "a fetch of this credential from WeChat failed moments ago; wxgate tries again in {secs} \
         s — {cause}"
    );
    tracing::debug!(error = %e, retry_in_s = secs, "remembered upstream failure answered to the client");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, secs.to_string())],
        Json(upstream_body(e, "upstream_unavailable", message)),
    )
        .into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;
