//! The OpenAI-compatible provider against a real HTTP server speaking the
//! streaming protocol (`palisade_llm::testing::FakeOpenAi`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::testing::{
    FakeOpenAi, FakeResponse, FakeStep, content_chunk, content_json, done, finish_chunk, raw,
    reasoning_chunk, resplit, role_chunk, usage_chunk,
};
use palisade_llm::{
    CancellationToken, ChatEvent, ChatMessage, ChatProvider, ChatRequest, Collected, LlmError,
    OpenAiConfig, OpenAiProvider, TimeoutKind, Usage, collect,
};
use serde_json::json;

const SHORT: Duration = Duration::from_millis(200);

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are careful."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello! How can I help?"),
        ChatMessage::user("Say hello"),
    ])
}

fn short_config(fake: &FakeOpenAi) -> OpenAiConfig {
    let mut config = fake.config();
    config.first_byte_timeout = SHORT;
    config.idle_timeout = SHORT;
    config
}

/// Runs one call; an error of `stream()` itself lands in `Collected::error`.
async fn run(provider: &dyn ChatProvider, request: ChatRequest) -> Collected {
    match provider.stream(request, CancellationToken::new()).await {
        Ok(stream) => collect(stream).await,
        Err(error) => Collected {
            error: Some(error),
            ..Collected::default()
        },
    }
}

async fn setup(responses: Vec<FakeResponse>) -> (FakeOpenAi, OpenAiProvider) {
    let fake = FakeOpenAi::start().await;
    for response in responses {
        fake.push(response);
    }
    let provider = OpenAiProvider::new(short_config(&fake)).unwrap();
    (fake, provider)
}

const USAGE: Usage = Usage {
    prompt_tokens: 12,
    completion_tokens: 3,
};

#[tokio::test]
async fn normal_answer_with_usage() {
    let (fake, provider) = setup(vec![FakeResponse::answer(
        &["Hel", "lo", " world"],
        Some(USAGE),
    )])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert!(out.done);
    assert_eq!(out.deltas, vec!["Hel", "lo", " world"]);
    assert_eq!(out.text, "Hello world");
    assert_eq!(out.usage, Some(USAGE));
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.completed(), 1);
}

#[tokio::test]
async fn request_body_and_headers() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeResponse::answer(&["a"], None));
    fake.push(FakeResponse::answer(&["b"], None));
    fake.push(FakeResponse::answer(&["c"], None));

    // Without a key: no Authorization header; configured sampling defaults sent.
    let mut config = short_config(&fake);
    config.temperature = Some(0.7);
    config.top_p = Some(0.8);
    config.max_tokens = Some(512);
    let provider = OpenAiProvider::new(config.clone()).unwrap();
    assert!(run(&provider, request()).await.done);

    // With a key; the request's own sampling values win over the defaults.
    config.api_key = Some("sk-test-123".into());
    let provider = OpenAiProvider::new(config.clone()).unwrap();
    let mut overriding = request();
    overriding.temperature = Some(0.0);
    overriding.max_tokens = Some(20);
    assert!(run(&provider, overriding).await.done);

    // An empty key counts as none; an empty model is left out.
    config.api_key = Some("  ".into());
    config.model = String::new();
    config.temperature = None;
    config.top_p = None;
    config.max_tokens = None;
    let provider = OpenAiProvider::new(config).unwrap();
    assert!(run(&provider, request()).await.done);

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.header("authorization"), None);
    assert!(
        first
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(first.header("accept").as_deref(), Some("text/event-stream"));
    assert_eq!(
        first.body,
        json!({
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "You are careful."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Say hello"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.7,
            "top_p": 0.8,
            "max_tokens": 512,
        })
    );

    let second = &requests[1];
    assert_eq!(
        second.header("authorization").as_deref(),
        Some("Bearer sk-test-123")
    );
    assert_eq!(second.body["temperature"], json!(0.0));
    assert_eq!(second.body["top_p"], json!(0.8));
    assert_eq!(second.body["max_tokens"], json!(20));

    let third = &requests[2];
    assert_eq!(third.header("authorization"), None);
    let keys: Vec<&str> = third
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["messages", "stream", "stream_options"]);
}

