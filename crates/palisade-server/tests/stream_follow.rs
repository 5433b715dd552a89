//! `GET /api/chat-threads/{uuid}/stream/`: following a running answer from
//! the node that generates it and from another node on the same database.
//! A follower that joins mid-answer gets exactly the bytes the direct
//! client got. On both databases.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::chat::ChatServer;
use common::{TestServer, assert_404, hex};
use palisade_llm::testing::{
    FakeResponse, FakeStep, content_chunk, done, finish_chunk, role_chunk,
};
use palisade_store::Store;
use reqwest::Method;
use serde_json::json;

/// An answer in several pieces with pauses between them: markdown, a code
/// block, more markdown.
fn slow_answer() -> FakeResponse {
    let pause = || FakeStep::Delay(Duration::from_millis(300));
    FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk("The first part of the answer is long enough to be a line of its own. "),
        pause(),
        content_chunk("Then a code block:\n```python\nprint('hi')\n"),
        pause(),
        content_chunk("```\nAnd the end of the answer, after the block, also long enough."),
        pause(),
        finish_chunk("stop"),
        done(),
    ])
}

async fn get_follow(server: &TestServer, who: &common::Account, thread: &str) -> reqwest::Response {
    server
        .request(
            Method::GET,
            who,
            &format!("/api/chat-threads/{thread}/stream/"),
        )
        .await
}

/// Starts a slow answer on `chat`, lets it run a while, then follows it
/// through `follower` (the same node or another); returns both bodies.
async fn direct_and_followed(chat: &ChatServer, follower: &TestServer) -> (String, String) {
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.llm.push(slow_answer());
    let response = chat
        .post_stream(&alice, &json!({"input": "q", "thread_uuid": t}))
        .await;
    assert_eq!(response.status(), 200);
    let direct = tokio::spawn(async move { response.text().await.expect("direct body") });
    // Join after the first piece, before the answer ends.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let followed = get_follow(follower, &alice, &t).await;
    assert_eq!(followed.status(), 200);
    assert_eq!(
        followed.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let followed = followed.text().await.expect("followed body");
    let direct = direct.await.expect("direct task");
    // Once it finished, nothing is generating: 204.
    let after = get_follow(follower, &alice, &t).await;
    assert_eq!(after.status(), 204);
    (direct, followed)
}

async fn a_follower_on_the_same_node_sees_every_line(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let (direct, followed) = direct_and_followed(&chat, &chat.server).await;
    assert!(direct.contains(r#""k":"code""#), "{direct}");
    assert!(direct.contains("assistant_message_uuid"), "{direct}");
    assert_eq!(followed, direct);
}

async fn a_follower_on_another_node_sees_every_line(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store.clone()).await;
    let other = TestServer::start(store).await;
    let (direct, followed) = direct_and_followed(&chat, &other).await;
    assert!(direct.contains("assistant_message_uuid"), "{direct}");
    assert_eq!(followed, direct);
}

async fn nothing_generating_and_other_users(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let bob = chat.user("bob").await;
    let staff = chat.staff("root").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    assert_eq!(get_follow(&chat, &alice, &t).await.status(), 204);
    // Owner only, even for staff; other users' threads do not exist.
    assert_404(get_follow(&chat, &bob, &t).await).await;
    assert_404(get_follow(&chat, &staff, &t).await).await;
    assert_404(get_follow(&chat, &alice, "not-a-uuid").await).await;
    let anonymous = chat
        .anonymous(Method::GET, &format!("/api/chat-threads/{t}/stream/"))
        .await;
    assert_eq!(anonymous.status(), 401);
}

/// Several followers at once, on both nodes, all see the same bytes.
async fn several_followers(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store.clone()).await;
    let other = TestServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    chat.llm.push(slow_answer());
    let response = chat
        .post_stream(&alice, &json!({"input": "q", "thread_uuid": t}))
        .await;
    let direct = tokio::spawn(async move { response.text().await.expect("direct body") });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut followers = Vec::new();
    for node in [&chat.server, &other, &chat.server, &other] {
        let response = get_follow(node, &alice, &t).await;
        assert_eq!(response.status(), 200);
        followers.push(tokio::spawn(
            async move { response.text().await.expect("body") },
        ));
    }
    let direct = direct.await.expect("direct");
    for follower in followers {
        assert_eq!(follower.await.expect("follower"), direct);
    }
}

palisade_store::test_on_both_backends!(
    a_follower_on_the_same_node_sees_every_line,
    a_follower_on_another_node_sees_every_line,
    nothing_generating_and_other_users,
    several_followers,
);
