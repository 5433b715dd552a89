//! Several nodes on one database, as an operator runs them, through real
//! processes: a node killed (SIGKILL) in the middle of an answer, and many
//! users answered by two nodes at once. Runs on SQLite (two processes on one
//! file) and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::testing::{FakeOpenAi, FakeResponse, FakeStep, content_chunk, role_chunk};
use palisade_store::testing::Backend;
use palisade_store::{Role, Store};
use serde_json::json;

use common::{account, free_port, messages, on_database, post_stream, serve, thread};

const PARTIAL: &str =
    "Node A had streamed this much of the answer before it was killed, mid-sentence";

async fn node_killed_mid_answer(url: String, store: Arc<dyn Store>) {
    let llm = FakeOpenAi::start().await;
    let base_url = llm.base_url();
    let env = [
        ("PALISADE_LLM_PROVIDER", "openai"),
        ("PALISADE_LLM_BASE_URL", base_url.as_str()),
    ];
    let (alice, token) = account(store.as_ref(), "alice").await;
    let thread = thread(store.as_ref(), &alice, "t").await;
    let thread_hex = thread.uuid.simple().to_string();

    let (port_a, port_b) = (free_port(), free_port());
    let (mut node_a, _) = serve(&url, port_a, &env);
    let (_node_b, _) = serve(&url, port_b, &env);

    // Node A streams part of an answer, then the model stalls.
    llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk(PARTIAL),
        FakeStep::Hang,
    ]));
    let response = post_stream(
        port_a,
        &token,
        &json!({"input": "q1", "thread_uuid": thread_hex}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("Node A had streamed") {
        let chunk = body.next().await.expect("more lines").expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    // What the client saw is in the database within the save interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = messages(store.as_ref(), thread.uuid, false).await;
        if rows.get(1).is_some_and(|m| m.content == PARTIAL) {
            assert!(rows[1].is_generating);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partial answer was not saved: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGKILL: no shutdown, no final save, the lease left behind.
    node_a.0.kill().expect("kill node A");
    let _ = node_a.0.wait();
    drop(body);
    let killed_at = Instant::now();

    // A client that follows the answer on node B gets what node A's client
    // got, then learns that the answer was interrupted.
    let follow = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port_b}/api/chat-threads/{thread_hex}/stream/"
        ))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("follow request");
    assert_eq!(follow.status(), 200);
    let followed = tokio::spawn(async move { follow.text().await.expect("followed body") });

    // Node B accepts a new message in the thread once the lease expires.
    llm.push(FakeResponse::answer(&["Node B answers."], None));
    let answered = loop {
        let response = post_stream(
            port_b,
            &token,
            &json!({"input": "q2", "thread_uuid": thread_hex}),
        )
        .await;
        if response.status() == 200 {
            break response.text().await.expect("body");
        }
        assert_eq!(response.status(), 409, "only 'busy' while the lease holds");
        assert!(
            killed_at.elapsed() < Duration::from_secs(12),
            "the thread was not freed within the lease time"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(answered.contains("Node B answers."), "{answered}");
    let followed = tokio::time::timeout(Duration::from_secs(10), followed)
        .await
        .expect("the follower ends once the answer is recovered")
        .expect("follower task");
    assert!(
        followed.starts_with(&seen),
        "{followed:?} should start with {seen:?}"
    );
    assert!(
        followed
            .ends_with("{\"e\":\"Chat processing was interrupted. Please try again later.\"}\n"),
        "{followed:?}"
    );
    assert!(answered.contains("assistant_message_uuid"), "{answered}");

    // The partial answer is kept, marked interrupted; the new exchange
    // follows it with contiguous indexes.
    let rows = messages(store.as_ref(), thread.uuid, false).await;
    let shape: Vec<(Role, i64, &str, bool)> = rows
        .iter()
        .map(|m| {
            (
                m.role,
                m.sequence_index,
                m.content.as_str(),
                m.is_generating,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (Role::User, 1, "q1", false),
            (Role::Assistant, 2, PARTIAL, false),
            (Role::User, 3, "q2", false),
            (Role::Assistant, 4, "Node B answers.", false),
        ]
    );
    // The interrupted answer's tokens were counted.
    assert!(store.token_quota(alice.id).await.expect("quota").usage[0] > 0);
    // Node B's prompt holds the interrupted exchange as it was stored.
    let call = llm.requests().last().expect("node B's call").body.clone();
    let turns: Vec<String> = call["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["role"].as_str().unwrap_or(""),
                m["content"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        turns[1..],
        [
            "user:q1".to_owned(),
            format!("assistant:{PARTIAL}"),
            "user:q2".to_owned()
        ]
    );

    // Reload replaces node B's answer, not the interrupted one.
    llm.push(FakeResponse::answer(&["Node B again."], None));
    let response = post_stream(
        port_b,
        &token,
        &json!({"input": "q2", "thread_uuid": thread_hex, "mode": "reload"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("body");
    let rows = messages(store.as_ref(), thread.uuid, false).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        (rows[3].sequence_index, rows[3].content.as_str()),
        (4, "Node B again.")
    );
    assert_eq!(rows[1].content, PARTIAL);
    let all = messages(store.as_ref(), thread.uuid, true).await;
    assert_eq!(all.len(), 5, "one replaced row: {all:?}");
}

/// 200 answers for 40 users, each user alternating between two nodes:
/// every question gets exactly one answer, indexes stay contiguous, nothing
/// is left generating.
async fn load_across_two_nodes(url: String, store: Arc<dyn Store>) {
    const USERS: usize = 40;
    const QUESTIONS: usize = 5;
    let llm = FakeOpenAi::start().await;
    let base_url = llm.base_url();
    let env = [
        ("PALISADE_LLM_PROVIDER", "openai"),
        ("PALISADE_LLM_BASE_URL", base_url.as_str()),
    ];
    for _ in 0..USERS * QUESTIONS {
        llm.push(FakeResponse::answer(
            &["An answer, ", "in two pieces."],
            None,
        ));
    }
    let ports = [free_port(), free_port()];
    let (_node_a, _) = serve(&url, ports[0], &env);
    let (_node_b, _) = serve(&url, ports[1], &env);

    let mut users = Vec::new();
    for n in 0..USERS {
        let (user, token) = account(store.as_ref(), &format!("user{n}")).await;
        let thread = thread(store.as_ref(), &user, "t").await;
        users.push((token, thread.uuid));
    }
    let clients = users.iter().cloned().enumerate().map(|(n, (token, thread))| {
        tokio::spawn(async move {
            for q in 0..QUESTIONS {
                let port = ports[(n + q) % 2];
                let body = json!({"input": format!("question {q}"), "thread_uuid": thread.simple().to_string()});
                let response = post_stream(port, &token, &body).await;
                assert_eq!(response.status(), 200);
                let text = response.text().await.expect("body");
                assert!(text.contains("assistant_message_uuid"), "{text}");
                assert!(!text.contains(r#""e":"#), "{text}");
            }
        })
    });
    for client in clients.collect::<Vec<_>>() {
        client.await.expect("client");
    }
    for (_, thread) in &users {
        let rows = messages(store.as_ref(), *thread, true).await;
        assert_eq!(rows.len(), QUESTIONS * 2, "{rows:?}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.sequence_index, i as i64 + 1, "{rows:?}");
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            assert_eq!(row.role, role);
            assert!(!row.is_generating);
            assert!(row.replaces.is_none());
        }
        assert!(
            rows.iter()
                .skip(1)
                .step_by(2)
                .all(|m| m.content == "An answer, in two pieces.")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_load_across_two_nodes() {
    on_database(Backend::Sqlite, "load test", load_across_two_nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_load_across_two_nodes() {
    on_database(Backend::Postgres, "load test", load_across_two_nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_node_killed_mid_answer() {
    on_database(Backend::Sqlite, "node test", node_killed_mid_answer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_node_killed_mid_answer() {
    on_database(Backend::Postgres, "node test", node_killed_mid_answer).await;
}
