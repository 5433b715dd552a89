//! Our deviations and additions around a running generation: one answer per
//! thread at a time (deviation 2), answers that outlive the connection
//! (deviation 4), cancel on the same and on another node, upstream stalls,
//! and the lease of a crashed node expiring. On both databases.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::chat::{ChatServer, Streamed};
use common::{TestServer, assert_404, assert_body, hex, shared_guard};
use futures_util::StreamExt;
use palisade_llm::testing::{
    FakeResponse, FakeStep, content_chunk, done, finish_chunk, role_chunk,
};
use palisade_server::ChatSettings;
use palisade_store::{Message, Role, Store};
use serde_json::json;
use uuid::Uuid;

/// An answer that starts, then waits `pause` before finishing.
fn slow_answer(first: &str, pause: Duration, rest: &str) -> FakeResponse {
    FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk(first),
        FakeStep::Delay(pause),
        content_chunk(rest),
        finish_chunk("stop"),
        done(),
    ])
}

/// An answer that sends some text and then nothing, forever.
fn stalled_answer(first: &str) -> FakeResponse {
    FakeResponse::Stream(vec![role_chunk(), content_chunk(first), FakeStep::Hang])
}

/// The thread's answer once its generation has finished (it runs on after
/// the client left), failing after a generous deadline.
async fn wait_for_answer(chat: &ChatServer, thread: Uuid) -> Message {
    wait_for_row(chat, thread, |m| !m.is_generating).await
}

