//! Test support: a fake OpenAI-compatible chat-completions server on
//! `127.0.0.1:0` that plays scripted responses and records requests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), palisade_llm::LlmError> {
//! use palisade_llm::testing::{FakeOpenAi, FakeResponse};
//! use palisade_llm::{OpenAiProvider, Usage};
//!
//! let fake = FakeOpenAi::start().await;
//! let usage = Usage { prompt_tokens: 3, completion_tokens: 2 };
//! fake.push(FakeResponse::answer(&["Hel", "lo"], Some(usage)));
//! let provider = OpenAiProvider::new(fake.config())?;
//! // ... use `provider`, then assert on `fake.requests()`.
//! # Ok(()) }
//! ```
//!
//! Responses are played one per request, in order; with none queued the
//! server answers 500. Any method and path is accepted and recorded (the
//! provider is expected to POST `/v1/chat/completions`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::{OpenAiConfig, Usage};

/// One step of a streamed response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeStep {
    /// Send these bytes as one body chunk, exactly as given.
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Delay(Duration),
    /// Abort the connection after flushing what was sent (the chunked body
    /// is left unterminated).
    Cut,
    /// Send nothing more, forever (until the client goes away).
    Hang,
}

/// What the server does for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeResponse {
    /// 200 `text/event-stream` with these body steps.
    Stream(Vec<FakeStep>),
    /// 200 with this content type and body (e.g. a non-streaming JSON answer).
    Body { content_type: String, body: String },
    /// This status with this (JSON or other) body.
    Status { status: u16, body: String },
    /// Wait before sending the response headers.
    Delayed(Duration, Box<FakeResponse>),
    /// Close the connection without answering, as a server does with an
    /// idle keep-alive connection the client reuses at that moment.
    Hangup,
    /// A well-behaved answer of `count` copies of `delta`, one token each,
    /// cut at the request's `max_tokens` as a real server cuts it, with a
    /// usage chunk counting `prompt_tokens` and the tokens sent.
    Budgeted {
        delta: String,
        count: u64,
        prompt_tokens: u64,
    },
}

impl FakeResponse {
    /// A well-behaved stream: a role chunk, one chunk per delta, a chunk with
    /// `finish_reason: "stop"`, a usage-only chunk (when `usage` is set) and
    /// `data: [DONE]`.
    pub fn answer(deltas: &[&str], usage: Option<Usage>) -> Self {
        let mut steps = vec![role_chunk()];
        steps.extend(deltas.iter().map(|delta| content_chunk(delta)));
        steps.push(finish_chunk("stop"));
        if let Some(usage) = usage {
            steps.push(usage_chunk(usage));
        }
        steps.push(done());
        FakeResponse::Stream(steps)
    }

    /// An OpenAI-style JSON error body with this status.
    pub fn error(status: u16, message: &str) -> Self {
        FakeResponse::Status {
            status,
            body: json!({"error": {"message": message, "type": "server_error", "code": null}})
                .to_string(),
        }
    }
}

fn chunk_json(choices: Value) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "system_fingerprint": null,
        "choices": choices,
    })
}

/// `data: <json>\n\n`.
pub fn event(value: &Value) -> FakeStep {
    FakeStep::Bytes(format!("data: {value}\n\n").into_bytes())
}

/// The first chunk real servers send: the assistant role, empty content.
pub fn role_chunk() -> FakeStep {
    event(&chunk_json(json!([
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}
    ])))
}

/// A chunk carrying one content delta (`finish_reason: null`).
pub fn content_chunk(text: &str) -> FakeStep {
    event(&content_json(text))
}

/// The JSON of a content chunk, to embed in hand-made byte sequences.
pub fn content_json(text: &str) -> Value {
    chunk_json(json!([
        {"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}
    ]))
}

/// A chunk carrying a reasoning (thinking) delta and no content.
pub fn reasoning_chunk(text: &str) -> FakeStep {
    event(&chunk_json(json!([
        {"index": 0, "delta": {"content": null, "reasoning_content": text}, "finish_reason": null}
    ])))
}

/// An empty delta with this finish reason.
pub fn finish_chunk(reason: &str) -> FakeStep {
    event(&chunk_json(json!([
        {"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}
    ])))
}

/// The usage-only final chunk of `stream_options.include_usage`.
pub fn usage_chunk(usage: Usage) -> FakeStep {
    let mut value = chunk_json(json!([]));
    value["usage"] = json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
    });
    event(&value)
}

/// `data: [DONE]\n\n`.
pub fn done() -> FakeStep {
    FakeStep::Bytes(b"data: [DONE]\n\n".to_vec())
}

/// Raw bytes as one chunk.
pub fn raw(bytes: impl AsRef<[u8]>) -> FakeStep {
    FakeStep::Bytes(bytes.as_ref().to_vec())
}

/// Concatenates the bytes of `steps` and re-splits them into chunks of
/// `size` bytes (so boundaries fall mid-line and mid-character).
pub fn resplit(steps: &[FakeStep], size: usize) -> Vec<FakeStep> {
    let mut bytes = Vec::new();
    for step in steps {
        if let FakeStep::Bytes(chunk) = step {
            bytes.extend_from_slice(chunk);
        }
    }
    bytes
        .chunks(size.max(1))
        .map(|chunk| FakeStep::Bytes(chunk.to_vec()))
        .collect()
}

