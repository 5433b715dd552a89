//! The sweep that finds answers whose generation died with its node: every
//! node looks every lease-ttl for rows still marked as generating whose
//! thread lease expired or changed hands, and marks them interrupted (their
//! content is kept, their tokens are counted). A new request on such a
//! thread does the same for that thread at once; the sweep covers threads
//! nobody writes to again.

use std::sync::Arc;
use std::time::Duration;

use palisade_store::Store;
use tokio::task::JoinHandle;

/// The running sweep; dropping it stops the sweep.
pub struct Sweeper(JoinHandle<()>);

impl Sweeper {
    /// Sweeps every `every` (a node's lease ttl: an answer is marked
    /// interrupted at most two ttls after its node died).
    pub fn spawn(store: Arc<dyn Store>, every: Duration) -> Sweeper {
        Sweeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.recover_interrupted_answers(None).await {
                    Ok(0) => {}
                    Ok(count) => {
                        tracing::info!(count, "marked answers of a dead generation as interrupted")
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
