//! De-duplication of WeChat's retries, across requests and across wxgate instances.
//!
//! WeChat re-sends a push it got no answer for within 5 s, up to three deliveries in all, and a
//! retry can arrive while the first delivery is still being handled (a slow webhook), possibly
//! at another instance. Every delivery therefore first *claims* the push's key in the shared
//! [`Store`] with `put_if_absent` of a pending marker (TTL [`PENDING_TTL`]); the claimant handles
//! the push and replaces the marker with its final answer bytes (TTL `push.dedup_ttl_s`). A
//! delivery that finds an answer sends those very bytes; one that finds a pending marker polls
//! until the answer appears, for at most the time left of its own answer budget, and then
//! answers `success` (which WeChat takes as delivered). A claimant that gives up (the database
//! failed) deletes its own marker so that the next retry handles the push afresh.
//!
//! A push whose answer needs no webhook call (a rule answers it, or the account has no
//! webhook) skips the pending marker: its answer is computed by every delivery — harmless,
//! follower updates being idempotent per `CreateTime`. Normally it is not stored at all: the
//! push service derives the reply's timestamp, nonce and encryption prefix from the push
//! itself, so every delivery computes the very same bytes (see `service::Stamp::Derived`).
//! Only a push stamped far from this gateway's clock is answered at the gateway's time and
//! stored with one `put_if_absent` ([`settle`]); a delivery that loses that race sends the
//! winner's bytes. (During a rolling upgrade from a version that stored every rule answer, a
//! retry of a push first answered by an older instance gets an equivalent reply with other
//! bytes from a newer one, which does not look for that record.)
//!
//! An encrypted answer is kept in its compact form (raw ciphertext and signature instead of
//! base64 and hex inside XML: about 55 % of the bytes), from which the very same XML is rebuilt
//! for a retry, so a push writes a smaller record to the store. (During a rolling upgrade an
//! instance of a version before this form reads such a record as still pending and answers a
//! retry reaching it with `success`.)
//!
//! When the store itself fails, the push is handled without de-duplication (logged): a lost
//! message is worse than a rare duplicate, and duplicates need a retry, which only happens when
//! the first answer took more than 5 s.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rand::Rng;
use wxgate_proto::crypto::EncryptedReply;

use crate::store::Store;

/// How long a claim lives without an answer. Handling a push is bounded well below this
/// (answer budget 4.5 s plus store writes), so only a crashed instance leaves a marker to
/// expire; a WeChat retry arriving after that handles the push again.
pub const PENDING_TTL: Duration = Duration::from_secs(10);

const TAG_PENDING: u8 = 0;
const TAG_SUCCESS: u8 = 1;
const TAG_XML: u8 = 2;
const TAG_SEALED: u8 = 3;
const TAG_JSON: u8 = 4;
const TAG_SEALED_JSON: u8 = 5;

/// The final answer to a push, as stored for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No passive reply: `200 success` (text/plain).
    Success,
    /// A plaintext passive reply: `200` XML.
    Xml(String),
    /// An encrypted passive reply: `200` with its XML envelope.
    Sealed(EncryptedReply),
    /// A plaintext passive reply of a JSON account (`data_format = "json"`): `200` JSON.
    Json(String),
    /// An encrypted passive reply of a JSON account: `200` with its JSON envelope.
    SealedJson(EncryptedReply),
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = Vec::with_capacity(body.len() + 1);
            v.push(tag);
            v.extend_from_slice(body);
            v
        }
        match self {
            Answer::Success => vec![TAG_SUCCESS],
            Answer::Xml(xml) => tagged(TAG_XML, xml.as_bytes()),
            // A reply not in the canonical form is kept as its XML (never happens with ours).
            Answer::Sealed(sealed) => match sealed.to_compact() {
                Some(compact) => tagged(TAG_SEALED, &compact),
                None => tagged(TAG_XML, sealed.to_xml().as_bytes()),
            },
            Answer::Json(json) => tagged(TAG_JSON, json.as_bytes()),
            Answer::SealedJson(sealed) => match sealed.to_compact() {
                Some(compact) => tagged(TAG_SEALED_JSON, &compact),
                None => tagged(TAG_JSON, sealed.to_json().as_bytes()),
            },
        }
    }

    fn decode(bytes: &[u8]) -> Option<Answer> {
        match bytes.split_first() {
            Some((&TAG_SUCCESS, _)) => Some(Answer::Success),
            Some((&TAG_XML, xml)) => String::from_utf8(xml.to_vec()).ok().map(Answer::Xml),
            Some((&TAG_SEALED, compact)) => {
                EncryptedReply::from_compact(compact).map(Answer::Sealed)
            }
            Some((&TAG_JSON, json)) => String::from_utf8(json.to_vec()).ok().map(Answer::Json),
            Some((&TAG_SEALED_JSON, compact)) => {
                EncryptedReply::from_compact(compact).map(Answer::SealedJson)
            }
            _ => None,
        }
    }
}

/// The content type of a plain-text answer (`success`, an echostr).
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of a passive reply, plain or sealed.
pub const XML: &str = "application/xml; charset=utf-8";
/// The content type of a JSON account's passive reply, plain or sealed.
pub const JSON: &str = "application/json";

