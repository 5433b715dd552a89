//! The server starts and answers with authentication on both backends.

mod common;

mod tests {
    use super::common::TestServer;

    pub async fn current_session_needs_a_token(server: TestServer) {
        let anonymous = server
            .client
            .get(server.url("/api/chat-sessions/current/"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.headers()["www-authenticate"], "Token");
        let body: serde_json::Value = anonymous.json().await.unwrap();
        assert_eq!(
            body["detail"],
            "Authentication credentials were not provided."
        );

        let alice = server.user("alice").await;
        let response = server.get(&alice, "/api/chat-sessions/current/").await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["user"], super::common::hex(&alice.user.uuid));
    }
}

http_tests!(current_session_needs_a_token);
