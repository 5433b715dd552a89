//! Probes and request ids: `/healthz` (liveness, no database), `/readyz`
//! (readiness: the database answers), and `X-Request-Id` on every response.
//! On both databases.

mod common;

mod tests {
    use reqwest::Method;
    use serde_json::json;

    use super::common::{TestServer, assert_body, header};

    pub async fn readiness_reports_the_database(server: TestServer) {
        let response = server.anonymous(Method::GET, "/readyz").await;
        let backend = server.store.backend();
        assert_body(
            response,
            200,
            json!({"status": "ready", "database": backend}),
        )
        .await;
        let response = server.anonymous(Method::GET, "/healthz").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }

    pub async fn every_response_carries_a_request_id(server: TestServer) {
        let alice = server.user("alice").await;
        let mut seen = Vec::new();
        for path in ["/healthz", "/api/chat-threads/", "/no-such-page"] {
            let response = server.get(&alice, path).await;
            let id = header(&response, "x-request-id")
                .unwrap_or_else(|| panic!("no request id on {path}"))
                .to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
            seen.push(id);
        }
        seen.dedup();
        assert_eq!(seen.len(), 3, "each request has its own id");
        // An id from the client (or a proxy in front) is kept.
        let response = server
            .client
            .get(server.url("/healthz"))
            .header("X-Request-Id", "from-the-proxy-42")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-request-id"), Some("from-the-proxy-42"));
    }
}

http_tests!(
    readiness_reports_the_database,
    every_response_carries_a_request_id,
);
