//! The generation task: runs one answer from the model (or the canned
//! reply) to its stored assistant message, independent of the HTTP
//! connection that asked for it (contract deviation 4).
//!
//! The task owns the thread's generation lease from the handler onwards. It
//! appends NDJSON lines to the answer's transcript, which the response body
//! reads at the client's pace (see `follow`); if the client goes away the
//! answer is still generated, stored and paid for. A watchdog beside it renews the
//! lease and polls the database for a cancel request made on another node.
//!
//! The answer is a row from the first moment: the task writes an empty
//! assistant message before calling the model and saves the text so far at
//! most every `save_interval`, each write checking the lease in the same
//! statement. A node that dies mid-answer leaves the partial answer stored
//! (another node's recovery marks it interrupted); a database that is down
//! at the end is retried for `save_retry`, and the final line is sent only
//! once the answer is stored.
//!
//! Order of work: thread line, warning, answer row, content lines, `e` line
//! on failure, answer saved in full, final metadata line, token usage — the
//! response ends there — then (new thread only) the title call and its usage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use palisade_llm::{CancellationToken, ChatEvent, ChatProvider, ChatRequest, LlmError, Usage};
use palisade_store::{AnswerProgress, AnswerSaved, AnswerTo, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::blocks::{Block, BlockParser};
use super::follow::Transcript;
use super::ndjson::{Line, encode_blocks};
use super::registry::Generations;
use super::settings::ChatSettings;
use crate::prompt::{self, CANNED_REPLY};
use crate::render;

/// What answers the user.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A call to the model: the normal prompt, or the rejection prompt for
    /// blocked input on a thread with history.
    Model(ChatRequest),
    /// Blocked input with no usable history: the canned refusal, no call.
    Canned,
}

/// Everything the task needs, prepared by the handler after the user
/// message was stored and the lease taken.
pub struct Generation {
    pub store: Arc<dyn Store>,
    pub provider: Arc<dyn ChatProvider>,
    pub settings: Arc<ChatSettings>,
    pub generations: Arc<Generations>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub user_id: i64,
    pub thread_id: i64,
    pub thread_uuid: Uuid,
    /// The thread was created by this request: it gets a generated title.
    pub new_thread: bool,
    /// The lease the handler took; released when the answer is stored.
    pub lease: Uuid,
    pub reply: Reply,
    /// Where the answer goes (mode and user message).
    pub answer_to: AnswerTo,
    /// The PII warning for the `w` line; empty for none.
    pub warning: String,
    /// The user's message as stored: what the title is made from.
    pub stored_input: String,
    /// Tokens reserved from the user's quota for this answer (0 without a
    /// limit): kept on the answer's row and settled to the real usage when
    /// the answer is saved.
    pub reserved_tokens: i64,
}

/// How the model's part ended.
enum Ending {
    Complete,
    /// The user (or shutdown) cancelled: the partial answer is kept, no `e`.
    Cancelled,
    Failed(LlmError),
    /// Another generation holds the thread now: nothing more is written.
    LeaseLost,
}

/// Set when the generation's lease no longer holds its thread (another
/// generation took it): whoever notices — the lease watchdog or a save —
/// sets it and cancels the generation, which then writes nothing more.
#[derive(Clone, Default)]
struct LeaseLost(Arc<AtomicBool>);

