//! The follower's side of store notices, shared by every backend: a bounded queue that never
//! blocks the backend's reading task and says so when it had to drop something.
//!
//! A backend's task reads notices off its connection as fast as they come; the follower (the
//! credential manager) may be slower. Rather than buffering without bound or blocking the
//! connection, a full queue drops the notice and remembers it did; as soon as there is room
//! again the follower is sent [`Notice::Missed`], which it treats like a reconnection: re-read
//! what it relies on. A backend whose notices wait in a table (SQLite) waits for room instead
//! ([`NoticeSender::send_waiting`]): nothing is lost by reading the table later.

use tokio::sync::mpsc;

use super::StoreError;

/// The longest notice a backend must carry (PostgreSQL's NOTIFY takes up to 8000 bytes).
pub const MAX_NOTICE_LEN: usize = 1000;
/// Notices waiting for the follower before newer ones are dropped (and `Missed` sent).
pub const NOTICE_QUEUE: usize = 1024;

/// What a follower of the store receives (see [`super::Store::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A message some instance sent with [`super::Store::notify`] (this one included).
    Message(String),
    /// Notices may have been lost (the backend reconnected, or the follower lagged behind):
    /// whoever follows should re-read what it relies on.
    Missed,
}

/// The backend's end of a follower's queue.
pub(super) struct NoticeSender {
    tx: mpsc::Sender<Notice>,
    /// A notice was dropped and the follower has not been told yet.
    dropped: bool,
}

/// A follower's queue: the backend's end and the follower's.
pub(super) fn queue() -> (NoticeSender, mpsc::Receiver<Notice>) {
    let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
    (NoticeSender { tx, dropped: false }, rx)
}

impl NoticeSender {
    /// Queues `notice` without waiting. Returns false once the follower is gone (the backend's
    /// task should then end).
    pub(super) fn send(&mut self, notice: Notice) -> bool {
        if self.dropped {
            match self.tx.try_send(Notice::Missed) {
                Ok(()) => self.dropped = false,
                Err(mpsc::error::TrySendError::Full(_)) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(notice) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped = true;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues `notice`, waiting for room: for a backend whose notices wait for it anyway (a
    /// table read at its own pace), so none is dropped. Returns false once the follower is gone.
    pub(super) async fn send_waiting(&mut self, notice: Notice) -> bool {
        self.tx.send(notice).await.is_ok()
    }

    /// Resolves once the follower has dropped its receiver.
    pub(super) async fn closed(&self) {
        self.tx.closed().await
    }
}

/// Refuses a notice longer than [`MAX_NOTICE_LEN`].
pub(super) fn check_len(message: &str) -> Result<(), StoreError> {
    if message.len() > MAX_NOTICE_LEN {
        return Err(StoreError::Backend(format!(
            "a notice is at most {MAX_NOTICE_LEN} bytes, this one has {}",
            message.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_then_says_so() {
        let (mut tx, mut rx) = queue();
        for i in 0..NOTICE_QUEUE {
            assert!(tx.send(Notice::Message(i.to_string())));
        }
        // Full: this one is dropped.
        assert!(tx.send(Notice::Message("lost".into())));
        assert_eq!(rx.recv().await, Some(Notice::Message("0".into())));
        assert_eq!(rx.recv().await, Some(Notice::Message("1".into())));
        // Room again: the follower hears that something was lost, then the new notice.
        assert!(tx.send(Notice::Message("after".into())));
        let mut rest = Vec::new();
        while let Ok(n) = rx.try_recv() {
            rest.push(n);
        }
        assert_eq!(rest.len(), NOTICE_QUEUE);
        assert_eq!(rest[NOTICE_QUEUE - 2], Notice::Missed);
        assert_eq!(rest[NOTICE_QUEUE - 1], Notice::Message("after".into()));
        assert!(!rest.contains(&Notice::Message("lost".into())));
        drop(rx);
        assert!(!tx.send(Notice::Message("gone".into())));
    }
}
