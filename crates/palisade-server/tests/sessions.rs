//! `/api/chat-sessions/`: list, retrieve and `current` (checklist items 1–3,
//! 9, 10), their scope, shapes, sparse fieldsets and audit events.

mod common;

mod tests {
    use palisade_store::Scope;
    use reqwest::Method;
    use serde_json::json;

    use super::common::{
        SESSION_FIELDS, TestServer, assert_404, assert_405, assert_hex_uuid, assert_timestamp,
        header, hex, keys, names,
    };

    /// Item 1: `current` returns the session the user already has.
    pub async fn current_returns_the_existing_session(server: TestServer) {
        let alice = server.user("alice").await;
        let existing = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();

        let body = server.get_json(&alice, "/api/chat-sessions/current/").await;
        assert_eq!(body["uuid"], hex(&existing.uuid));
        assert_eq!(body["user"], hex(&alice.user.uuid));
        assert_eq!(body["user_username"], "alice");
        assert_eq!(body["user_full_name"], "alice Example");
        assert_eq!(keys(&body), SESSION_FIELDS);
        assert_hex_uuid(&body["uuid"]);
        assert_hex_uuid(&body["user"]);
        assert_timestamp(&body["created"]);
        assert_timestamp(&body["modified"]);
    }

    /// Items 2 and 3: `current` creates the session once; later calls return it.
    pub async fn current_creates_one_session_and_is_idempotent(server: TestServer) {
        let alice = server.user("alice").await;
        let mine = Scope::Owner(alice.user.id);
        assert_eq!(server.store.count_sessions(mine).await.unwrap(), 0);

        let first = server.get_json(&alice, "/api/chat-sessions/current/").await;
        assert_eq!(server.store.count_sessions(mine).await.unwrap(), 1);
        let second = server.get_json(&alice, "/api/chat-sessions/current/").await;
        assert_eq!(first["uuid"], second["uuid"]);
        assert_eq!(first, second);
        assert_eq!(server.store.count_sessions(mine).await.unwrap(), 1);
        assert_eq!(server.store.count_sessions(Scope::All).await.unwrap(), 1);
    }

    /// Staff get their own session from `current`, not someone else's.
    pub async fn current_is_the_callers_own_even_for_staff(server: TestServer) {
        let alice = server.user("alice").await;
        let staff = server.staff("root").await;
        server.get_json(&alice, "/api/chat-sessions/current/").await;
        let body = server.get_json(&staff, "/api/chat-sessions/current/").await;
        assert_eq!(body["user"], hex(&staff.user.uuid));
        assert_eq!(body["user_username"], "root");
    }

    /// `field` has no effect on `current`.
    pub async fn current_ignores_sparse_fieldsets(server: TestServer) {
        let alice = server.user("alice").await;
        let body = server
            .get_json(&alice, "/api/chat-sessions/current/?field=uuid")
            .await;
        assert_eq!(keys(&body), SESSION_FIELDS);
    }