impl LeaseLost {
    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The answer so far, as the progress writer saves it.
#[derive(Clone, Default)]
struct Snapshot {
    text: String,
    transcript: String,
    /// Deltas the model streamed: the output token estimate.
    deltas: u64,
}

/// Saves the answer so far in the background, at most every
/// `save_interval`: the generation only publishes snapshots, so a slow or
/// unreachable database never holds up the lines. Only the newest snapshot
/// is kept, so an outage builds no backlog.
struct ProgressWriter {
    snapshots: watch::Sender<Snapshot>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ProgressWriter {
    fn spawn(
        generation: &Generation,
        message_id: i64,
        lost: LeaseLost,
        cancel: CancellationToken,
    ) -> ProgressWriter {
        let (snapshots, mut latest) = watch::channel(Snapshot::default());
        let stop = CancellationToken::new();
        let store = generation.store.clone();
        let lease = generation.lease;
        let every = generation.settings.save_interval;
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    changed = latest.changed() => if changed.is_err() { return },
                }
                let snapshot = latest.borrow_and_update().clone();
                let progress = AnswerProgress {
                    content: &snapshot.text,
                    transcript: &snapshot.transcript,
                    output_tokens: saturating_i64(snapshot.deltas),
                    done: false,
                };
                match store.save_answer(message_id, lease, &progress).await {
                    Ok(AnswerSaved::Written { .. }) => failing = false,
                    Ok(AnswerSaved::LeaseLost) => {
                        lost.set();
                        cancel.cancel();
                        return;
                    }
                    Err(err) => {
                        if !failing {
                            tracing::warn!(error = %err, "cannot save the answer so far; retrying");
                            failing = true;
                        }
                        // Try this snapshot (or a newer one) again.
                        latest.mark_changed();
                    }
                }
                // At most one save per interval.
                tokio::select! {
                    () = stopped.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        ProgressWriter {
            snapshots,
            stop,
            task,
        }
    }

    fn publish(&self, snapshot: Snapshot) {
        self.snapshots.send_replace(snapshot);
    }

    /// Stops the writer and waits for a save in flight, so nothing it
    /// writes can land after the final save.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// How the final save went.
enum SaveEnd {
    /// Stored; `counted` output tokens were already added to the user's
    /// usage by a recovery sweep; `reserved` tokens were still reserved.
    Saved {
        counted: i64,
        reserved: i64,
    },
    LeaseLost,
    /// The database stayed unreachable for `save_retry`.
    GaveUp,
}

/// Where the lines go: the answer's transcript, which its client and its
/// followers read (on this node directly, on others through its saved
/// copy; see `follow`). Readers hold an offset into it, never a queue of
/// their own, so a slow client costs no memory per line; the response ends
/// when this is dropped.
pub struct Lines {
    transcript: watch::Sender<Transcript>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            transcript: watch::Sender::new(Transcript::default()),
        }
    }

    fn send(&self, line: Line<'_>) {
        self.send_bytes(line.to_bytes());
    }

    fn send_blocks(&self, blocks: &[Block]) {
        if !blocks.is_empty() {
            self.send_bytes(Bytes::from(encode_blocks(blocks)));
        }
    }

    fn send_bytes(&self, bytes: Bytes) {
        // Lines are ASCII (the encoder escapes everything else).
        self.transcript
            .send_modify(|t| t.push(&String::from_utf8_lossy(&bytes)));
    }

    /// Everything sent so far (before [`Lines::saved_in_full`]).
    fn transcript(&self) -> String {
        self.transcript.borrow().text().to_owned()
    }

    /// The whole transcript is saved with the answer: readers far behind
    /// read it from there, so only its tail stays in memory.
    fn saved_in_full(&self) {
        self.transcript.send_modify(Transcript::keep_tail);
    }

    fn transcript_len(&self) -> usize {
        self.transcript.borrow().text().len()
    }

    /// Where the saved copy of the transcript is, for readers that fall
    /// far behind.
    fn saved_in(&self, message_id: i64) {
        self.transcript
            .send_if_modified(|t| t.message_id.replace(message_id) != Some(message_id));
    }

