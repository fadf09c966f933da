//! STUB — to be replaced by the real implementation.
use std::time::Duration;

use secrecy::SecretString;

use super::UpstreamError;
use crate::domain::{TicketKind, TokenApi};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub api_base: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug)]
pub struct IssuedCredential {
    pub value: SecretString,
    pub expires_in: u64,
}

#[derive(Clone)]
pub struct WechatClient {}

impl WechatClient {
    pub fn new(_options: ClientOptions, _metrics: std::sync::Arc<crate::metrics::Metrics>) -> Result<Self, UpstreamError> {
        Ok(Self {})
    }
    pub async fn access_token(&self, _account: &str, _appid: &str, _secret: &SecretString, _api: TokenApi, _force_refresh: bool) -> Result<IssuedCredential, UpstreamError> {
        Err(UpstreamError::Transport("stub".into()))
    }
    pub async fn ticket(&self, _account: &str, _access_token: &SecretString, _kind: TicketKind) -> Result<IssuedCredential, UpstreamError> {
        Err(UpstreamError::Transport("stub".into()))
    }
    pub async fn probe_access_token(&self, _account: &str, _access_token: &SecretString) -> Result<(), UpstreamError> {
        Err(UpstreamError::Transport("stub".into()))
    }
}