    /// A regular user lists only their own session (0 or 1), paginated.
    pub async fn regular_user_lists_only_their_own_session(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        server
            .store
            .get_or_create_session(bob.user.id)
            .await
            .unwrap();

        let response = server.get(&alice, "/api/chat-sessions/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-result-count"), Some("0"));
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap(),
            json!([])
        );

        let own = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let response = server.get(&alice, "/api/chat-sessions/").await;
        assert_eq!(header(&response, "x-result-count"), Some("1"));
        let base = server.url("/api/chat-sessions/");
        assert_eq!(
            header(&response, "link").unwrap(),
            format!("<{base}>; rel=\"first\", <{base}>; rel=\"last\"")
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["uuid"], hex(&own.uuid));
        assert_eq!(keys(&body[0]), SESSION_FIELDS);
    }

    /// Item 9: staff and support see every session, newest first, with the
    /// owner's username and full name.
    pub async fn staff_and_support_see_all_sessions(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        for who in [&alice, &bob] {
            server
                .store
                .get_or_create_session(who.user.id)
                .await
                .unwrap();
        }

        for viewer in [&staff, &support] {
            let response = server.get(viewer, "/api/chat-sessions/").await;
            assert_eq!(header(&response, "x-result-count"), Some("2"));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(names(&body, "user_username"), ["bob", "alice"]);
            assert_eq!(
                names(&body, "user_full_name"),
                ["bob Example", "alice Example"]
            );
            assert_eq!(body[1]["user"], hex(&alice.user.uuid));
            for session in body.as_array().unwrap() {
                assert_eq!(keys(session), SESSION_FIELDS);
            }
        }
    }

    /// Retrieve: own session 200 (32-hex or hyphenated uuid), another user's
    /// 404, an invalid uuid 404.
    pub async fn retrieve_scope_and_uuid_forms(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let own = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let other = server
            .store
            .get_or_create_session(bob.user.id)
            .await
            .unwrap();

        let path = format!("/api/chat-sessions/{}/", hex(&own.uuid));
        let body = server.get_json(&alice, &path).await;
        assert_eq!(body["uuid"], hex(&own.uuid));
        assert_eq!(keys(&body), SESSION_FIELDS);

        let hyphenated = format!("/api/chat-sessions/{}/", own.uuid.hyphenated());
        assert_eq!(server.get_json(&alice, &hyphenated).await, body);

        let others = format!("/api/chat-sessions/{}/", hex(&other.uuid));
        assert_404(server.get(&alice, &others).await).await;
        assert_404(server.get(&alice, "/api/chat-sessions/not-a-uuid/").await).await;
        let unknown = format!("/api/chat-sessions/{}/", hex(&uuid::Uuid::new_v4()));
        assert_404(server.get(&alice, &unknown).await).await;
    }

    /// Item 10: staff reading a user's session leaves exactly one
    /// `chat_session_accessed` event; reading your own leaves none.
    pub async fn staff_reading_a_session_is_audited(server: TestServer) {
        let alice = server.user("alice").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let session = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let path = format!("/api/chat-sessions/{}/", hex(&session.uuid));

        server.get_json(&alice, &path).await;
        assert!(
            server
                .audit_events(&alice, "chat_session_accessed")
                .await
                .is_empty()
        );
        assert!(
            server
                .store
                .list_audit_events(None)
                .await
                .unwrap()
                .is_empty()
        );

        let body = server.get_json(&staff, &path).await;
        assert_eq!(body["user"], hex(&alice.user.uuid));
        let events = server.audit_events(&alice, "chat_session_accessed").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].message, "Chat data of alice accessed by root");
        assert_eq!(events[0].actor_id, Some(staff.user.id));
        assert_eq!(events[0].target_id, Some(alice.user.id));

        server.get_json(&support, &path).await;
        let events = server.audit_events(&alice, "chat_session_accessed").await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].message, "Chat data of alice accessed by helpdesk");

        // Staff reading their own session: no event about them.
        let own = server
            .store
            .get_or_create_session(staff.user.id)
            .await
            .unwrap();
        server
            .get_json(&staff, &format!("/api/chat-sessions/{}/", hex(&own.uuid)))
            .await;
        assert!(
            server
                .audit_events(&staff, "chat_session_accessed")
                .await
                .is_empty()
        );
        // Listing is not auditing.
        server.get_json(&staff, "/api/chat-sessions/").await;
        assert_eq!(server.store.list_audit_events(None).await.unwrap().len(), 2);
    }

    /// `field=` on list and retrieve keeps the serializer's order; unknown
    /// names are ignored; all-unknown means all fields.
    pub async fn sparse_fieldsets(server: TestServer) {
        let alice = server.user("alice").await;
        let session = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let detail = format!("/api/chat-sessions/{}/", hex(&session.uuid));

        let list = server
            .get_json(&alice, "/api/chat-sessions/?field=user_username&field=uuid")
            .await;
        assert_eq!(
            list,
            json!([{"uuid": hex(&session.uuid), "user_username": "alice"}])
        );

        let body = server
            .get_json(
                &alice,
                &format!("{detail}?field=modified&field=bogus&field=user"),
            )
            .await;
        assert_eq!(keys(&body), ["user", "modified"]);
        assert_eq!(body["user"], hex(&alice.user.uuid));

        let body = server
            .get_json(&alice, &format!("{detail}?field=bogus"))
            .await;
        assert_eq!(keys(&body), SESSION_FIELDS);
    }

    /// Sessions have no filters: unknown parameters are ignored, never 400.
    pub async fn sessions_ignore_filter_parameters(server: TestServer) {
        let alice = server.user("alice").await;
        server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let body = server
            .get_json(&alice, "/api/chat-sessions/?user=bad&created=bad&o=name")
            .await;
        assert_eq!(body.as_array().unwrap().len(), 1);
    }

    /// Only GET (and OPTIONS) exist on sessions.
    pub async fn other_methods_are_405(server: TestServer) {
        let alice = server.user("alice").await;
        let session = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let detail = format!("/api/chat-sessions/{}/", hex(&session.uuid));
        for (method, name) in [
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::PATCH, "PATCH"),
            (Method::DELETE, "DELETE"),
        ] {
            for path in [
                "/api/chat-sessions/",
                detail.as_str(),
                "/api/chat-sessions/current/",
            ] {
                assert_405(server.request(method.clone(), &alice, path).await, name).await;
            }
        }
        // The session is still there.
        server.get_json(&alice, &detail).await;
    }
}

http_tests!(
    current_returns_the_existing_session,
    current_creates_one_session_and_is_idempotent,
    current_is_the_callers_own_even_for_staff,
    current_ignores_sparse_fieldsets,
    regular_user_lists_only_their_own_session,
    staff_and_support_see_all_sessions,
    retrieve_scope_and_uuid_forms,
    staff_reading_a_session_is_audited,
    sparse_fieldsets,
    sessions_ignore_filter_parameters,
    other_methods_are_405,
);