    /// A reader of the lines (the response body, or a follower).
    pub fn subscribe(&self) -> watch::Receiver<Transcript> {
        self.transcript.subscribe()
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Generation {
    /// Runs the generation to the end. The response body ends when `lines`
    /// is dropped: right after the final line, once the answer and its
    /// usage are stored. A new thread's title is made after that.
    pub async fn run(self, lines: Lines) {
        let started = std::time::Instant::now();
        // Registered before the first line, so a follower on this node sees
        // the whole transcript.
        let registration = self
            .generations
            .register(self.thread_id, self.lease, lines.subscribe());
        let thread_uuid = render::uuid(&self.thread_uuid);
        let cancel = registration.token().clone();
        let lost = LeaseLost::default();
        let watchdog = Watchdog::spawn(
            self.store.clone(),
            self.thread_id,
            self.lease,
            &self.settings,
            cancel.clone(),
            lost.clone(),
        );
        // The answer's row exists before the client's first line, so a
        // reload at any point finds an answer to follow.
        let begun = self
            .store
            .begin_answer(
                self.thread_id,
                &self.answer_to,
                self.lease,
                self.reserved_tokens,
            )
            .await;
        lines.send(Line::ThreadMeta {
            thread_uuid: &thread_uuid,
        });
        if !self.warning.is_empty() {
            lines.send(Line::Warning(&self.warning));
        }
        let answer = match begun {
            Ok(answer) => answer,
            Err(err) => {
                tracing::error!(error = %err, thread = %thread_uuid, "cannot store the answer's row");
                lines.send(Line::Interrupted);
                drop(watchdog);
                self.release_lease().await;
                // Nothing was generated: the reservation goes back.
                self.settle(-self.reserved_tokens).await;
                return;
            }
        };
        let message_id = answer.assistant_message.id;
        lines.saved_in(message_id);
        let writer = ProgressWriter::spawn(&self, message_id, lost.clone(), cancel.clone());
        let mut parser = BlockParser::new();
        let mut text = String::new();
        let mut deltas = 0;
        let (mut ending, usage) = match &self.reply {
            Reply::Canned => {
                text.push_str(CANNED_REPLY);
                lines.send_blocks(&parser.push(CANNED_REPLY));
                (Ending::Complete, None)
            }
            Reply::Model(request) => {
                self.generate(
                    request.clone(),
                    &cancel,
                    &writer,
                    &mut parser,
                    &mut text,
                    &mut deltas,
                    &lines,
                )
                .await
            }
        };
        writer.stop().await;
        if lost.is_set() {
            ending = Ending::LeaseLost;
        }
        lines.send_blocks(&parser.finish());
        match &ending {
            Ending::Failed(err) => {
                tracing::warn!(error = %err, thread = %thread_uuid, "model call failed");
                self.metrics.llm_error(error_reason(err));
                lines.send(match err {
                    LlmError::Busy(_) => Line::Busy,
                    LlmError::ContextOverflow { .. } => Line::TooLong,
                    _ => Line::Interrupted,
                });
            }
            Ending::Cancelled if self.generations.stopping().is_cancelled() => {
                tracing::info!(thread = %thread_uuid, "generation stopped by shutdown");
                lines.send(Line::Interrupted);
            }
            Ending::Cancelled => tracing::info!(thread = %thread_uuid, "generation cancelled"),
            Ending::LeaseLost => {
                tracing::warn!(thread = %thread_uuid, "generation lease lost; the answer stops here");
                lines.send(Line::Interrupted);
            }
            Ending::Complete => {}
        }

        // The final line goes into the saved transcript with the end of the
        // answer, and to the client only once that save succeeded.
        let user_message = answer.user_message.as_ref().map(|m| render::uuid(&m.uuid));
        let assistant_message = render::uuid(&answer.assistant_message.uuid);
        let final_line = Line::FinalMeta {
            user_message_uuid: user_message.as_deref(),
            assistant_message_uuid: &assistant_message,
        }
        .to_bytes();
        // The lease stays renewed while the end is saved (and retried).
        let end = if matches!(ending, Ending::LeaseLost) {
            SaveEnd::LeaseLost
        } else {
            let mut transcript = lines.transcript();
            transcript.push_str(&String::from_utf8_lossy(&final_line));
            self.save_end(message_id, &text, &transcript, deltas).await
        };
        drop(watchdog);
        // What the user's usage already holds for this answer: what a sweep
        // counted plus the reservation still on the row. `None`: the row is
        // settled by whoever marks it interrupted (the sweep), not here.
        let accounted = match end {
            SaveEnd::Saved { counted, reserved } => {
                lines.send_bytes(final_line);
                lines.saved_in_full();
                self.metrics.generation_finished(started.elapsed());
                Some(counted.saturating_add(reserved))
            }
            SaveEnd::LeaseLost => {
                if !matches!(ending, Ending::LeaseLost) {
                    // Lost while saving the end: the client still hears of it.
                    lines.send(Line::Interrupted);
                }
                None
            }
            SaveEnd::GaveUp => {
                lines.send(Line::NotSaved);
                None
            }
        };
        let answer = matches!(end, SaveEnd::Saved { .. }).then_some(answer);
        // The thread is free for the next message as soon as the answer is
        // stored; the title below does not need the lease.
        self.release_lease().await;
        drop(registration);

        // Without the model's own count (cancelled, failed, or a server that
        // sends none), what it produced is still paid for: one token per
        // streamed delta, and the prompt estimated at 4 characters a token.
        if usage.is_none() && matches!(ending, Ending::Complete) && deltas > 0 {
            warn_once_no_usage();
        }
        let usage = usage.or_else(|| self.estimated_usage(deltas));
        if let Some(usage) = usage {
            self.metrics
                .tokens(usage.prompt_tokens, usage.completion_tokens);
        }
        if let (Some(answer), Some(usage)) = (&answer, usage) {
            let recorded = self
                .store
                .record_message_usage(
                    answer.assistant_message.id,
                    saturating_i64(usage.prompt_tokens),
                    saturating_i64(usage.completion_tokens),
                )
                .await;
            if let Err(err) = recorded {
                tracing::error!(error = %err, "cannot record the answer's token usage");
            }
        }
        if let Some(accounted) = accounted {
            let used = saturating_i64(usage.map_or(0, |u| u.total()));
            self.settle(used.saturating_sub(accounted)).await;
        }
        // The response ends here, right after the final line: the title
        // below is the thread's business, not this client's (it polls the
        // thread or sees it in the list).
        drop(lines);
        if self.new_thread && matches!(ending, Ending::Complete) && !self.stored_input.is_empty() {
            let spent = self.generate_title().await;
            self.settle(saturating_i64(spent)).await;
        }
    }

    /// Adds tokens to the user's daily, weekly and monthly usage (gives
    /// them back when negative: an unused reservation).
    async fn settle(&self, tokens: i64) {
        if tokens == 0 {
            return;
        }
        if let Err(err) = self.store.add_token_usage(self.user_id, tokens).await {
            tracing::error!(error = %err, user = self.user_id, tokens, "cannot record token usage");
        }
    }

    /// Streams the model's answer into `text` and the parser, saving the
    /// text so far to the answer's row as it grows.
    #[allow(clippy::too_many_arguments)]
    async fn generate(
        &self,
        request: ChatRequest,
        cancel: &CancellationToken,
        writer: &ProgressWriter,
        parser: &mut BlockParser,
        text: &mut String,
        deltas: &mut u64,
        lines: &Lines,
    ) -> (Ending, Option<Usage>) {
        let ended = |err: LlmError| {
            if err.is_cancelled() {
                Ending::Cancelled
            } else {
                Ending::Failed(err)
            }
        };
        let mut events = match self.provider.stream(request, cancel.clone()).await {
            Ok(events) => events,
            Err(err) => return (ended(err), None),
        };
        // Saved only when something was added since the last save: a model
        // that is silent for a while costs no writes.
        let mut published = (0, 0);
        let mut tick = tokio::time::interval(self.settings.save_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = tokio::time::sleep(self.settings.llm_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => {
                    // Dropping the stream drops the upstream call.
                    return (
                        Ending::Failed(LlmError::Timeout {
                            kind: palisade_llm::TimeoutKind::Total,
                            after: self.settings.llm_deadline,
                        }),
                        None,
                    );
                }
                event = events.next() => match event {
                    Some(Ok(ChatEvent::Delta(delta))) => {
                        text.push_str(&delta);
                        *deltas += 1;
                        lines.send_blocks(&parser.push(&delta));
                    }
                    Some(Ok(ChatEvent::Done { usage, .. })) => return (Ending::Complete, usage),
                    Some(Err(err)) => return (ended(err), None),
                    // Providers end with Done or an error; a bare end is a cut answer.
                    None => return (Ending::Failed(LlmError::Truncated), None),
                },
                _ = tick.tick() => {
                    let now = (text.len(), lines.transcript_len());
                    if now != published {
                        published = now;
                        writer.publish(Snapshot {
                            text: text.clone(),
                            transcript: lines.transcript(),
                            deltas: *deltas,
                        });
                    }
                }
            }
        }
    }

    fn estimated_usage(&self, deltas: u64) -> Option<Usage> {
        if deltas == 0 {
            return None;
        }
        let prompt_tokens = match &self.reply {
            Reply::Model(request) => prompt::estimate_tokens(request),
            Reply::Canned => return None,
        };
        Some(Usage {
            prompt_tokens,
            completion_tokens: deltas,
        })
    }

    /// Saves the whole answer, retrying with backoff for `save_retry` while
    /// the database fails.
    async fn save_end(
        &self,
        message_id: i64,
        text: &str,
        transcript: &str,
        deltas: u64,
    ) -> SaveEnd {
        let progress = AnswerProgress {
            content: text,
            transcript,
            output_tokens: saturating_i64(deltas),
            done: true,
        };
        let deadline = tokio::time::Instant::now() + self.settings.save_retry;
        let mut pause = Duration::from_millis(250);
        loop {
            match self
                .store
                .save_answer(message_id, self.lease, &progress)
                .await
            {
                Ok(AnswerSaved::Written { counted, reserved }) => {
                    return SaveEnd::Saved { counted, reserved };
                }
                Ok(AnswerSaved::LeaseLost) => {
                    tracing::warn!(
                        message_id,
                        "generation lease lost before the answer was saved"
                    );
                    return SaveEnd::LeaseLost;
                }
                Err(err) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %err, retry_in = ?pause, "cannot save the answer; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(error = %err, message_id, "giving up saving the answer");
                    return SaveEnd::GaveUp;
                }
            }
        }
    }

    async fn release_lease(&self) {
        if let Err(err) = self
            .store
            .release_generation_lease(self.thread_id, self.lease)
            .await
        {
            tracing::warn!(error = %err, "cannot release the generation lease; it will expire");
        }
    }

    /// The second call of a new thread: a short title, stored without
    /// bumping `modified`. Failures are logged and ignored. Returns the
    /// tokens it cost.
    async fn generate_title(&self) -> u64 {
        let request = prompt::title_request(&self.stored_input);
        let call = async {
            let events = self
                .provider
                .stream(request, CancellationToken::new())
                .await?;
            Ok::<_, LlmError>(palisade_llm::collect(events).await)
        };
        // Shutdown does not wait for a title.
        let call = async {
            tokio::select! {
                result = call => result,
                () = self.generations.stopping().cancelled() => Err(LlmError::Cancelled),
            }
        };
        let collected = match tokio::time::timeout(self.settings.title_timeout, call).await {
            Ok(Ok(collected)) => collected,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "title call failed");
                return 0;
            }
            Err(_) => {
                tracing::warn!("title call timed out");
                return 0;
            }
        };
        if let Some(usage) = collected.usage {
            self.metrics
                .tokens(usage.prompt_tokens, usage.completion_tokens);
        }
        let spent = collected.usage.map_or(0, |u| u.total());
        if let Some(err) = &collected.error {
            tracing::warn!(error = %err, "title call failed");
            return spent;
        }
        if let Some(title) = prompt::clean_title(&collected.text)
            && let Err(err) = self.store.set_thread_name(self.thread_id, &title).await
        {
            tracing::warn!(error = %err, "cannot store the thread title");
        }
        spent
    }
}

