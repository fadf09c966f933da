//! What the mock pushes to a component's authorization event URL, and how.
//!
//! WeChat tells a third-party platform about tickets and authorizations only by pushing
//! encrypted XML to the platform's 授权事件接收URL; this module builds those events exactly
//! (`POST {push_url}?signature&timestamp&nonce&encrypt_type=aes&msg_signature` with
//! `<xml><AppId/><Encrypt/></xml>`, the receive id being the component appid) and delivers
//! them. Events are sealed while the state is locked ([`seal`], synchronous) and delivered after
//! the lock is released ([`deliver`]), so no lock is held across network I/O. The periodic
//! ticket pusher holds only a weak reference to the mock: it ends when the mock is dropped, and
//! when its generation is bumped (re-registration or `reset`).

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

use super::crypto;
use super::{PushAnswer, PushError};
use crate::Shared;

/// An event ready to be POSTed.
pub(crate) struct Sealed {
    url: String,
    body: String,
}

/// Wall-clock Unix time: pushes carry real timestamps (receivers check them against their own
/// clock), whatever the mock clock says.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn cdata(out: &mut String, name: &str, value: &str) {
    // An appid given by a test could contain "]]>": split it over two CDATA sections.
    let value = value.replace("]]>", "]]]]><![CDATA[>");
    out.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>"));
}

pub(crate) fn plain(out: &mut String, name: &str, value: u64) {
    out.push_str(&format!("<{name}>{value}</{name}>"));
}

fn event(component: &str, info_type: &str, fill: impl FnOnce(&mut String)) -> String {
    let mut xml = String::from("<xml>");
    cdata(&mut xml, "AppId", component);
    plain(&mut xml, "CreateTime", unix_now());
    cdata(&mut xml, "InfoType", info_type);
    fill(&mut xml);
    xml.push_str("</xml>");
    xml
}

pub(crate) fn ticket_event(component: &str, ticket: &str) -> String {
    event(component, "component_verify_ticket", |x| {
        cdata(x, "ComponentVerifyTicket", ticket);
    })
}

/// `authorized` or `updateauthorized`.
pub(crate) fn authorized_event(
    component: &str,
    info_type: &str,
    authorizer: &str,
    code: &str,
    pre_auth_code: &str,
) -> String {
    event(component, info_type, |x| {
        cdata(x, "AuthorizerAppid", authorizer);
        cdata(x, "AuthorizationCode", code);
        plain(
            x,
            "AuthorizationCodeExpiredTime",
            unix_now() + super::model::AUTH_CODE_TTL_S,
        );
        cdata(x, "PreAuthCode", pre_auth_code);
    })
}

pub(crate) fn unauthorized_event(component: &str, authorizer: &str) -> String {
    event(component, "unauthorized", |x| {
        cdata(x, "AuthorizerAppid", authorizer);
    })
}

