//! Request heads over the API's limits get 414 or 431 with a DRF-style
//! body, never hyper's empty answer; heads within them are served.

mod common;

use std::sync::Arc;

use palisade_store::Store;
use serde_json::json;

use common::{TestServer, assert_body};

async fn oversized_heads_get_json(store: Arc<dyn Store>) {
    let server = TestServer::start(store).await;
    let alice = server.user("alice").await;
    let long_query = format!("/api/chat-threads/?query={}", "a".repeat(9 * 1024));
    assert_body(
        server.get(&alice, &long_query).await,
        414,
        json!({"detail": "Request-URI too long."}),
    )
    .await;
    // Just under the limit is an ordinary request.
    let fine = format!("/api/chat-threads/?query={}", "a".repeat(7 * 1024));
    assert_eq!(server.get(&alice, &fine).await.status(), 200);

    let big_header = server
        .client
        .get(server.url("/api/chat-threads/"))
        .header("Authorization", format!("Token {}", alice.token))
        .header("X-Padding", "b".repeat(40 * 1024))
        .send()
        .await
        .expect("request");
    assert_body(
        big_header,
        431,
        json!({"detail": "Request header fields too large."}),
    )
    .await;
    let mut many = server.client.get(server.url("/healthz"));
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_body(
        many.send().await.expect("request"),
        431,
        json!({"detail": "Request header fields too large."}),
    )
    .await;
}

palisade_store::test_on_both_backends!(oversized_heads_get_json);