/// Said once per process: a model server that reports no usage (some
/// servers ignore `stream_options.include_usage`) is counted by estimate.
fn warn_once_no_usage() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "the model server reported no token usage; answers are counted by estimate \
             (one token per streamed piece, the prompt at about 4 characters a token)"
        );
    });
}

/// The `reason` label of a failed model call.
fn error_reason(err: &LlmError) -> &'static str {
    match err {
        LlmError::NotConfigured(_) => "not_configured",
        LlmError::Connect(_) => "connect",
        LlmError::Timeout { .. } => "timeout",
        LlmError::Status { .. } => "status",
        LlmError::Upstream(_) => "upstream",
        LlmError::Network(_) => "network",
        LlmError::Truncated => "truncated",
        LlmError::MalformedStream(_) => "malformed",
        LlmError::Cancelled => "cancelled",
        LlmError::Busy(_) => "busy",
        LlmError::ContextOverflow { .. } => "context_overflow",
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Keeps the lease alive for as long as it lives (it is aborted when
/// dropped); cancels the generation when another generation took the thread.
/// Cancel requests reach it through the node's cancel watcher.
struct Watchdog(JoinHandle<()>);

impl Watchdog {
    fn spawn(
        store: Arc<dyn Store>,
        thread_id: i64,
        lease: Uuid,
        settings: &ChatSettings,
        cancel: CancellationToken,
        lost: LeaseLost,
    ) -> Watchdog {
        let ttl = settings.lease_ttl;
        Watchdog(tokio::spawn(async move {
            renew(store.as_ref(), thread_id, lease, ttl, &cancel, &lost).await;
        }))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn renew(
    store: &dyn Store,
    thread_id: i64,
    lease: Uuid,
    ttl: Duration,
    cancel: &CancellationToken,
    lost: &LeaseLost,
) {
    use tokio::time::{Instant, MissedTickBehavior, interval_at};
    // Renew well before expiry, so one slow database round trip is harmless.
    let renew_every = ttl / 3;
    let mut renew = interval_at(Instant::now() + renew_every, renew_every);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = renew.tick() => match store.renew_generation_lease(thread_id, lease, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another generation took the thread over (our lease
                    // expired): stop rather than write a second answer.
                    tracing::warn!(thread_id, "generation lease lost; stopping");
                    lost.set();
                    cancel.cancel();
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "cannot renew the generation lease"),
            },
        }
    }
}