/// A request the fake server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct FakeState {
    responses: VecDeque<FakeResponse>,
    requests: Vec<RecordedRequest>,
    disconnects: usize,
    completed: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<FakeState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake server. Stops when dropped.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenAi {
    /// Binds `127.0.0.1:0` and serves in a background task.
    ///
    /// # Panics
    /// When the port cannot be bound (test support only).
    pub async fn start() -> FakeOpenAi {
        let shared = Arc::new(Shared::default());
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake OpenAI server");
        let addr = listener.local_addr().expect("fake server address");
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::warn!(%err, "fake OpenAI server stopped");
            }
        });
        FakeOpenAi { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A provider configuration for this server: model `fake-model`, no key,
    /// timeouts of 2 s (override them for timeout tests).
    pub fn config(&self) -> OpenAiConfig {
        let mut config = OpenAiConfig::new(self.base_url(), "fake-model");
        config.connect_timeout = Duration::from_secs(2);
        config.first_byte_timeout = Duration::from_secs(2);
        config.idle_timeout = Duration::from_secs(2);
        config
    }

    /// Queues the response for a later request.
    pub fn push(&self, response: FakeResponse) {
        self.shared.lock().responses.push_back(response);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Streamed responses whose client went away before the body ended.
    pub fn disconnects(&self) -> usize {
        self.shared.lock().disconnects
    }

    /// Streamed responses sent to their end (including deliberate cuts).
    pub fn completed(&self) -> usize {
        self.shared.lock().completed
    }

    /// Waits until at least `count` client disconnects were observed.
    pub async fn wait_for_disconnects(&self, count: usize, timeout: Duration) -> bool {
        self.wait_until(|| self.disconnects() >= count, timeout)
            .await
    }

    /// Waits until at least `count` requests were received.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        self.wait_until(|| self.request_count() >= count, timeout)
            .await
    }

    async fn wait_until(&self, done: impl Fn() -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let max_tokens = recorded.body["max_tokens"].as_u64();
    let response = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        state.responses.pop_front()
    };
    let response = response.map(|response| match response {
        FakeResponse::Budgeted {
            delta,
            count,
            prompt_tokens,
        } => {
            let sent = max_tokens.map_or(count, |max| count.min(max));
            let deltas: Vec<&str> = (0..sent).map(|_| delta.as_str()).collect();
            let usage = Usage {
                prompt_tokens,
                completion_tokens: sent,
            };
            FakeResponse::answer(&deltas, Some(usage))
        }
        other => other,
    });
    let response = response.unwrap_or_else(|| {
        FakeResponse::error(500, "fake OpenAI server: no scripted response left")
    });
    respond(shared, response).await
}

async fn respond(shared: Arc<Shared>, mut response: FakeResponse) -> Response {
    loop {
        match response {
            FakeResponse::Delayed(delay, inner) => {
                tokio::time::sleep(delay).await;
                response = *inner;
            }
            FakeResponse::Budgeted { .. } => {
                // Resolved against the request in `handle`; not when nested.
                response = FakeResponse::error(500, "fake OpenAI server: nested budgeted answer");
            }
            FakeResponse::Hangup => {
                // Unwinding the connection's task drops its socket before a
                // byte of the response is written. `resume_unwind` skips the
                // panic hook, so nothing is printed.
                std::panic::resume_unwind(Box::new("fake server hung up"));
            }
            FakeResponse::Status { status, body } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (status, [(header::CONTENT_TYPE, "application/json")], body)
                    .into_response();
            }
            FakeResponse::Body { content_type, body } => {
                return ([(header::CONTENT_TYPE, content_type)], body).into_response();
            }
            FakeResponse::Stream(steps) => {
                let body = BodyPlayer {
                    steps: steps.into(),
                    shared,
                    finished: false,
                };
                let stream = futures_util::stream::unfold(body, |mut body| async move {
                    let item = body.next_chunk().await?;
                    Some((item, body))
                });
                return (
                    [
                        (header::CONTENT_TYPE, "text/event-stream"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    Body::from_stream(stream),
                )
                    .into_response();
            }
        }
    }
}

/// Plays the body steps; if it is dropped before the end, the client went
/// away (hyper drops the body when the connection closes).
struct BodyPlayer {
    steps: VecDeque<FakeStep>,
    shared: Arc<Shared>,
    finished: bool,
}

impl BodyPlayer {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            let Some(step) = self.steps.pop_front() else {
                self.finish();
                return None;
            };
            match step {
                FakeStep::Bytes(bytes) => return Some(Ok(Bytes::from(bytes))),
                FakeStep::Delay(delay) => tokio::time::sleep(delay).await,
                FakeStep::Cut => {
                    // Let hyper flush what was sent so far: it only writes
                    // when the body is pending, and an error discards its
                    // buffer.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.finish();
                    self.steps.clear();
                    return Some(Err(std::io::Error::other("fake server cut the connection")));
                }
                FakeStep::Hang => std::future::pending::<()>().await,
            }
        }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.shared.lock().completed += 1;
        }
    }
}

impl Drop for BodyPlayer {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.lock().disconnects += 1;
        }
    }
}