#[tokio::test]
async fn keep_alives_crlf_and_chunks_split_anywhere() {
    // CRLF line endings, keep-alive comments, `data:` without a space, an
    // event split over two `data:` lines, unknown fields, null and empty
    // finish reasons, multi-byte characters; then cut into tiny pieces.
    let delta = |text: &str| content_json(text).to_string();
    let mut unknown = content_json("ü");
    unknown["choices"][0]["delta"]["extra"] = json!({"nested": [1, 2]});
    unknown["brand_new_field"] = json!("x");
    let mut empty_reason = content_json("😀!");
    empty_reason["choices"][0]["finish_reason"] = json!("");
    // One event as pretty-printed JSON over several `data:` lines.
    let multi_line: String = serde_json::to_string_pretty(&content_json(" – "))
        .unwrap()
        .lines()
        .map(|line| format!("data:{line}\r\n"))
        .collect();
    let body = format!(
        ": keep-alive\r\n\r\n\
         data: {}\r\n\r\n\
         :ping\r\n\
         data:{}\r\n\r\n\
         data: {}\r\n\r\n\
         {multi_line}\r\n\
         data: {}\r\n\r\n\
         : still here\r\n\r\n\
         data: {}\r\n\r\n\
         data: {}\r\n\r\n\
         data: [DONE]\r\n\r\n",
        delta("Grüße"),
        delta(", 世界"),
        unknown,
        empty_reason,
        json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
        json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12, "prompt_tokens_details": null}}),
    );
    let expected = "Grüße, 世界ü – 😀!";
    for size in [1, 2, 3, 5, 7, 64, 4096] {
        let (_fake, provider) =
            setup(vec![FakeResponse::Stream(resplit(&[raw(&body)], size))]).await;
        let out = run(&provider, request()).await;
        assert_eq!(out.error, None, "piece size {size}");
        assert_eq!(out.text, expected, "piece size {size}");
        assert_eq!(out.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            out.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7
            })
        );
    }
}

#[tokio::test]
async fn reasoning_content_is_not_answer_text() {
    let (_fake, provider) = setup(vec![FakeResponse::Stream(vec![
        role_chunk(),
        reasoning_chunk("The user wants a greeting. "),
        reasoning_chunk("I will say hello."),
        content_chunk("Hello"),
        content_chunk("!"),
        finish_chunk("stop"),
        usage_chunk(USAGE),
        done(),
    ])])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert_eq!(out.deltas, vec!["Hello", "!"]);
    assert_eq!(out.usage, Some(USAGE));
}

#[tokio::test]
async fn stall_before_the_first_byte_is_a_first_byte_timeout() {
    // Headers sent, body silent.
    let (fake, provider) = setup(vec![
        FakeResponse::Stream(vec![FakeStep::Delay(Duration::from_secs(5)), done()]),
        FakeResponse::Delayed(
            Duration::from_secs(5),
            Box::new(FakeResponse::answer(&["late"], None)),
        ),
    ])
    .await;
    for _ in 0..2 {
        let started = Instant::now();
        let out = run(&provider, request()).await;
        let elapsed = started.elapsed();
        assert_eq!(
            out.error,
            Some(LlmError::Timeout {
                kind: TimeoutKind::FirstByte,
                after: SHORT
            })
        );
        assert!(out.text.is_empty());
        assert!(elapsed >= SHORT && elapsed < SHORT * 5, "{elapsed:?}");
    }
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn stall_mid_stream_is_an_idle_timeout_after_the_partial_text() {
    let (fake, provider) = setup(vec![FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk("Partial "),
        content_chunk("answer"),
        FakeStep::Hang,
    ])])
    .await;
    let started = Instant::now();
    let out = run(&provider, request()).await;
    assert_eq!(out.text, "Partial answer");
    assert!(!out.done);
    assert_eq!(
        out.error,
        Some(LlmError::Timeout {
            kind: TimeoutKind::Idle,
            after: SHORT
        })
    );
    assert!(started.elapsed() < SHORT * 5);
    // The provider dropped the connection; the server notices.
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn keep_alive_comments_keep_a_slow_stream_alive() {
    let mut steps = vec![role_chunk()];
    for _ in 0..4 {
        steps.push(FakeStep::Delay(Duration::from_millis(120)));
        steps.push(raw(": keep-alive\n\n"));
    }
    steps.extend([content_chunk("slow but fine"), finish_chunk("stop"), done()]);
    let (_fake, provider) = setup(vec![FakeResponse::Stream(steps)]).await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert_eq!(out.text, "slow but fine");
}

