//! `POST /api/chat/stream/`: the NDJSON wire format, persistence of normal,
//! reload and edit modes, title generation, token usage and the prompt
//! (checklist 34–44, 56, 57 and deviation 1), on both databases.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::chat::{ChatServer, Streamed, call_messages};
use palisade_llm::Usage;
use palisade_llm::testing::{FakeResponse, FakeStep, content_chunk, role_chunk, usage_chunk};
use palisade_store::{Role, Store};
use serde_json::{Value, json};

use common::hex;

/// Items 34, 36, 42: the line sequence, ASCII escaping, and pairs of
/// sequence indexes matching the final metadata line.
async fn line_sequence_and_indexes(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.llm.push(FakeResponse::answer(&["Hel", "lo"], None));
    let first = chat.stream(&alice, &json!({"input": "hi"})).await;
    let thread = first.thread_uuid();
    assert_eq!(first.lines.len(), 3, "{:?}", first.lines);
    assert_eq!(first.lines[1], json!({"k": "markdown", "c": "Hello"}));
    let meta = first.final_meta().expect("final line");
    let messages = chat.active_messages(thread).await;
    assert_eq!(
        (
            messages[0].role,
            messages[0].sequence_index,
            messages[0].content.as_str()
        ),
        (Role::User, 1, "hi")
    );
    assert_eq!(
        (
            messages[1].role,
            messages[1].sequence_index,
            messages[1].content.as_str()
        ),
        (Role::Assistant, 2, "Hello")
    );
    assert_eq!(meta["user_message_uuid"], hex(&messages[0].uuid));
    assert_eq!(meta["assistant_message_uuid"], hex(&messages[1].uuid));
    assert_eq!(
        first.body.lines().last().unwrap(),
        format!(
            r#"{{"m":{{"user_message_uuid":"{}","assistant_message_uuid":"{}"}}}}"#,
            hex(&messages[0].uuid),
            hex(&messages[1].uuid)
        )
    );

    chat.llm.push(FakeResponse::answer(
        &["Grüße 👋 ```bash\necho hi\n``` done"],
        Some(Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
        }),
    ));
    let second = chat
        .stream(
            &alice,
            &json!({"input": "more", "thread_uuid": hex(&thread)}),
        )
        .await;
    assert!(second.body.is_ascii(), "ASCII-escaped: {}", second.body);
    assert!(
        second.body.contains(r"Gr\u00fc\u00dfe \ud83d\udc4b "),
        "{}",
        second.body
    );
    let kinds: Vec<&str> = second.lines[1..second.lines.len() - 1]
        .iter()
        .map(|l| l["k"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["markdown", "load", "code", "markdown"]);
    assert_eq!(
        second.lines[3],
        json!({"k": "code", "c": "echo hi\n", "t": "bash"})
    );
    // Usage is never forwarded.
    assert!(!second.body.contains("usage") && !second.body.contains("tokens"));
    let indexes: Vec<i64> = chat
        .active_messages(thread)
        .await
        .iter()
        .map(|m| m.sequence_index)
        .collect();
    assert_eq!(indexes, [1, 2, 3, 4]);
    assert_eq!(second.lines[0], json!({"m": {"thread_uuid": hex(&thread)}}));
}

/// Item 37 and deviation 4: the user message is stored before the body is
/// read; the answer's text as the model writes it.
async fn user_message_is_stored_before_streaming(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        FakeStep::Delay(Duration::from_millis(400)),
        content_chunk("late answer"),
        palisade_llm::testing::finish_chunk("stop"),
        palisade_llm::testing::done(),
    ]));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "question", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let before = chat.all_messages(thread.uuid).await;
    assert_eq!(before[0].content, "question");
    // The answer's row may exist already, still empty and generating.
    assert!(
        before.len() == 1
            || (before.len() == 2 && before[1].is_generating && before[1].content.is_empty()),
        "{before:?}"
    );
    let streamed = Streamed::read(response).await;
    assert_eq!(streamed.markdown(), "late answer");
    let after = chat.all_messages(thread.uuid).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].content, "late answer");
}

