//! Work that outlives the request that started it: a webhook call still running after WeChat was
//! answered `success`, and the late customer-service reply it may send.
//!
//! Why it exists: such work used to run in detached tasks, which shutdown dropped with the
//! runtime — after WeChat had been told the push was handled, so the reply was lost for good.
//! Every such task is started with [`BackgroundTasks::spawn`] instead. Guarantees: on shutdown
//! the server waits for every task spawned here (also those spawned while it drains) up to
//! `server.shutdown_grace_s` (see the `wxgate` crate's `server`); at that deadline the tasks still running
//! are cancelled at their next await point, and their handles yield `None`.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tracked background tasks of one gateway; cheap to clone (two `Arc`s).
#[derive(Clone, Default)]
pub struct BackgroundTasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl BackgroundTasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` in a task of its own that shutdown waits for. The handle yields `None` when
    /// the task was cancelled at the end of the shutdown grace.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                // Cancellation first: a task spawned after the grace ended does not start.
                biased;
                () = cancel.cancelled() => None,
                out = work => Some(out),
            }
        })
    }

    /// How many tasks are running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Completes when every task has finished, once [`Self::close`] was called (tasks spawned
    /// in between are waited for too).
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Lets [`Self::wait`] complete once no task runs.
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Cancels every running task (and any spawned later) at its next await point.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wait_covers_running_tasks_and_cancel_ends_them() {
        let tasks = BackgroundTasks::new();
        let quick = tasks.spawn(async { 7 });
        let slow = tasks.spawn(tokio::time::sleep(Duration::from_secs(3600)));
        assert_eq!(quick.await.unwrap(), Some(7));
        tasks.close();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), tasks.wait())
                .await
                .is_err(),
            "the slow task is still waited for"
        );
        tasks.cancel();
        assert_eq!(slow.await.unwrap(), None);
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .unwrap();
        assert!(tasks.is_empty());
    }
}
