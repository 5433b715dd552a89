//! Chat model providers behind one streaming trait: the OpenAI-compatible HTTP
//! provider, the embedded GGUF model ([`local`]) and a scripted provider for
//! tests.
//!
//! # Design
//!
//! * **One trait, object-safe.** [`ChatProvider`] is used as
//!   `Arc<dyn ChatProvider>` by the server, so it is `Send + Sync` and its one
//!   async method is boxed with `async_trait`. The server never knows which
//!   provider it talks to.
//! * **Messages, not a prompt string.** A [`ChatRequest`] is a list of
//!   [`ChatMessage`]s (system, history, current user message) plus optional
//!   sampling overrides; the provider's configuration holds the defaults.
//! * **Two phases.** [`ChatProvider::stream`] resolves once the upstream has
//!   accepted the request (connected, 2xx status), so a failure *before* any
//!   text exists is an `Err` of the call. It returns a [`ChatStream`] that
//!   yields [`ChatEvent::Delta`] text pieces and then exactly one terminal
//!   item: [`ChatEvent::Done`] (usage, finish reason) or an `Err`
//!   ([`LlmError`]). Deltas received before an error are real text: the
//!   server keeps them as the partial answer.
//! * **A cut answer is an error.** If the upstream closes before `[DONE]`
//!   and without a finish reason, the stream ends with
//!   [`LlmError::Truncated`] (or [`LlmError::Network`] when the transport
//!   failed), never with a silent `Done`.
//! * **Cancellation** is a [`CancellationToken`] passed to `stream`. Every
//!   wait inside the provider (request, each body read, scripted delays)
//!   races against it, so cancelling ends the stream within one poll with a
//!   final `Err(LlmError::Cancelled)`; the HTTP response is dropped at that
//!   moment, which closes the upstream connection (the model server sees
//!   the disconnect and stops generating). Dropping the stream has the same
//!   effect on the connection, so a consumer that simply stops polling does
//!   not leak it either. The token is a plain tokio-util type so the server
//!   can fire it from a cancel endpoint, a database flag poller or shutdown.
//! * **Timeouts** are the provider's business and distinguishable
//!   ([`TimeoutKind`]): connect, first byte (request sent → first body byte,
//!   covering a slow prefill), and idle (gap between body pieces; keep-alive
//!   comments count as activity).
//!
//! With the `testing` feature, the `testing` module provides a fake OpenAI-compatible
//! HTTP server that can stall, send garbage, fail or cut the connection.

pub mod local;
mod openai;
mod scripted;
mod sse;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

use async_trait::async_trait;

pub use openai::{OpenAiConfig, OpenAiProvider, url_for_logs};
pub use scripted::{ScriptStep, ScriptedProvider, ScriptedReply};
pub use tokio_util::sync::CancellationToken;
pub use types::{
    ChatEvent, ChatMessage, ChatRequest, ChatStream, Collected, LlmError, Role, TimeoutKind, Usage,
    collect,
};

/// A chat model that streams an answer for a list of messages.
#[async_trait]
pub trait ChatProvider: Send + Sync {
    /// A short name for logs (`openai`, `scripted`, ...).
    fn name(&self) -> &str;

    /// The answer length this provider uses when a request sets no
    /// `max_tokens`; `None` when it sets no limit of its own. The server
    /// reserves that much of a user's token quota before an answer.
    fn max_tokens(&self) -> Option<u32> {
        None
    }

    /// Starts generating. Resolves when the upstream accepted the request;
    /// errors before that (connect, timeout, non-2xx status, cancelled) are
    /// returned here. The stream then yields deltas and ends with exactly one
    /// `Done` or `Err`. Cancelling `cancel` ends the stream promptly with
    /// `Err(LlmError::Cancelled)` and drops the upstream connection.
    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError>;
}