/// The thread's answer row once `ready` holds for it (it exists from the
/// moment the generation starts and grows as the model writes).
async fn wait_for_row(
    chat: &ChatServer,
    thread: Uuid,
    ready: impl Fn(&Message) -> bool,
) -> Message {
    for _ in 0..400 {
        let messages = chat.active_messages(thread).await;
        if let Some(answer) = messages
            .into_iter()
            .find(|m| m.role == Role::Assistant && ready(m))
        {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no such answer was stored");
}

/// Reads the first line of a streaming response (the thread line).
async fn first_line(response: reqwest::Response) -> (reqwest::Response, String) {
    let mut response = response;
    let mut text = String::new();
    while !text.contains('\n') {
        let chunk = response.chunk().await.expect("body").expect("a first line");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    (response, text)
}

/// Deviation 2: while a reply is generated, the thread refuses a second
/// request with 409 and stores nothing for it; afterwards it is free.
async fn one_generation_per_thread(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.llm
        .push(slow_answer("first ", Duration::from_millis(600), "answer"));
    let running = chat
        .post_stream(&alice, &json!({"input": "one", "thread_uuid": t}))
        .await;
    assert_eq!(running.status(), 200);
    for body in [
        json!({"input": "two", "thread_uuid": t}),
        json!({"input": "two", "thread_uuid": t, "mode": "reload"}),
    ] {
        assert_body(
            chat.post_stream(&alice, &body).await,
            409,
            json!({"detail": "A reply is already being generated in this thread."}),
        )
        .await;
    }
    // Other threads are not affected.
    chat.answer("elsewhere");
    let other = chat.thread(&alice, "other").await;
    chat.stream(
        &alice,
        &json!({"input": "x", "thread_uuid": hex(&other.uuid)}),
    )
    .await;

    let first = Streamed::read(running).await;
    assert_eq!(first.markdown(), "first answer");
    let messages = chat.all_messages(thread.uuid).await;
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["one", "first answer"]);
    chat.answer("second answer");
    let second = chat
        .stream(&alice, &json!({"input": "two", "thread_uuid": t}))
        .await;
    assert_eq!(second.markdown(), "second answer");
}

/// Two requests racing for one thread: exactly one wins, the other gets
/// 409, and the winner's exchange is stored whole.
async fn concurrent_requests_race_safely(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    for round in 0..3 {
        chat.llm
            .push(slow_answer("an ", Duration::from_millis(200), "answer"));
        let (body_a, body_b) = (
            json!({"input": "A", "thread_uuid": t}),
            json!({"input": "B", "thread_uuid": t}),
        );
        let (a, b) = tokio::join!(
            chat.post_stream(&alice, &body_a),
            chat.post_stream(&alice, &body_b),
        );
        let (winner, loser) = if a.status() == 200 { (a, b) } else { (b, a) };
        assert_eq!(winner.status(), 200, "round {round}");
        assert_eq!(loser.status(), 409, "round {round}");
        let streamed = Streamed::read(winner).await;
        assert_eq!(streamed.markdown(), "an answer");
    }
    let indexes: Vec<(Role, i64)> = chat
        .all_messages(thread.uuid)
        .await
        .iter()
        .map(|m| (m.role, m.sequence_index))
        .collect();
    assert_eq!(
        indexes,
        [
            (Role::User, 1),
            (Role::Assistant, 2),
            (Role::User, 3),
            (Role::Assistant, 4),
            (Role::User, 5),
            (Role::Assistant, 6)
        ]
    );
}

/// Deviation 4: a client that disconnects mid-answer loses nothing; the
/// answer is completed, stored in full and counted.
async fn answers_outlive_the_connection(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk("The whole answer, "),
        FakeStep::Delay(Duration::from_millis(300)),
        content_chunk("even after the client left."),
        finish_chunk("stop"),
        palisade_llm::testing::usage_chunk(palisade_llm::Usage {
            prompt_tokens: 7,
            completion_tokens: 9,
        }),
        done(),
    ]));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let (response, line) = first_line(response).await;
    assert!(line.starts_with(r#"{"m":{"thread_uuid":"#));
    drop(response);
    let answer = wait_for_answer(&chat, thread.uuid).await;
    assert_eq!(
        answer.content,
        "The whole answer, even after the client left."
    );
    assert_eq!(
        chat.llm.disconnects(),
        0,
        "the upstream call was not abandoned"
    );
    // Usage is recorded after the answer; give it the moment it needs.
    for _ in 0..100 {
        if chat.store.token_quota(alice.user.id).await.unwrap().usage[0] == 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        chat.store.token_quota(alice.user.id).await.unwrap().usage[0],
        16
    );
}

/// Cancel on the node running the generation: the stream ends early with
/// the partial answer stored, no `e` line, the upstream call dropped.
async fn cancel_keeps_the_partial_answer(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let path = format!("/api/chat-threads/{}/cancel/", hex(&thread.uuid));
    chat.llm.push(stalled_answer("A partial answer"));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let (response, _) = first_line(response).await;
    // The answer so far is saved while the model stalls.
    let partial = wait_for_row(&chat, thread.uuid, |m| m.content == "A partial answer").await;
    assert!(partial.is_generating);
    let cancel = chat.post(&alice, &path).await;
    assert_eq!(cancel.status(), 204);
    // The fake's idle timeout is 2 s: an `e` line would mean the cancel
    // did not stop the generation.
    let rest = response.text().await.unwrap();
    assert!(!rest.contains(r#""e":"#), "{rest}");
    assert!(rest.contains("assistant_message_uuid"), "{rest}");
    assert!(rest.contains("A partial answer"), "{rest}");
    assert!(
        chat.llm
            .wait_for_disconnects(1, Duration::from_secs(5))
            .await
    );
    let messages = chat.active_messages(thread.uuid).await;
    assert_eq!(messages[1].content, "A partial answer");
    // The thread is free again, and a stale cancel does not hit the next one.
    chat.answer("next");
    let next = chat
        .stream(
            &alice,
            &json!({"input": "q2", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(next.markdown(), "next");
    // Nothing running: still 204.
    assert_eq!(chat.post(&alice, &path).await.status(), 204);
}

/// Cancel is owner-only: other users, staff included, get 404.
async fn cancel_is_owner_only(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let bob = chat.user("bob").await;
    let staff = chat.staff("root").await;
    let thread = chat.thread(&alice, "t").await;
    let path = format!("/api/chat-threads/{}/cancel/", hex(&thread.uuid));
    assert_404(chat.post(&bob, &path).await).await;
    assert_404(chat.post(&staff, &path).await).await;
    assert_404(
        chat.post(&alice, "/api/chat-threads/not-a-uuid/cancel/")
            .await,
    )
    .await;
    assert_eq!(
        chat.anonymous(reqwest::Method::POST, &path).await.status(),
        401
    );
    common::assert_405(
        chat.request(reqwest::Method::GET, &alice, &path).await,
        "GET",
    )
    .await;
}

/// A cancel that lands inside a code block: the block as it stands is sent
/// (not dropped), so the client has seen exactly the stored answer.
async fn a_cancel_inside_a_code_block_sends_what_is_stored(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let partial = "Here is the script:\n```python\nfor i in range(3):\n    print(i)\n";
    chat.llm.push(stalled_answer(partial));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let (response, first) = first_line(response).await;
    wait_for_row(&chat, thread.uuid, |m| m.content == partial).await;
    let path = format!("/api/chat-threads/{}/cancel/", hex(&thread.uuid));
    assert_eq!(chat.post(&alice, &path).await.status(), 204);
    let body = first + &response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let content: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("k").is_some()).collect();
    assert_eq!(
        content,
        [
            &json!({"k": "markdown", "c": "Here is the script:\n"}),
            &json!({"k": "load", "t": "code"}),
            &json!({"k": "code", "c": "for i in range(3):\n    print(i)\n", "t": "python"}),
        ],
        "{body}"
    );
    assert!(!body.contains(r#""e":"#), "{body}");
    let answer = wait_for_answer(&chat, thread.uuid).await;
    assert_eq!(answer.content, partial);
}

/// At most `max_generations_per_user` answers run at once for one user,
/// across nodes: one more gets 429 with `Retry-After`; other users are not
/// affected; a finished answer frees a place.
async fn answers_per_user_are_limited(store: Arc<dyn Store>) {
    let node_a =
        ChatServer::start_with(store.clone(), |s| s.max_generations_per_user = Some(2)).await;
    let node_b = ChatServer::start_with(store, |s| s.max_generations_per_user = Some(2)).await;
    let alice = node_a.user("alice").await;
    let bob = node_a.user("bob").await;
    let mut running = Vec::new();
    for name in ["one", "two"] {
        let thread = node_a.thread(&alice, name).await;
        node_a.llm.push(stalled_answer("Working on it"));
        let response = node_a
            .post_stream(
                &alice,
                &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let (response, _) = first_line(response).await;
        running.push((thread, response));
    }
    let third = node_b.thread(&alice, "three").await;
    let body = json!({"input": "q", "thread_uuid": hex(&third.uuid)});
    let refused = node_b.post_stream(&alice, &body).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_body(
        refused,
        429,
        json!({"detail": "Too many answers are being generated for you at once. Wait for one to finish."}),
    )
    .await;
    assert!(
        node_b.all_messages(third.uuid).await.is_empty(),
        "nothing stored for the refused request"
    );
    // Another user is not affected.
    node_b.answer("Hello Bob");
    let theirs = node_b.thread(&bob, "bob's").await;
    let streamed = node_b
        .stream(
            &bob,
            &json!({"input": "q", "thread_uuid": hex(&theirs.uuid)}),
        )
        .await;
    assert_eq!(streamed.markdown(), "Hello Bob");
    // Cancelling one answer frees a place.
    let (first, response) = running.remove(0);
    let path = format!("/api/chat-threads/{}/cancel/", hex(&first.uuid));
    assert_eq!(node_a.post(&alice, &path).await.status(), 204);
    response.text().await.unwrap();
    node_b.answer("Now it fits");
    let streamed = node_b.stream(&alice, &body).await;
    assert_eq!(streamed.markdown(), "Now it fits");
    let (second, _) = running.remove(0);
    let path = format!("/api/chat-threads/{}/cancel/", hex(&second.uuid));
    assert_eq!(node_a.post(&alice, &path).await.status(), 204);
}

/// An upstream that never stops is cut at the answer's deadline: the
/// client gets the `e` line and the final line, the partial answer is kept.
async fn an_endless_answer_is_cut_at_the_deadline(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| s.llm_deadline = Duration::from_secs(1)).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let mut steps = vec![role_chunk()];
    for _ in 0..50 {
        steps.push(content_chunk("and on "));
        steps.push(FakeStep::Delay(Duration::from_millis(100)));
    }
    steps.push(finish_chunk("stop"));
    steps.push(done());
    chat.llm.push(FakeResponse::Stream(steps));
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
    assert!(streamed.final_meta().is_some(), "{}", streamed.body);
    let answer = wait_for_answer(&chat, thread.uuid).await;
    assert!(answer.content.starts_with("and on "), "{}", answer.content);
    assert!(
        answer.content.len() < 50 * 7,
        "cut before the end: {}",
        answer.content.len()
    );
    assert!(
        chat.llm
            .wait_for_disconnects(1, Duration::from_secs(5))
            .await,
        "the upstream call was dropped"
    );
}

/// Cancel served by another node reaches the generation through the
/// database flag.
async fn cancel_from_another_node(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store.clone(), |s| {
        s.cancel_poll_interval = Duration::from_millis(100);
    })
    .await;
    let other_node = TestServer::start_with(store, shared_guard(), ChatSettings::new(None)).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm.push(stalled_answer("Half of it"));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let (response, _) = first_line(response).await;
    // Cancel once the model has sent its part (saved within 250 ms).
    wait_for_row(&chat, thread.uuid, |m| m.content == "Half of it").await;
    let path = format!("/api/chat-threads/{}/cancel/", hex(&thread.uuid));
    assert_eq!(other_node.post(&alice, &path).await.status(), 204);
    let rest = response.text().await.unwrap();
    assert!(
        !rest.contains(r#""e":"#),
        "stopped by the cancel, not a timeout: {rest}"
    );
    let messages = chat.active_messages(thread.uuid).await;
    assert_eq!(messages[1].content, "Half of it");
}

/// An upstream that accepts the request and then says nothing: the idle
/// timeout ends it with the `e` line, and the thread is free again.
async fn stalled_upstream(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm
        .push(FakeResponse::Stream(vec![role_chunk(), FakeStep::Hang]));
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert!(streamed.error().is_some());
    assert!(streamed.final_meta().is_some());
    assert_eq!(chat.active_messages(thread.uuid).await[1].content, "");
    chat.answer("recovered");
    let next = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(next.markdown(), "recovered");
}

/// A lease left by a node that died expires, and the thread is usable.
async fn a_crashed_nodes_lease_expires(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let ttl = Duration::from_millis(300);
    assert!(
        chat.store
            .acquire_generation_lease(thread.id, Uuid::new_v4(), ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        chat.post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)})
        )
        .await
        .status(),
        409
    );
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    chat.answer("back");
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(streamed.markdown(), "back");
}

/// Lines reach the client as the model produces them, not at the end.
async fn lines_are_streamed_as_they_come(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let long = "x".repeat(60);
    chat.llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk(&long),
        FakeStep::Delay(Duration::from_millis(500)),
        content_chunk("tail"),
        finish_chunk("stop"),
        done(),
    ]));
    let response = chat
        .post_stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    // The markdown line for the first 60 characters arrives while the
    // model is still pausing: the answer's row is still generating.
    while !seen.contains(&long) {
        let chunk = body.next().await.expect("more body").expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let messages = chat.active_messages(thread.uuid).await;
    assert_eq!(messages.len(), 2);
    assert!(messages[1].is_generating, "{:?}", messages[1]);
    while let Some(chunk) = body.next().await {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(seen.contains(r#"{"k":"markdown","c":"tail"}"#), "{seen}");
}

/// An upstream that answers 200 with something that is not a
/// chat-completions stream: the `e` line, and the thread stays usable.
async fn garbage_upstream(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm
        .push(FakeResponse::Stream(vec![palisade_llm::testing::raw(
            "<html>502 Bad Gateway</html>\n\n",
        )]));
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert!(streamed.error().is_some(), "{:?}", streamed.lines);
    assert!(streamed.final_meta().is_some());
    chat.answer("fine again");
    let next = chat
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(next.markdown(), "fine again");
}

/// Shutdown waits for running generations: an answer whose client left is
/// still stored in full before `serve` returns.
async fn shutdown_stores_running_answers(store: Arc<dyn Store>) {
    let llm = palisade_llm::testing::FakeOpenAi::start().await;
    let provider = palisade_llm::OpenAiProvider::new(llm.config()).unwrap();
    let state = palisade_server::AppState::new(
        store.clone(),
        shared_guard(),
        ChatSettings::new(Some(Arc::new(provider))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(palisade_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let user = store
        .create_user(&palisade_store::NewUser {
            username: "alice".into(),
            ..palisade_store::NewUser::default()
        })
        .await
        .unwrap();
    let token = palisade_server::auth::issue_token(store.as_ref(), &user, None)
        .await
        .unwrap();
    llm.push(slow_answer(
        "Begun before shutdown, ",
        Duration::from_millis(500),
        "finished after.",
    ));
    let response = reqwest::Client::new()
        .post(format!("{base}/api/chat/stream/"))
        .header("Authorization", format!("Token {token}"))
        .json(&json!({"input": "q"}))
        .send()
        .await
        .unwrap();
    let (response, line) = first_line(response).await;
    let thread: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    let thread = Uuid::parse_str(thread["m"]["thread_uuid"].as_str().unwrap()).unwrap();
    drop(response);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let messages = store
        .list_messages(&palisade_store::MessageFilter {
            scope: palisade_store::Scope::All,
            thread: Some(thread),
            is_flagged: None,
            include_history: false,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1].content,
        "Begun before shutdown, finished after."
    );
}

/// A model that is too busy to start (the embedded model's queue is full)
/// gets its own `e` line, so the client can offer a retry.
async fn busy_model(store: Arc<dyn Store>) {
    let model = palisade_llm::ScriptedProvider::with_replies([palisade_llm::ScriptedReply::fail(
        palisade_llm::LlmError::Busy("queue full".into()),
    )]);
    let server = TestServer::start_with(
        store,
        shared_guard(),
        ChatSettings::new(Some(Arc::new(model))),
    )
    .await;
    let alice = server.user("alice").await;
    let thread = server.thread(&alice, "t").await;
    let streamed = server
        .stream(
            &alice,
            &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(
        streamed.error(),
        Some("The assistant is busy right now. Please try again in a moment.")
    );
    assert!(streamed.final_meta().is_some(), "the question is kept");
}

palisade_store::test_on_both_backends!(
    busy_model,
    garbage_upstream,
    shutdown_stores_running_answers,
    one_generation_per_thread,
    concurrent_requests_race_safely,
    answers_outlive_the_connection,
    cancel_keeps_the_partial_answer,
    answers_per_user_are_limited,
    an_endless_answer_is_cut_at_the_deadline,
    a_cancel_inside_a_code_block_sends_what_is_stored,
    cancel_is_owner_only,
    cancel_from_another_node,
    stalled_upstream,
    a_crashed_nodes_lease_expires,
    lines_are_streamed_as_they_come,
);