impl Answer {
    /// What WeChat is sent: the content type and the body (`success`, or the reply's XML; a
    /// sealed reply in its XML envelope). The status is always 200.
    pub fn into_body(self) -> (&'static str, Cow<'static, str>) {
        match self {
            Answer::Success => (TEXT, Cow::Borrowed("success")),
            Answer::Xml(xml) => (XML, Cow::Owned(xml)),
            Answer::Sealed(sealed) => (XML, Cow::Owned(sealed.to_xml())),
            Answer::Json(json) => (JSON, Cow::Owned(json)),
            Answer::SealedJson(sealed) => (JSON, Cow::Owned(sealed.to_json())),
        }
    }
}

/// The outcome of claiming a push.
pub enum Claim {
    /// This delivery handles the push; finish with [`Ticket::finish`] or [`Ticket::release`].
    Mine(Ticket),
    /// An earlier delivery already answered: send the same bytes.
    Answered(Answer),
    /// An earlier delivery is still being handled and did not finish in time.
    StillPending,
}

/// The right (and duty) to answer one push.
pub struct Ticket {
    key: String,
    /// Our pending marker, or `None` when the store failed and we go unguarded.
    marker: Option<Vec<u8>>,
}

/// Claims `key`, waiting for a concurrent delivery's answer until `deadline`.
pub async fn claim(store: &dyn Store, key: String, deadline: Instant) -> Claim {
    let mut marker = vec![TAG_PENDING];
    marker.extend_from_slice(format!("{:016x}", rand::thread_rng().gen::<u64>()).as_bytes());
    let mut pause = Duration::from_millis(20);
    loop {
        match store.put_if_absent(&key, &marker, Some(PENDING_TTL)).await {
            Ok(true) => {
                return Claim::Mine(Ticket {
                    key,
                    marker: Some(marker),
                })
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "push: store unavailable, handling without de-duplication");
                return Claim::Mine(Ticket { key, marker: None });
            }
        }
        // Someone holds the key: an answer, or a pending claim to wait for. If it vanished in
        // between (answer expired, claim released) the loop claims again.
        match store.get(&key).await {
            Ok(Some(bytes)) => {
                if let Some(answer) = Answer::decode(&bytes) {
                    tracing::debug!("push: retry answered from the de-duplication record");
                    return Claim::Answered(answer);
                }
            }
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "push: store unavailable while waiting for a retry's answer")
            }
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::debug!("push: earlier delivery still in progress; answering success");
            return Claim::StillPending;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The side-effect-free path for an answer that cannot be derived from the push (its
/// `CreateTime` is far from this gateway's clock): `answer` was computed without calling the
/// webhook, so computing it twice is harmless and one store write is enough. The first answer
/// stored wins and every delivery gets its bytes; a pending claim of a delivery that does call
/// the webhook (an instance with another config) is waited for as in [`claim`].
pub async fn settle(
    store: &dyn Store,
    key: &str,
    answer: Answer,
    ttl: Duration,
    deadline: Instant,
) -> Answer {
    let encoded = answer.encode();
    let mut pause = Duration::from_millis(20);
    loop {
        match store.put_if_absent(key, &encoded, Some(ttl)).await {
            Ok(true) => return answer,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "push: store unavailable, answer not kept for retries");
                return answer;
            }
        }
        match store.get(key).await {
            Ok(Some(bytes)) => {
                if let Some(stored) = Answer::decode(&bytes) {
                    return stored;
                }
            }
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "push: store unavailable while reading a retry's answer");
                return answer;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Answer::Success;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

impl Ticket {
    /// Stores the final answer for retries (TTL `dedup_ttl`).
    pub async fn finish(self, store: &dyn Store, answer: &Answer, dedup_ttl: Duration) {
        if self.marker.is_none() {
            return;
        }
        if let Err(e) = store
            .put(&self.key, &answer.encode(), Some(dedup_ttl))
            .await
        {
            tracing::warn!(error = %e, "push: could not store the answer for retries");
        }
    }

    /// Gives the push up so that the next retry handles it afresh.
    pub async fn release(self, store: &dyn Store) {
        if let Some(marker) = &self.marker {
            if let Err(e) = store.delete_if_equals(&self.key, marker).await {
                tracing::warn!(error = %e, "push: could not release the claim");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_markers_are_not_answers() {
        let key = wxgate_proto::AesKey::from_bytes([7; 32]);
        let sealed =
            wxgate_proto::seal_reply(&key, "token", "wxappid", "<xml>回复</xml>", None, None);
        let xml = sealed.to_xml();
        let compact = Answer::Sealed(sealed.clone()).encode();
        assert_eq!(compact[0], TAG_SEALED);
        assert!(
            compact.len() * 10 < xml.len() * 7,
            "{} vs {}",
            compact.len(),
            xml.len()
        );
        for a in [
            Answer::Success,
            Answer::Xml("<xml>é</xml>".into()),
            Answer::Sealed(sealed.clone()),
            Answer::Json(r#"{"MsgType":"transfer_customer_service"}"#.into()),
            Answer::SealedJson(sealed.clone()),
        ] {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
        // A reply that has no compact form is kept as its XML, which answers the same bytes.
        let mut odd = sealed;
        odd.msg_signature.make_ascii_uppercase();
        let kept = Answer::decode(&Answer::Sealed(odd.clone()).encode());
        assert_eq!(kept, Some(Answer::Xml(odd.to_xml())));
        assert_eq!(Answer::decode(&[TAG_PENDING, b'1']), None);
        assert_eq!(Answer::decode(&[]), None);
    }
}
