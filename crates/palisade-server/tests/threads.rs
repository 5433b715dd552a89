//! `/api/chat-threads/`: list, retrieve, archive and unarchive (checklist
//! items 5–8 and 11–18), with every filter, its 400s and the thread shape.

mod common;

mod tests {
    use palisade_store::{Action, NewUser, Role, Severity};
    use reqwest::Method;
    use serde_json::json;

    use super::common::{
        THREAD_FIELDS, TestServer, assert_404, assert_405, assert_body, assert_hex_uuid,
        assert_timestamp, flagged, header, hex, keys, names,
    };

    fn detail(thread: &palisade_store::Thread) -> String {
        format!("/api/chat-threads/{}/", hex(&thread.uuid))
    }

    /// Item 5: a regular user lists only their own threads, as a plain array.
    pub async fn regular_user_lists_only_their_own_threads(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let mine = server.thread(&alice, "Mine").await;
        server.thread(&bob, "Bob's").await;

        let response = server.get(&alice, "/api/chat-threads/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-result-count"), Some("1"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body.is_array());
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["uuid"], hex(&mine.uuid));
    }

    /// The thread object: fields in the reference's order, 32-hex uuids,
    /// millisecond timestamps, owner fields and the unflagged defaults.
    pub async fn thread_shape(server: TestServer) {
        let alice = server.user("alice").await;
        let session = server
            .store
            .get_or_create_session(alice.user.id)
            .await
            .unwrap();
        let thread = server.thread(&alice, "New chat").await;

        let list = server.get_json(&alice, "/api/chat-threads/").await;
        let item = &list[0];
        assert_eq!(keys(item), THREAD_FIELDS);
        assert_eq!(item["uuid"], hex(&thread.uuid));
        assert_eq!(item["name"], "New chat");
        assert_eq!(item["chat_session"], hex(&session.uuid));
        assert_eq!(item["flags"], json!({}));
        assert_eq!(item["is_archived"], false);
        assert_eq!(item["message_count"], 0);
        assert_eq!(item["is_flagged"], false);
        assert_eq!(item["max_severity"], "none");
        assert_eq!(item["user_username"], "alice");
        assert_eq!(item["user_full_name"], "alice Example");
        assert_hex_uuid(&item["uuid"]);
        assert_hex_uuid(&item["chat_session"]);
        assert_timestamp(&item["created"]);
        assert_timestamp(&item["modified"]);
        assert_eq!(item["created"], item["modified"]);
        // Truncated (not rounded) to the millisecond, as DRF's encoder does.
        let expected = format!(
            "{}.{:03}Z",
            thread.created.format("%Y-%m-%dT%H:%M:%S"),
            thread.created.timestamp_subsec_millis()
        );
        assert_eq!(item["created"], expected);

        let one = server.get_json(&alice, &detail(&thread)).await;
        assert_eq!(&one, item);
        assert_eq!(keys(&one), THREAD_FIELDS);
        let hyphenated = format!("/api/chat-threads/{}/", thread.uuid.hyphenated());
        assert_eq!(server.get_json(&alice, &hyphenated).await, one);
        let upper = format!("/api/chat-threads/{}/", hex(&thread.uuid).to_uppercase());
        assert_eq!(server.get_json(&alice, &upper).await, one);
    }

    /// Item 8 (and 2.3): `message_count` counts every row, replaced ones too.
    pub async fn message_count_counts_all_rows(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "Chat").await;
        let empty = server.thread(&alice, "Empty").await;
        let (_, answer) = server.exchange(&thread, 1).await;

        let body = server.get_json(&alice, &detail(&thread)).await;
        assert_eq!(body["message_count"], 2);

        server
            .message(&thread, Role::Assistant, 2, Some(&answer))
            .await;
        let list = server.get_json(&alice, "/api/chat-threads/").await;
        assert_eq!(names(&list, "name"), ["Empty", "Chat"]);
        assert_eq!(list[0]["message_count"], 0);
        assert_eq!(list[1]["message_count"], 3);
        assert_eq!(
            server.get_json(&alice, &detail(&empty)).await["message_count"],
            0
        );
    }

    /// Retrieve: another user's thread and an invalid uuid are 404 (never 403).
    pub async fn retrieve_other_users_thread_is_404(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let bobs = server.thread(&bob, "Bob's").await;

        assert_404(server.get(&alice, &detail(&bobs)).await).await;
        assert_404(server.get(&alice, "/api/chat-threads/zzz/").await).await;
        assert_404(
            server
                .get(
                    &alice,
                    "/api/chat-threads/0123456789abcdef0123456789abcdeg/",
                )
                .await,
        )
        .await;
        let unknown = format!("/api/chat-threads/{}/", hex(&uuid::Uuid::new_v4()));
        assert_404(server.get(&alice, &unknown).await).await;
        server.get_json(&bob, &detail(&bobs)).await;
    }

    /// Item 11: staff and support see every user's threads; `user=` narrows.
    pub async fn staff_see_all_threads_and_user_narrows(server: TestServer) {
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        server.thread(&alice, "A1").await;
        server.thread(&bob, "B1").await;
        server.thread(&alice, "A2").await;

        for viewer in [&staff, &support] {
            assert_eq!(
                server.thread_names(viewer, "/api/chat-threads/").await,
                ["A2", "B1", "A1"]
            );
            let narrowed = format!("/api/chat-threads/?user={}", hex(&alice.user.uuid));
            assert_eq!(server.thread_names(viewer, &narrowed).await, ["A2", "A1"]);
            let hyphenated = format!("/api/chat-threads/?user={}", bob.user.uuid.hyphenated());
            assert_eq!(server.thread_names(viewer, &hyphenated).await, ["B1"]);
        }
        // For a regular user, `user=` only narrows their own set.
        let other = format!("/api/chat-threads/?user={}", hex(&bob.user.uuid));
        assert!(server.thread_names(&alice, &other).await.is_empty());
        let own = format!("/api/chat-threads/?user={}", hex(&alice.user.uuid));
        assert_eq!(server.thread_names(&alice, &own).await, ["A2", "A1"]);
        // An empty value is no filter.
        assert_eq!(
            server
                .thread_names(&alice, "/api/chat-threads/?user=")
                .await,
            ["A2", "A1"]
        );
    }

    /// Item 12: `query` matches the thread name and the owner's username,
    /// full name and email, case-insensitively, never message content.
    pub async fn query_matches_name_and_owner(server: TestServer) {
        let alice = server
            .create_account(&NewUser {
                username: "alice".into(),
                full_name: "Alice Liddell".into(),
                email: "a.l@wonder.land".into(),
                ..NewUser::default()
            })
            .await;
        let bob = server
            .create_account(&NewUser {
                username: "bob".into(),
                full_name: "Robert Builder".into(),
                email: "bob@builders.test".into(),
                ..NewUser::default()
            })
            .await;
        let staff = server.staff("root").await;
        let tea = server.thread(&alice, "Tea party plans").await;
        server.thread(&bob, "Bridge design").await;
        server.thread(&bob, "100% done").await;
        server
            .message_with(&tea, Role::User, 1, None, "secret word: zebra")
            .await;

        let cases: [(&str, &[&str]); 9] = [
            ("TEA", &["Tea party plans"]),
            ("alice", &["Tea party plans"]),
            ("liddell", &["Tea party plans"]),
            ("wonder.land", &["Tea party plans"]),
            ("bob", &["100% done", "Bridge design"]),
            ("robert", &["100% done", "Bridge design"]),
            ("%25", &["100% done"]),
            ("zebra", &[]),
            ("e", &["100% done", "Bridge design", "Tea party plans"]),
        ];
        for (query, expected) in cases {
            let path = format!("/api/chat-threads/?query={query}");
            assert_eq!(
                server.thread_names(&staff, &path).await,
                expected,
                "{query}"
            );
        }
        // A regular user's query stays within their own threads.
        assert!(
            server
                .thread_names(&alice, "/api/chat-threads/?query=bob")
                .await
                .is_empty()
        );
        // A thread matching on name and owner at once is listed once.
        let response = server.get(&staff, "/api/chat-threads/?query=b").await;
        assert_eq!(header(&response, "x-result-count"), Some("2"));
    }

    /// Item 13 and `o`: orderings, comma lists, and the default `-created`.
    pub async fn ordering(server: TestServer) {
        let alice = server.user("alice").await;
        let first = server.thread(&alice, "first").await;
        server.thread(&alice, "second").await;
        server.thread(&alice, "third").await;
        // Archiving bumps `modified`: `first` is now the most recently modified.
        let response = server
            .post(&alice, &format!("{}archive/", detail(&first)))
            .await;
        assert_eq!(response.status(), 204);

        let cases: [(&str, [&str; 3]); 7] = [
            ("", ["third", "second", "first"]),
            ("?o=-created", ["third", "second", "first"]),
            ("?o=created", ["first", "second", "third"]),
            ("?o=-modified", ["first", "third", "second"]),
            ("?o=modified", ["second", "third", "first"]),
            ("?o=-modified,created", ["first", "third", "second"]),
            ("?o=created,-modified", ["first", "second", "third"]),
        ];
        for (query, expected) in cases {
            let path = format!("/api/chat-threads/{query}");
            assert_eq!(
                server.thread_names(&alice, &path).await,
                expected,
                "{query}"
            );
        }
    }

    /// Item 14 and `modified`: calendar-date filters.
    pub async fn date_filters(server: TestServer) {
        let alice = server.user("alice").await;
        server.thread(&alice, "today").await;
        let today = chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();

        for field in ["created", "modified"] {
            let path = format!("/api/chat-threads/?{field}={today}");
            assert_eq!(
                server.thread_names(&alice, &path).await,
                ["today"],
                "{field}"
            );
            let path = format!("/api/chat-threads/?{field}=2001-02-03");
            assert!(
                server.thread_names(&alice, &path).await.is_empty(),
                "{field}"
            );
        }
        // Django's other default input formats.
        let us = chrono::Utc::now()
            .date_naive()
            .format("%m/%d/%Y")
            .to_string();
        let path = format!("/api/chat-threads/?created={us}");
        assert_eq!(server.thread_names(&alice, &path).await, ["today"]);
    }

    /// Invalid filter values are 400s with Django's messages.
    pub async fn invalid_filters_are_400(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let cases = [
            (
                "created=yesterday",
                json!({"created": ["Enter a valid date."]}),
            ),
            (
                "created=2026-02-30",
                json!({"created": ["Enter a valid date."]}),
            ),
            (
                "modified=27.02.2026",
                json!({"modified": ["Enter a valid date."]}),
            ),
            ("user=not-a-uuid", json!({"user": ["Enter a valid UUID."]})),
            (
                "o=name",
                json!({"o": ["Select a valid choice. name is not one of the available choices."]}),
            ),
            (
                "max_severity=extreme",
                json!({"max_severity": ["Select a valid choice. extreme is not one of the available choices."]}),
            ),
            (
                "max_severity=HIGH",
                json!({"max_severity": ["Select a valid choice. HIGH is not one of the available choices."]}),
            ),
        ];
        for (query, expected) in cases {
            let list = server
                .get(&alice, &format!("/api/chat-threads/?{query}"))
                .await;
            assert_body(list, 400, expected.clone()).await;
            // The list filters apply to the detail lookup too.
            let one = server
                .get(&alice, &format!("{}?{query}", detail(&thread)))
                .await;
            assert_body(one, 400, expected).await;
        }
        // Every invalid filter is reported at once.
        let response = server
            .get(
                &alice,
                "/api/chat-threads/?created=x&modified=y&user=z&max_severity=w&o=v",
            )
            .await;
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        let mut fields = keys(&body);
        fields.sort_unstable();
        assert_eq!(fields, ["created", "max_severity", "modified", "o", "user"]);
        assert_eq!(
            body["o"],
            json!(["Select a valid choice. v is not one of the available choices."])
        );
    }

    /// Item 6 and `is_archived`: archived threads are listed by default;
    /// true/True and false/False filter; other values are ignored.
    pub async fn is_archived_filter(server: TestServer) {
        let alice = server.user("alice").await;
        let old = server.thread(&alice, "old").await;
        server.thread(&alice, "current").await;
        let archive = server
            .post(&alice, &format!("{}archive/", detail(&old)))
            .await;
        assert_eq!(archive.status(), 204);

        let cases: [(&str, &[&str]); 8] = [
            ("", &["current", "old"]),
            ("?is_archived=true", &["old"]),
            ("?is_archived=True", &["old"]),
            ("?is_archived=false", &["current"]),
            ("?is_archived=False", &["current"]),
            ("?is_archived=yes", &["current", "old"]),
            ("?is_archived=1", &["current", "old"]),
            ("?is_archived=", &["current", "old"]),
        ];
        for (query, expected) in cases {
            let path = format!("/api/chat-threads/{query}");
            assert_eq!(
                server.thread_names(&alice, &path).await,
                expected,
                "{query}"
            );
        }
        // On the detail: `?is_archived=false` hides an archived thread.
        assert_404(
            server
                .get(&alice, &format!("{}?is_archived=false", detail(&old)))
                .await,
        )
        .await;
        let body = server
            .get_json(&alice, &format!("{}?is_archived=true", detail(&old)))
            .await;
        assert_eq!(body["is_archived"], true);
    }

    /// Item 7: archive and unarchive are 204 with an empty body, idempotent,
    /// flip `is_archived` and bump `modified`.
    pub async fn archive_and_unarchive(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let created = server.get_json(&alice, &detail(&thread)).await["modified"].clone();
        // `modified` is rendered in milliseconds: let one pass.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        for _ in 0..2 {
            let response = server
                .post(&alice, &format!("{}archive/", detail(&thread)))
                .await;
            assert_eq!(response.status(), 204);
            assert_eq!(response.text().await.unwrap(), "");
            let body = server.get_json(&alice, &detail(&thread)).await;
            assert_eq!(body["is_archived"], true);
        }
        let archived = server.get_json(&alice, &detail(&thread)).await;
        assert!(archived["modified"].as_str() > created.as_str());
        assert!(server.reload(&thread).await.modified > thread.modified);

        // The reference's test sends `?is_archived=true` when unarchiving.
        let path = format!("{}unarchive/?is_archived=true", detail(&thread));
        let response = server.post(&alice, &path).await;
        assert_eq!(response.status(), 204);
        assert_eq!(response.text().await.unwrap(), "");
        assert_eq!(
            server.get_json(&alice, &detail(&thread)).await["is_archived"],
            false
        );
        // Again, without the filter: still 204.
        let response = server
            .post(&alice, &format!("{}unarchive/", detail(&thread)))
            .await;
        assert_eq!(response.status(), 204);
        assert!(!server.reload(&thread).await.is_archived);
        // With a filter that no longer matches: 404.
        assert_404(server.post(&alice, &path).await).await;
    }

    /// Archive scope: the owner may archive; another regular user gets 404;
    /// support users stay read-only on other users' threads (403, nothing
    /// changes); staff may archive and unarchive anyone's thread, each time
    /// leaving a `chat_thread_archived_by_staff` audit event.
    pub async fn archive_scope(server: TestServer) {
        let alice = server.user("alice").await;
        let mallory = server.user("mallory").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let thread = server.thread(&alice, "chat").await;
        let archive = format!("{}archive/", detail(&thread));
        let unarchive = format!("{}unarchive/", detail(&thread));
        let forbidden = json!({"detail": "You do not have permission to perform this action."});

        assert_404(server.post(&mallory, &archive).await).await;
        assert!(!server.reload(&thread).await.is_archived);
        assert_body(
            server.post(&support, &archive).await,
            403,
            forbidden.clone(),
        )
        .await;
        assert!(!server.reload(&thread).await.is_archived);

        assert_eq!(server.post(&staff, &archive).await.status(), 204);
        assert!(server.reload(&thread).await.is_archived);
        assert_404(server.post(&mallory, &unarchive).await).await;
        assert_body(server.post(&support, &unarchive).await, 403, forbidden).await;
        assert!(server.reload(&thread).await.is_archived);
        assert_eq!(server.post(&staff, &unarchive).await.status(), 204);
        assert!(!server.reload(&thread).await.is_archived);

        let events = server
            .audit_events(&alice, "chat_thread_archived_by_staff")
            .await;
        assert_eq!(events.len(), 2, "{events:?}");
        for (event, archived) in events.iter().zip([true, false]) {
            assert_eq!(event.actor_id, Some(staff.user.id));
            assert_eq!(event.target_id, Some(alice.user.id));
            assert_eq!(event.context["thread"], hex(&thread.uuid));
            assert_eq!(event.context["is_archived"], archived);
        }
        assert_eq!(events[0].message, "Chat thread of alice archived by root");
        assert_eq!(events[1].message, "Chat thread of alice unarchived by root");

        // Their own threads: support and staff act freely, the owner too,
        // and nothing is audited.
        let own = server.thread(&support, "mine").await;
        let staff_own = server.thread(&staff, "staff's").await;
        for (who, thread) in [(&support, &own), (&staff, &staff_own), (&alice, &thread)] {
            let path = format!("{}archive/", detail(thread));
            assert_eq!(server.post(who, &path).await.status(), 204);
            assert!(server.reload(thread).await.is_archived);
        }
        assert_eq!(server.store.list_audit_events(None).await.unwrap().len(), 2);

        assert_404(
            server
                .post(&alice, "/api/chat-threads/not-a-uuid/archive/")
                .await,
        )
        .await;
    }

    /// The request body of archive is ignored, even when it is not JSON.
    pub async fn archive_ignores_the_body(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        for (content_type, body) in [
            (
                "application/json",
                "{\"is_archived\": false, \"name\": \"x\"}",
            ),
            ("application/json", "this is not json"),
            ("text/plain", "\u{0}\u{1}"),
        ] {
            let response = server
                .client
                .post(server.url(&format!("{}archive/", detail(&thread))))
                .header("Authorization", format!("Token {}", alice.token))
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 204, "{body:?}");
        }
        let body = server.get_json(&alice, &detail(&thread)).await;
        assert_eq!(body["is_archived"], true);
        assert_eq!(body["name"], "chat");
    }

    /// Archived threads are still readable and listed.
    pub async fn archiving_changes_nothing_else(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        server.exchange(&thread, 1).await;
        server
            .post(&alice, &format!("{}archive/", detail(&thread)))
            .await;
        let body = server.get_json(&alice, &detail(&thread)).await;
        assert_eq!(body["message_count"], 2);
        let messages = server
            .get_json(
                &alice,
                &format!("/api/chat-messages/?thread={}", hex(&thread.uuid)),
            )
            .await;
        assert_eq!(messages.as_array().unwrap().len(), 2);
    }

    /// Item 15: staff or support retrieving another user's thread emits
    /// `chat_thread_accessed`; the owner retrieving emits nothing.
    pub async fn staff_reading_a_thread_is_audited(server: TestServer) {
        let alice = server.user("alice").await;
        let staff = server.staff("root").await;
        let support = server.support("helpdesk").await;
        let thread = server.thread(&alice, "chat").await;

        server.get_json(&alice, &detail(&thread)).await;
        assert!(
            server
                .store
                .list_audit_events(None)
                .await
                .unwrap()
                .is_empty()
        );

        let body = server.get_json(&staff, &detail(&thread)).await;
        assert_eq!(body["user_username"], "alice");
        let events = server.audit_events(&alice, "chat_thread_accessed").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].message, "Chat data of alice accessed by root");
        assert_eq!(events[0].actor_id, Some(staff.user.id));
        assert_eq!(events[0].target_id, Some(alice.user.id));

        server.get_json(&support, &detail(&thread)).await;
        assert_eq!(
            server
                .audit_events(&alice, "chat_thread_accessed")
                .await
                .len(),
            2
        );
        // Lists are not audited; a staff member's own thread is not either.
        server.get_json(&staff, "/api/chat-threads/").await;
        let own = server.thread(&staff, "staff's").await;
        server.get_json(&staff, &detail(&own)).await;
        assert_eq!(server.store.list_audit_events(None).await.unwrap().len(), 2);
    }

    /// Items 16–18: `is_flagged` and `max_severity` filters, and the flag
    /// fields of the thread object.
    pub async fn flag_filters(server: TestServer) {
        let alice = server.user("alice").await;
        let staff = server.staff("root").await;
        server.thread(&alice, "clean").await;
        let high = server.thread(&alice, "high").await;
        let pii = server.thread(&alice, "pii").await;
        let (question, _) = server.exchange(&high, 1).await;
        server
            .flag(
                &question,
                flagged(Severity::High, Action::Block, &["jailbreak"], &[]),
            )
            .await;
        let (question, _) = server.exchange(&pii, 1).await;
        server
            .flag(
                &question,
                flagged(Severity::Critical, Action::Block, &[], &["pii_credit_card"]),
            )
            .await;

        let cases: [(&str, &[&str]); 11] = [
            ("is_flagged=true", &["pii", "high"]),
            ("is_flagged=True", &["pii", "high"]),
            ("is_flagged=false", &["clean"]),
            ("is_flagged=False", &["clean"]),
            ("is_flagged=maybe", &["pii", "high", "clean"]),
            ("max_severity=high", &["high"]),
            ("max_severity=critical", &["pii"]),
            ("max_severity=medium", &[]),
            ("max_severity=none", &["clean"]),
            ("max_severity=", &["pii", "high", "clean"]),
            ("is_flagged=true&max_severity=none", &[]),
        ];
        for (query, expected) in cases {
            let path = format!("/api/chat-threads/?{query}");
            assert_eq!(
                server.thread_names(&staff, &path).await,
                expected,
                "{query}"
            );
            // Regular users filter their own threads the same way.
            assert_eq!(
                server.thread_names(&alice, &path).await,
                expected,
                "{query}"
            );
        }

        let body = server.get_json(&alice, &detail(&high)).await;
        assert_eq!(
            body["flags"],
            json!({"is_flagged": true, "max_severity": "high"})
        );
        assert_eq!(body["is_flagged"], true);
        assert_eq!(body["max_severity"], "high");
        let body = server.get_json(&alice, &detail(&pii)).await;
        assert_eq!(body["max_severity"], "critical");
        assert_eq!(keys(&body), THREAD_FIELDS);
    }

    /// `field=` on threads: serializer order, unknown names ignored,
    /// all-unknown means everything; on list and detail.
    pub async fn sparse_fieldsets(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let expected = json!([{"uuid": hex(&thread.uuid), "name": "chat"}]);
        for query in [
            "field=uuid&field=name",
            "field=name&field=uuid",
            "field=name&field=nope&field=uuid",
        ] {
            let body = server
                .get_json(&alice, &format!("/api/chat-threads/?{query}"))
                .await;
            assert_eq!(body, expected, "{query}");
            assert_eq!(keys(&body[0]), ["uuid", "name"]);
        }
        let body = server
            .get_json(&alice, "/api/chat-threads/?field=nope&field=")
            .await;
        assert_eq!(keys(&body[0]), THREAD_FIELDS);

        let body = server
            .get_json(
                &alice,
                &format!(
                    "{}?field=modified&field=message_count&field=flags",
                    detail(&thread)
                ),
            )
            .await;
        assert_eq!(keys(&body), ["flags", "message_count", "modified"]);
        assert_eq!(body["flags"], json!({}));
        assert_eq!(body["message_count"], 0);
    }

    /// POST on the collection, PUT/PATCH/DELETE anywhere, GET on the actions:
    /// 405 with DRF's body.
    pub async fn other_methods_are_405(server: TestServer) {
        let alice = server.user("alice").await;
        let thread = server.thread(&alice, "chat").await;
        let one = detail(&thread);
        let archive = format!("{one}archive/");
        let unarchive = format!("{one}unarchive/");
        let cases = [
            (Method::POST, "POST", "/api/chat-threads/"),
            (Method::PUT, "PUT", "/api/chat-threads/"),
            (Method::DELETE, "DELETE", "/api/chat-threads/"),
            (Method::POST, "POST", one.as_str()),
            (Method::PUT, "PUT", one.as_str()),
            (Method::PATCH, "PATCH", one.as_str()),
            (Method::DELETE, "DELETE", one.as_str()),
            (Method::GET, "GET", archive.as_str()),
            (Method::GET, "GET", unarchive.as_str()),
            (Method::DELETE, "DELETE", archive.as_str()),
            (Method::PUT, "PUT", unarchive.as_str()),
        ];
        for (method, name, path) in cases {
            assert_405(server.request(method, &alice, path).await, name).await;
        }
        // Nothing was deleted or archived.
        let body = server.get_json(&alice, &one).await;
        assert_eq!(body["is_archived"], false);
    }
}

http_tests!(
    regular_user_lists_only_their_own_threads,
    thread_shape,
    message_count_counts_all_rows,
    retrieve_other_users_thread_is_404,
    staff_see_all_threads_and_user_narrows,
    query_matches_name_and_owner,
    ordering,
    date_filters,
    invalid_filters_are_400,
    is_archived_filter,
    archive_and_unarchive,
    archive_scope,
    archive_ignores_the_body,
    archiving_changes_nothing_else,
    staff_reading_a_thread_is_audited,
    flag_filters,
    sparse_fieldsets,
    other_methods_are_405,
);
