//! One push, from bytes to answer: authenticate and open it ([`inbound`](super::inbound)),
//! de-duplicate it against retries ([`dedup`](super::dedup)), update the follower record, pick
//! the reply (rules first, then the webhook), render and — in safe/compatible mode — seal it.
//!
//! Guarantees: the answer comes within [`ANSWER_BUDGET`] of the request's arrival (WeChat gives
//! up after 5 s); the webhook runs once per push however many deliveries arrive, at however
//! many instances, and in a task of its own (tracked, so shutdown lets it finish within
//! `server.shutdown_grace_s`), so a WeChat connection that drops early cancels
//! neither the call nor the answer kept for the retry; every delivery of a push gets the same
//! answer bytes; an encrypted reply is sealed with the key that opened the push, with its own
//! timestamp and nonce (never the request's).
//!
//! How the bytes stay the same: a webhook's answer is kept in the de-duplication record. A rule's
//! answer (and `success` when there is no webhook) is a function of the push and the
//! configuration, so for a push stamped near this gateway's clock — every real one — it is
//! *derived*: the reply carries the push's `CreateTime`, and the encryption prefix and nonce
//! come from a keyed hash of the push's identity ([`Stamp::Derived`]). Every delivery, at every
//! instance, computes the same bytes without touching the store. Instances that serve one
//! account are expected to share its rules and webhook setting; while they differ (during a
//! rolling change of the configuration) a retry reaching another instance may be answered by
//! that instance's configuration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wxgate_proto::crypto::{seal_reply, seal_reply_derived};
use wxgate_proto::json_push::reply_to_json;
use wxgate_proto::Reply;

use super::dedup::{self, Answer, Claim, Ticket};
use super::inbound::{self, Inbound, Mode, Protection, PushQuery};
use super::runtime::push_token;
use super::{observed, webhook, PushError};
use crate::config::Account;
use crate::domain::{unix_now, DataFormat};
use crate::gateway::Gateway;

/// Time from a push's arrival within which it is answered (WeChat waits 5 s).
pub const ANSWER_BUDGET: Duration = Duration::from_millis(4500);

/// Longest wait for the follower-record update before the push is refused with 503.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(3);

/// URL verification (`GET /wx/{account}`): the echostr to answer (as plain text) when the
/// request is authentic.
pub fn verify_url(
    gateway: &Gateway,
    account: &Account,
    raw_query: Option<&str>,
) -> Result<String, PushError> {
    push_token(account)?;
    let q = PushQuery::parse(raw_query);
    let result = inbound::verify_url(
        account,
        &q,
        unix_now(),
        gateway.settings.push.replay_window_s,
    );
    observed::verification(gateway, account, &result);
    result
}

/// A push whose query [`check`] accepted: what its body is then opened with.
pub struct Checked {
    query: PushQuery,
    protection: Protection,
}

/// Everything about a push (`POST /wx/{account}`) that its query decides — the Token, the
/// signature, the timestamp's freshness, the protection mode (see `inbound::check_query`).
/// Called *before* the body is read: an unsigned request costs no body read at all.
pub fn check(
    gateway: &Gateway,
    account: &Account,
    raw_query: Option<&str>,
) -> Result<Checked, PushError> {
    push_token(account)?;
    let query = PushQuery::parse(raw_query);
    let window = gateway.settings.push.replay_window_s;
    let protection = inbound::check_query(account, &query, unix_now(), window)?;
    Ok(Checked { query, protection })
}

/// The answer to a push whose query [`check`] accepted, given its body and the moment it
/// arrived (the [`ANSWER_BUDGET`] runs from there). Takes the gateway's `Arc` because a push
/// for the webhook is handled in a task of its own.
pub async fn receive(
    gateway: &Arc<Gateway>,
    account: &Arc<Account>,
    checked: Checked,
    body: Bytes,
    started: Instant,
) -> Result<Answer, PushError> {
    let window = gateway.settings.push.replay_window_s;
    let Checked { query, protection } = checked;
    let opened = inbound::open(account, &query, protection, &body, unix_now(), window);
    observed::opened(gateway, account, protection, &opened);
    let inbound = opened?;

    let key = format!("push:{}:{}", account.name, inbound.message.dedup_key());
    let deadline = started + ANSWER_BUDGET;
    let rule_reply = crate::config::rule::first_match(&account.rules, &inbound.message);
    if rule_reply.is_some() || account.webhook.is_none() {
        return answer_without_webhook(gateway, account, &inbound, rule_reply, &key, deadline)
            .await;
    }
    let ticket = match dedup::claim(gateway.store.as_ref(), key, deadline).await {
        Claim::Answered(answer) => return Ok(answer),
        Claim::StillPending => return Ok(Answer::Success),
        Claim::Mine(ticket) => ticket,
    };
    // Tracked: shutdown waits for it (see `crate::tasks`).
    let task = gateway.tasks.spawn(handle(
        Arc::clone(gateway),
        Arc::clone(account),
        inbound,
        ticket,
        deadline,
    ));
    match task.await {
        Ok(Some(result)) => result,
        Ok(None) => Err(PushError::ShuttingDown),
        Err(e) => Err(PushError::TaskFailed(e.to_string())),
    }
}

