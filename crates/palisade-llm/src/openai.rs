//! The OpenAI-compatible chat-completions provider (vLLM, llama.cpp server,
//! Ollama, LiteLLM, OpenAI).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::ChatProvider;
use crate::sse::SseParser;
use crate::types::{ChatEvent, ChatMessage, ChatRequest, ChatStream, LlmError, TimeoutKind, Usage};

/// Longest error excerpt kept from an upstream error body, in characters.
const EXCERPT_CHARS: usize = 300;
/// Most bytes read from a non-2xx body to build the excerpt.
const ERROR_BODY_BYTES: usize = 8 * 1024;
/// Most bytes accepted from a non-streaming (plain JSON) 200 answer.
const JSON_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `url` as it may appear in logs and messages: without userinfo, so
/// `https://user:pass@host/v1` becomes `https://host/v1`. (reqwest sends
/// the userinfo as basic authentication and keeps it out of its errors.)
pub fn url_for_logs(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // A password may itself hold `/` or `@` (unencoded), so the userinfo is
    // taken as everything up to the last `@` before the query.
    let path_start = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..path_start].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Configuration of [`OpenAiProvider`]. `Debug` never shows the API key,
/// nor credentials in the base URL.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL up to and including the version segment, e.g.
    /// `http://127.0.0.1:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set and not empty.
    pub api_key: Option<String>,
    /// Model name sent upstream; left out of the request when empty (some
    /// single-model servers such as llama.cpp's accept that).
    pub model: String,
    /// Defaults for requests that do not set their own.
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Establishing the connection.
    pub connect_timeout: Duration,
    /// From sending the request to the first byte of the response body
    /// (covers the response headers and the model's time to first token).
    pub first_byte_timeout: Duration,
    /// Longest silence between two pieces of the body once it started
    /// (keep-alive comments count as activity).
    pub idle_timeout: Duration,
}

impl OpenAiConfig {
    /// A configuration with the default timeouts (connect 5 s, first byte
    /// 60 s, idle 60 s) and no sampling defaults.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &url_for_logs(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("top_p", &self.top_p)
            .field("max_tokens", &self.max_tokens)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// Streams answers from `POST {base_url}/chat/completions` with
/// `stream: true` and `stream_options.include_usage`.
pub struct OpenAiProvider {
    config: OpenAiConfig,
    url: String,
    authorization: Option<HeaderValue>,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("config", &self.config)
            .field("url", &url_for_logs(&self.url))
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Checks the configuration and builds the HTTP client. Fails with
    /// [`LlmError::NotConfigured`] when the base URL is missing or unusable.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let base = config.base_url.trim().trim_end_matches('/');
        if base.is_empty() {
            return Err(LlmError::NotConfigured("no base URL is set".into()));
        }
        let url = format!("{base}/chat/completions");
        let shown = url_for_logs(base);
        let parsed = reqwest::Url::parse(&url)
            .map_err(|err| LlmError::NotConfigured(format!("invalid base URL {shown:?}: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::NotConfigured(format!(
                "base URL {shown:?} is not http(s)"
            )));
        }
        let authorization = match config.api_key.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    LlmError::NotConfigured(
                        "the API key contains characters not allowed in an HTTP header".into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|err| LlmError::NotConfigured(format!("HTTP client: {}", describe(&err))))?;
        Ok(OpenAiProvider {
            config,
            url,
            authorization,
            client,
        })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// The full chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> WireRequest<'a> {
        let model = self.config.model.trim();
        WireRequest {
            model: (!model.is_empty()).then_some(model),
            messages: &request.messages,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            temperature: request.temperature.or(self.config.temperature),
            top_p: request.top_p.or(self.config.top_p),
            max_tokens: request.max_tokens.or(self.config.max_tokens),
        }
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: &'a [ChatMessage],
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn max_tokens(&self) -> Option<u32> {
        self.config.max_tokens
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let first_byte_deadline = Instant::now() + self.config.first_byte_timeout;
        // A pooled keep-alive connection the server has closed fails the
        // request before any byte comes back; the failed connection leaves
        // the pool, so one more attempt goes out on a fresh one.
        let mut retried = false;
        let response = loop {
            let mut builder = self
                .client
                .post(&self.url)
                .header(ACCEPT, "text/event-stream")
                .json(&self.body(&request));
            if let Some(value) = &self.authorization {
                builder = builder.header(AUTHORIZATION, value.clone());
            }
            let sent = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                _ = sleep_until(first_byte_deadline) => {
                    return Err(LlmError::Timeout {
                        kind: TimeoutKind::FirstByte,
                        after: self.config.first_byte_timeout,
                    });
                }
                sent = builder.send() => sent,
            };
            match sent {
                Ok(response) => break response,
                Err(err) if !retried && is_closed_connection(&err) => {
                    tracing::debug!(error = %describe(&err), "upstream closed the connection; retrying once");
                    retried = true;
                }
                Err(err) => return Err(self.send_error(&err)),
            }
        };

