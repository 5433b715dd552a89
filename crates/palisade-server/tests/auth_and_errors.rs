//! Cross-cutting contract: token authentication and its 401s, unknown paths,
//! and the OpenAPI document and docs page.

mod common;

mod tests {
    use std::time::Duration;

    use reqwest::Method;
    use serde_json::{Value, json};

    use super::common::{TestServer, assert_body, header, hex};

    /// Every endpoint of the read API, with a method it answers.
    fn endpoints(thread: &str, session: &str) -> Vec<(Method, String)> {
        vec![
            (Method::GET, "/api/chat-sessions/".into()),
            (Method::GET, "/api/chat-sessions/current/".into()),
            (Method::GET, format!("/api/chat-sessions/{session}/")),
            (Method::GET, "/api/chat-threads/".into()),
            (Method::GET, format!("/api/chat-threads/{thread}/")),
            (Method::POST, format!("/api/chat-threads/{thread}/archive/")),
            (
                Method::POST,
                format!("/api/chat-threads/{thread}/unarchive/"),
            ),
            (Method::GET, "/api/chat-messages/".into()),
        ]
    }

    async fn assert_401(response: reqwest::Response, detail: &str) {
        assert_eq!(response.headers()["www-authenticate"], "Token");
        assert_body(response, 401, json!({ "detail": detail })).await;
    }

    /// No credentials: 401 with `WWW-Authenticate: Token` on every endpoint,
    /// including methods that would be 405 (authentication comes first).
    pub async fn missing_credentials_are_401_everywhere(server: TestServer) {
        let alice = server.user("alice").await;
        let chat = server.thread(&alice, "chat").await;
        let session = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let (thread, session) = (hex(&chat.uuid), hex(&session.uuid));
        let missing = "Authentication credentials were not provided.";
        for (method, path) in endpoints(&thread, &session) {
            assert_401(server.anonymous(method, &path).await, missing).await;
        }
        for (method, path) in [
            (Method::POST, "/api/chat-threads/".to_owned()),
            (Method::DELETE, format!("/api/chat-threads/{thread}/")),
            (Method::GET, format!("/api/chat-messages/{thread}/")),
        ] {
            assert_401(server.anonymous(method, &path).await, missing).await;
        }
        // Another scheme is not a credential.
        let basic = server
            .get_with_auth("Basic YWxpY2U6c2VjcmV0", "/api/chat-threads/")
            .await;
        assert_401(basic, missing).await;
        // Nothing was archived on the way.
        assert!(!server.reload(&chat).await.is_archived);
    }