/// Encrypts and signs `inner` for the component's push URL.
pub(crate) fn seal(
    push_url: &str,
    token: &str,
    key: &[u8; 32],
    component: &str,
    inner: &str,
) -> Result<Sealed, PushError> {
    let mut url = url::Url::parse(push_url).map_err(|_| PushError::InvalidPushUrl)?;
    let encrypt = crypto::encrypt(key, inner, component);
    let timestamp = unix_now().to_string();
    let nonce = rand::thread_rng()
        .gen_range(100_000_000u32..2_000_000_000)
        .to_string();
    url.query_pairs_mut()
        .append_pair("signature", &crypto::signature(token, &timestamp, &nonce))
        .append_pair("timestamp", &timestamp)
        .append_pair("nonce", &nonce)
        .append_pair("encrypt_type", "aes")
        .append_pair(
            "msg_signature",
            &crypto::msg_signature(token, &timestamp, &nonce, &encrypt),
        );
    let mut body = String::from("<xml>");
    cdata(&mut body, "AppId", component);
    cdata(&mut body, "Encrypt", &encrypt);
    body.push_str("</xml>");
    Ok(Sealed {
        url: url.into(),
        body,
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // Push URLs are the tests' own receivers: never through a proxy from the environment.
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

/// POSTs the event (WeChat waits 5 s for an answer); the receiver's status and body.
pub(crate) async fn deliver(sealed: Sealed) -> Result<PushAnswer, PushError> {
    let response = client()
        .post(&sealed.url)
        .header("content-type", "text/xml")
        .body(sealed.body)
        .send()
        .await
        .map_err(|e| PushError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| PushError::Transport(e.to_string()))?;
    Ok(PushAnswer { status, body })
}

/// Delivers in the background (WeChat does not wait for the merchant's browser); failures are
/// logged. Without a Tokio runtime (a mock built outside one) nothing is sent.
pub(crate) fn deliver_later(sealed: Sealed) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("mock WeChat: no runtime to push a platform event from");
        return;
    };
    runtime.spawn(async move {
        if let Err(e) = deliver(sealed).await {
            tracing::debug!(error = %e, "mock WeChat: platform event push failed");
        }
    });
}

/// Issues a ticket for `component` and seals its push (None: no push URL; the ticket is
/// issued all the same, as WeChat issues it whether it reaches the platform or not).
pub(crate) fn ticket_push(shared: &Shared, component: &str) -> Result<Option<Sealed>, PushError> {
    let mut s = shared.lock();
    let now = s.now();
    let ticket = s
        .platform
        .issue_ticket(component, now)
        .ok_or(PushError::UnknownComponent)?;
    let c = s
        .platform
        .components
        .get(component)
        .ok_or(PushError::UnknownComponent)?;
    let Some(url) = c.config.push_url.as_deref() else {
        return Ok(None);
    };
    let key = c.key.as_ref().ok_or(PushError::InvalidKey)?;
    let inner = ticket_event(component, &ticket);
    seal(url, &c.config.token, key, component, &inner).map(Some)
}

/// Seals `inner` for `component`'s push URL (None: it has none).
pub(crate) fn event_push(
    shared: &Shared,
    component: &str,
    inner: &str,
) -> Result<Option<Sealed>, PushError> {
    let s = shared.lock();
    let c = s
        .platform
        .components
        .get(component)
        .ok_or(PushError::UnknownComponent)?;
    let Some(url) = c.config.push_url.as_deref() else {
        return Ok(None);
    };
    let key = c.key.as_ref().ok_or(PushError::InvalidKey)?;
    seal(url, &c.config.token, key, component, inner).map(Some)
}

/// Pushes a ticket now and then every `every` (if set) while the mock lives and the
/// component's pusher generation is still `generation`.
pub(crate) fn spawn_pusher(
    shared: &Arc<Shared>,
    component: String,
    generation: u64,
    every: Option<Duration>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("mock WeChat: no runtime to push component_verify_ticket from");
        return;
    };
    let weak: Weak<Shared> = Arc::downgrade(shared);
    runtime.spawn(async move {
        loop {
            let sealed = {
                let Some(shared) = weak.upgrade() else { return };
                if shared.lock().platform.pusher_gen(&component) != Some(generation) {
                    return;
                }
                ticket_push(&shared, &component)
            };
            match sealed {
                Ok(Some(sealed)) => {
                    if let Err(e) = deliver(sealed).await {
                        tracing::debug!(error = %e, "mock WeChat: ticket push failed");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "mock WeChat: ticket push impossible");
                    return;
                }
            }
            match every {
                Some(every) if !every.is_zero() => tokio::time::sleep(every).await,
                _ => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_never_ends_early() {
        let xml = unauthorized_event("wxc", "wx]]><evil/>");
        assert!(
            xml.contains("<![CDATA[wx]]]]><![CDATA[><evil/>]]>"),
            "{xml}"
        );
        assert!(xml.starts_with("<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>"));
        assert!(xml.contains("<InfoType><![CDATA[unauthorized]]></InfoType>"));
    }
}