        let status = response.status();
        if !status.is_success() {
            let excerpt = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                excerpt = error_excerpt(response, self.config.idle_timeout) => excerpt,
            };
            return Err(LlmError::Status {
                status: status.as_u16(),
                excerpt,
            });
        }

        let plain_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().contains("application/json"));

        let state = StreamState {
            body: Some(Box::pin(response.bytes_stream())),
            cancel,
            parser: SseParser::new(),
            plain_json: plain_json.then(Vec::new),
            queue: VecDeque::new(),
            deadline: first_byte_deadline,
            got_first_byte: false,
            first_byte_timeout: self.config.first_byte_timeout,
            idle_timeout: self.config.idle_timeout,
            usage: None,
            finish_reason: None,
            chunks_seen: 0,
            skipped_events: 0,
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next_item().await?;
                Some((item, state))
            },
        )))
    }
}

/// A request that failed on an established connection before any response
/// byte (not a connect failure, a timeout or a bad request): what a closed
/// keep-alive connection looks like.
fn is_closed_connection(err: &reqwest::Error) -> bool {
    err.is_request() && !err.is_connect() && !err.is_timeout() && !err.is_builder()
}

impl OpenAiProvider {
    fn send_error(&self, err: &reqwest::Error) -> LlmError {
        if err.is_connect() {
            if err.is_timeout() {
                LlmError::Timeout {
                    kind: TimeoutKind::Connect,
                    after: self.config.connect_timeout,
                }
            } else {
                let text = describe(err);
                if self.url.starts_with("https:") && text.contains("scheme is not http") {
                    // reqwest was built without a TLS backend.
                    LlmError::NotConfigured(format!(
                        "this build cannot speak HTTPS (no TLS backend in reqwest): {text}"
                    ))
                } else {
                    LlmError::Connect(text)
                }
            }
        } else if err.is_timeout() {
            LlmError::Timeout {
                kind: TimeoutKind::FirstByte,
                after: self.config.first_byte_timeout,
            }
        } else if err.is_builder() {
            LlmError::NotConfigured(describe(err))
        } else {
            LlmError::Network(describe(err))
        }
    }
}

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct StreamState {
    /// `None` once the stream ended, so the connection is dropped right away.
    body: Option<BodyStream>,
    cancel: CancellationToken,
    parser: SseParser,
    /// `Some` when the upstream answered with a plain JSON completion instead
    /// of an event stream: the body is gathered and read at the end.
    plain_json: Option<Vec<u8>>,
    queue: VecDeque<Result<ChatEvent, LlmError>>,
    /// When the current timeout (first byte, then idle) fires.
    deadline: Instant,
    got_first_byte: bool,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    chunks_seen: usize,
    skipped_events: usize,
    ended: bool,
}

enum Wake {
    Cancelled,
    Deadline,
    Body(Option<reqwest::Result<Bytes>>),
}

