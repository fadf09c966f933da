//! When each cached credential is due for its refresh-ahead: a min-heap keyed by due time, so
//! the refresher sleeps until the earliest and touches nothing else — idle cost independent of
//! how many accounts there are.
//!
//! An entry is pushed whenever this instance adopts a credential it did not hold (fetched
//! here, read from the store, or announced by another instance). Entries are never removed
//! early: when one comes due, the refresher checks the slot's *current* credential, so the
//! entry of a credential that was replaced meanwhile (or of an account that is gone) is
//! simply dropped then. A slot therefore has at most a few entries at a time (its current
//! credential's and those of the few it replaced within one lifetime).
//!
//! Due times are wall-clock milliseconds, as credentials expire by the wall clock shared with
//! other instances. The refresher never sleeps longer than [`MAX_SLEEP`] at a time, so a clock
//! stepped forward is noticed within that.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;

use super::Credential;
use crate::config::Account;
use crate::domain::{lock, CredentialKind};

/// The longest the refresher sleeps before looking at the clock again.
pub(super) const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Jitter added to a due time, as a fraction of the refresh threshold (1/10: up to 30 s of the
/// 300 s a token has left), so instances sharing a credential do not all wake at once — the
/// first refreshes and announces it, the others find it fresh.
const JITTER_DIVISOR: i64 = 10;

/// One credential to look at, at `at_ms`.
pub(super) struct Due {
    pub(super) at_ms: i64,
    /// The account it was scheduled for, looked up again by name when the entry comes due
    /// (the account may have been replaced — keeping its credentials — or deleted meanwhile;
    /// a deleted account's settings are then kept until its entries come due). Shared, so an
    /// entry allocates nothing of its own.
    pub(super) account: Arc<Account>,
    pub(super) kind: CredentialKind,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at_ms == other.at_ms
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at_ms.cmp(&other.at_ms)
    }
}

/// The due times of every cached credential; see the module documentation.
#[derive(Default)]
pub(super) struct RefreshQueue {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    /// Woken when an entry earlier than every other is pushed.
    earlier: Notify,
}

/// When `cred` should be refreshed ahead: its refresh threshold before it expires, plus up to
/// a tenth of that threshold of jitter (never past the threshold's midpoint).
pub(super) fn due_at_ms(cred: &Credential) -> i64 {
    let threshold = cred.refresh_threshold();
    let jitter_ms = rand::thread_rng().gen_range(0..=(threshold * 1000 / JITTER_DIVISOR).max(0));
    (cred.expires_at - threshold)
        .saturating_mul(1000)
        .saturating_add(jitter_ms)
}

impl RefreshQueue {
    /// Schedules a look at `kind` of `account` at `at_ms`.
    pub(super) fn push(&self, at_ms: i64, account: Arc<Account>, kind: CredentialKind) {
        let mut heap = lock(&self.heap);
        let earliest = heap.peek().is_none_or(|Reverse(first)| at_ms < first.at_ms);
        heap.push(Reverse(Due {
            at_ms,
            account,
            kind,
        }));
        drop(heap);
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// The earliest entry when it is due at `now_ms`; otherwise how long until it is (at most
    /// [`MAX_SLEEP`]).
    pub(super) fn pop_due(&self, now_ms: i64) -> Result<Due, Duration> {
        let mut heap = lock(&self.heap);
        match heap.peek() {
            Some(Reverse(first)) if first.at_ms <= now_ms => match heap.pop() {
                Some(Reverse(due)) => Ok(due),
                None => Err(MAX_SLEEP),
            },
            Some(Reverse(first)) => {
                let wait = u64::try_from(first.at_ms - now_ms).unwrap_or(0);
                Err(Duration::from_millis(wait).min(MAX_SLEEP))
            }
            None => Err(MAX_SLEEP),
        }
    }

    /// Sleeps `wait`, or less when an earlier entry is pushed meanwhile.
    pub(super) async fn sleep(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.earlier.notified() => {}
        }
    }

    /// How many entries are waiting (stale ones included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.heap).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Arc<Account> {
        let settings: crate::config::AccountSettings = toml::from_str(&format!(
            "name = '{name}'\nappid = 'wx0000000000000001'\nsecret = 's'"
        ))
        .unwrap();
        Arc::new(Account::try_from(&settings).unwrap())
    }

    #[test]
    fn entries_come_out_by_due_time_and_only_when_due() {
        let q = RefreshQueue::default();
        let a = account("a");
        let b = account("b");
        q.push(3_000, Arc::clone(&a), CredentialKind::AccessToken);
        q.push(1_000, Arc::clone(&b), CredentialKind::AccessToken);
        q.push(2_000, Arc::clone(&a), CredentialKind::ALL[1]);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_due(500).err(), Some(Duration::from_millis(500)));
        let first = q.pop_due(2_500).unwrap();
        assert_eq!(first.at_ms, 1_000);
        assert_eq!(first.account.name, "b");
        let second = q.pop_due(2_500).unwrap();
        assert_eq!((second.at_ms, second.kind), (2_000, CredentialKind::ALL[1]));
        assert_eq!(q.pop_due(2_500).err(), Some(Duration::from_millis(500)));
        // Far ahead: the refresher still wakes within MAX_SLEEP.
        assert_eq!(q.pop_due(-1_000_000).err(), Some(MAX_SLEEP));
        assert!(q.pop_due(3_000).is_ok());
        assert_eq!(q.pop_due(i64::MAX).err(), Some(MAX_SLEEP), "empty");
    }

    #[test]
    fn a_due_time_is_the_threshold_before_expiry_plus_bounded_jitter() {
        for _ in 0..200 {
            let token = Credential::issued("t".into(), 7200, 1_000_000, 1_000_000, "initial");
            let at = due_at_ms(&token);
            let base = (token.expires_at - 300) * 1000;
            assert!((base..=base + 30_000).contains(&at), "{at} vs {base}");
            // A short-lived credential: refreshed in the second half of its life.
            let short = Credential::issued("t".into(), 100, 1_000_000, 1_000_000, "initial");
            let at = due_at_ms(&short);
            let base = (short.expires_at - 50) * 1000;
            assert!((base..=base + 5_000).contains(&at), "{at} vs {base}");
        }
    }

    #[tokio::test]
    async fn an_earlier_entry_wakes_the_sleeper() {
        let q = Arc::new(RefreshQueue::default());
        let a = account("a");
        let sleeper = {
            let q = Arc::clone(&q);
            tokio::spawn(async move { q.sleep(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        q.push(1, Arc::clone(&a), CredentialKind::AccessToken);
        tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("woken")
            .unwrap();
    }
}
