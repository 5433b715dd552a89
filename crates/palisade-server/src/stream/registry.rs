//! The generations running on this node: their cancel signals, so a cancel
//! request served here stops a local generation at once; their transcripts,
//! so a client following an answer on this node gets each line as it is
//! sent; and a task tracker, so shutdown can wait for every answer to be
//! stored.
//!
//! Other nodes are reached through the database flag instead (see
//! `Store::request_generation_cancel`); this registry only shortens the
//! path when the generation happens to run here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use palisade_llm::CancellationToken;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::follow::Transcript;

/// One generation running here.
struct Running {
    lease: Uuid,
    cancel: CancellationToken,
    /// The NDJSON sent so far; closed when the generation's lines end.
    transcript: watch::Receiver<Transcript>,
}

/// Running generations by thread id.
#[derive(Default)]
pub struct Generations {
    /// A plain mutex: it is held for a map operation, never across an await.
    running: Mutex<HashMap<i64, Running>>,
    tasks: TaskTracker,
    /// Fired when shutdown stops the generations that are still running.
    stopping: CancellationToken,
}

impl Generations {
    fn running(&self) -> MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the generation holding `lease` on a thread, with its
    /// transcript; the guard removes it again when dropped.
    pub fn register(
        &self,
        thread_id: i64,
        lease: Uuid,
        transcript: watch::Receiver<Transcript>,
    ) -> Registration<'_> {
        // A generation that starts after shutdown cancelled the others is
        // cancelled at once.
        let token = self.stopping.child_token();
        self.running().insert(
            thread_id,
            Running {
                lease,
                cancel: token.clone(),
                transcript,
            },
        );
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
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The threads whose generations run here.
    pub fn thread_ids(&self) -> Vec<i64> {
        self.running().keys().copied().collect()
    }

    /// The transcript of the thread's generation, if it runs here.
    pub fn follow(&self, thread_id: i64) -> Option<watch::Receiver<Transcript>> {
        self.running()
            .get(&thread_id)
            .map(|running| running.transcript.clone())
    }

    /// How many generations run on this node.
    pub fn len(&self) -> usize {
        self.running().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Generation tasks still running here, including those that already
    /// ended their response and are making a title.
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Runs a generation as a tracked task, independent of the request that
    /// started it.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Cancels every generation running here, for shutdown: their partial
    /// answers are stored and their streams end with an `e` line.
    pub fn stop_all(&self) {
        self.stopping.cancel();
    }

    /// Whether shutdown cancelled the generations.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Waits until every generation task has ended (after shutdown began:
    /// no new ones are tracked).
    pub async fn wait(&self) {
        self.tasks.close();
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
            .is_some_and(|entry| entry.lease == self.lease)
        {
            running.remove(&self.thread_id);
        }
    }
}