impl StreamState {
    async fn next_item(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            let body = self.body.as_mut()?;
            let wake = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Wake::Cancelled,
                _ = sleep_until(self.deadline) => Wake::Deadline,
                next = body.next() => Wake::Body(next),
            };
            match wake {
                Wake::Cancelled => self.end_with(Err(LlmError::Cancelled)),
                Wake::Deadline => {
                    let (kind, after) = if self.got_first_byte {
                        (TimeoutKind::Idle, self.idle_timeout)
                    } else {
                        (TimeoutKind::FirstByte, self.first_byte_timeout)
                    };
                    if self.finish_reason.is_some() {
                        // The answer is complete; only the closing marker is late.
                        self.finish();
                    } else {
                        self.end_with(Err(LlmError::Timeout { kind, after }));
                    }
                }
                Wake::Body(Some(Ok(bytes))) => {
                    self.got_first_byte = true;
                    self.deadline = Instant::now() + self.idle_timeout;
                    self.feed(&bytes);
                }
                Wake::Body(Some(Err(err))) => {
                    if self.finish_reason.is_some() {
                        self.finish();
                    } else {
                        self.end_with(Err(LlmError::Network(describe(&err))));
                    }
                }
                Wake::Body(None) => self.body_ended(),
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let Some(buf) = self.plain_json.as_mut() {
            buf.extend_from_slice(bytes);
            if buf.len() > JSON_BODY_BYTES {
                self.end_with(Err(LlmError::MalformedStream(
                    "JSON answer larger than 4 MiB".into(),
                )));
            }
            return;
        }
        let mut events = Vec::new();
        let result = self.parser.feed(bytes, &mut events);
        self.events(events);
        if result.is_err() && !self.ended {
            self.end_with(Err(LlmError::MalformedStream(
                "a line longer than 1 MiB".into(),
            )));
        }
    }

    fn body_ended(&mut self) {
        if let Some(buf) = self.plain_json.take() {
            match serde_json::from_slice::<Value>(&buf) {
                Ok(value) => self.chunk(&value),
                Err(_) => self.skipped_events += 1,
            }
        } else {
            let mut events = Vec::new();
            self.parser.finish(&mut events);
            self.events(events);
        }
        if self.ended {
            return;
        }
        if self.finish_reason.is_some() {
            self.finish();
        } else if self.chunks_seen == 0 {
            let detail = if self.skipped_events > 0 {
                format!(
                    "no chat-completion chunk in the response ({} undecodable events)",
                    self.skipped_events
                )
            } else {
                "no chat-completion chunk in the response".to_owned()
            };
            self.end_with(Err(LlmError::MalformedStream(detail)));
        } else {
            self.end_with(Err(LlmError::Truncated));
        }
    }

    fn events(&mut self, events: Vec<String>) {
        for data in events {
            if self.ended {
                return;
            }
            self.event(&data);
        }
    }

    fn event(&mut self, data: &str) {
        let trimmed = data.trim();
        if trimmed.is_empty() {
            return;
        }
        if trimmed == "[DONE]" {
            self.finish();
            return;
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => self.chunk(&value),
            Err(_) if trimmed.contains('\n') => {
                // Some servers forget the blank line between events, which
                // makes several `data:` lines one event: read them one by one.
                for line in trimmed.lines() {
                    if self.ended {
                        return;
                    }
                    self.event(line);
                }
            }
            Err(err) => {
                self.skipped_events += 1;
                tracing::debug!(%err, "skipping undecodable event from the LLM upstream");
            }
        }
    }

    fn chunk(&mut self, value: &Value) {
        let Some(object) = value.as_object() else {
            self.skipped_events += 1;
            return;
        };
        if let Some(error) = object.get("error").filter(|error| !error.is_null()) {
            let message = error_message(error);
            self.end_with(Err(LlmError::Upstream(excerpt(&message))));
            return;
        }
        self.chunks_seen += 1;
        if let Some(usage) = object.get("usage").and_then(Value::as_object) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
            self.usage = Some(Usage {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
            });
        }
        let Some(choices) = object.get("choices").and_then(Value::as_array) else {
            return;
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            // `delta.content` in a stream; `message.content` in a plain JSON
            // answer. `reasoning_content` (thinking) is deliberately ignored.
            let text = choice
                .pointer("/delta/content")
                .or_else(|| choice.pointer("/message/content"))
                .and_then(Value::as_str);
            if let Some(text) = text.filter(|text| !text.is_empty()) {
                self.queue.push_back(Ok(ChatEvent::Delta(text.to_owned())));
            }
            if let Some(reason) = choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .filter(|reason| !reason.is_empty())
            {
                self.finish_reason = Some(reason.to_owned());
            }
        }
    }

    fn finish(&mut self) {
        let done = ChatEvent::Done {
            usage: self.usage,
            finish_reason: self.finish_reason.clone(),
        };
        self.end_with(Ok(done));
    }

    fn end_with(&mut self, item: Result<ChatEvent, LlmError>) {
        self.queue.push_back(item);
        self.ended = true;
        self.body = None;
    }
}

