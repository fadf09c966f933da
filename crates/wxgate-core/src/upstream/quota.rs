//! `cgi-bin/openapi/quota/get`: how much of an API's daily quota an account has used.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::client::{json_bytes, Retry};
use super::{UpstreamError, WechatClient};

/// One API's daily quota, as WeChat answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DailyQuota {
    pub daily_limit: u64,
    pub used: u64,
    pub remain: u64,
}

#[derive(Deserialize)]
struct QuotaAnswer {
    quota: DailyQuota,
}

impl WechatClient {
    /// The daily quota of the API at `cgi_path` (e.g. `/cgi-bin/message/custom/send`).
    pub async fn quota_get(
        &self,
        account: &str,
        access_token: &SecretString,
        cgi_path: &str,
    ) -> Result<DailyQuota, UpstreamError> {
        const ENDPOINT: &str = "cgi-bin/openapi/quota/get";
        let url = self.url(ENDPOINT);
        let body = json_bytes(&serde_json::json!({ "cgi_path": cgi_path }))?;
        let answer = self
            .call(account, ENDPOINT, Retry::Transient, || {
                self.http()
                    .post(&url)
                    .query(&[("access_token", access_token.expose_secret())])
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        serde_json::from_value::<QuotaAnswer>(answer)
            .map(|a| a.quota)
            .map_err(|e| {
                UpstreamError::Unparseable(format!(
                    "{ENDPOINT} answer has an unexpected shape: {e}"
                ))
            })
    }
}