/// A push answered by a rule, or by nothing (no webhook). Nothing in it has side effects
/// beyond the idempotent follower update, so every delivery computes its answer; what keeps
/// the answers of all deliveries identical is, normally, that the answer is derived from the
/// push itself ([`Stamp::Derived`]: no store access at all) and, for a push whose `CreateTime`
/// is far from this gateway's clock, the first answer stored in the de-duplication record
/// ([`dedup::settle`]).
async fn answer_without_webhook(
    gateway: &Gateway,
    account: &Account,
    inbound: &Inbound,
    reply: Option<&Reply>,
    key: &str,
    deadline: Instant,
) -> Result<Answer, PushError> {
    record_follow(gateway, account, inbound).await?;
    observed::answered(gateway, account, inbound, observed::by(reply, true));
    let Some(reply) = reply else {
        // `success` is the same bytes for every delivery: nothing to keep.
        return Ok(Answer::Success);
    };
    let now = unix_now();
    if let Some(time) = derived_time(inbound.message.create_time(), now) {
        let stamp = Stamp::Derived { time, push: key };
        return Ok(render(account, inbound, Some(reply), stamp));
    }
    let answer = render(account, inbound, Some(reply), Stamp::Fresh(now));
    let ttl = Duration::from_secs(gateway.settings.push.dedup_ttl_s);
    Ok(dedup::settle(gateway.store.as_ref(), key, answer, ttl, deadline).await)
}

/// How far (seconds) a push's `CreateTime` may be from this gateway's clock for its rule answer
/// to be derived from the push. WeChat stamps a message when it sends it and delivers it at
/// most three times, 5 s apart, so every delivery of a real push is well inside; a push outside
/// (a clock that is off, a replayed test message) is answered at the gateway's time and kept in
/// the store instead. The only way a push's deliveries can fall on both sides is a clock about
/// this far off WeChat's, and then a retry gets an equivalent reply with other bytes.
const DERIVED_ANSWER_WINDOW_S: u64 = 30;

/// The push's `CreateTime` as the reply's time, when the answer may be derived from the push.
fn derived_time(create_time: i64, now: i64) -> Option<u64> {
    if create_time.abs_diff(now) > DERIVED_ANSWER_WINDOW_S {
        return None;
    }
    u64::try_from(create_time).ok()
}

/// Everything after the claim of a push that goes to the webhook; runs in its own task, so
/// that a WeChat connection dropped early cancels neither the webhook call nor the answer
/// kept for the retry.
async fn handle(
    gateway: Arc<Gateway>,
    account: Arc<Account>,
    inbound: Inbound,
    ticket: Ticket,
    deadline: Instant,
) -> Result<Answer, PushError> {
    let store = gateway.store.clone();
    if let Err(e) = record_follow(&gateway, &account, &inbound).await {
        // Give the push back: WeChat retries on the 503 and the retry handles it afresh (rules
        // and webhook have not run yet, so nothing happens twice).
        ticket.release(store.as_ref()).await;
        return Err(e);
    }
    let message = &inbound.message;
    let wait = account
        .webhook
        .as_ref()
        .map_or(Duration::ZERO, |w| w.timeout)
        .min(deadline.saturating_duration_since(Instant::now()));
    let reply = webhook::ask(
        &gateway,
        &account,
        message.from_user(),
        &message.to_json(),
        wait,
    )
    .await;
    observed::answered(
        &gateway,
        &account,
        &inbound,
        observed::by(reply.as_ref(), false),
    );
    let answer = render(&account, &inbound, reply.as_ref(), Stamp::Fresh(unix_now()));
    let ttl = Duration::from_secs(gateway.settings.push.dedup_ttl_s);
    ticket.finish(store.as_ref(), &answer, ttl).await;
    Ok(answer)
}

