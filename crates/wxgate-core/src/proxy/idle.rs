//! The proxy's time bounds that do not cut transfers: `upstream.timeout_ms` bounds each
//! *silence* of a proxied call, not its length. [`Progress`] notes when the last request byte
//! went to WeChat, [`send_within`] waits for the response headers until WeChat has been silent
//! for the timeout since then, and [`idle_bounded`] ends a streamed answer whose chunks stop
//! coming. A long upload or download that keeps moving runs on (up to the forwarder's
//! `TRANSFER_CAP`); a stalled one ends as a timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::ByteStream;

/// Progress of one attempt's request body, shared with the stream that feeds it.
pub(super) struct Progress {
    origin: Instant,
    /// Milliseconds after `origin` of the last byte handed to WeChat.
    last_ms: AtomicU64,
    pub(super) too_large: AtomicBool,
    pub(super) caller_failed: AtomicBool,
}

impl Progress {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            too_large: AtomicBool::new(false),
            caller_failed: AtomicBool::new(false),
        })
    }

    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

/// Why no response headers arrived.
pub(super) enum SendError {
    Reqwest(reqwest::Error),
    /// Nothing moved for `upstream.timeout_ms`.
    Idle,
}

/// Awaits the response headers while the request keeps making progress: fails with a timeout
/// error once `timeout` passed since the later of the start and the last body byte sent.
pub(super) async fn send_within(
    send: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    progress: &Progress,
    timeout: Duration,
) -> Result<reqwest::Response, SendError> {
    tokio::pin!(send);
    loop {
        let deadline = progress.idle_deadline(timeout);
        tokio::select! {
            result = &mut send => return result.map_err(SendError::Reqwest),
            () = tokio::time::sleep_until(deadline) => {
                if progress.idle_deadline(timeout) <= Instant::now() {
                    return Err(SendError::Idle);
                }
            }
        }
    }
}

/// `prefix` (already read), then `inner`, ended with an error when `inner` stays silent for
/// longer than `idle`.
pub(super) fn idle_bounded(
    prefix: Vec<Bytes>,
    inner: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    idle: Duration,
) -> ByteStream {
    let rest = stream::unfold(Some(inner.boxed()), move |state| async move {
        let mut inner = state?;
        match tokio::time::timeout(idle, inner.next()).await {
            Ok(Some(item)) => Some((item, Some(inner))),
            Ok(None) => None,
            Err(_) => {
                tracing::warn!(
                    idle_ms = idle.as_millis(),
                    "proxied download stalled; cut off"
                );
                Some((
                    Err(std::io::Error::other(
                        "WeChat stopped sending the response body",
                    )),
                    None,
                ))
            }
        }
    });
    stream::iter(prefix.into_iter().map(Ok)).chain(rest).boxed()
}
