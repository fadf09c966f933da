//! The business webhook: pushes no rule answers are POSTed to it as JSON, and its answer may
//! become the passive reply.
//!
//! Contract with the webhook: the body is `Message::to_json()` (XML field names), signed with
//! `X-Wxgate-Signature: sha256=<hex HMAC-SHA256 of the exact body with webhook.secret>` (and
//! `X-Wxgate-Account: <account>` for convenience); a 2xx JSON answer `{"reply": {...}}` in the
//! rules' reply shape is the reply, anything else (204, `{}`, `{"reply": null}`) means none.
//!
//! Guarantees: WeChat is answered within `webhook.timeout_ms` (and within the push's answer
//! budget) whatever the webhook does; the call itself keeps running in its own task for up to
//! [`LATE_LIMIT`] (a tracked task: on shutdown it may finish within `server.shutdown_grace_s`,
//! see `crate::tasks`), and a reply that arrives late is sent with the customer-service API
//! (`cgi-bin/message/custom/send`) using the central access_token, refreshed once (guarded)
//! and retried on 40001/40014/42001. Every webhook failure is logged and counted in
//! `wxgate_upstream_calls{endpoint="webhook"}`; none is ever fatal to the push.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use tokio::sync::oneshot;
use wxgate_proto::Reply;

use crate::config::{Account, WebhookTarget};
use crate::credentials::{Again, Fresh, NotRetried};
use crate::gateway::Gateway;
use crate::scrub::reqwest_error;
use crate::upstream::UpstreamError;

/// How long a webhook call may run in total, answered in time or not.
pub const LATE_LIMIT: Duration = Duration::from_secs(60);

/// The signature header value for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// What the webhook said.
enum Outcome {
    Reply(Reply),
    NoReply,
    Failed,
}

/// Asks the webhook about a push and waits for at most `wait`. Returns its reply when it came
/// in time; when it is later, the call continues in the background and its reply goes to
/// `openid` through the customer-service API. Takes the gateway's `Arc` because the call runs
/// in a task of its own.
pub async fn ask(
    gateway: &Arc<Gateway>,
    account: &Arc<Account>,
    target_openid: &str,
    message_json: &Value,
    wait: Duration,
) -> Option<Reply> {
    let target = account.webhook.as_ref()?;
    let body = match serde_json::to_vec(message_json) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(account = %account.name, error = %e, "webhook: cannot encode the message");
            return None;
        }
    };
    let (tx, mut rx) = oneshot::channel::<Outcome>();
    let task_gateway = Arc::clone(gateway);
    let task_account = account.clone();
    let openid = target_openid.to_owned();
    // Tracked, so that a shutdown lets the call and a late reply finish (`crate::tasks`).
    gateway.tasks.spawn(async move {
        let Some(target) = task_account.webhook.as_ref() else {
            return;
        };
        let outcome = call(&task_gateway, &task_account.name, target, body).await;
        if let Err(Outcome::Reply(reply)) = tx.send(outcome) {
            // The push was answered without us: deliver the reply on the side.
            deliver_late(&task_gateway, &task_account.name, &openid, &reply).await;
        }
    });
    let outcome = match tokio::time::timeout(wait, &mut rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Outcome::Failed,
        Err(_) => {
            // Closing first means a send racing with the deadline either lands (and is used
            // now) or fails (and the task delivers it late): never both, never neither.
            rx.close();
            match rx.try_recv() {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::info!(
                        account = %account.name,
                        timeout_ms = target.timeout.as_millis() as u64,
                        "webhook: no answer within the deadline; WeChat gets `success`, a late \
                         reply will be sent with the customer-service API"
                    );
                    gateway
                        .metrics
                        .upstream_call(&account.name, "webhook", "deadline_missed");
                    Outcome::NoReply
                }
            }
        }
    };
    match outcome {
        Outcome::Reply(r) => Some(r),
        Outcome::NoReply | Outcome::Failed => None,
    }
}

/// One webhook call, bounded by [`LATE_LIMIT`]; outcome logged and counted.
async fn call(gateway: &Gateway, account: &str, target: &WebhookTarget, body: Vec<u8>) -> Outcome {
    let signature = sign(target.secret.expose_secret().as_bytes(), &body);
    let request = gateway
        .webhooks
        .http
        .post(&target.url)
        .timeout(LATE_LIMIT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Wxgate-Signature", signature)
        .header("X-Wxgate-Account", account)
        .body(body);
    let failed = |label: &str, detail: String| {
        tracing::warn!(account, outcome = label, detail = %detail, "webhook call failed; no reply from it");
        gateway.metrics.upstream_call(account, "webhook", label);
        Outcome::Failed
    };
    // reqwest quotes the URL in its errors, and a webhook URL may hold a key in its query.
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return failed("timeout", reqwest_error(e)),
        Err(e) => return failed("transport", reqwest_error(e)),
    };
    let status = response.status();
    if !status.is_success() {
        return failed(&format!("http_{}", status.as_u16()), status.to_string());
    }
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return failed("transport", reqwest_error(e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        gateway.metrics.upstream_call(account, "webhook", "ok");
        return Outcome::NoReply;
    }
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return failed("bad_json", format!("the answer is not JSON: {e}")),
    };
    let reply = match value.get("reply") {
        None | Some(Value::Null) => None,
        Some(r) => match serde_json::from_value::<Reply>(r.clone()) {
            Ok(reply) => Some(reply),
            Err(e) => {
                return failed(
                    "invalid_reply",
                    format!("`reply` is not a valid reply: {e}"),
                )
            }
        },
    };
    gateway.metrics.upstream_call(account, "webhook", "ok");
    match reply {
        Some(r) => Outcome::Reply(r),
        None => Outcome::NoReply,
    }
}

