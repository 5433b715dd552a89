//! The seam between the server and the input guards: anything that turns a
//! message into a [`Verdict`]. Production uses [`palisade_guard::Guard`];
//! tests plug in a failing guard to check that the stream fails closed.

use palisade_guard::{Guard, Verdict};

pub trait InputGuard: Send + Sync {
    /// The verdict for one user message.
    fn scan(&self, text: &str) -> Verdict;
}

impl InputGuard for Guard {
    fn scan(&self, text: &str) -> Verdict {
        Guard::scan(self, text)
    }
}

/// Scans `text`, turning any failure of the guard (a panic included) into
/// the reference's fail-closed verdict: critical, block, the raw text stored.
pub fn scan_fail_closed(guard: &dyn InputGuard, text: &str) -> Verdict {
    palisade_guard::fail_closed_on_panic(text, || guard.scan(text))
}

/// [`scan_fail_closed`] on the blocking pool: a long message takes
/// milliseconds of CPU, which must not stall the other requests sharing an
/// async worker. A scan that cannot run there fails closed too.
pub async fn scan_off_runtime(guard: std::sync::Arc<dyn InputGuard>, text: String) -> Verdict {
    let fallback = text.clone();
    tokio::task::spawn_blocking(move || scan_fail_closed(guard.as_ref(), &text))
        .await
        .unwrap_or_else(|_| Verdict::fail_closed_with_text(fallback))
}