/// Items 38, 39: an upstream failure mid-answer gives the `e` line and keeps
/// the partial text; a usage-only answer stores an empty message.
async fn failures_and_empty_answers(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk("Partial"),
        FakeStep::Cut,
    ]));
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(
        streamed.error(),
        Some("Chat processing was interrupted. Please try again later.")
    );
    let n = streamed.lines.len();
    assert!(
        streamed.lines[n - 2].get("e").is_some(),
        "e before the final line"
    );
    let messages = chat.active_messages(thread.uuid).await;
    assert_eq!(messages[1].content, "Partial");
    assert_eq!(streamed.assistant_uuid(), messages[1].uuid);

    chat.llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        usage_chunk(Usage {
            prompt_tokens: 4,
            completion_tokens: 0,
        }),
        palisade_llm::testing::done(),
    ]));
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q2", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(streamed.error(), None);
    let messages = chat.active_messages(thread.uuid).await;
    assert_eq!(
        (messages[3].role, messages[3].content.as_str()),
        (Role::Assistant, "")
    );

    // An upstream that answers 500 at once: `e` line, empty answer stored.
    chat.llm.push(FakeResponse::error(500, "boom"));
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q3", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert!(streamed.error().is_some());
    assert!(streamed.final_meta().is_some());
    assert_eq!(chat.active_messages(thread.uuid).await.len(), 6);
}

/// Items 40, 41: reload replaces the last answer; on an empty thread it is
/// a normal exchange.
async fn reload(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.answer("first");
    chat.stream(&alice, &json!({"input": "q", "thread_uuid": t}))
        .await;
    chat.answer("second");
    let reloaded = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": t, "mode": "reload"}),
        )
        .await;
    let meta = reloaded.final_meta().unwrap();
    assert!(meta.get("user_message_uuid").is_none(), "{meta}");
    let all = chat.all_messages(thread.uuid).await;
    assert_eq!(all.len(), 3);
    let users = all.iter().filter(|m| m.role == Role::User).count();
    assert_eq!(users, 1, "no user message in reload mode");
    let (old, new) = (&all[1], &all[2]);
    assert_eq!((old.sequence_index, new.sequence_index), (2, 2));
    assert_eq!(new.replaces, Some(old.uuid));
    assert_eq!(new.content, "second");
    assert_eq!(reloaded.assistant_uuid(), new.uuid);
    // A second reload chains onto the newest answer.
    chat.answer("third");
    chat.stream(
        &alice,
        &json!({"input": "q", "thread_uuid": t, "mode": "reload"}),
    )
    .await;
    let active = chat.active_messages(thread.uuid).await;
    assert_eq!(active.len(), 2);
    assert_eq!(active[1].content, "third");
    assert_eq!(active[1].replaces, Some(new.uuid));

    let empty = chat.thread(&alice, "empty").await;
    chat.answer("fresh");
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "hello", "thread_uuid": hex(&empty.uuid), "mode": "reload"}),
        )
        .await;
    let all = chat.all_messages(empty.uuid).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].role, all[0].sequence_index, all[0].content.as_str()),
        (Role::User, 1, "hello")
    );
    assert_eq!((all[1].sequence_index, all[1].replaces), (2, None));
    let meta = streamed.final_meta().unwrap();
    assert_eq!(
        meta["user_message_uuid"],
        hex(&all[0].uuid),
        "the fallback's user message"
    );
}

/// Item 44: edit replaces the question and the answer at their indexes.
async fn edit(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.answer("old answer");
    chat.stream(&alice, &json!({"input": "old question", "thread_uuid": t}))
        .await;
    let before = chat.active_messages(thread.uuid).await;
    chat.answer("new answer");
    let edited = chat
        .stream(
            &alice,
            &json!({"input": "new question", "thread_uuid": t, "mode": "edit", "edit_message_uuid": hex(&before[0].uuid)}),
        )
        .await;
    let all = chat.all_messages(thread.uuid).await;
    assert_eq!(all.len(), 4);
    let active = chat.active_messages(thread.uuid).await;
    assert_eq!(active.len(), 2);
    let (question, answer) = (&active[0], &active[1]);
    assert_eq!(
        (question.sequence_index, question.content.as_str()),
        (1, "new question")
    );
    assert_eq!(question.replaces, Some(before[0].uuid));
    assert_eq!(
        (answer.sequence_index, answer.content.as_str()),
        (2, "new answer")
    );
    assert_eq!(answer.replaces, Some(before[1].uuid));
    let meta = edited.final_meta().unwrap();
    assert_eq!(meta["user_message_uuid"], hex(&question.uuid));
    assert_eq!(meta["assistant_message_uuid"], hex(&answer.uuid));
}

