//! A node's background watchers over the database, one task each however
//! many answers run:
//!
//! - the sweep that finds answers whose generation died with its node: it
//!   looks every lease ttl for rows still marked as generating whose thread
//!   lease expired or changed hands, and marks them interrupted (content
//!   kept, tokens counted). A new request on such a thread does the same for
//!   that thread at once; the sweep covers threads nobody writes to again;
//! - the cancel watcher: one query every `cancel_poll_interval` for the cancel
//!   requests (made on any node) of all the generations running here,
//!   instead of one query per generation.

use std::sync::Arc;
use std::time::Duration;

use palisade_store::Store;

use super::registry::Generations;
use crate::metrics::Metrics;
use tokio::task::JoinHandle;

/// The running sweep; dropping it stops the sweep.
pub struct Sweeper(JoinHandle<()>);

impl Sweeper {
    /// Sweeps every `every` (a node's lease ttl: an answer is marked
    /// interrupted at most two ttls after its node died).
    pub fn spawn(store: Arc<dyn Store>, metrics: Arc<Metrics>, every: Duration) -> Sweeper {
        Sweeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // An expired lease gets one more ttl: after a database outage its
                // node renews it within a third of that.
                match store.recover_interrupted_answers(None, every).await {
                    Ok(0) => {}
                    Ok(count) => {
                        metrics.takeovers(count);
                        tracing::info!(count, "marked answers of a dead generation as interrupted");
                    }
                    Err(err) => tracing::debug!(error = %err, "interrupted-answer sweep failed"),
                }
            }
        }))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches the database for cancel requests of this node's generations;
/// dropping it stops the watch.
pub struct CancelWatcher(JoinHandle<()>);

impl CancelWatcher {
    pub fn spawn(
        store: Arc<dyn Store>,
        generations: Arc<Generations>,
        every: Duration,
    ) -> CancelWatcher {
        CancelWatcher(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let running = generations.thread_ids();
                if running.is_empty() {
                    continue;
                }
                match store.cancel_requests(&running).await {
                    Ok(cancelled) => {
                        for thread_id in cancelled {
                            generations.cancel_local(thread_id);
                        }
                    }
                    Err(err) => tracing::debug!(error = %err, "cannot check for cancel requests"),
                }
            }
        }))
    }
}

impl Drop for CancelWatcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}
