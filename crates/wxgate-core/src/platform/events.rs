//! The authorization event URL (授权事件接收URL, `POST /wx/component/{component}`): what WeChat
//! tells a platform about itself and its merchants.
//!
//! Checked as pushes are (`crate::push`): the query first — the timestamp within
//! `push.replay_window_s`, `msg_signature` present — before the body is read; then the body's
//! `msg_signature` over the platform's Token, and its decryption with the platform's key, which
//! must name the platform's appid. Then, by `InfoType`:
//!
//! - `component_verify_ticket`: kept in the store, the newest (by CreateTime) winning;
//! - `authorized` / `updateauthorized`: the code exchanged and the authorizer recorded
//!   ([`super::authorization::record`], once per code);
//! - `unauthorized`: the authorizer revoked everywhere;
//! - anything else: acknowledged.
//!
//! Each is idempotent, so WeChat's retries change nothing; a failure answers an error so that
//! WeChat retries.

use std::sync::Arc;

use wxgate_proto::{AuthEvent, AuthInfo};

use super::{authorization, component, PlatformError};
use crate::config::Component;
use crate::domain::unix_now;
use crate::gateway::Gateway;
use crate::push::{check_fresh, open_sealed, PushError, PushQuery};

/// An event whose query [`check`] accepted.
pub struct CheckedEvent {
    component: Arc<Component>,
    query: PushQuery,
}

/// Everything the query decides, before the body is read: the platform exists, the push names
/// its `msg_signature`, nonce and a fresh timestamp.
pub fn check(
    gateway: &Gateway,
    name: &str,
    raw_query: Option<&str>,
) -> Result<CheckedEvent, PlatformError> {
    let component = component(gateway, name)?;
    let query = PushQuery::parse(raw_query);
    if let Some(t) = query.encrypt_type.as_deref().map(str::trim) {
        if !t.is_empty() && !t.eq_ignore_ascii_case("aes") {
            return Err(PushError::InvalidEncryptType.into());
        }
    }
    let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    for (value, name) in [
        (&query.timestamp, "timestamp"),
        (&query.nonce, "nonce"),
        (&query.msg_signature, "msg_signature"),
    ] {
        if !present(value) {
            return Err(PushError::MissingParameter(name).into());
        }
    }
    check_fresh(
        query.timestamp.as_deref().unwrap_or_default(),
        unix_now(),
        gateway.settings.push.replay_window_s,
    )?;
    Ok(CheckedEvent { component, query })
}

/// Handles an event whose query [`check`] accepted (see the module documentation). `Ok` is
/// answered `success`.
pub async fn receive(
    gateway: &Gateway,
    checked: CheckedEvent,
    body: &[u8],
) -> Result<(), PlatformError> {
    let CheckedEvent { component, query } = checked;
    let (plaintext, _key) = open_sealed(&component.credentials, &query, body)?;
    let event = AuthEvent::parse(plaintext.as_bytes()).map_err(|e| {
        PushError::InvalidMessage(format!(
            "the decrypted event is not an authorization event: {e}"
        ))
    })?;
    if event.component_appid != component.appid {
        return Err(PushError::InvalidMessage(format!(
            "the event names platform appid {:?}, not this platform's",
            event.component_appid
        ))
        .into());
    }
    let window = gateway.settings.push.replay_window_s;
    let ahead = event.create_time.saturating_sub(unix_now());
    if window > 0 && ahead > 0 && ahead.unsigned_abs() > window {
        return Err(PushError::Stale {
            replay_window_s: window,
            what: "the event's CreateTime lies in the future",
        }
        .into());
    }
    let name = component.name.as_str();
    match &event.info {
        AuthInfo::VerifyTicket { ticket } => {
            let kept = gateway
                .creds
                .keep_ticket(name, ticket, event.create_time)
                .await?;
            tracing::info!(component = name, kept, "component_verify_ticket received");
        }
        AuthInfo::Authorized(grant) | AuthInfo::UpdateAuthorized(grant) => {
            let appid = authorization::record(
                gateway,
                &component,
                &grant.authorization_code,
                event.create_time,
            )
            .await?;
            if appid != grant.authorizer_appid {
                tracing::warn!(component = name, event_appid = %grant.authorizer_appid, appid = %appid,
                    "the authorization code belongs to another appid than the event names");
            }
        }
        AuthInfo::Unauthorized { authorizer_appid } => {
            authorization::revoke(gateway, &component, authorizer_appid, event.create_time).await?;
        }
        AuthInfo::Other { info_type } => {
            tracing::info!(component = name, info_type = %info_type, "platform event acknowledged");
        }
    }
    Ok(())
}