#[tokio::test]
async fn finish_reason_then_silence_counts_as_done() {
    let (_fake, provider) = setup(vec![FakeResponse::Stream(vec![
        content_chunk("All said."),
        finish_chunk("stop"),
        FakeStep::Hang,
    ])])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert!(out.done);
    assert_eq!(out.text, "All said.");
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn http_500_with_a_json_error_body() {
    let (_fake, provider) = setup(vec![
        FakeResponse::error(500, "model overloaded, try later"),
        FakeResponse::Status {
            status: 404,
            body: "<html>\n  <body>Not   Found</body>\n</html>".into(),
        },
        FakeResponse::Status {
            status: 401,
            body: "x".repeat(10_000),
        },
    ])
    .await;
    let err = provider
        .stream(request(), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert_eq!(
        err,
        LlmError::Status {
            status: 500,
            excerpt: "model overloaded, try later".into()
        }
    );
    let err = run(&provider, request()).await.error.unwrap();
    assert_eq!(
        err,
        LlmError::Status {
            status: 404,
            excerpt: "<html> <body>Not Found</body> </html>".into()
        }
    );
    match run(&provider, request()).await.error.unwrap() {
        LlmError::Status { status, excerpt } => {
            assert_eq!(status, 401);
            assert!(excerpt.chars().count() <= 301, "{}", excerpt.len());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn garbage_lines_are_skipped() {
    let (_fake, provider) = setup(vec![FakeResponse::Stream(vec![
        raw("this is not sse at all\n\n"),
        raw("data: {not json}\n\n"),
        raw("data: 42\n\n"),
        raw("event: weird\nid: 7\nretry: 100\n\n"),
        content_chunk("Still "),
        raw("data: {\"choices\": \"wrong type\"}\n\n"),
        raw("data: {\"choices\": [{\"delta\": {\"content\": 5}}]}\n\n"),
        raw("\u{0}\u{1}binary\u{ff}\n\n"),
        content_chunk("works"),
        finish_chunk("stop"),
        done(),
    ])])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert_eq!(out.text, "Still works");
}

#[tokio::test]
async fn only_garbage_is_a_malformed_stream() {
    let (_fake, provider) = setup(vec![FakeResponse::Stream(vec![
        raw("<html>oops</html>\n"),
        raw("data: nonsense\n\n"),
    ])])
    .await;
    let out = run(&provider, request()).await;
    assert!(
        matches!(out.error, Some(LlmError::MalformedStream(_))),
        "{:?}",
        out.error
    );
}

#[tokio::test]
async fn connection_cut_mid_answer_is_an_error_after_the_partial_text() {
    let (_fake, provider) = setup(vec![
        // Transport failure: the chunked body is never terminated.
        FakeResponse::Stream(vec![
            content_chunk("Half an "),
            content_chunk("answ"),
            FakeStep::Cut,
        ]),
        // Clean close without `[DONE]` or a finish reason.
        FakeResponse::Stream(vec![content_chunk("Half an "), content_chunk("answ")]),
        // Clean close after a finish reason but before `[DONE]`: complete.
        FakeResponse::Stream(vec![content_chunk("Whole."), finish_chunk("stop")]),
    ])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.text, "Half an answ");
    assert!(!out.done);
    assert!(
        matches!(out.error, Some(LlmError::Network(_))),
        "{:?}",
        out.error
    );

    let out = run(&provider, request()).await;
    assert_eq!(out.text, "Half an answ");
    assert_eq!(out.error, Some(LlmError::Truncated));

    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert!(out.done);
    assert_eq!(out.text, "Whole.");
}

#[tokio::test]
async fn error_object_inside_the_stream() {
    let (_fake, provider) = setup(vec![FakeResponse::Stream(vec![
        content_chunk("Start"),
        raw("data: {\"error\": {\"message\": \"context length exceeded\", \"code\": 400}}\n\n"),
        content_chunk("never seen"),
        done(),
    ])])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.text, "Start");
    assert_eq!(
        out.error,
        Some(LlmError::Upstream("context length exceeded".into()))
    );
}

#[tokio::test]
async fn a_plain_json_answer_is_accepted() {
    let body = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Not streamed."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
    });
    let (_fake, provider) = setup(vec![FakeResponse::Body {
        content_type: "application/json".into(),
        body: body.to_string(),
    }])
    .await;
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert_eq!(out.text, "Not streamed.");
    assert_eq!(
        out.usage,
        Some(Usage {
            prompt_tokens: 4,
            completion_tokens: 3
        })
    );
}

#[tokio::test]
async fn cancellation_mid_stream_ends_promptly_and_drops_the_connection() {
    let mut steps = vec![role_chunk()];
    for i in 0..200 {
        steps.push(content_chunk(&format!("t{i} ")));
        steps.push(FakeStep::Delay(Duration::from_millis(20)));
    }
    steps.push(done());
    let (fake, provider) = setup(vec![FakeResponse::Stream(steps)]).await;

    let cancel = CancellationToken::new();
    let mut stream = provider.stream(request(), cancel.clone()).await.unwrap();
    let mut received = Vec::new();
    while received.len() < 3 {
        match stream.next().await {
            Some(Ok(ChatEvent::Delta(text))) => received.push(text),
            other => panic!("unexpected {other:?}"),
        }
    }
    let cancelled_at = Instant::now();
    cancel.cancel();
    let mut tail = Vec::new();
    while let Some(item) = stream.next().await {
        tail.push(item);
    }
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(100),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(tail, vec![Err(LlmError::Cancelled)]);
    assert_eq!(received, vec!["t0 ", "t1 ", "t2 "]);
    // The stream is not even dropped yet, yet the connection is gone.
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(2)).await);
    assert_eq!(fake.completed(), 0);
    drop(stream);
}