/// The customer-service message body for a reply, or `None` for replies that cannot be sent
/// that way (`transfer_customer_service`).
pub fn custom_message(openid: &str, reply: &Reply) -> Option<Value> {
    let (msgtype, content) = match reply {
        Reply::Text { content } => ("text", json!({ "content": content })),
        Reply::Image { media_id } => ("image", json!({ "media_id": media_id })),
        Reply::Voice { media_id } => ("voice", json!({ "media_id": media_id })),
        Reply::Video {
            media_id,
            title,
            description,
        } => {
            let mut o = Map::new();
            o.insert("media_id".into(), json!(media_id));
            insert_opt(&mut o, "title", title);
            insert_opt(&mut o, "description", description);
            ("video", Value::Object(o))
        }
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => {
            let mut o = Map::new();
            insert_opt(&mut o, "title", title);
            insert_opt(&mut o, "description", description);
            insert_opt(&mut o, "musicurl", music_url);
            insert_opt(&mut o, "hqmusicurl", hq_music_url);
            o.insert("thumb_media_id".into(), json!(thumb_media_id));
            ("music", Value::Object(o))
        }
        Reply::News { articles } => {
            let articles: Vec<Value> = articles
                .iter()
                .map(|a| {
                    json!({
                        "title": a.title,
                        "description": a.description,
                        "url": a.url,
                        "picurl": a.pic_url,
                    })
                })
                .collect();
            ("news", json!({ "articles": articles }))
        }
        Reply::TransferCustomerService { .. } => return None,
    };
    let mut body = Map::new();
    body.insert("touser".into(), json!(openid));
    body.insert("msgtype".into(), json!(msgtype));
    body.insert(msgtype.into(), content);
    Some(Value::Object(body))
}

fn insert_opt(o: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        o.insert(key.into(), json!(v));
    }
}

/// Sends a late webhook reply with the customer-service API; one guarded token refresh and
/// retry when WeChat says the token is invalid. Failures are logged (the client counts them).
async fn deliver_late(gateway: &Gateway, account: &str, openid: &str, reply: &Reply) {
    let Some(body) = custom_message(openid, reply) else {
        tracing::warn!(
            account,
            reply_type = reply.msg_type(),
            "webhook: a late reply of this type cannot be sent with the customer-service API; dropped"
        );
        return;
    };
    let client = &gateway.client;
    let body = &body;
    let send = |token: SecretString| async move {
        client.send_custom_message(account, &token, body).await
    };
    let rejected =
        |r: &Result<(), UpstreamError>| r.as_ref().is_err_and(UpstreamError::is_token_invalid);
    let sent = match gateway
        .creds
        .with_fresh_token(account, Again::Always, send, rejected)
        .await
    {
        Ok(sent) => sent,
        Err(e) => {
            tracing::warn!(account, error = %e, "webhook: late reply not sent, no access_token");
            return;
        }
    };
    match sent {
        Fresh::First(Ok(())) => tracing::info!(
            account,
            "webhook: late reply sent with the customer-service API"
        ),
        Fresh::Retried { second: Ok(()), .. } => {
            tracing::info!(account, "webhook: late reply sent after a token refresh");
        }
        Fresh::NotRetried {
            why: NotRetried::RefreshFailed(e),
            ..
        } => {
            tracing::warn!(account, error = %e, "webhook: late reply not sent, token refresh failed");
        }
        Fresh::First(Err(e))
        | Fresh::Retried { second: Err(e), .. }
        | Fresh::NotRetried { first: Err(e), .. } => {
            tracing::warn!(account, error = %e, "webhook: late reply not sent");
        }
        // `Again::Always` retries after every successful refresh, and a first success is
        // never a rejection.
        Fresh::NotRetried { first: Ok(()), .. } => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signature_is_rfc4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn custom_messages_have_wechat_field_names() {
        let music: Reply = serde_json::from_value(json!({"type": "music", "title": "t",
            "music_url": "http://m", "hq_music_url": "http://h", "thumb_media_id": "th"}))
        .unwrap();
        assert_eq!(
            custom_message("o1", &music).unwrap(),
            json!({"touser": "o1", "msgtype": "music", "music": {"title": "t",
                "musicurl": "http://m", "hqmusicurl": "http://h", "thumb_media_id": "th"}})
        );
        let news: Reply = serde_json::from_value(json!({"type": "news", "articles": [
            {"title": "a", "description": "d", "url": "http://u", "pic_url": "http://p"}]}))
        .unwrap();
        assert_eq!(
            custom_message("o1", &news).unwrap()["news"]["articles"][0]["picurl"],
            "http://p"
        );
        assert!(
            custom_message("o1", &Reply::TransferCustomerService { kf_account: None }).is_none()
        );
    }
}
