//! A provider that replays scripted answers, for tests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::ChatProvider;
use crate::types::{ChatEvent, ChatRequest, ChatStream, LlmError, Usage};

/// One step of a scripted answer stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStep {
    /// Yield this text delta.
    Delta(String),
    /// Wait (cancellation interrupts the wait).
    Delay(Duration),
    /// Yield `Done` and end.
    Done {
        usage: Option<Usage>,
        finish_reason: Option<String>,
    },
    /// Yield this error and end.
    Error(LlmError),
    /// Wait until cancelled (then yield `Cancelled`), like a stalled model.
    Hang,
}

/// What one call of [`ChatProvider::stream`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptedReply {
    /// `stream()` itself fails (like a refused connection or an HTTP 500).
    Fail(LlmError),
    /// `stream()` succeeds and the stream plays these steps. A script that
    /// runs out without `Done` or `Error` simply ends the stream.
    Steps(Vec<ScriptStep>),
}

impl ScriptedReply {
    /// The whole text as one delta, then `Done` with finish reason `stop`
    /// and no usage.
    pub fn text(text: impl Into<String>) -> Self {
        ScriptedReply::Steps(vec![
            ScriptStep::Delta(text.into()),
            ScriptStep::Done {
                usage: None,
                finish_reason: Some("stop".into()),
            },
        ])
    }

    /// These deltas, then `Done` with finish reason `stop` and this usage.
    pub fn deltas<I, S>(deltas: I, usage: Option<Usage>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut steps: Vec<ScriptStep> = deltas
            .into_iter()
            .map(|delta| ScriptStep::Delta(delta.into()))
            .collect();
        steps.push(ScriptStep::Done {
            usage,
            finish_reason: Some("stop".into()),
        });
        ScriptedReply::Steps(steps)
    }

    pub fn fail(error: LlmError) -> Self {
        ScriptedReply::Fail(error)
    }
}

#[derive(Default)]
struct State {
    replies: VecDeque<ScriptedReply>,
    fallback: Option<ScriptedReply>,
    requests: Vec<ChatRequest>,
    cancellations: usize,
}

/// Replays [`ScriptedReply`]s in order, one per call, and records every
/// request. When the queue is empty the fallback (if any) is played; without
/// one the call fails with [`LlmError::NotConfigured`].
#[derive(Default)]
pub struct ScriptedProvider {
    state: std::sync::Arc<Mutex<State>>,
}

impl ScriptedProvider {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_replies(replies: impl IntoIterator<Item = ScriptedReply>) -> Self {
        let provider = Self::new();
        for reply in replies {
            provider.push(reply);
        }
        provider
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues the reply for a later call.
    pub fn push(&self, reply: ScriptedReply) {
        self.lock().replies.push_back(reply);
    }

    /// The reply played whenever the queue is empty.
    pub fn set_fallback(&self, reply: ScriptedReply) {
        self.lock().fallback = Some(reply);
    }

    /// Every request received so far, in call order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.lock().requests.clone()
    }

    pub fn call_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// How many scripted streams ended because they were cancelled.
    pub fn cancellations(&self) -> usize {
        self.lock().cancellations
    }
}

#[async_trait]
impl ChatProvider for ScriptedProvider {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        let reply = {
            let mut state = self.lock();
            state.requests.push(request);
            let reply = state.replies.pop_front().or_else(|| state.fallback.clone());
            reply.ok_or_else(|| {
                LlmError::NotConfigured("the scripted provider has no reply left".into())
            })?
        };
        let steps = match reply {
            ScriptedReply::Fail(error) => return Err(error),
            ScriptedReply::Steps(steps) => steps,
        };
        let playback = Playback {
            steps: steps.into(),
            cancel,
            state: self.state.clone(),
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            playback,
            |mut playback| async move {
                let item = playback.next_item().await?;
                Some((item, playback))
            },
        )))
    }
}

struct Playback {
    steps: VecDeque<ScriptStep>,
    cancel: CancellationToken,
    state: std::sync::Arc<Mutex<State>>,
    ended: bool,
}

impl Playback {
    fn cancelled(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        self.ended = true;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.cancellations += 1;
        Some(Err(LlmError::Cancelled))
    }

    async fn next_item(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        loop {
            if self.ended {
                return None;
            }
            if self.cancel.is_cancelled() {
                return self.cancelled();
            }
            match self.steps.pop_front()? {
                ScriptStep::Delta(text) => return Some(Ok(ChatEvent::Delta(text))),
                ScriptStep::Delay(duration) => {
                    tokio::select! {
                        biased;
                        _ = self.cancel.cancelled() => return self.cancelled(),
                        _ = tokio::time::sleep(duration) => {}
                    }
                }
                ScriptStep::Done {
                    usage,
                    finish_reason,
                } => {
                    self.ended = true;
                    return Some(Ok(ChatEvent::Done {
                        usage,
                        finish_reason,
                    }));
                }
                ScriptStep::Error(error) => {
                    self.ended = true;
                    return Some(Err(error));
                }
                ScriptStep::Hang => {
                    self.cancel.cancelled().await;
                    return self.cancelled();
                }
            }
        }
    }
}
