//! The generation task: runs one answer from the model (or the canned
//! reply) to its stored assistant message, independent of the HTTP
//! connection that asked for it (contract deviation 4).
//!
//! The task owns the thread's generation lease from the handler onwards. It
//! streams NDJSON lines into an unbounded channel that the response body
//! drains; if the client goes away the lines are dropped, but the answer is
//! still generated, stored and paid for. A watchdog beside it renews the
//! lease and polls the database for a cancel request made on another node.
//!
//! Order of work, as in the reference: thread line, warning, content lines,
//! `e` line on failure, assistant message written, final metadata line,
//! then (new thread only) the title call, then token usage.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use palisade_llm::{CancellationToken, ChatEvent, ChatProvider, ChatRequest, LlmError, Usage};
use palisade_store::{Answer, AnswerTo, Store};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::blocks::{Block, BlockParser};
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
}

/// How the model's part ended.
enum Ending {
    Complete,
    /// The user (or shutdown) cancelled: the partial answer is kept, no `e`.
    Cancelled,
    Failed(LlmError),
}

/// Where the lines go: the response body, while the client is there.
pub struct Lines(UnboundedSender<Bytes>);

impl Lines {
    pub fn new(sender: UnboundedSender<Bytes>) -> Lines {
        Lines(sender)
    }

    fn send(&self, line: Line<'_>) {
        // A send fails only when the client went away; the answer goes on.
        let _ = self.0.send(line.to_bytes());
    }

    fn send_blocks(&self, blocks: &[Block]) {
        if !blocks.is_empty() {
            let _ = self.0.send(Bytes::from(encode_blocks(blocks)));
        }
    }
}

impl Generation {
    /// Runs the generation to the end. The response body ends when `lines`
    /// is dropped, that is after everything (title and usage included) is
    /// stored, so a client that read to the end sees the final state.
    pub async fn run(self, lines: Lines) {
        let thread_uuid = render::uuid(&self.thread_uuid);
        lines.send(Line::ThreadMeta {
            thread_uuid: &thread_uuid,
        });
        if !self.warning.is_empty() {
            lines.send(Line::Warning(&self.warning));
        }

        let registration = self.generations.register(self.thread_id, self.lease);
        let cancel = registration.token().clone();
        let watchdog = Watchdog::spawn(
            self.store.clone(),
            self.thread_id,
            self.lease,
            &self.settings,
            cancel.clone(),
        );
        let mut parser = BlockParser::new();
        let mut text = String::new();
        let (ending, usage) = match &self.reply {
            Reply::Canned => {
                text.push_str(CANNED_REPLY);
                lines.send_blocks(&parser.push(CANNED_REPLY));
                (Ending::Complete, None)
            }
            Reply::Model(request) => {
                self.generate(request.clone(), &cancel, &mut parser, &mut text, &lines)
                    .await
            }
        };
        drop(watchdog);
        lines.send_blocks(&parser.finish());
        match &ending {
            Ending::Failed(err) => {
                tracing::warn!(error = %err, thread = %thread_uuid, "model call failed");
                lines.send(if matches!(err, LlmError::Busy(_)) {
                    Line::Busy
                } else {
                    Line::Interrupted
                });
            }
            Ending::Cancelled => tracing::info!(thread = %thread_uuid, "generation cancelled"),
            Ending::Complete => {}
        }

        let answer = self.store_answer(&text).await;
        if let Some(answer) = &answer {
            let user_message = answer.user_message.as_ref().map(|m| render::uuid(&m.uuid));
            let assistant_message = render::uuid(&answer.assistant_message.uuid);
            lines.send(Line::FinalMeta {
                user_message_uuid: user_message.as_deref(),
                assistant_message_uuid: &assistant_message,
            });
        }
        // The thread is free for the next message as soon as the answer is
        // stored; the title below does not need the lease.
        if let Err(err) = self
            .store
            .release_generation_lease(self.thread_id, self.lease)
            .await
        {
            tracing::warn!(error = %err, "cannot release the generation lease; it will expire");
        }
        drop(registration);

        let mut spent = usage.map_or(0, |u| u.total());
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
        if self.new_thread && matches!(ending, Ending::Complete) && !self.stored_input.is_empty() {
            spent = spent.saturating_add(self.generate_title().await);
        }
        if spent > 0
            && let Err(err) = self
                .store
                .add_token_usage(self.user_id, saturating_i64(spent))
                .await
        {
            tracing::error!(error = %err, user = self.user_id, spent, "cannot record token usage");
        }
        drop(lines);
    }

    /// Streams the model's answer into `text` and the parser.
    async fn generate(
        &self,
        request: ChatRequest,
        cancel: &CancellationToken,
        parser: &mut BlockParser,
        text: &mut String,
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
        while let Some(event) = events.next().await {
            match event {
                Ok(ChatEvent::Delta(delta)) => {
                    text.push_str(&delta);
                    lines.send_blocks(&parser.push(&delta));
                }
                Ok(ChatEvent::Done { usage, .. }) => return (Ending::Complete, usage),
                Err(err) => return (ended(err), None),
            }
        }
        // Providers end with Done or an error; a bare end is a cut answer.
        (Ending::Failed(LlmError::Truncated), None)
    }

    /// Writes the assistant message. A failure is logged: the answer cannot
    /// be stored, and the final metadata line is left out (as the reference
    /// does), which tells the client something went wrong.
    async fn store_answer(&self, text: &str) -> Option<Answer> {
        match self
            .store
            .append_answer(self.thread_id, &self.answer_to, text)
            .await
        {
            Ok(answer) => Some(answer),
            Err(err) => {
                tracing::error!(error = %err, thread_id = self.thread_id, "cannot store the answer");
                None
            }
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

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Keeps the lease alive and watches for a cancel request from any node,
/// for as long as it lives (it is aborted when dropped).
struct Watchdog(JoinHandle<()>);

impl Watchdog {
    fn spawn(
        store: Arc<dyn Store>,
        thread_id: i64,
        lease: Uuid,
        settings: &ChatSettings,
        cancel: CancellationToken,
    ) -> Watchdog {
        let ttl = settings.lease_ttl;
        let poll = settings.cancel_poll_interval;
        Watchdog(tokio::spawn(async move {
            watch(store.as_ref(), thread_id, lease, ttl, poll, &cancel).await;
        }))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn watch(
    store: &dyn Store,
    thread_id: i64,
    lease: Uuid,
    ttl: Duration,
    poll: Duration,
    cancel: &CancellationToken,
) {
    use tokio::time::{Instant, MissedTickBehavior, interval_at};
    // Renew well before expiry, so one slow database round trip is harmless.
    let renew_every = ttl / 3;
    let mut renew = interval_at(Instant::now() + renew_every, renew_every);
    let mut check = interval_at(Instant::now() + poll, poll);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = check.tick() => match store.generation_cancelled(thread_id, lease).await {
                Ok(true) => {
                    cancel.cancel();
                    return;
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "cannot check for a cancel request"),
            },
            _ = renew.tick() => match store.renew_generation_lease(thread_id, lease, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another generation took the thread over (our lease
                    // expired): stop rather than write a second answer.
                    tracing::warn!(thread_id, "generation lease lost; stopping");
                    cancel.cancel();
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "cannot renew the generation lease"),
            },
        }
    }
}
