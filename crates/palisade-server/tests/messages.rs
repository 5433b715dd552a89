//! `/api/chat-messages/` (checklist items 4 and 19–24): scope, filters,
//! history, detection fields by role, and the unpaginated plain array.

mod common;

mod tests {
    /// The reference's fields a regular user sees, then Palisade's
    /// `is_generating`.
    fn regular_fields() -> Vec<&'static str> {
        let mut fields = MESSAGE_FIELDS[..7].to_vec();
        fields.push("is_generating");
        fields
    }

    /// Staff and support also see the detection fields.
    fn staff_fields() -> Vec<&'static str> {
        let mut fields = MESSAGE_FIELDS.to_vec();
        fields.push("is_generating");
        fields
    }

    use palisade_store::{Action, NewMessage, Role, Severity, StoreError};
    use reqwest::Method;
    use serde_json::{Value, json};

    use super::common::{
        MESSAGE_FIELDS, TestServer, assert_405, assert_body, assert_hex_uuid, assert_timestamp,
        flagged, header, hex, keys, names,
    };

    fn thread_query(thread: &palisade_store::Thread) -> String {
        format!("/api/chat-messages/?thread={}", hex(&thread.uuid))
    }

    /// Item 4: a second original row at the same `(thread, sequence_index)`
    /// is rejected by the database; a replacement at that index is not.
    pub async fn duplicate_active_sequence_index_is_rejected(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let other = server.thread(&alice, "other").await;
        let first = server.message(&thread, Role::User, 1, None).await;

        let duplicate = server
            .store
            .insert_message(
                thread.id,
                &NewMessage {
                    role: Role::Assistant,
                    content: "again".into(),
                    sequence_index: 1,
                    replaces: None,
                },
            )
            .await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        // Replacements share the index; other threads have their own indexes.
        server.message(&thread, Role::User, 1, Some(&first)).await;
        server.message(&other, Role::User, 1, None).await;
        let body = server
            .get_json(
                &alice,
                &format!("{}&include_history=true", thread_query(&thread)),
            )
            .await;
        assert_eq!(body.as_array().unwrap().len(), 2);
    }

    /// The message object for a regular user: the reference's seven fields,
    /// in order, then Palisade's `is_generating`.
    pub async fn message_shape_for_regular_users(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let question = server
            .message_with(&thread, Role::User, 1, None, "Hello?")
            .await;
        let answer = server
            .message_with(&thread, Role::Assistant, 2, None, "")
            .await;

        let body = server.get_json(&alice, "/api/chat-messages/").await;
        assert_eq!(
            body,
            json!([
                {
                    "uuid": hex(&question.uuid),
                    "thread": hex(&thread.uuid),
                    "role": "user",
                    "content": "Hello?",
                    "sequence_index": 1,
                    "replaces": null,
                    "created": body[0]["created"],
                    "is_generating": false,
                },
                {
                    "uuid": hex(&answer.uuid),
                    "thread": hex(&thread.uuid),
                    "role": "assistant",
                    "content": "",
                    "sequence_index": 2,
                    "replaces": null,
                    "created": body[1]["created"],
                    "is_generating": false,
                },
            ])
        );
        for message in body.as_array().unwrap() {
            assert_eq!(keys(message), regular_fields());
            assert_hex_uuid(&message["uuid"]);
            assert_hex_uuid(&message["thread"]);
            assert_timestamp(&message["created"]);
        }
    }

    /// Not paginated: a plain array without `Link` or `X-Result-Count`;
    /// `page`, `page_size` and `field` are ignored.
    pub async fn messages_are_not_paginated(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        for index in (1..=23).step_by(2) {
            server.exchange(&thread, index).await;
        }
        for query in ["", "?page=7&page_size=1", "?page=last", "?field=uuid"] {
            let response = server
                .get(&alice, &format!("/api/chat-messages/{query}"))
                .await;
            assert_eq!(response.status(), 200, "{query}");
            assert!(header(&response, "x-result-count").is_none());
            assert!(header(&response, "link").is_none());
            let body: Value = response.json().await.unwrap();
            let list = body.as_array().unwrap();
            assert_eq!(list.len(), 24, "{query}");
            assert_eq!(keys(&list[0]), regular_fields());
            let indexes: Vec<i64> = list
                .iter()
                .map(|m| m["sequence_index"].as_i64().unwrap())
                .collect();
            assert_eq!(indexes, (1..=24).collect::<Vec<_>>());
        }
    }

    /// Item 19: a regular user lists only their own messages; another user's
    /// thread gives an empty list, not 404.
    pub async fn regular_user_sees_only_own_messages(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let mine = server.thread(&alice, "mine").await;
        let bobs = server.thread(&bob, "bob's").await;
        let (question, answer) = server.exchange(&mine, 1).await;
        server.exchange(&bobs, 1).await;

        let body = server.get_json(&alice, "/api/chat-messages/").await;
        assert_eq!(
            names(&body, "uuid"),
            [hex(&question.uuid), hex(&answer.uuid)]
        );

        let response = server.get(&alice, &thread_query(&bobs)).await;
        assert_body(response, 200, json!([])).await;
    }

    /// Item 20: replaced rows are hidden unless `include_history` is true —
    /// or present but unparseable (the reference's quirk).
    pub async fn include_history(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let (question, original) = server.exchange(&thread, 1).await;
        let reload = server
            .message(&thread, Role::Assistant, 2, Some(&original))
            .await;

        let active = vec![hex(&question.uuid), hex(&reload.uuid)];
        let all = vec![hex(&question.uuid), hex(&original.uuid), hex(&reload.uuid)];
        let cases = [
            ("", &active),
            ("&include_history=false", &active),
            ("&include_history=False", &active),
            ("&include_history=true", &all),
            ("&include_history=True", &all),
            ("&include_history=yes", &all),
            ("&include_history=", &all),
        ];
        for (query, expected) in cases {
            let path = format!("{}{query}", thread_query(&thread));
            let body = server.get_json(&alice, &path).await;
            assert_eq!(&names(&body, "uuid"), expected, "{query}");
        }

        let body = server
            .get_json(
                &alice,
                &format!("{}&include_history=true", thread_query(&thread)),
            )
            .await;
        assert_eq!(body[2]["replaces"], hex(&original.uuid));
        assert_eq!(body[2]["sequence_index"], 2);
        assert_eq!(body[1]["replaces"], Value::Null);

        // There is no `role` filter: unknown parameters are ignored.
        let history = server
            .get_json(
                &alice,
                &format!(
                    "/api/chat-messages/?thread={}&include_history=true&role=user",
                    hex(&thread.uuid)
                ),
            )
            .await;
        assert_eq!(history.as_array().unwrap().len(), 3);
    }

    /// Item 21: `?thread=` filters to that thread (both uuid forms); an
    /// invalid uuid is 400; messages of threads interleave by index.
    pub async fn thread_filter(server: TestServer) {
        let alice = server.user("alice").await;
        let one = server.thread(&alice, "one").await;
        let two = server.thread(&alice, "two").await;
        let (q1, a1) = server.exchange(&one, 1).await;
        let (q2, a2) = server.exchange(&two, 1).await;
        let (q3, a3) = server.exchange(&one, 3).await;

        let body = server.get_json(&alice, &thread_query(&one)).await;
        let expected = [&q1, &a1, &q3, &a3].map(|m| hex(&m.uuid));
        assert_eq!(names(&body, "uuid"), expected);
        let hyphenated = format!("/api/chat-messages/?thread={}", two.uuid.hyphenated());
        let body = server.get_json(&alice, &hyphenated).await;
        assert_eq!(names(&body, "uuid"), [hex(&q2.uuid), hex(&a2.uuid)]);

        let body = server.get_json(&alice, "/api/chat-messages/").await;
        let expected = [&q1, &q2, &a1, &a2, &q3, &a3].map(|m| hex(&m.uuid));
        assert_eq!(names(&body, "uuid"), expected);
        let body = server.get_json(&alice, "/api/chat-messages/?thread=").await;
        assert_eq!(body.as_array().unwrap().len(), 6);

        for bad in ["nope", "1234", &format!("{}0", hex(&one.uuid))] {
            let response = server
                .get(&alice, &format!("/api/chat-messages/?thread={bad}"))
                .await;
            assert_body(response, 400, json!({"thread": ["Enter a valid UUID."]})).await;
        }
        let unknown = format!("/api/chat-messages/?thread={}", hex(&uuid::Uuid::new_v4()));
        assert_body(server.get(&alice, &unknown).await, 200, json!([])).await;
    }

    /// Seeds alice's flagged exchange and bob's clean one.
    async fn seed_flagged(
        server: &TestServer,
    ) -> (
        super::common::Account,
        palisade_store::Thread,
        palisade_store::Message,
        palisade_store::Thread,
    ) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let risky = server.thread(&alice, "risky").await;
        let clean = server.thread(&bob, "clean").await;
        let (question, _) = server.exchange(&risky, 1).await;
        server
            .flag(
                &question,
                flagged(
                    Severity::High,
                    Action::Block,
                    &["jailbreak", "jailbreak"],
                    &["pii_email"],
                ),
            )
            .await;
        server.exchange(&risky, 3).await;
        server.exchange(&clean, 1).await;
        (alice, risky, question, clean)
    }

    /// Item 22: staff and support list every user's messages.
    pub async fn staff_and_support_see_all_messages(server: TestServer) {
        let (_, risky, _, clean) = seed_flagged(&server).await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        for viewer in [&staff, &support] {
            let body = server.get_json(viewer, "/api/chat-messages/").await;
            let threads = names(&body, "thread");
            assert_eq!(threads.len(), 6);
            assert_eq!(
                threads.iter().filter(|t| **t == hex(&risky.uuid)).count(),
                4
            );
            assert_eq!(
                threads.iter().filter(|t| **t == hex(&clean.uuid)).count(),
                2
            );
        }
        // Each listing left one `chat_messages_accessed` event per owner
        // (a deviation: the reference audits no message listing).
        assert_eq!(server.store.list_audit_events(None).await.unwrap().len(), 4);
    }

    /// Staff and support reading other users' messages leave one
    /// `chat_messages_accessed` event per owner whose messages were
    /// returned, naming the threads; their own messages, an empty answer
    /// and regular users leave none.
    pub async fn staff_reading_messages_is_audited(server: TestServer) {
        let (alice, risky, _, clean) = seed_flagged(&server).await;
        let carol = server.user("carol").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let mine = server.thread(&staff, "staff's own").await;
        server.exchange(&mine, 1).await;

        server.get_json(&alice, "/api/chat-messages/").await;
        server.get_json(&carol, "/api/chat-messages/").await;
        server
            .get_json(
                &staff,
                &format!("/api/chat-messages/?thread={}", hex(&mine.uuid)),
            )
            .await;
        server
            .get_json(
                &staff,
                &format!("/api/chat-messages/?thread={}", hex(&uuid::Uuid::new_v4())),
            )
            .await;
        assert!(
            server
                .store
                .list_audit_events(None)
                .await
                .unwrap()
                .is_empty()
        );

        server.get_json(&staff, "/api/chat-messages/").await;
        let events = server.audit_events(&alice, "chat_messages_accessed").await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].message, "Chat data of alice accessed by root");
        assert_eq!(events[0].actor_id, Some(staff.user.id));
        assert_eq!(events[0].context["threads"], json!([hex(&risky.uuid)]));
        let owner_of_clean = server
            .store
            .list_audit_events(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.context["threads"] == json!([hex(&clean.uuid)]))
            .count();
        assert_eq!(owner_of_clean, 1, "one event for bob");
        assert_eq!(server.store.list_audit_events(None).await.unwrap().len(), 2);

        // One thread of one owner: one event naming it.
        server
            .get_json(
                &support,
                &format!("/api/chat-messages/?thread={}", hex(&risky.uuid)),
            )
            .await;
        let events = server.audit_events(&alice, "chat_messages_accessed").await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].message, "Chat data of alice accessed by helpdesk");
        assert_eq!(events[1].actor_id, Some(support.user.id));
        assert_eq!(events[1].context["threads"], json!([hex(&risky.uuid)]));
        assert!(
            server
                .audit_events(&staff, "chat_messages_accessed")
                .await
                .is_empty()
        );
    }

    /// Staff and support listing messages without `thread=` get at most
    /// 1,000 rows (the first in list order); with `thread=`, and for the
    /// owner, every row.
    pub async fn staff_lists_are_capped(server: TestServer) {
        let alice = server.user("alice").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let thread = server.thread(&alice, "long").await;
        for index in 1..=1_001 {
            server
                .store
                .insert_message(
                    thread.id,
                    &NewMessage {
                        role: if index % 2 == 1 {
                            Role::User
                        } else {
                            Role::Assistant
                        },
                        content: format!("m{index}"),
                        sequence_index: index,
                        replaces: None,
                    },
                )
                .await
                .unwrap();
        }
        let count = |body: Value| body.as_array().map(Vec::len).unwrap_or_default();
        for viewer in [&staff, &support] {
            let body = server.get_json(viewer, "/api/chat-messages/").await;
            assert_eq!(body[0]["content"], "m1");
            assert_eq!(body[999]["content"], "m1000");
            assert_eq!(count(body), 1_000);
            let one_thread = format!("/api/chat-messages/?thread={}", hex(&thread.uuid));
            assert_eq!(count(server.get_json(viewer, &one_thread).await), 1_001);
        }
        assert_eq!(
            count(server.get_json(&alice, "/api/chat-messages/").await),
            1_001
        );
    }

    /// Item 23: staff filtering `thread` + `is_flagged=true` get the one
    /// flagged message; `is_flagged` works for regular users too.
    pub async fn is_flagged_filter(server: TestServer) {
        let (alice, risky, question, _) = seed_flagged(&server).await;
        let staff = server.staff("root").await;

        let path = format!("{}&is_flagged=true", thread_query(&risky));
        let body = server.get_json(&staff, &path).await;
        assert_eq!(names(&body, "uuid"), [hex(&question.uuid)]);
        assert_eq!(body[0]["is_flagged"], true);

        let body = server
            .get_json(&staff, "/api/chat-messages/?is_flagged=True")
            .await;
        assert_eq!(names(&body, "uuid"), [hex(&question.uuid)]);
        let body = server
            .get_json(&staff, "/api/chat-messages/?is_flagged=false")
            .await;
        assert_eq!(body.as_array().unwrap().len(), 5);
        let body = server
            .get_json(&staff, "/api/chat-messages/?is_flagged=maybe")
            .await;
        assert_eq!(body.as_array().unwrap().len(), 6);

        // A regular user filters by a field they cannot see.
        let body = server
            .get_json(&alice, "/api/chat-messages/?is_flagged=true")
            .await;
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["uuid"], hex(&question.uuid));
        assert_eq!(keys(&body[0]), regular_fields());
        let body = server
            .get_json(&alice, "/api/chat-messages/?is_flagged=False")
            .await;
        assert_eq!(body.as_array().unwrap().len(), 3);
    }

    /// Item 24: the five detection fields are hidden from regular users and
    /// shown, with their values, to staff and support.
    pub async fn detection_fields_by_role(server: TestServer) {
        let (alice, risky, question, _) = seed_flagged(&server).await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let path = thread_query(&risky);

        let body = server.get_json(&alice, &path).await;
        for message in body.as_array().unwrap() {
            assert_eq!(keys(message), regular_fields());
            for hidden in &MESSAGE_FIELDS[7..] {
                assert!(message.get(*hidden).is_none(), "{hidden}");
            }
        }

        for viewer in [&staff, &support] {
            let body = server.get_json(viewer, &path).await;
            assert_eq!(body.as_array().unwrap().len(), 4);
            for message in body.as_array().unwrap() {
                assert_eq!(keys(message), staff_fields());
            }
            assert_eq!(
                body[0],
                json!({
                    "uuid": hex(&question.uuid),
                    "thread": hex(&risky.uuid),
                    "role": "user",
                    "content": "user message 1",
                    "sequence_index": 1,
                    "replaces": null,
                    "created": body[0]["created"],
                    "is_flagged": true,
                    "severity": "high",
                    "injection_categories": ["jailbreak", "jailbreak"],
                    "pii_categories": ["pii_email"],
                    "action_taken": "block",
                    "is_generating": false,
                })
            );
            // An unflagged answer carries the defaults.
            let answer = &body[1];
            assert_eq!(answer["role"], "assistant");
            assert_eq!(answer["is_flagged"], false);
            assert_eq!(answer["severity"], "none");
            assert_eq!(answer["injection_categories"], json!([]));
            assert_eq!(answer["pii_categories"], json!([]));
            assert_eq!(answer["action_taken"], "allow");
        }
    }

    /// Only list exists: POST on the collection and every method on
    /// `/api/chat-messages/{uuid}/` are 405.
    pub async fn other_methods_are_405(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let (question, _) = server.exchange(&thread, 1).await;
        let one = format!("/api/chat-messages/{}/", hex(&question.uuid));
        let cases = [
            (Method::POST, "POST", "/api/chat-messages/"),
            (Method::PUT, "PUT", "/api/chat-messages/"),
            (Method::PATCH, "PATCH", "/api/chat-messages/"),
            (Method::DELETE, "DELETE", "/api/chat-messages/"),
            (Method::GET, "GET", one.as_str()),
            (Method::POST, "POST", one.as_str()),
            (Method::PUT, "PUT", one.as_str()),
            (Method::PATCH, "PATCH", one.as_str()),
            (Method::DELETE, "DELETE", one.as_str()),
            (Method::GET, "GET", "/api/chat-messages/not-a-uuid/"),
        ];
        for (method, name, path) in cases {
            assert_405(server.request(method, &alice, path).await, name).await;
        }
        let body = server.get_json(&alice, "/api/chat-messages/").await;
        assert_eq!(body.as_array().unwrap().len(), 2);
    }
}

http_tests!(
    duplicate_active_sequence_index_is_rejected,
    message_shape_for_regular_users,
    messages_are_not_paginated,
    regular_user_sees_only_own_messages,
    include_history,
    thread_filter,
    staff_and_support_see_all_messages,
    is_flagged_filter,
    staff_reading_messages_is_audited,
    staff_lists_are_capped,
    detection_fields_by_role,
    other_methods_are_405,
);
