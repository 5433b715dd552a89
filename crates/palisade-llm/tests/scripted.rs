//! The scripted provider used by the server's tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::{
    CancellationToken, ChatEvent, ChatMessage, ChatProvider, ChatRequest, LlmError, ScriptStep,
    ScriptedProvider, ScriptedReply, TimeoutKind, Usage, collect,
};

fn request(text: &str) -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("sys"), ChatMessage::user(text)])
}

#[tokio::test]
async fn replays_replies_in_order_and_records_requests() {
    let usage = Usage {
        prompt_tokens: 100,
        completion_tokens: 50,
    };
    let provider = ScriptedProvider::with_replies([
        ScriptedReply::deltas(["Hel", "lo"], Some(usage)),
        ScriptedReply::text("Title"),
    ]);
    let out = collect(
        provider
            .stream(request("first"), CancellationToken::new())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.deltas, vec!["Hel", "lo"]);
    assert_eq!(out.usage, Some(usage));
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));

    let out = collect(
        provider
            .stream(request("second"), CancellationToken::new())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.text, "Title");
    assert!(out.done);

    // Exhausted without a fallback.
    let err = provider
        .stream(request("third"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, LlmError::NotConfigured(_)));

    assert_eq!(provider.call_count(), 3);
    let texts: Vec<String> = provider
        .requests()
        .iter()
        .map(|r| r.messages[1].content.clone())
        .collect();
    assert_eq!(texts, vec!["first", "second", "third"]);
}

#[tokio::test]
async fn fallback_failures_and_errors() {
    let provider = ScriptedProvider::new();
    provider.set_fallback(ScriptedReply::text("again"));
    provider.push(ScriptedReply::fail(LlmError::Status {
        status: 500,
        excerpt: "boom".into(),
    }));
    provider.push(ScriptedReply::Steps(vec![
        ScriptStep::Delta("partial".into()),
        ScriptStep::Error(LlmError::Timeout {
            kind: TimeoutKind::Idle,
            after: Duration::from_secs(1),
        }),
        ScriptStep::Delta("never".into()),
    ]));
    let cancel = CancellationToken::new;
    assert!(matches!(
        provider.stream(request("a"), cancel()).await,
        Err(LlmError::Status { status: 500, .. })
    ));
    let out = collect(provider.stream(request("b"), cancel()).await.unwrap()).await;
    assert_eq!(out.text, "partial");
    assert!(out.error.unwrap().is_timeout());
    for _ in 0..2 {
        let out = collect(provider.stream(request("c"), cancel()).await.unwrap()).await;
        assert_eq!(out.text, "again");
    }
    assert_eq!(provider.call_count(), 4);
}

#[tokio::test]
async fn cancellation_interrupts_delays_and_hangs() {
    let provider = Arc::new(ScriptedProvider::with_replies([
        ScriptedReply::Steps(vec![
            ScriptStep::Delta("a".into()),
            ScriptStep::Delay(Duration::from_secs(10)),
            ScriptStep::Delta("b".into()),
        ]),
        ScriptedReply::Steps(vec![ScriptStep::Delta("x".into()), ScriptStep::Hang]),
    ]));
    for _ in 0..2 {
        let cancel = CancellationToken::new();
        let mut stream = provider.stream(request("q"), cancel.clone()).await.unwrap();
        assert!(matches!(stream.next().await, Some(Ok(ChatEvent::Delta(_)))));
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
        assert_eq!(stream.next().await, None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(provider.cancellations(), 2);
}