/// Item 43: `modified` moves forward with every stream.
async fn modified_is_bumped(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    chat.answer("a");
    chat.stream(
        &alice,
        &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
    )
    .await;
    let after = chat.reload(&thread).await;
    assert!(after.modified > thread.modified);
    assert_eq!(after.message_count, 2);
}

/// Item 56 and 35: a new thread gets a generated title (trimmed of quotes
/// and whitespace, at most 150 characters), its tokens counted; existing
/// threads make no title call; a failing title call changes nothing.
async fn titles_and_usage(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.answer_with_usage(&["An answer"], 100, 50);
    chat.answer_with_usage(&["  \"Setting ", "up quotas\"  \n"], 20, 5);
    let streamed = chat
        .stream(&alice, &json!({"input": "How do I set up quotas?"}))
        .await;
    assert_eq!(streamed.markdown(), "An answer");
    // The title is made after the response ended.
    chat.settle().await;
    let thread = chat
        .store
        .find_thread(
            &palisade_store::ThreadFilter::new(palisade_store::Scope::All),
            streamed.thread_uuid(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread.name, "Setting up quotas");
    let titles = chat.title_calls();
    assert_eq!(titles.len(), 1);
    let title_messages = call_messages(&titles[0]);
    assert_eq!(title_messages[1].1, "User message: How do I set up quotas?");
    assert_eq!(titles[0]["max_tokens"], 48);
    let quota = chat.store.token_quota(alice.user.id).await.unwrap();
    assert_eq!(quota.usage, [175, 175, 175], "100 + 50 + 20 + 5");
    let answer = &chat.active_messages(thread.uuid).await[1];
    assert_eq!((answer.input_tokens, answer.output_tokens), (100, 50));

    // An existing thread: no title call.
    chat.answer_with_usage(&["again"], 5, 8);
    chat.stream(
        &alice,
        &json!({"input": "more", "thread_uuid": hex(&thread.uuid)}),
    )
    .await;
    assert_eq!(chat.title_calls().len(), 1);
    let quota = chat.store.token_quota(alice.user.id).await.unwrap();
    assert_eq!(quota.usage[2], 175 + 13);

    // A title of quotes only, and a failing title call, keep "New chat".
    for title in [
        FakeResponse::answer(&[" \"\" '' "], None),
        FakeResponse::error(500, "down"),
    ] {
        chat.answer("ok");
        chat.llm.push(title);
        let streamed = chat.stream(&alice, &json!({"input": "hello"})).await;
        assert_eq!(streamed.markdown(), "ok");
        assert!(streamed.final_meta().is_some());
        chat.settle().await;
        let thread = chat.reload_by_uuid(streamed.thread_uuid()).await;
        assert_eq!(thread.name, "New chat");
    }

    // Long titles are cut at 150 characters.
    chat.answer("ok");
    let long = "word ".repeat(60);
    chat.llm.push(FakeResponse::answer(&[long.as_str()], None));
    let streamed = chat.stream(&alice, &json!({"input": "hello"})).await;
    chat.settle().await;
    let thread = chat.reload_by_uuid(streamed.thread_uuid()).await;
    assert_eq!(thread.name.chars().count(), 150);
}

/// The response ends right after the final line: a new thread's title is
/// made afterwards, so a title call that hangs does not hold the client.
async fn the_response_does_not_wait_for_the_title(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.answer("An answer");
    chat.llm
        .push(FakeResponse::Stream(vec![role_chunk(), FakeStep::Hang]));
    let response = chat.post_stream(&alice, &json!({"input": "hello"})).await;
    let streamed = tokio::time::timeout(Duration::from_secs(10), Streamed::read(response))
        .await
        .expect("the response ended while the title call hangs");
    assert_eq!(streamed.markdown(), "An answer");
    assert!(streamed.final_meta().is_some());
    assert!(
        chat.llm.wait_for_requests(2, Duration::from_secs(5)).await,
        "the title call was made"
    );
    let thread = chat.reload_by_uuid(streamed.thread_uuid()).await;
    assert_eq!(thread.name, "New chat");
}

/// Item 57 and deviation 1: system prompt, then the newest N active
/// messages in order (replaced rows left out), then the current message;
/// the raw input is what is stored.
async fn prompt_shape(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| {
        s.history_limit = 4;
        s.system_prompt = "You are a test persona.".into();
    })
    .await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    for i in 1..=3 {
        chat.answer(&format!("a{i}"));
        chat.stream(&alice, &json!({"input": format!("q{i}"), "thread_uuid": t}))
            .await;
    }
    // Replace the last answer: the replaced row must not reach the model.
    chat.answer("a3-new");
    chat.stream(
        &alice,
        &json!({"input": "q3", "thread_uuid": t, "mode": "reload"}),
    )
    .await;
    chat.answer("a4");
    chat.stream(&alice, &json!({"input": "  q4  ", "thread_uuid": t}))
        .await;
    let calls = chat.answer_calls();
    let last = call_messages(calls.last().unwrap());
    let expected: Vec<(String, String)> = [
        ("system", "You are a test persona."),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3-new"),
        ("user", "q4"),
    ]
    .iter()
    .map(|(r, c)| (r.to_string(), c.to_string()))
    .collect();
    assert_eq!(last, expected);
    assert_eq!(calls.last().unwrap()["stream"], true);
    let active = chat.active_messages(thread.uuid).await;
    assert_eq!(active[6].content, "q4", "the trimmed raw input is stored");
}

