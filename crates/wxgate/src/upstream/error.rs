//! Typed upstream failures and what each means for a caller.

/// A failed WeChat call, after any retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// WeChat answered with a non-zero `errcode`.
    #[error("WeChat error {errcode}: {errmsg}")]
    WeChat {
        errcode: i64,
        errmsg: String,
        rid: Option<String>,
    },
    /// A non-2xx HTTP status.
    #[error("WeChat answered HTTP {0}")]
    HttpStatus(u16),
    /// No answer within `upstream.timeout_ms`.
    #[error("WeChat did not answer in time")]
    Timeout,
    /// Connection-level failure (DNS, refused, reset). Never contains the request URL.
    #[error("could not reach WeChat: {0}")]
    Transport(String),
    /// A 2xx answer that is not the JSON we expect.
    #[error("WeChat answered something unreadable: {0}")]
    Unparseable(String),
}

impl UpstreamError {
    /// Worth another attempt after a backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::WeChat { errcode, .. } => matches!(errcode, -1 | 45011),
            UpstreamError::HttpStatus(s) => *s >= 500,
            UpstreamError::Timeout | UpstreamError::Transport(_) | UpstreamError::Unparseable(_) => true,
        }
    }

    /// The access_token used was invalid or expired (40001, 40014, 42001).
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, UpstreamError::WeChat { errcode: 40001 | 40014 | 42001, .. })
    }

    /// The WeChat errcode, when WeChat gave one.
    pub fn wechat_errcode(&self) -> Option<i64> {
        match self {
            UpstreamError::WeChat { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The WeChat rid, when WeChat gave one.
    pub fn wechat_rid(&self) -> Option<&str> {
        match self {
            UpstreamError::WeChat { rid, .. } => rid.as_deref(),
            _ => None,
        }
    }

    /// A short label for metrics: `errcode_40001`, `http_502`, `timeout`, ...
    pub fn outcome_label(&self) -> String {
        match self {
            UpstreamError::WeChat { errcode, .. } => format!("errcode_{errcode}"),
            UpstreamError::HttpStatus(s) => format!("http_{s}"),
            UpstreamError::Timeout => "timeout".into(),
            UpstreamError::Transport(_) => "transport".into(),
            UpstreamError::Unparseable(_) => "unparseable".into(),
        }
    }

    /// A sentence telling an operator what to do about this error.
    pub fn hint(&self) -> String {
        self.to_string()
    }
}
