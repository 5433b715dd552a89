//! The vocabulary shared by every provider: messages, requests, stream events
//! and errors.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// What to generate. The sampling fields override the provider's configured
/// defaults when set; `None` means "use the provider's default" (which may be
/// "let the upstream decide").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }
}

/// Token counts reported by the model for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// One item of an answer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of answer text (never empty). Reasoning/thinking text is not
    /// answer text and is never sent as a delta.
    Delta(String),
    /// The answer is complete. Always the last item of a successful stream.
    Done {
        /// `None` when the upstream did not report usage.
        usage: Option<Usage>,
        /// `stop`, `length`, ... as reported; `None` when the upstream sent none.
        finish_reason: Option<String>,
    },
}

/// The answer stream. It yields deltas, then exactly one [`ChatEvent::Done`]
/// or exactly one `Err`, and then ends. Dropping it drops the upstream
/// connection.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, LlmError>> + Send + 'static>>;

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Establishing the TCP (and TLS) connection.
    Connect,
    /// From sending the request to the first byte of the response body.
    FirstByte,
    /// Silence between two pieces of the response body.
    Idle,
    /// The whole answer took longer than its deadline (an upstream that
    /// never stops).
    Total,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::FirstByte => "first byte",
            TimeoutKind::Idle => "idle",
            TimeoutKind::Total => "total",
        })
    }
}

/// Why a provider call failed. Every variant carries enough to log a useful
/// line; none carries secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider cannot be used as configured (missing base URL, bad URL, ...).
    #[error("LLM provider not configured: {0}")]
    NotConfigured(String),
    /// The connection to the upstream could not be established.
    #[error("cannot connect to the LLM upstream: {0}")]
    Connect(String),
    /// A timeout fired.
    #[error("LLM upstream {kind} timeout after {after:?}")]
    Timeout { kind: TimeoutKind, after: Duration },
    /// The upstream answered with a non-2xx status.
    #[error("LLM upstream answered HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    /// The upstream reported an error inside the stream (`{"error": ...}`).
    #[error("LLM upstream reported an error: {0}")]
    Upstream(String),
    /// The transport failed after the request was sent (reset, bad chunking).
    #[error("LLM upstream connection failed: {0}")]
    Network(String),
    /// The upstream closed the stream before the answer was finished.
    #[error("LLM upstream closed the stream before the answer was complete")]
    Truncated,
    /// The response was not a chat-completions stream.
    #[error("malformed LLM stream: {0}")]
    MalformedStream(String),
    /// The caller cancelled the generation.
    #[error("LLM generation cancelled")]
    Cancelled,
    /// The provider's request queue is full (the local model serves one
    /// answer at a time); retrying later can succeed.
    #[error("{0}")]
    Busy(String),
    /// The prompt cannot fit in the model's context window even without
    /// any history: the current message (with the system prompt) is too
    /// long for the model. Raised before anything is generated; retrying
    /// the same message cannot succeed.
    #[error(
        "the message is too long for the model: the prompt needs {needed} tokens, \
         but the model's context leaves room for {limit}; shorten the message"
    )]
    ContextOverflow {
        /// Tokens the system prompt and the message need.
        needed: usize,
        /// Tokens the prompt may have (the context minus the room kept
        /// for the answer).
        limit: usize,
    },
}

impl LlmError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, LlmError::Cancelled)
    }
    pub fn is_timeout(&self) -> bool {
        matches!(self, LlmError::Timeout { .. })
    }
}

/// Everything a stream produced, gathered by [`collect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The concatenated deltas (also the partial text when `error` is set).
    pub text: String,
    /// The individual deltas in order.
    pub deltas: Vec<String>,
    /// Set when the stream ended with [`ChatEvent::Done`].
    pub done: bool,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// Set when the stream ended with an error.
    pub error: Option<LlmError>,
}

/// Drains a stream (for example for a thread title, or in tests).
pub async fn collect(mut stream: ChatStream) -> Collected {
    let mut out = Collected::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(ChatEvent::Delta(text)) => {
                out.text.push_str(&text);
                out.deltas.push(text);
            }
            Ok(ChatEvent::Done {
                usage,
                finish_reason,
            }) => {
                out.done = true;
                out.usage = usage;
                out.finish_reason = finish_reason;
                break;
            }
            Err(err) => {
                out.error = Some(err);
                break;
            }
        }
    }
    out
}
