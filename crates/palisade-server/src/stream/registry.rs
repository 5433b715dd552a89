//! The generations running on this node: their cancel signals, so a cancel
//! request served here stops a local generation at once, and a task tracker,
//! so shutdown can wait for every answer to be stored.
//!
//! Other nodes are reached through the database flag instead (see
//! `Store::request_generation_cancel`); this registry only shortens the
//! path when the generation happens to run here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use palisade_llm::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Running generations by thread id.
#[derive(Default)]
pub struct Generations {
    /// A plain mutex: it is held for a map operation, never across an await.
    running: Mutex<HashMap<i64, (Uuid, CancellationToken)>>,
    tasks: TaskTracker,
}

impl Generations {
    fn running(&self) -> MutexGuard<'_, HashMap<i64, (Uuid, CancellationToken)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the generation holding `lease` on a thread; the guard
    /// removes it again when dropped.
    pub fn register(&self, thread_id: i64, lease: Uuid) -> Registration<'_> {
        let token = CancellationToken::new();
        self.running().insert(thread_id, (lease, token.clone()));
        Registration {
            generations: self,
            thread_id,
            lease,
            token,
        }
    }

    /// Signals the thread's generation if it runs here; `false` otherwise.
    pub fn cancel_local(&self, thread_id: i64) -> bool {
        match self.running().get(&thread_id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// How many generations run on this node.
    pub fn len(&self) -> usize {
        self.running().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs a generation as a tracked task, independent of the request that
    /// started it.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits for running generations to finish and store their answers. After
    /// `grace`, the rest are cancelled (their partial answers are still
    /// stored) and awaited.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(
            running = self.len(),
            "generations still running at shutdown; cancelling them"
        );
        for (_, token) in self.running().values() {
            token.cancel();
        }
        self.tasks.wait().await;
    }
}

/// A registered generation; unregisters on drop.
pub struct Registration<'a> {
    generations: &'a Generations,
    thread_id: i64,
    lease: Uuid,
    token: CancellationToken,
}

impl Registration<'_> {
    /// Fired by a local cancel request or shutdown.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut running = self.generations.running();
        // A newer generation of the same thread may have registered already.
        if running
            .get(&self.thread_id)
            .is_some_and(|(lease, _)| *lease == self.lease)
        {
            running.remove(&self.thread_id);
        }
    }
}