/// Reads (a bounded part of) an error body and makes a short, single-line
/// excerpt of it, preferring the `error.message` of an OpenAI error object.
async fn error_excerpt(response: reqwest::Response, limit: Duration) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_BYTES {
                break;
            }
        }
    };
    // A slow error body is not worth waiting for: keep what arrived.
    let _ = tokio::time::timeout(limit, read).await;
    body.truncate(ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&body);
    let message = match serde_json::from_str::<Value>(text.trim()) {
        Ok(value) => match value.get("error") {
            Some(error) => error_message(error),
            None => value
                .get("detail")
                .or_else(|| value.get("message"))
                .and_then(Value::as_str)
                .map_or_else(|| text.to_string(), str::to_owned),
        },
        Err(_) => text.to_string(),
    };
    excerpt(&message)
}

fn error_message(error: &Value) -> String {
    match error {
        Value::String(message) => message.clone(),
        Value::Object(object) => object
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned),
        other => other.to_string(),
    }
}

/// Whitespace collapsed, at most [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= EXCERPT_CHARS {
        return collapsed;
    }
    let mut short: String = collapsed.chars().take(EXCERPT_CHARS).collect();
    short.push('…');
    short
}

/// An error and its sources on one line (reqwest's own message alone rarely
/// says what went wrong).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_userinfo() {
        assert_eq!(url_for_logs("https://user:pass@host"), "https://host");
        assert_eq!(
            url_for_logs("http://u:p@ss/w@llm.test:8000/v1?x=1"),
            "http://llm.test:8000/v1?x=1"
        );
        assert_eq!(
            url_for_logs("http://127.0.0.1:11434/v1"),
            "http://127.0.0.1:11434/v1"
        );
        assert_eq!(url_for_logs("not a url"), "not a url");
        let config = OpenAiConfig::new("https://proxy:s3cret@llm.test/v1", "m");
        assert!(!format!("{config:?}").contains("s3cret"));
        let provider = OpenAiProvider::new(config).unwrap();
        assert!(!format!("{provider:?}").contains("s3cret"));
    }

    #[test]
    fn debug_hides_the_key() {
        let mut config = OpenAiConfig::new("http://127.0.0.1:1/v1", "m");
        config.api_key = Some("sk-secret-value".into());
        let text = format!("{config:?}");
        assert!(!text.contains("sk-secret-value"), "{text}");
        assert!(text.contains("<redacted>"));
        let provider = OpenAiProvider::new(config).unwrap();
        assert!(!format!("{provider:?}").contains("sk-secret-value"));
    }

    #[test]
    fn url_is_built_from_the_base() {
        let provider =
            OpenAiProvider::new(OpenAiConfig::new(" http://localhost:11434/v1/ ", "m")).unwrap();
        assert_eq!(provider.url(), "http://localhost:11434/v1/chat/completions");
    }

    #[test]
    fn unusable_configuration_is_not_configured() {
        for base in ["", "   ", "not a url", "ftp://example.com/v1"] {
            let err = OpenAiProvider::new(OpenAiConfig::new(base, "m")).unwrap_err();
            assert!(matches!(err, LlmError::NotConfigured(_)), "{base:?}: {err}");
        }
        let mut config = OpenAiConfig::new("http://localhost/v1", "m");
        config.api_key = Some("bad\nkey".into());
        assert!(matches!(
            OpenAiProvider::new(config),
            Err(LlmError::NotConfigured(_))
        ));
    }

    #[test]
    fn excerpt_is_short_and_single_line() {
        let long = "word\n".repeat(500);
        let short = excerpt(&long);
        assert!(!short.contains('\n'));
        assert_eq!(short.chars().count(), EXCERPT_CHARS + 1);
    }
}