    /// `Token <key>` and `Bearer <key>` both work, the scheme in any case.
    pub async fn token_and_bearer_schemes(server: TestServer) {
        let alice = server.user("alice").await;
        for scheme in ["Token", "Bearer", "token", "BEARER"] {
            let response = server
                .get_with_auth(
                    &format!("{scheme} {}", alice.token),
                    "/api/chat-sessions/current/",
                )
                .await;
            assert_eq!(response.status(), 200, "{scheme}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["user"], hex(&alice.user.uuid));
        }
    }

    /// Wrong or malformed tokens: 401 with DRF's messages.
    pub async fn invalid_tokens_are_401(server: TestServer) {
        let alice = server.user("alice").await;
        let path = "/api/chat-threads/";
        let mut tampered = alice.token.clone();
        let last = if tampered.ends_with('0') { "1" } else { "0" };
        tampered.replace_range(63.., last);
        let cases = [
            (format!("Token {tampered}"), "Invalid token."),
            (format!("Token {}", "0".repeat(64)), "Invalid token."),
            ("Token short".to_owned(), "Invalid token."),
            (format!("Bearer {}x", alice.token), "Invalid token."),
            (
                "Token".to_owned(),
                "Invalid token header. No credentials provided.",
            ),
            (
                format!("Token {} extra", alice.token),
                "Invalid token header. Token string should not contain spaces.",
            ),
        ];
        for (authorization, detail) in cases {
            assert_401(server.get_with_auth(&authorization, path).await, detail).await;
        }
        let latin1 = reqwest::header::HeaderValue::from_bytes(b"Token caf\xe9").unwrap();
        let response = server
            .client
            .get(server.url(path))
            .header("Authorization", latin1)
            .send()
            .await
            .unwrap();
        assert_401(
            response,
            "Invalid token header. Token string should not contain invalid characters.",
        )
        .await;
        // The real token still works.
        assert_eq!(server.get(&alice, path).await.status(), 200);
    }

    /// An inactive user's token is refused, and accepted again on reactivation.
    pub async fn inactive_users_are_refused(server: TestServer) {
        let alice = server.user("alice").await;
        server
            .store
            .set_user_active(alice.user.id, false)
            .await
            .unwrap();
        assert_401(
            server.get(&alice, "/api/chat-sessions/current/").await,
            "User inactive or deleted.",
        )
        .await;
        server
            .store
            .set_user_active(alice.user.id, true)
            .await
            .unwrap();
        assert_eq!(
            server
                .get(&alice, "/api/chat-sessions/current/")
                .await
                .status(),
            200
        );
    }

    /// An expired token is refused; a token with time left is not.
    pub async fn expired_tokens_are_refused(server: TestServer) {
        let alice = server.user("alice").await;
        let store = server.store.as_ref();
        let short =
            palisade_server::auth::issue_token(store, &alice.user, Some(Duration::from_millis(1)))
                .await
                .unwrap();
        let long =
            palisade_server::auth::issue_token(store, &alice.user, Some(Duration::from_secs(3600)))
                .await
                .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_401(
            server
                .get_with_auth(&format!("Token {short}"), "/api/chat-threads/")
                .await,
            "Token has expired.",
        )
        .await;
        let response = server
            .get_with_auth(&format!("Token {long}"), "/api/chat-threads/")
            .await;
        assert_eq!(response.status(), 200);
    }

    /// Unknown paths are a JSON 404, with or without credentials.
    pub async fn unknown_paths_are_json_404(server: TestServer) {
        let alice = server.user("alice").await;
        for path in [
            "/api/nothing-here/",
            "/api/chat-threads/a/b/c/",
            "/api/chat/stream/extra/",
            "/no-such-page",
            "/assets/missing.js",
        ] {
            let response = server.get(&alice, path).await;
            assert!(
                header(&response, "content-type")
                    .unwrap()
                    .starts_with("application/json")
            );
            assert_body(response, 404, json!({"detail": "Not found."})).await;
            let anonymous = server.anonymous(Method::GET, path).await;
            assert_eq!(anonymous.status(), 404, "{path}");
        }
    }

    /// Malformed paths and query strings get the reference's 4xx, never a 500.
    pub async fn malformed_input_is_4xx(server: TestServer) {
        let alice = server.user("alice").await;
        server.thread(&alice, "chat").await;
        let cases = [
            ("/api/chat-threads/%ZZ/", 404),
            ("/api/chat-threads/%00/", 404),
            ("/api/chat-threads/%FF%FE/", 404),
            ("/api/chat-sessions/%FF/", 404),
            ("/api/chat-sessions/%00/", 404),
            ("/api/chat-threads/?query=%FF", 200),
            ("/api/chat-threads/?query=%ZZ", 200),
            ("/api/chat-threads/?query=_", 200),
            ("/api/chat-threads/?created=%FF", 400),
            ("/api/chat-threads/?created=99999-01-01", 400),
            ("/api/chat-threads/?user=%00", 400),
            ("/api/chat-threads/?o=%00", 400),
            ("/api/chat-threads/?o=--created", 400),
            ("/api/chat-threads/?max_severity=%00", 400),
            ("/api/chat-threads/?page=%FF", 404),
            ("/api/chat-threads/?page_size=%FF", 200),
            ("/api/chat-messages/?thread=%00", 400),
            ("/api/chat-messages/?include_history=%FF", 200),
        ];
        for (path, status) in cases {
            let response = server.get(&alice, path).await;
            assert_eq!(response.status(), status, "{path}");
            let body: Value = response.json().await.unwrap();
            assert!(body.is_object() || body.is_array(), "{path}");
        }
        // Django's CharField refuses NUL characters.
        let response = server.get(&alice, "/api/chat-threads/?query=a%00b").await;
        assert_body(
            response,
            400,
            json!({"query": ["Null characters are not allowed."]}),
        )
        .await;
        for path in [
            "/api/chat-threads/%FF%FE/archive/",
            "/api/chat-threads/%00/unarchive/",
        ] {
            let response = server.post(&alice, path).await;
            assert_body(response, 404, json!({"detail": "Not found."})).await;
        }
    }

    /// `/api/schema/`: an OpenAPI 3.1 document with every endpoint, its
    /// methods, parameters, and 4xx responses.
    pub async fn openapi_document(server: TestServer) {
        let response = server.anonymous(Method::GET, "/api/schema/").await;
        assert_eq!(response.status(), 200);
        assert!(
            header(&response, "content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let doc: Value = response.json().await.unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        let paths = doc["paths"].as_object().unwrap();
        let expected = [
            ("/api/chat-sessions/", "get"),
            ("/api/chat-sessions/current/", "get"),
            ("/api/chat-sessions/{uuid}/", "get"),
            ("/api/chat-threads/", "get"),
            ("/api/chat-threads/{uuid}/", "get"),
            ("/api/chat-threads/{uuid}/archive/", "post"),
            ("/api/chat-threads/{uuid}/unarchive/", "post"),
            ("/api/chat-messages/", "get"),
        ];
        for (path, method) in expected {
            let operation = &paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} missing from the schema"))[method];
            assert!(operation.is_object(), "{method} {path}");
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
        let threads = &paths["/api/chat-threads/"]["get"];
        let parameters: Vec<&str> = threads["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "user",
            "created",
            "modified",
            "is_archived",
            "is_flagged",
            "max_severity",
            "query",
            "o",
            "page",
            "page_size",
            "field",
        ] {
            assert!(parameters.contains(&name), "thread list parameter {name}");
        }
        assert!(threads["responses"]["400"].is_object());
        assert!(threads["responses"]["404"].is_object());
        let messages = &paths["/api/chat-messages/"]["get"];
        assert!(messages["responses"]["400"].is_object());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "SessionOut",
            "ThreadOut",
            "MessageOut",
            "Detail",
            "FieldErrors",
        ] {
            assert!(schemas.contains_key(name), "schema {name}");
        }
        assert!(doc["components"]["securitySchemes"]["token"].is_object());
    }

    /// The document describes what is sent: a regular user's message (no
    /// detection fields) fits the message schema; timestamps are
    /// date-times and UUIDs 32 hex; request bodies state their limits;
    /// 400s that can be `{"detail"}` or a bare array say so.
    pub async fn openapi_document_tells_the_truth(server: TestServer) {
        let doc: Value = server
            .anonymous(Method::GET, "/api/schema/")
            .await
            .json()
            .await
            .unwrap();
        let schemas = &doc["components"]["schemas"];
        let message = &schemas["MessageOut"];
        let required: Vec<&str> = message["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            required,
            [
                "uuid",
                "thread",
                "role",
                "content",
                "sequence_index",
                "created",
                "is_generating"
            ],
            "{message}"
        );
        for field in ["is_flagged", "severity", "action_taken"] {
            assert!(message["properties"][field].is_object(), "{field}");
        }
        for schema in ["SessionOut", "ThreadOut", "MessageOut"] {
            let created = &schemas[schema]["properties"]["created"];
            assert_eq!(created["format"], "date-time", "{schema}");
            assert_eq!(
                schemas[schema]["properties"]["uuid"]["pattern"], "^[0-9a-f]{32}$",
                "{schema}"
            );
        }
        let messages = &doc["paths"]["/api/chat-messages/"]["get"];
        let thread = messages["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "thread")
            .unwrap();
        assert_eq!(thread["schema"]["$ref"], "#/components/schemas/UuidFilter");
        // Hyphenated (`format: uuid`) or 32 hex, or empty (no filter).
        let uuid = &schemas["UuidFilter"]["anyOf"][0]["anyOf"];
        assert_eq!(uuid[0]["format"], "uuid");
        assert_eq!(uuid[1]["pattern"], "^[0-9A-Fa-f]{32}$");
        assert_eq!(schemas["UuidFilter"]["anyOf"][1]["maxLength"], 0);
        let input = &schemas["StreamIn"]["allOf"][0]["properties"]["input"];
        assert_eq!(input["minLength"], 1);
        assert_eq!(input["maxLength"], 50_000);
        let stream = &doc["paths"]["/api/chat/stream/"]["post"];
        assert_eq!(
            stream["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/BadRequest"
        );
        assert_eq!(schemas["BadRequest"]["oneOf"].as_array().unwrap().len(), 3);
        let threads = &doc["paths"]["/api/chat-threads/"]["get"]["parameters"];
        let page_size = threads
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "page_size")
            .unwrap();
        // Any value is accepted (clamped or defaulted), so no bounds.
        assert_eq!(page_size["schema"]["$ref"], "#/components/schemas/Lenient");
    }

    /// 405 answers carry `Allow`, as RFC 9110 requires and DRF does.
    pub async fn method_not_allowed_has_allow(server: TestServer) {
        let alice = server.user("alice").await;
        for (method, path, allow) in [
            (Method::POST, "/api/chat-threads/", "GET, HEAD, OPTIONS"),
            (
                Method::DELETE,
                "/api/chat-sessions/current/",
                "GET, HEAD, OPTIONS",
            ),
            (Method::GET, "/api/chat/stream/", "POST, OPTIONS"),
            (Method::GET, "/api-auth/password/", "POST"),
            (
                Method::GET,
                "/api/chat-messages/0123456789abcdef0123456789abcdef/",
                "",
            ),
        ] {
            let response = server.request(method.clone(), &alice, path).await;
            assert_eq!(response.status(), 405, "{method} {path}");
            assert_eq!(header(&response, "allow"), Some(allow), "{method} {path}");
        }
        // Authentication still comes first, as in DRF.
        let anonymous = server.anonymous(Method::DELETE, "/api/chat-threads/").await;
        assert_eq!(anonymous.status(), 401);
    }

    /// `/api/docs/` is an HTML page whose scripts and styles are served by
    /// Palisade itself.
    pub async fn docs_page_and_assets(server: TestServer) {
        let response = server.anonymous(Method::GET, "/api/docs/").await;
        assert_eq!(response.status(), 200);
        assert!(
            header(&response, "content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("/api/schema/"));
        let mut assets = Vec::new();
        for attribute in ["src=\"", "href=\""] {
            for piece in html.split(attribute).skip(1) {
                let url = piece.split('"').next().unwrap();
                assert!(url.starts_with('/'), "asset {url} is not served locally");
                assets.push(url.to_owned());
            }
        }
        assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
        assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
        for asset in assets {
            let response = server.anonymous(Method::GET, &asset).await;
            assert_eq!(response.status(), 200, "{asset}");
            let kind = if asset.ends_with(".js") {
                "javascript"
            } else {
                "css"
            };
            assert!(
                header(&response, "content-type").unwrap().contains(kind),
                "{asset}"
            );
            assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
        }
    }
}

http_tests!(
    missing_credentials_are_401_everywhere,
    token_and_bearer_schemes,
    invalid_tokens_are_401,
    inactive_users_are_refused,
    expired_tokens_are_refused,
    unknown_paths_are_json_404,
    malformed_input_is_4xx,
    openapi_document,
    openapi_document_tells_the_truth,
    method_not_allowed_has_allow,
    docs_page_and_assets,
);