#[tokio::test]
async fn cancellation_before_the_response_arrives() {
    let (fake, provider) = setup(vec![FakeResponse::Delayed(
        Duration::from_secs(5),
        Box::new(FakeResponse::answer(&["late"], None)),
    )])
    .await;
    let mut config = short_config(&fake);
    config.first_byte_timeout = Duration::from_secs(10);
    let provider_slow = OpenAiProvider::new(config).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let result = provider_slow.stream(request(), cancel.clone()).await;
    assert!(matches!(result, Err(LlmError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(1));
    // An already-cancelled token makes no request at all.
    let result = provider.stream(request(), cancel).await;
    assert!(matches!(result, Err(LlmError::Cancelled)));
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn dropping_the_stream_drops_the_connection() {
    let (fake, provider) = setup(vec![FakeResponse::Stream(vec![
        content_chunk("a"),
        FakeStep::Delay(Duration::from_millis(20)),
        content_chunk("b"),
        FakeStep::Hang,
    ])])
    .await;
    let mut stream = provider
        .stream(request(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("a".into()))));
    drop(stream);
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = OpenAiProvider::new(OpenAiConfig::new(
        format!("http://127.0.0.1:{port}/v1"),
        "m",
    ))
    .unwrap();
    let out = run(&provider, request()).await;
    assert!(
        matches!(out.error, Some(LlmError::Connect(_))),
        "{:?}",
        out.error
    );
}

#[tokio::test]
async fn usable_as_a_shared_trait_object() {
    let (fake, provider) = setup(vec![
        FakeResponse::answer(&["one"], None),
        FakeResponse::answer(&["two"], None),
    ])
    .await;
    let provider: Arc<dyn ChatProvider> = Arc::new(provider);
    assert_eq!(provider.name(), "openai");
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { run(provider.as_ref(), request()).await })
        })
        .collect();
    let mut texts = Vec::new();
    for task in tasks {
        texts.push(task.await.unwrap().text);
    }
    texts.sort();
    assert_eq!(texts, vec!["one", "two"]);
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn https_without_tls_support_is_reported_as_configuration() {
    let provider = OpenAiProvider::new(OpenAiConfig::new("https://127.0.0.1:9/v1", "m")).unwrap();
    let out = run(&provider, request()).await;
    match out.error {
        // A build with a TLS backend gets a plain connect error instead.
        Some(LlmError::NotConfigured(text)) => assert!(text.contains("HTTPS"), "{text}"),
        Some(LlmError::Connect(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// A connection closed by the server before it answered (a pooled
/// keep-alive connection the server dropped) is retried once on a fresh
/// connection; the second answer is the one streamed.
#[tokio::test]
async fn a_closed_connection_is_retried_once() {
    let (fake, provider) = setup(vec![
        FakeResponse::answer(&["first"], None),
        FakeResponse::Hangup,
        FakeResponse::answer(&["second"], None),
    ])
    .await;
    assert_eq!(run(&provider, request()).await.text, "first");
    let out = run(&provider, request()).await;
    assert_eq!(out.error, None);
    assert_eq!(out.text, "second");
    assert_eq!(
        fake.request_count(),
        3,
        "the failed attempt reached the server"
    );
}

/// Only once: a server that keeps hanging up is an error.
#[tokio::test]
async fn a_second_hangup_is_an_error() {
    let (fake, provider) = setup(vec![FakeResponse::Hangup, FakeResponse::Hangup]).await;
    let out = run(&provider, request()).await;
    assert!(
        matches!(out.error, Some(LlmError::Network(_))),
        "{:?}",
        out.error
    );
    assert_eq!(fake.request_count(), 2);
}