/// Edit and reload never send the messages they replace: an edit's prompt
/// ends with the new question after the history before the old one; a
/// reload asks the stored question again (not its request's `input` as an
/// extra turn). An empty answer (a failed call) never becomes a turn.
async fn replaced_messages_are_not_in_the_prompt(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| s.system_prompt = "sys".into()).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.answer("a1");
    chat.stream(&alice, &json!({"input": "q1", "thread_uuid": t}))
        .await;
    chat.answer("a2");
    chat.stream(&alice, &json!({"input": "q2", "thread_uuid": t}))
        .await;
    let turns = |call: &Value| -> Vec<String> {
        call_messages(call)
            .into_iter()
            .map(|(role, content)| format!("{role}:{content}"))
            .collect()
    };

    chat.answer("a2 again");
    chat.stream(
        &alice,
        &json!({"input": "whatever the client sends", "thread_uuid": t, "mode": "reload"}),
    )
    .await;
    let calls = chat.answer_calls();
    assert_eq!(
        turns(calls.last().unwrap()),
        ["system:sys", "user:q1", "assistant:a1", "user:q2"]
    );

    let q2 = chat.active_messages(thread.uuid).await[2].clone();
    chat.answer("a2 edited");
    chat.stream(
        &alice,
        &json!({"input": "q2 edited", "thread_uuid": t, "mode": "edit", "edit_message_uuid": hex(&q2.uuid)}),
    )
    .await;
    let calls = chat.answer_calls();
    assert_eq!(
        turns(calls.last().unwrap()),
        ["system:sys", "user:q1", "assistant:a1", "user:q2 edited"]
    );

    // A failed answer is stored empty; the next prompt leaves out the
    // unanswered question with it, and its roles still alternate.
    chat.llm.push(FakeResponse::Status {
        status: 500,
        body: "{}".into(),
    });
    chat.stream(&alice, &json!({"input": "q3", "thread_uuid": t}))
        .await;
    chat.answer("a4");
    chat.stream(&alice, &json!({"input": "q4", "thread_uuid": t}))
        .await;
    let calls = chat.answer_calls();
    assert_eq!(
        turns(calls.last().unwrap()),
        [
            "system:sys",
            "user:q1",
            "assistant:a1",
            "user:q2 edited",
            "assistant:a2 edited",
            "user:q4"
        ]
    );
}

/// With history disabled only the system prompt and the message are sent.
async fn history_limit_zero(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| s.history_limit = 0).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    for q in ["q1", "q2"] {
        chat.answer("a");
        chat.stream(&alice, &json!({"input": q, "thread_uuid": t}))
            .await;
    }
    let last = call_messages(chat.answer_calls().last().unwrap());
    assert_eq!(last.len(), 2);
    assert_eq!(last[1], ("user".to_owned(), "q2".to_owned()));
}

palisade_store::test_on_both_backends!(
    line_sequence_and_indexes,
    user_message_is_stored_before_streaming,
    failures_and_empty_answers,
    reload,
    edit,
    modified_is_bumped,
    titles_and_usage,
    prompt_shape,
    history_limit_zero,
    replaced_messages_are_not_in_the_prompt,
    the_response_does_not_wait_for_the_title,
);
