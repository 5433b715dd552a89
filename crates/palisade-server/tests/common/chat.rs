//! Stream test support: a Palisade server whose model is a fake
//! OpenAI-compatible HTTP server (a real one, on loopback), and helpers to
//! post stream requests and read their NDJSON lines.

use std::ops::Deref;
use std::sync::Arc;

use palisade_llm::testing::{FakeOpenAi, FakeResponse};
use palisade_llm::{OpenAiProvider, Usage};
use palisade_server::prompt::{REJECTION_INSTRUCTION, TITLE_INSTRUCTION};
use palisade_server::{ChatSettings, InputGuard};
use palisade_store::Store;
use serde_json::Value;
use uuid::Uuid;

use super::{TestServer, shared_guard};

/// A server plus the fake model behind it.
pub struct ChatServer {
    pub server: TestServer,
    pub llm: FakeOpenAi,
}

impl Deref for ChatServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl ChatServer {
    pub async fn start(store: Arc<dyn Store>) -> ChatServer {
        Self::start_with(store, |_| {}).await
    }

    /// With chat settings adjusted by `configure` (history limit, quotas, …).
    pub async fn start_with(
        store: Arc<dyn Store>,
        configure: impl FnOnce(&mut ChatSettings),
    ) -> ChatServer {
        Self::start_guarded(store, shared_guard(), configure).await
    }

    /// With a guard of the test's choosing.
    pub async fn start_guarded(
        store: Arc<dyn Store>,
        guard: Arc<dyn InputGuard>,
        configure: impl FnOnce(&mut ChatSettings),
    ) -> ChatServer {
        let llm = FakeOpenAi::start().await;
        let provider = OpenAiProvider::new(llm.config()).expect("provider for the fake server");
        let mut settings = ChatSettings::new(Some(Arc::new(provider)));
        configure(&mut settings);
        let server = TestServer::start_with(store, guard, settings).await;
        ChatServer { server, llm }
    }

    /// Queues a well-formed answer made of one delta.
    pub fn answer(&self, text: &str) {
        self.llm.push(FakeResponse::answer(&[text], None));
    }

    /// Queues a well-formed answer with usage.
    pub fn answer_with_usage(&self, deltas: &[&str], prompt: u64, completion: u64) {
        let usage = Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        self.llm.push(FakeResponse::answer(deltas, Some(usage)));
    }

    /// Bodies of the model calls that were not title calls.
    pub fn answer_calls(&self) -> Vec<Value> {
        self.llm
            .requests()
            .into_iter()
            .map(|r| r.body)
            .filter(|body| !is_title_call(body))
            .collect()
    }

    /// Bodies of the title calls.
    pub fn title_calls(&self) -> Vec<Value> {
        self.llm
            .requests()
            .into_iter()
            .map(|r| r.body)
            .filter(is_title_call)
            .collect()
    }
}

fn is_title_call(body: &Value) -> bool {
    body["messages"][0]["content"].as_str() == Some(TITLE_INSTRUCTION)
}

/// Whether a model call was the rejection call for blocked input.
pub fn is_rejection_call(body: &Value) -> bool {
    body["messages"][0]["content"].as_str() == Some(REJECTION_INSTRUCTION)
}

/// `(role, content)` of every message of a model call.
pub fn call_messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {body}"))
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A whole NDJSON response, parsed line by line.
#[derive(Debug)]
pub struct Streamed {
    /// The raw body.
    pub body: String,
    pub lines: Vec<Value>,
}

impl Streamed {
    /// Reads a 200 NDJSON response to its end.
    pub async fn read(response: reqwest::Response) -> Streamed {
        let status = response.status();
        let content_type = super::header(&response, "content-type").map(str::to_owned);
        let body = response.text().await.expect("stream body");
        assert_eq!(status, 200, "stream answered {status}: {body}");
        assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
        assert!(
            body.is_empty() || body.ends_with('\n'),
            "unterminated line: {body:?}"
        );
        let lines = body
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}")))
            .collect();
        Streamed { body, lines }
    }

    /// The thread of the first line.
    pub fn thread_uuid(&self) -> Uuid {
        let first = self.lines.first().expect("a first line");
        let text = first["m"]["thread_uuid"]
            .as_str()
            .unwrap_or_else(|| panic!("first line is not the thread line: {first}"));
        Uuid::parse_str(text).expect("thread uuid")
    }

    /// The last line when it is the final metadata line.
    pub fn final_meta(&self) -> Option<&Value> {
        self.lines
            .last()
            .filter(|line| line["m"].get("assistant_message_uuid").is_some())
            .map(|line| &line["m"])
    }

    pub fn assistant_uuid(&self) -> Uuid {
        let meta = self.final_meta().expect("a final metadata line");
        Uuid::parse_str(meta["assistant_message_uuid"].as_str().expect("uuid")).expect("uuid")
    }

    /// The `c` of every markdown line, concatenated.
    pub fn markdown(&self) -> String {
        self.lines
            .iter()
            .filter(|line| line["k"] == "markdown")
            .filter_map(|line| line["c"].as_str())
            .collect()
    }

    pub fn warning(&self) -> Option<&str> {
        self.lines.iter().find_map(|line| line["w"].as_str())
    }

    pub fn error(&self) -> Option<&str> {
        self.lines.iter().find_map(|line| line["e"].as_str())
    }
}