/// subscribe/unsubscribe → the follower record, before the push is answered. The scene
/// recorded for a subscribe is its `EventKey` as sent (`qrscene_…` for a QR-code follow),
/// none for a plain follow. A database failure (or no answer within [`FOLLOW_TIMEOUT`]) is a
/// 503 so that WeChat retries.
async fn record_follow(
    gateway: &Gateway,
    account: &Account,
    inbound: &Inbound,
) -> Result<(), PushError> {
    let m = &inbound.message;
    if !m.msg_type().eq_ignore_ascii_case("event") {
        return Ok(());
    }
    let subscribed = match m.event().map(str::trim) {
        Some(e) if e.eq_ignore_ascii_case("subscribe") => true,
        Some(e) if e.eq_ignore_ascii_case("unsubscribe") => false,
        _ => return Ok(()),
    };
    let scene = if subscribed {
        m.event_key().map(str::trim).filter(|k| !k.is_empty())
    } else {
        None
    };
    let users = gateway.users.for_account(&account.name);
    let write = users.record_follow(m.from_user(), subscribed, scene, m.create_time());
    match tokio::time::timeout(FOLLOW_TIMEOUT, write).await {
        Ok(Ok(_changed)) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(account = %account.name, error = %e, "push: follower record not updated; answering 503 so WeChat retries");
            Err(PushError::FollowerRecord(e.to_string()))
        }
        Err(_) => {
            tracing::error!(account = %account.name, "push: follower record update timed out; answering 503 so WeChat retries");
            Err(PushError::FollowerRecord("timed out".into()))
        }
    }
}

/// The time a reply carries and where its seal's randomness comes from.
enum Stamp<'a> {
    /// This time (now), with a random prefix and nonce: the answer must be kept for retries.
    Fresh(i64),
    /// The push's own `CreateTime`, with the prefix and nonce derived from the push's
    /// de-duplication key (`push`) by [`seal_reply_derived`]: every delivery of the push gets
    /// the very same bytes, wherever and whenever it is answered.
    Derived { time: u64, push: &'a str },
}

/// The bytes WeChat gets: `success`, the reply XML (JSON for a `data_format = "json"`
/// account), or the reply sealed with the key that opened the push (timestamp and nonce of the
/// [`Stamp`], never the request's).
fn render(account: &Account, inbound: &Inbound, reply: Option<&Reply>, stamp: Stamp) -> Answer {
    let Some(reply) = reply else {
        return Answer::Success;
    };
    let m = &inbound.message;
    let time = match stamp {
        Stamp::Fresh(now) => now,
        Stamp::Derived { time, .. } => i64::try_from(time).unwrap_or(i64::MAX),
    };
    let xml = match reply.to_xml(m.from_user(), m.to_user(), time) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(account = %account.name, error = %e, "push: reply cannot be rendered; answering success");
            return Answer::Success;
        }
    };
    // A JSON account (`data_format = "json"`) is answered in JSON: the same reply, its XML
    // read back into WeChat's JSON form.
    let json = account.data_format == DataFormat::Json;
    let body = if json {
        match reply_to_json(&xml) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(account = %account.name, error = %e, "push: reply cannot be rendered as JSON; answering success");
                return Answer::Success;
            }
        }
    } else {
        xml
    };
    match inbound.mode {
        Mode::Plain if json => Answer::Json(body),
        Mode::Plain => Answer::Xml(body),
        Mode::Encrypted(key_used) => {
            let (Some(ring), Ok(token)) = (account.keyring.as_ref(), push_token(account)) else {
                return Answer::Success;
            };
            let key = ring.key(key_used);
            let sealed = match stamp {
                Stamp::Fresh(now) => seal_reply(
                    key,
                    token,
                    account.receive_id(),
                    &body,
                    u64::try_from(now).ok(),
                    None,
                ),
                Stamp::Derived { time, push } => seal_reply_derived(
                    key,
                    token,
                    account.receive_id(),
                    &body,
                    time,
                    push.as_bytes(),
                ),
            };
            if json {
                Answer::SealedJson(sealed)
            } else {
                Answer::Sealed(sealed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_is_answered_at_its_own_time_only_near_the_gateway_clock() {
        let now = 1_700_000_000;
        let window = DERIVED_ANSWER_WINDOW_S as i64;
        assert_eq!(derived_time(now, now), Some(1_700_000_000));
        assert_eq!(derived_time(now - window, now), Some((now - window) as u64));
        assert_eq!(derived_time(now + window, now), Some((now + window) as u64));
        assert_eq!(derived_time(now - window - 1, now), None);
        assert_eq!(derived_time(now + window + 1, now), None);
        // Whatever a push claims, nothing overflows and no negative time is used.
        assert_eq!(derived_time(i64::MIN, now), None);
        assert_eq!(derived_time(i64::MAX, now), None);
        assert_eq!(derived_time(-5, 10), None);
        assert_eq!(derived_time(0, 10), Some(0));
    }
}
