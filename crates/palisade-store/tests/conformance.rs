//! The store conformance suite: written once against the `Store` trait, run on
//! SQLite and on PostgreSQL (when `PALISADE_TEST_POSTGRES_URL` is set).

use std::sync::Arc;

use chrono::Utc;
use palisade_store::{
    Action, Detection, MessageFilter, NewAuditEvent, NewMessage, NewToken, NewUser, Role, Scope,
    Severity, Store, StoreError, Thread, ThreadFilter, ThreadOrder, ThreadOrderField, User, Window,
};

type Db = Arc<dyn Store>;

async fn user(db: &Db, username: &str) -> User {
    db.create_user(&NewUser {
        username: username.into(),
        full_name: format!("{username} Fullname"),
        email: format!("{username}@corp.test"),
        ..NewUser::default()
    })
    .await
    .unwrap()
}

async fn thread(db: &Db, owner: &User, name: &str) -> Thread {
    let session = db.get_or_create_session(owner.id).await.unwrap();
    db.create_thread(session.id, name).await.unwrap()
}

fn msg(role: Role, index: i64, replaces: Option<i64>) -> NewMessage {
    NewMessage {
        role,
        content: format!("{role} at {index}"),
        sequence_index: index,
        replaces,
    }
}

fn flagged(severity: Severity) -> Detection {
    Detection {
        is_flagged: true,
        severity,
        injection_categories: vec!["jailbreak".into(), "jailbreak".into()],
        pii_categories: vec![],
        action_taken: Action::Block,
    }
}

const ALL: Window = Window {
    limit: 1000,
    offset: 0,
};

async fn users_are_unique_by_username(db: Db) {
    let alice = user(&db, "alice").await;
    assert!(alice.is_active && !alice.is_staff);
    let again = db
        .create_user(&NewUser {
            username: "alice".into(),
            ..NewUser::default()
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let found = db.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(found, alice);
    assert!(db.user_by_username("bob").await.unwrap().is_none());
    assert_eq!(db.count_users().await.unwrap(), 1);
    db.set_user_active(alice.id, false).await.unwrap();
    assert!(
        !db.user_by_username("alice")
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
}

async fn tokens_are_found_by_prefix(db: Db) {
    let alice = user(&db, "alice").await;
    let expires = Some(palisade_store::now() + chrono::Duration::hours(1));
    let stored = db
        .insert_token(
            alice.id,
            &NewToken {
                prefix: "abcdef012345".into(),
                hash: vec![7; 32],
                expires,
            },
        )
        .await
        .unwrap();
    let (token, owner) = db.token_by_prefix("abcdef012345").await.unwrap().unwrap();
    assert_eq!(token, stored);
    assert_eq!(token.hash, vec![7; 32]);
    assert_eq!(token.expires, expires);
    assert_eq!(owner.id, alice.id);
    assert!(db.token_by_prefix("000000000000").await.unwrap().is_none());
}

async fn one_session_per_user_even_when_racing(db: Db) {
    let alice = user(&db, "alice").await;
    let calls = (0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.get_or_create_session(alice.id).await })
    });
    let mut uuids = Vec::new();
    for call in calls {
        uuids.push(call.await.unwrap().unwrap().uuid);
    }
    uuids.dedup();
    assert_eq!(uuids.len(), 1);
    assert_eq!(db.count_sessions(Scope::All).await.unwrap(), 1);
    let session = db
        .find_session(Scope::Owner(alice.id), uuids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user_username, "alice");
    assert_eq!(session.user_full_name, "alice Fullname");
}

async fn sessions_are_scoped_and_newest_first(db: Db) {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let a = db.get_or_create_session(alice.id).await.unwrap();
    let b = db.get_or_create_session(bob.id).await.unwrap();
    let all = db.list_sessions(Scope::All, ALL).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.uuid).collect::<Vec<_>>(),
        [b.uuid, a.uuid]
    );
    let mine = db.list_sessions(Scope::Owner(alice.id), ALL).await.unwrap();
    assert_eq!(mine, std::slice::from_ref(&a));
    assert_eq!(db.count_sessions(Scope::Owner(bob.id)).await.unwrap(), 1);
    assert!(
        db.find_session(Scope::Owner(bob.id), a.uuid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.find_session(Scope::All, a.uuid).await.unwrap().is_some());
}

async fn thread_list_scope_pagination_and_order(db: Db) {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(thread(&db, &alice, &format!("alice {i}")).await);
    }
    thread(&db, &bob, "bob's").await;

    let mine = ThreadFilter::new(Scope::Owner(alice.id));
    assert_eq!(db.count_threads(&mine).await.unwrap(), 5);
    assert_eq!(
        db.count_threads(&ThreadFilter::new(Scope::All))
            .await
            .unwrap(),
        6
    );
    let page = db
        .list_threads(
            &mine,
            Window {
                limit: 2,
                offset: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    let past_the_end = db
        .list_threads(
            &mine,
            Window {
                limit: 10,
                offset: 10,
            },
        )
        .await
        .unwrap();
    assert!(past_the_end.items.is_empty());
    assert_eq!(past_the_end.total, 5);
    // Newest first: items 2 and 3 of [4, 3, 2, 1, 0].
    assert_eq!(
        page.items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["alice 2", "alice 1"]
    );

    // Touch the oldest thread: it sorts first by -modified.
    assert!(
        db.set_thread_archived(&mine, created[0].uuid, true)
            .await
            .unwrap()
    );
    let mut by_modified = ThreadFilter::new(Scope::Owner(alice.id));
    by_modified.order = vec![ThreadOrder {
        field: ThreadOrderField::Modified,
        descending: true,
    }];
    let first = &db.list_threads(&by_modified, ALL).await.unwrap().items[0];
    assert_eq!(first.uuid, created[0].uuid);
    assert!(first.is_archived);

    let mut ascending = ThreadFilter::new(Scope::Owner(alice.id));
    ascending.order = vec![ThreadOrder {
        field: ThreadOrderField::Created,
        descending: false,
    }];
    assert_eq!(
        db.list_threads(&ascending, ALL).await.unwrap().items[0].uuid,
        created[0].uuid
    );

    // Other users' threads are invisible, also to archive.
    let theirs = ThreadFilter::new(Scope::Owner(bob.id));
    assert!(
        db.find_thread(&theirs, created[1].uuid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !db.set_thread_archived(&theirs, created[1].uuid, true)
            .await
            .unwrap()
    );
}

async fn thread_filters(db: Db) {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let plain = thread(&db, &alice, "Quarterly 100% plan").await;
    let archived = thread(&db, &alice, "old").await;
    db.set_thread_archived(&ThreadFilter::new(Scope::All), archived.uuid, true)
        .await
        .unwrap();
    let high = thread(&db, &bob, "risky").await;
    let message = db
        .insert_message(high.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    db.record_detection(message.id, &flagged(Severity::High))
        .await
        .unwrap();

    let names = |threads: Vec<Thread>| {
        let mut names: Vec<String> = threads.into_iter().map(|t| t.name).collect();
        names.sort();
        names
    };
    let list = |f: ThreadFilter| {
        let db = db.clone();
        async move {
            let listing = db.list_threads(&f, ALL).await.unwrap();
            assert_eq!(listing.total, listing.items.len() as i64);
            names(listing.items)
        }
    };
    let base = || ThreadFilter::new(Scope::All);

    assert_eq!(
        list(ThreadFilter {
            is_archived: Some(true),
            ..base()
        })
        .await,
        ["old"]
    );
    assert_eq!(
        list(ThreadFilter {
            is_archived: Some(false),
            ..base()
        })
        .await,
        ["Quarterly 100% plan", "risky"]
    );
    assert_eq!(
        list(ThreadFilter {
            is_flagged: Some(true),
            ..base()
        })
        .await,
        ["risky"]
    );
    assert_eq!(
        list(ThreadFilter {
            is_flagged: Some(false),
            ..base()
        })
        .await,
        ["Quarterly 100% plan", "old"]
    );
    assert_eq!(
        list(ThreadFilter {
            max_severity: Some(Severity::High),
            ..base()
        })
        .await,
        ["risky"]
    );
    assert!(
        list(ThreadFilter {
            max_severity: Some(Severity::Critical),
            ..base()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(ThreadFilter {
            max_severity: Some(Severity::None),
            ..base()
        })
        .await,
        ["Quarterly 100% plan", "old"]
    );
    assert_eq!(
        list(ThreadFilter {
            user: Some(bob.uuid),
            ..base()
        })
        .await,
        ["risky"]
    );
    // Query: name, username, full name or email, case-insensitive; wildcards literal.
    assert_eq!(
        list(ThreadFilter {
            query: Some("QUARTERLY".into()),
            ..base()
        })
        .await,
        ["Quarterly 100% plan"]
    );
    assert_eq!(
        list(ThreadFilter {
            query: Some("100%".into()),
            ..base()
        })
        .await
        .len(),
        1
    );
    assert!(
        list(ThreadFilter {
            query: Some("1_0".into()),
            ..base()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(ThreadFilter {
            query: Some("BOB".into()),
            ..base()
        })
        .await,
        ["risky"]
    );
    assert_eq!(
        list(ThreadFilter {
            query: Some("alice@corp".into()),
            ..base()
        })
        .await
        .len(),
        2
    );
    let today = Utc::now().date_naive();
    assert_eq!(
        list(ThreadFilter {
            created_on: Some(today),
            ..base()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        list(ThreadFilter {
            modified_on: Some(today),
            ..base()
        })
        .await
        .len(),
        3
    );
    let yesterday = today.pred_opt().unwrap();
    assert!(
        list(ThreadFilter {
            created_on: Some(yesterday),
            ..base()
        })
        .await
        .is_empty()
    );
    // Filters also restrict the detail lookup.
    let archived_only = ThreadFilter {
        is_archived: Some(true),
        ..base()
    };
    assert!(
        db.find_thread(&archived_only, plain.uuid)
            .await
            .unwrap()
            .is_none()
    );
}

async fn message_count_includes_replaced_rows(db: Db) {
    let alice = user(&db, "alice").await;
    let t = thread(&db, &alice, "t").await;
    db.insert_message(t.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    let answer = db
        .insert_message(t.id, &msg(Role::Assistant, 2, None))
        .await
        .unwrap();
    db.insert_message(t.id, &msg(Role::Assistant, 2, Some(answer.id)))
        .await
        .unwrap();
    let found = db
        .find_thread(&ThreadFilter::new(Scope::All), t.uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.message_count, 3);
}

async fn active_sequence_index_is_unique(db: Db) {
    let alice = user(&db, "alice").await;
    let t = thread(&db, &alice, "t").await;
    let first = db
        .insert_message(t.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    let clash = db.insert_message(t.id, &msg(Role::User, 1, None)).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    // Replacement rows share the index and are outside the constraint.
    let edit = db
        .insert_message(t.id, &msg(Role::User, 1, Some(first.id)))
        .await
        .unwrap();
    assert_eq!(edit.replaces, Some(first.uuid));
    db.insert_message(t.id, &msg(Role::User, 1, Some(edit.id)))
        .await
        .unwrap();
}

async fn message_list_history_scope_and_filters(db: Db) {
    let alice = user(&db, "alice").await;
    let bob = user(&db, "bob").await;
    let t = thread(&db, &alice, "t").await;
    let other = thread(&db, &bob, "o").await;
    let question = db
        .insert_message(t.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    let answer = db
        .insert_message(t.id, &msg(Role::Assistant, 2, None))
        .await
        .unwrap();
    let reload = db
        .insert_message(t.id, &msg(Role::Assistant, 2, Some(answer.id)))
        .await
        .unwrap();
    db.insert_message(other.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    db.record_detection(question.id, &flagged(Severity::Critical))
        .await
        .unwrap();

    let filter = |scope, include_history| MessageFilter {
        scope,
        thread: None,
        is_flagged: None,
        include_history,
        limit: None,
    };
    let uuids = |messages: Vec<palisade_store::Message>| {
        messages.into_iter().map(|m| m.uuid).collect::<Vec<_>>()
    };
    let active = db
        .list_messages(&filter(Scope::Owner(alice.id), false))
        .await
        .unwrap();
    assert_eq!(uuids(active), [question.uuid, reload.uuid]);
    let history = db
        .list_messages(&filter(Scope::Owner(alice.id), true))
        .await
        .unwrap();
    assert_eq!(uuids(history), [question.uuid, answer.uuid, reload.uuid]);
    assert_eq!(
        db.list_messages(&filter(Scope::All, false))
            .await
            .unwrap()
            .len(),
        3
    );

    let mut in_thread = filter(Scope::All, true);
    in_thread.thread = Some(other.uuid);
    assert_eq!(db.list_messages(&in_thread).await.unwrap().len(), 1);
    let mut theirs = filter(Scope::Owner(alice.id), true);
    theirs.thread = Some(other.uuid);
    assert!(db.list_messages(&theirs).await.unwrap().is_empty());

    // Each row names its thread's owner (for audit events).
    let everyone = db.list_messages(&filter(Scope::All, true)).await.unwrap();
    let owners: Vec<(i64, &str)> = everyone
        .iter()
        .map(|m| (m.owner_id, m.owner_username.as_str()))
        .collect();
    assert_eq!(
        owners,
        [
            (alice.id, "alice"),
            (bob.id, "bob"),
            (alice.id, "alice"),
            (alice.id, "alice")
        ]
    );
    // A limit keeps the first rows in list order.
    let mut capped = filter(Scope::All, true);
    capped.limit = Some(2);
    let first_two = db.list_messages(&capped).await.unwrap();
    assert_eq!(uuids(first_two), uuids(everyone[..2].to_vec()));

    let mut only_flagged = filter(Scope::All, false);
    only_flagged.is_flagged = Some(true);
    let flagged_rows = db.list_messages(&only_flagged).await.unwrap();
    assert_eq!(flagged_rows.len(), 1);
    let detection = &flagged_rows[0].detection;
    assert_eq!(detection.severity, Severity::Critical);
    assert_eq!(detection.action_taken, Action::Block);
    assert_eq!(detection.injection_categories, ["jailbreak", "jailbreak"]);
}

async fn detection_summary_on_thread(db: Db) {
    let alice = user(&db, "alice").await;
    let t = thread(&db, &alice, "t").await;
    let all = ThreadFilter::new(Scope::All);
    let fresh = db.find_thread(&all, t.uuid).await.unwrap().unwrap();
    assert!(fresh.flags.is_empty());
    assert!(!fresh.is_flagged());
    assert_eq!(fresh.max_severity(), "none");

    let low = db
        .insert_message(t.id, &msg(Role::User, 1, None))
        .await
        .unwrap();
    db.record_detection(low.id, &flagged(Severity::Low))
        .await
        .unwrap();
    let high = db
        .insert_message(t.id, &msg(Role::User, 3, None))
        .await
        .unwrap();
    db.record_detection(high.id, &flagged(Severity::High))
        .await
        .unwrap();
    let medium = db
        .insert_message(t.id, &msg(Role::User, 5, None))
        .await
        .unwrap();
    db.record_detection(medium.id, &flagged(Severity::Medium))
        .await
        .unwrap();

    let summarised = db.find_thread(&all, t.uuid).await.unwrap().unwrap();
    assert!(summarised.is_flagged());
    assert_eq!(summarised.max_severity(), "high");
    assert_eq!(
        serde_json::Value::Object(summarised.flags.clone()),
        serde_json::json!({"is_flagged": true, "max_severity": "high"})
    );
    assert!(summarised.modified > fresh.modified);

    // An unflagged verdict does not touch the summary.
    let clean = db
        .insert_message(t.id, &msg(Role::User, 7, None))
        .await
        .unwrap();
    db.record_detection(clean.id, &Detection::default())
        .await
        .unwrap();
    let after = db.find_thread(&all, t.uuid).await.unwrap().unwrap();
    assert_eq!(after.modified, summarised.modified);
    assert!(matches!(
        db.record_detection(999_999, &Detection::default()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn audit_events_round_trip(db: Db) {
    let alice = user(&db, "alice").await;
    let admin = user(&db, "admin").await;
    let mut context = serde_json::Map::new();
    context.insert("thread".into(), "abc".into());
    let event = db
        .record_audit_event(&NewAuditEvent {
            event_type: "chat_thread_accessed".into(),
            message: "Chat data of alice accessed by admin".into(),
            actor_id: Some(admin.id),
            target_id: Some(alice.id),
            context: context.clone(),
        })
        .await
        .unwrap();
    assert_eq!(event.context, context);
    let about_alice = db.list_audit_events(Some(alice.id)).await.unwrap();
    assert_eq!(about_alice, [event]);
    assert!(
        db.list_audit_events(Some(admin.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.list_audit_events(None).await.unwrap().len(), 1);
}

palisade_store::test_on_both_backends!(
    users_are_unique_by_username,
    tokens_are_found_by_prefix,
    one_session_per_user_even_when_racing,
    sessions_are_scoped_and_newest_first,
    thread_list_scope_pagination_and_order,
    thread_filters,
    message_count_includes_replaced_rows,
    active_sequence_index_is_unique,
    message_list_history_scope_and_filters,
    detection_summary_on_thread,
    audit_events_round_trip,
);

mod leases {
    use std::time::Duration;

    use uuid::Uuid;

    use super::{Db, thread, user};

    const LONG: Duration = Duration::from_secs(60);

    async fn one_generation_per_thread(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(
            db.acquire_generation_lease(t.id, first, LONG)
                .await
                .unwrap()
        );
        assert!(
            !db.acquire_generation_lease(t.id, second, LONG)
                .await
                .unwrap()
        );
        assert!(db.renew_generation_lease(t.id, first, LONG).await.unwrap());
        assert!(!db.renew_generation_lease(t.id, second, LONG).await.unwrap());
        // Releasing someone else's lease does nothing.
        db.release_generation_lease(t.id, second).await.unwrap();
        assert!(
            !db.acquire_generation_lease(t.id, second, LONG)
                .await
                .unwrap()
        );
        db.release_generation_lease(t.id, first).await.unwrap();
        assert!(
            db.acquire_generation_lease(t.id, second, LONG)
                .await
                .unwrap()
        );
        // Another thread is independent.
        let other = thread(&db, &alice, "other").await;
        assert!(
            db.acquire_generation_lease(other.id, first, LONG)
                .await
                .unwrap()
        );
    }

    async fn expired_leases_can_be_taken_over(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let (crashed, next) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(
            db.acquire_generation_lease(t.id, crashed, Duration::from_millis(1))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(db.acquire_generation_lease(t.id, next, LONG).await.unwrap());
        // The old holder has lost it and is told to stop; the new one keeps it.
        assert!(
            !db.renew_generation_lease(t.id, crashed, LONG)
                .await
                .unwrap()
        );
        assert!(db.renew_generation_lease(t.id, next, LONG).await.unwrap());
    }

    async fn racing_acquires_have_one_winner(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let attempts = (0..8).map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.acquire_generation_lease(t.id, Uuid::new_v4(), LONG)
                    .await
                    .unwrap()
            })
        });
        let mut winners = 0;
        for attempt in attempts {
            if attempt.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    async fn cancel_reaches_the_running_generation(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        assert!(
            !db.request_generation_cancel(t.id).await.unwrap(),
            "nothing runs"
        );
        let lease = Uuid::new_v4();
        assert!(
            db.acquire_generation_lease(t.id, lease, LONG)
                .await
                .unwrap()
        );
        assert!(db.cancel_requests(&[t.id]).await.unwrap().is_empty());
        assert!(db.request_generation_cancel(t.id).await.unwrap());
        assert_eq!(db.cancel_requests(&[t.id]).await.unwrap(), [t.id]);
        // A new generation starts without the old request.
        db.release_generation_lease(t.id, lease).await.unwrap();
        assert!(!db.request_generation_cancel(t.id).await.unwrap());
        let again = Uuid::new_v4();
        assert!(
            db.acquire_generation_lease(t.id, again, LONG)
                .await
                .unwrap()
        );
        assert!(db.cancel_requests(&[t.id]).await.unwrap().is_empty());
    }

    async fn cancel_requests_are_read_for_many_threads(db: Db) {
        let alice = user(&db, "alice").await;
        let mut threads = Vec::new();
        for name in ["a", "b", "c"] {
            let t = thread(&db, &alice, name).await;
            assert!(
                db.acquire_generation_lease(t.id, Uuid::new_v4(), LONG)
                    .await
                    .unwrap()
            );
            threads.push(t.id);
        }
        assert!(db.cancel_requests(&threads).await.unwrap().is_empty());
        assert!(db.request_generation_cancel(threads[1]).await.unwrap());
        assert!(db.request_generation_cancel(threads[2]).await.unwrap());
        let mut flagged = db.cancel_requests(&threads).await.unwrap();
        flagged.sort_unstable();
        assert_eq!(flagged, [threads[1], threads[2]]);
        assert_eq!(
            db.cancel_requests(&threads[..2]).await.unwrap(),
            [threads[1]]
        );
        assert!(db.cancel_requests(&[]).await.unwrap().is_empty());
    }

    async fn leases_per_user_are_limited(db: Db) {
        use palisade_store::LeaseGrant;
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let mut threads = Vec::new();
        for name in ["a", "b", "c", "d"] {
            threads.push(thread(&db, &alice, name).await.id);
        }
        let bobs = thread(&db, &bob, "b1").await.id;
        let take = |thread_id: i64, ttl: Duration| {
            let db = db.clone();
            async move {
                db.acquire_limited_lease(thread_id, Uuid::new_v4(), ttl, Some(2))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(take(threads[0], LONG).await, LeaseGrant::Granted);
        assert_eq!(take(threads[0], LONG).await, LeaseGrant::ThreadBusy);
        assert_eq!(
            take(threads[1], Duration::from_millis(500)).await,
            LeaseGrant::Granted
        );
        assert_eq!(take(threads[2], LONG).await, LeaseGrant::UserBusy);
        assert_eq!(take(bobs, LONG).await, LeaseGrant::Granted, "per user");
        // An expired lease (a dead node's) stops counting.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(take(threads[2], LONG).await, LeaseGrant::Granted);
        assert_eq!(take(threads[3], LONG).await, LeaseGrant::UserBusy);
    }

    async fn racing_users_stay_within_their_limit(db: Db) {
        use palisade_store::LeaseGrant;
        let alice = user(&db, "alice").await;
        let mut threads = Vec::new();
        for n in 0..8 {
            threads.push(thread(&db, &alice, &format!("t{n}")).await.id);
        }
        let attempts = threads.into_iter().map(|thread_id| {
            let db = db.clone();
            tokio::spawn(async move {
                db.acquire_limited_lease(thread_id, Uuid::new_v4(), LONG, Some(3))
                    .await
                    .unwrap()
            })
        });
        let mut granted = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            if attempt.await.unwrap() == LeaseGrant::Granted {
                granted += 1;
            }
        }
        assert_eq!(granted, 3);
    }

    palisade_store::test_on_both_backends!(
        leases_per_user_are_limited,
        racing_users_stay_within_their_limit,
        cancel_requests_are_read_for_many_threads,
        one_generation_per_thread,
        expired_leases_can_be_taken_over,
        racing_acquires_have_one_winner,
        cancel_reaches_the_running_generation,
    );
}

/// The reference's persistence rules for normal, reload and edit modes (3.4).
mod persistence {
    use palisade_store::{AnswerTo, EditRejection, MessageFilter, Role, Scope, StoreError};

    use super::{Db, thread, user};

    async fn rows(db: &Db, thread: uuid::Uuid) -> Vec<(Role, i64, bool, String)> {
        let filter = MessageFilter {
            scope: Scope::All,
            thread: Some(thread),
            is_flagged: None,
            include_history: true,
            limit: None,
        };
        db.list_messages(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.role, m.sequence_index, m.replaces.is_some(), m.content))
            .collect()
    }

    async fn normal_exchanges_take_pairs_of_indexes(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        for round in 0..2 {
            let question = db.append_user_message(t.id, "question").await.unwrap();
            assert_eq!(question.sequence_index, 2 * round + 1);
            let to = AnswerTo::Message {
                user_message_id: question.id,
            };
            let answer = db.append_answer(t.id, &to, "answer").await.unwrap();
            assert_eq!(answer.assistant_message.sequence_index, 2 * round + 2);
            assert_eq!(answer.user_message.map(|m| m.uuid), Some(question.uuid));
            assert_eq!(answer.assistant_message.replaces, None);
        }
        let indexes: Vec<i64> = rows(&db, t.uuid).await.iter().map(|r| r.1).collect();
        assert_eq!(indexes, [1, 2, 3, 4]);
        assert!(db.append_user_message(999_999, "x").await.is_err());
    }

    async fn reload_replaces_the_last_answer(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let question = db.append_user_message(t.id, "question").await.unwrap();
        let to = AnswerTo::Message {
            user_message_id: question.id,
        };
        let first = db.append_answer(t.id, &to, "first").await.unwrap();
        let before = db
            .find_thread(&palisade_store::ThreadFilter::new(Scope::All), t.uuid)
            .await
            .unwrap()
            .unwrap();
        let reload = AnswerTo::Reload {
            input: "question".into(),
        };
        let second = db.append_answer(t.id, &reload, "second").await.unwrap();
        assert_eq!(second.user_message, None);
        assert_eq!(second.assistant_message.sequence_index, 2);
        assert_eq!(
            second.assistant_message.replaces,
            Some(first.assistant_message.uuid)
        );
        // Reloading again chains onto the newest answer.
        let third = db.append_answer(t.id, &reload, "third").await.unwrap();
        assert_eq!(
            third.assistant_message.replaces,
            Some(second.assistant_message.uuid)
        );
        let all = rows(&db, t.uuid).await;
        assert_eq!(all.iter().filter(|r| r.0 == Role::User).count(), 1);
        assert_eq!(all.len(), 4);
        let after = db
            .find_thread(&palisade_store::ThreadFilter::new(Scope::All), t.uuid)
            .await
            .unwrap()
            .unwrap();
        assert!(after.modified > before.modified, "answers bump the thread");
    }

    async fn reload_on_an_empty_thread_is_a_normal_exchange(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let reload = AnswerTo::Reload {
            input: "hello".into(),
        };
        let answer = db.append_answer(t.id, &reload, "hi").await.unwrap();
        let question = answer.user_message.expect("a user message is created");
        assert_eq!(
            (question.sequence_index, question.content.as_str()),
            (1, "hello")
        );
        assert_eq!(answer.assistant_message.sequence_index, 2);
        assert_eq!(answer.assistant_message.replaces, None);
    }

    async fn edit_replaces_question_and_answer(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let question = db.append_user_message(t.id, "old question").await.unwrap();
        let to = AnswerTo::Message {
            user_message_id: question.id,
        };
        let old = db.append_answer(t.id, &to, "old answer").await.unwrap();
        let edited = db
            .edit_user_message(t.id, question.uuid, "new question")
            .await
            .unwrap();
        assert_eq!(edited.sequence_index, question.sequence_index);
        assert_eq!(edited.replaces, Some(question.uuid));
        let to = AnswerTo::Edit {
            user_message_id: edited.id,
        };
        let new = db.append_answer(t.id, &to, "new answer").await.unwrap();
        assert_eq!(new.user_message.map(|m| m.uuid), Some(edited.uuid));
        assert_eq!(new.assistant_message.sequence_index, 2);
        assert_eq!(
            new.assistant_message.replaces,
            Some(old.assistant_message.uuid)
        );
        // The edited message is now the last user message; the original is not.
        assert!(
            db.edit_user_message(t.id, edited.uuid, "again")
                .await
                .is_ok()
        );
        assert!(matches!(
            db.edit_user_message(t.id, question.uuid, "stale").await,
            Err(StoreError::EditRejected(
                EditRejection::NotTheLastUserMessage
            ))
        ));
    }

    async fn edit_without_an_answer_follows_the_question(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let question = db.append_user_message(t.id, "q").await.unwrap();
        let edited = db
            .edit_user_message(t.id, question.uuid, "q2")
            .await
            .unwrap();
        let to = AnswerTo::Edit {
            user_message_id: edited.id,
        };
        let answer = db.append_answer(t.id, &to, "a").await.unwrap();
        assert_eq!(answer.assistant_message.sequence_index, 2);
        assert_eq!(answer.assistant_message.replaces, None);
    }

    async fn edits_the_reference_refuses(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let other = thread(&db, &alice, "other").await;
        let first = db.append_user_message(t.id, "first").await.unwrap();
        let to = AnswerTo::Message {
            user_message_id: first.id,
        };
        let answer = db.append_answer(t.id, &to, "answer").await.unwrap();
        db.append_user_message(t.id, "second").await.unwrap();
        assert!(matches!(
            db.edit_user_message(t.id, uuid::Uuid::new_v4(), "x").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            db.edit_user_message(other.id, first.uuid, "x").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            db.edit_user_message(t.id, answer.assistant_message.uuid, "x")
                .await,
            Err(StoreError::EditRejected(EditRejection::NotAUserMessage))
        ));
        assert!(matches!(
            db.edit_user_message(t.id, first.uuid, "x").await,
            Err(StoreError::EditRejected(
                EditRejection::NotTheLastUserMessage
            ))
        ));
        assert_eq!(rows(&db, t.uuid).await.len(), 3, "nothing was written");
    }

    async fn generated_titles_do_not_bump_modified(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "New chat").await;
        assert!(db.set_thread_name(t.id, "Quota help").await.unwrap());
        let filter = palisade_store::ThreadFilter::new(Scope::All);
        let renamed = db.find_thread(&filter, t.uuid).await.unwrap().unwrap();
        assert_eq!(renamed.name, "Quota help");
        assert_eq!(renamed.modified, t.modified);
        assert!(!db.set_thread_name(999_999, "x").await.unwrap());
    }

    palisade_store::test_on_both_backends!(
        generated_titles_do_not_bump_modified,
        normal_exchanges_take_pairs_of_indexes,
        reload_replaces_the_last_answer,
        reload_on_an_empty_thread_is_a_normal_exchange,
        edit_replaces_question_and_answer,
        edit_without_an_answer_follows_the_question,
        edits_the_reference_refuses,
    );
}

/// Token quotas (reference 1.6, checklist 32, 33, 35) and per-message usage.
mod quotas {
    use palisade_store::{
        AnswerTo, QuotaCheck, QuotaDefaults, QuotaLimits, QuotaPeriod, Reservation, StoreError,
    };

    use super::{Db, thread, user};

    const DEFAULTS: QuotaDefaults = QuotaDefaults::UNLIMITED;

    async fn usage_is_counted_and_limits_apply(db: Db) {
        let alice = user(&db, "alice").await;
        let fresh = db.token_quota(alice.id).await.unwrap();
        assert_eq!(fresh.usage, [0, 0, 0]);
        assert_eq!(fresh.limits, QuotaLimits::default());
        assert_eq!(fresh.check(DEFAULTS), QuotaCheck::Allowed);

        let after = db.add_token_usage(alice.id, 5 + 8).await.unwrap();
        assert_eq!(after.usage, [13, 13, 13]);
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage, [13, 13, 13]);

        db.set_token_limits(alice.id, QuotaLimits([None, None, Some(100)]))
            .await
            .unwrap();
        db.add_token_usage(alice.id, 95 - 13).await.unwrap();
        let at_95 = db.token_quota(alice.id).await.unwrap();
        assert_eq!(at_95.check(DEFAULTS), QuotaCheck::Allowed);
        // A request may push usage past the limit; the next one is refused.
        let at_103 = db.add_token_usage(alice.id, 8).await.unwrap();
        assert_eq!(at_103.usage[2], 103);
        assert_eq!(
            at_103.check(DEFAULTS),
            QuotaCheck::Exceeded(QuotaPeriod::Monthly)
        );

        db.set_token_limits(alice.id, QuotaLimits([Some(-1), Some(-1), Some(-1)]))
            .await
            .unwrap();
        let unlimited = db.token_quota(alice.id).await.unwrap();
        assert_eq!(
            unlimited.check(QuotaDefaults([10, 10, 10])),
            QuotaCheck::Allowed
        );
        // The database refuses limits below -1.
        assert!(
            db.set_token_limits(alice.id, QuotaLimits([Some(-10), None, None]))
                .await
                .is_err()
        );
    }

    async fn concurrent_usage_is_not_lost(db: Db) {
        let alice = user(&db, "alice").await;
        let adds = (0..8).map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.add_token_usage(alice.id, 10).await.unwrap() })
        });
        for add in adds {
            add.await.unwrap();
        }
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage, [80, 80, 80]);
    }

    /// Issue 11: thirty requests racing for a 200-token daily limit reserve
    /// 200 between them, on one node or several; giving back never goes
    /// below zero.
    async fn racing_reservations_stay_within_the_limit(db: Db) {
        let alice = user(&db, "alice").await;
        db.set_token_limits(alice.id, QuotaLimits([Some(200), None, None]))
            .await
            .unwrap();
        let reservations = (0..30).map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.reserve_tokens(alice.id, DEFAULTS, 60).await.unwrap() })
        });
        let mut granted = 0;
        let mut refused = 0;
        for reservation in reservations {
            match reservation.await.unwrap() {
                Reservation::Granted { tokens, .. } => granted += tokens,
                Reservation::Refused(check) => {
                    assert_eq!(check, QuotaCheck::Exceeded(QuotaPeriod::Daily));
                    refused += 1;
                }
            }
        }
        assert_eq!(granted, 200);
        assert_eq!(refused, 30 - 4, "three of 60 and one of the last 20");
        assert_eq!(
            db.token_quota(alice.id).await.unwrap().usage,
            [200, 200, 200]
        );
        let back = db.add_token_usage(alice.id, -500).await.unwrap();
        assert_eq!(back.usage, [0, 0, 0]);
    }

    async fn answers_record_their_cost(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let question = db.append_user_message(t.id, "q").await.unwrap();
        let to = AnswerTo::Message {
            user_message_id: question.id,
        };
        let answer = db.append_answer(t.id, &to, "a").await.unwrap();
        db.record_message_usage(answer.assistant_message.id, 100, 50)
            .await
            .unwrap();
        let filter = palisade_store::MessageFilter {
            scope: palisade_store::Scope::All,
            thread: Some(t.uuid),
            is_flagged: None,
            include_history: false,
            limit: None,
        };
        let stored = db.list_messages(&filter).await.unwrap();
        assert_eq!((stored[1].input_tokens, stored[1].output_tokens), (100, 50));
        assert_eq!((stored[0].input_tokens, stored[0].output_tokens), (0, 0));
        assert!(matches!(
            db.record_message_usage(999_999, 1, 1).await,
            Err(StoreError::NotFound(_))
        ));
    }

    palisade_store::test_on_both_backends!(
        usage_is_counted_and_limits_apply,
        concurrent_usage_is_not_lost,
        racing_reservations_stay_within_the_limit,
        answers_record_their_cost,
    );
}

/// Passwords, token revocation and the login lockout's failure log.
mod login {
    use super::*;

    async fn passwords_are_set_and_removed(db: Db) {
        let alice = user(&db, "alice").await;
        assert_eq!(db.password_hash(alice.id).await.unwrap(), None);
        db.set_password_hash(alice.id, Some("$argon2id$v=19$fake"))
            .await
            .unwrap();
        assert_eq!(
            db.password_hash(alice.id).await.unwrap().as_deref(),
            Some("$argon2id$v=19$fake")
        );
        db.set_password_hash(alice.id, None).await.unwrap();
        assert_eq!(db.password_hash(alice.id).await.unwrap(), None);
        assert!(matches!(
            db.set_password_hash(999_999, Some("x")).await,
            Err(StoreError::NotFound(_))
        ));
    }

    async fn tokens_are_revoked_one_or_all(db: Db) {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let mut ids = Vec::new();
        for (owner, prefix) in [(&alice, "aaaa1"), (&alice, "aaaa2"), (&bob, "bbbb1")] {
            let token = NewToken {
                prefix: prefix.into(),
                hash: vec![1, 2, 3],
                expires: None,
            };
            ids.push(db.insert_token(owner.id, &token).await.unwrap().id);
        }
        assert!(db.revoke_token(ids[0]).await.unwrap());
        assert!(!db.revoke_token(ids[0]).await.unwrap(), "already gone");
        assert!(db.token_by_prefix("aaaa1").await.unwrap().is_none());
        assert!(db.token_by_prefix("aaaa2").await.unwrap().is_some());
        assert_eq!(db.revoke_user_tokens(alice.id).await.unwrap(), 1);
        assert!(db.token_by_prefix("aaaa2").await.unwrap().is_none());
        assert!(
            db.token_by_prefix("bbbb1").await.unwrap().is_some(),
            "other users keep theirs"
        );
    }

    async fn login_failures_are_counted_per_username_and_client(db: Db) {
        let start = palisade_store::now() - chrono::Duration::seconds(1);
        let long_ago = start - chrono::Duration::days(1);
        for _ in 0..3 {
            db.record_login_failure("alice", "10.0.0.1", long_ago)
                .await
                .unwrap();
        }
        db.record_login_failure("alice", "10.0.0.2", long_ago)
            .await
            .unwrap();
        db.record_login_failure("bob", "10.0.0.1", long_ago)
            .await
            .unwrap();
        let count = |name: &'static str, ip: &'static str| {
            let db = db.clone();
            async move { db.count_login_failures(name, ip, start).await.unwrap() }
        };
        assert_eq!(count("alice", "10.0.0.1").await, 3);
        assert_eq!(count("alice", "10.0.0.2").await, 1);
        assert_eq!(count("bob", "10.0.0.1").await, 1);
        assert_eq!(count("ALICE", "10.0.0.1").await, 0, "usernames are exact");
        let later = palisade_store::now() + chrono::Duration::seconds(1);
        assert_eq!(
            db.count_login_failures("alice", "10.0.0.1", later)
                .await
                .unwrap(),
            0,
            "only failures inside the window count"
        );
        db.clear_login_failures("alice", "10.0.0.1").await.unwrap();
        assert_eq!(count("alice", "10.0.0.1").await, 0);
        assert_eq!(count("alice", "10.0.0.2").await, 1);
        // A new failure forgets everything older than the window's start.
        db.record_login_failure("carol", "10.0.0.3", later)
            .await
            .unwrap();
        assert_eq!(count("alice", "10.0.0.2").await, 0);
        assert_eq!(count("bob", "10.0.0.1").await, 0);
        assert_eq!(count("carol", "10.0.0.3").await, 1);
    }

    palisade_store::test_on_both_backends!(
        passwords_are_set_and_removed,
        tokens_are_revoked_one_or_all,
        login_failures_are_counted_per_username_and_client,
    );
}

/// Durable answers: the row exists from the start, grows under the lease,
/// and is recovered as interrupted when its generation loses the thread.
mod durable_answers {
    use std::time::Duration;

    use palisade_store::{
        AnswerProgress, AnswerSaved, AnswerTo, MessageFilter, Role, Scope, StoreError,
    };
    use uuid::Uuid;

    use super::{Db, thread, user};

    const LONG: Duration = Duration::from_secs(60);
    /// Long enough that a loaded machine still writes the answer's row
    /// before the lease lapses; the tests then wait it out.
    const SHORT: Duration = Duration::from_millis(500);

    /// Takes the thread's lease and stores a question: what a generation
    /// starts from.
    async fn question_under_lease(
        db: &Db,
        thread_id: i64,
        lease: Uuid,
        ttl: Duration,
    ) -> (palisade_store::Message, AnswerTo) {
        assert!(
            db.acquire_generation_lease(thread_id, lease, ttl)
                .await
                .unwrap()
        );
        let question = db.append_user_message(thread_id, "q").await.unwrap();
        let to = AnswerTo::Message {
            user_message_id: question.id,
        };
        (question, to)
    }

    /// Whether the save was written (the lease still held the thread).
    async fn saved(db: &Db, id: i64, lease: Uuid, progress: &AnswerProgress<'_>) -> bool {
        matches!(
            db.save_answer(id, lease, progress).await.unwrap(),
            AnswerSaved::Written { .. }
        )
    }

    fn progress(content: &str, output_tokens: i64, done: bool) -> AnswerProgress<'_> {
        AnswerProgress {
            content,
            transcript: content,
            output_tokens,
            done,
        }
    }

    async fn active(db: &Db, thread: uuid::Uuid) -> Vec<palisade_store::Message> {
        db.list_messages(&MessageFilter {
            scope: Scope::All,
            thread: Some(thread),
            is_flagged: None,
            include_history: false,
            limit: None,
        })
        .await
        .unwrap()
    }

    async fn an_answer_grows_under_its_lease(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let lease = Uuid::new_v4();
        let (question, to) = question_under_lease(&db, t.id, lease, LONG).await;
        let answer = db.begin_answer(t.id, &to, lease, 0).await.unwrap();
        let row = &answer.assistant_message;
        assert_eq!((row.content.as_str(), row.sequence_index), ("", 2));
        assert!(row.is_generating);
        assert_eq!(
            answer.user_message.as_ref().map(|m| m.id),
            Some(question.id)
        );

        assert!(saved(&db, row.id, lease, &progress("Hel", 1, false)).await);
        assert_eq!(db.generating_answer(t.id).await.unwrap(), Some(row.id));
        let followed = db
            .answer_transcript(row.id, 0, 1024)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                followed.part.as_str(),
                followed.length,
                followed.is_generating
            ),
            ("Hel", 3, true)
        );
        // Read in parts: from a byte, at most a limit.
        let part = db.answer_transcript(row.id, 1, 1).await.unwrap().unwrap();
        assert_eq!((part.part.as_str(), part.length), ("e", 3));
        let past = db.answer_transcript(row.id, 3, 10).await.unwrap().unwrap();
        assert_eq!(past.part, "");
        let rows = active(&db, t.uuid).await;
        assert_eq!(
            (rows[1].content.as_str(), rows[1].is_generating),
            ("Hel", true)
        );
        assert!(saved(&db, row.id, lease, &progress("Hello.", 2, true)).await);
        let rows = active(&db, t.uuid).await;
        assert_eq!(
            (rows[1].content.as_str(), rows[1].is_generating),
            ("Hello.", false)
        );
        assert_eq!(rows[1].output_tokens, 2);
        // Its transcript stays readable by id; nothing generates any more.
        let followed = db
            .answer_transcript(row.id, 0, 1024)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (followed.part.as_str(), followed.is_generating),
            ("Hello.", false)
        );
        assert_eq!(db.generating_answer(t.id).await.unwrap(), None);
        // Nothing to recover: it finished.
        db.release_generation_lease(t.id, lease).await.unwrap();
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            0
        );
    }

    async fn a_lost_lease_writes_nothing(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let first = Uuid::new_v4();
        let (_, to) = question_under_lease(&db, t.id, first, SHORT).await;
        let answer = db.begin_answer(t.id, &to, first, 0).await.unwrap();
        let id = answer.assistant_message.id;
        assert!(saved(&db, id, first, &progress("partial", 3, false)).await);
        // The lease expires (by the database's clock) and another
        // generation takes the thread.
        tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
        let second = Uuid::new_v4();
        assert!(
            db.acquire_generation_lease(t.id, second, LONG)
                .await
                .unwrap()
        );
        assert!(!saved(&db, id, first, &progress("partial and more", 5, false)).await);
        assert!(!saved(&db, id, first, &progress("partial and more", 5, true)).await);
        assert!(matches!(
            db.begin_answer(t.id, &to, first, 0).await,
            Err(StoreError::LeaseLost)
        ));
        assert!(!db.renew_generation_lease(t.id, first, LONG).await.unwrap());
        let rows = active(&db, t.uuid).await;
        assert_eq!(
            rows[1].content, "partial",
            "the old generation wrote nothing more"
        );

        // The new holder's recovery marks the old answer interrupted and
        // counts its tokens, once.
        assert!(rows[1].is_generating);
        assert_eq!(
            db.recover_interrupted_answers(Some(t.id), Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            0
        );
        let rows = active(&db, t.uuid).await;
        assert_eq!(
            (rows[1].content.as_str(), rows[1].is_generating),
            ("partial", false)
        );
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage[0], 3);
    }

    async fn an_expired_lease_is_recovered_by_a_sweep(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let lease = Uuid::new_v4();
        let (_, to) = question_under_lease(&db, t.id, lease, SHORT).await;
        db.begin_answer(t.id, &to, lease, 0).await.unwrap();
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            0,
            "still held"
        );
        tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert!(!active(&db, t.uuid).await[1].is_generating);
    }

    /// A reservation held on an answer is settled once: by the final save
    /// (which hands it back to the caller), or by the sweep when the node
    /// died (its output tokens replace it), never both.
    async fn reservations_are_settled_once(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        db.add_token_usage(alice.id, 50).await.unwrap();
        let lease = Uuid::new_v4();
        let (_, to) = question_under_lease(&db, t.id, lease, LONG).await;
        let id = db
            .begin_answer(t.id, &to, lease, 50)
            .await
            .unwrap()
            .assistant_message
            .id;
        assert!(saved(&db, id, lease, &progress("a", 1, false)).await);
        let end = db
            .save_answer(id, lease, &progress("ab", 2, true))
            .await
            .unwrap();
        assert_eq!(
            end,
            AnswerSaved::Written {
                counted: 0,
                reserved: 50
            }
        );
        db.release_generation_lease(t.id, lease).await.unwrap();

        // A node that dies holding a reservation of 40 after 6 tokens.
        let lease = Uuid::new_v4();
        let (_, to) = question_under_lease(&db, t.id, lease, SHORT).await;
        db.add_token_usage(alice.id, 40).await.unwrap();
        let id = db
            .begin_answer(t.id, &to, lease, 40)
            .await
            .unwrap()
            .assistant_message
            .id;
        assert!(saved(&db, id, lease, &progress("part", 6, false)).await);
        tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage[0], 50 + 6);
        // A second sweep settles nothing more; a late final save reports
        // what the sweep counted and no reservation.
        db.recover_interrupted_answers(None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage[0], 56);
        let end = db
            .save_answer(id, lease, &progress("part!", 7, true))
            .await
            .unwrap();
        assert_eq!(
            end,
            AnswerSaved::Written {
                counted: 6,
                reserved: 0
            }
        );
    }

    /// After an interruption, edit and reload replace the right messages:
    /// a question whose node died before its answer row existed is
    /// answered after itself, never before.
    async fn edit_and_reload_after_an_unanswered_question(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let q1 = db.append_user_message(t.id, "q1").await.unwrap();
        db.append_answer(
            t.id,
            &AnswerTo::Message {
                user_message_id: q1.id,
            },
            "a1",
        )
        .await
        .unwrap();
        // q2 was stored, then its node died: no answer row.
        let q2 = db.append_user_message(t.id, "q2").await.unwrap();

        let reload = AnswerTo::Reload {
            input: "ignored".into(),
        };
        let answer = db.append_answer(t.id, &reload, "a2").await.unwrap();
        let row = &answer.assistant_message;
        assert_eq!((row.sequence_index, row.replaces), (4, None), "a1 is kept");
        let rows = active(&db, t.uuid).await;
        let shape: Vec<(Role, i64, &str)> = rows
            .iter()
            .map(|m| (m.role, m.sequence_index, m.content.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::User, 1, "q1"),
                (Role::Assistant, 2, "a1"),
                (Role::User, 3, "q2"),
                (Role::Assistant, 4, "a2"),
            ]
        );

        // Another unanswered question, then an edit of it.
        let q3 = db.append_user_message(t.id, "q3").await.unwrap();
        let edited = db
            .edit_user_message(t.id, q3.uuid, "q3 edited")
            .await
            .unwrap();
        let answer = db
            .append_answer(
                t.id,
                &AnswerTo::Edit {
                    user_message_id: edited.id,
                },
                "a3",
            )
            .await
            .unwrap();
        let row = &answer.assistant_message;
        assert_eq!(
            (row.sequence_index, row.replaces),
            (6, None),
            "the answer follows its question; a2 is kept"
        );
        assert_eq!(q2.sequence_index, 3);
    }

    /// Only the newest answer of a thread keeps its transcript.
    async fn older_transcripts_are_dropped(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let mut ids = Vec::new();
        for q in ["q1", "q2"] {
            let lease = Uuid::new_v4();
            assert!(
                db.acquire_generation_lease(t.id, lease, LONG)
                    .await
                    .unwrap()
            );
            let question = db.append_user_message(t.id, q).await.unwrap();
            let to = AnswerTo::Message {
                user_message_id: question.id,
            };
            let id = db
                .begin_answer(t.id, &to, lease, 0)
                .await
                .unwrap()
                .assistant_message
                .id;
            assert!(saved(&db, id, lease, &progress("a", 1, true)).await);
            db.release_generation_lease(t.id, lease).await.unwrap();
            ids.push(id);
        }
        let first = db.answer_transcript(ids[0], 0, 64).await.unwrap().unwrap();
        assert_eq!((first.part.as_str(), first.length), ("", 0));
        let second = db.answer_transcript(ids[1], 0, 64).await.unwrap().unwrap();
        assert_eq!(second.part, "a");
        assert_eq!(db.answer_transcript(999_999, 0, 64).await.unwrap(), None);
    }

    /// A database outage longer than the lease: the lease expired but
    /// nobody took the thread, so the generation goes on; a sweep that
    /// marked it interrupted meanwhile is reported, so its tokens are not
    /// counted twice.
    async fn an_expired_lease_nobody_took_is_still_its_holders(db: Db) {
        let alice = user(&db, "alice").await;
        let t = thread(&db, &alice, "t").await;
        let lease = Uuid::new_v4();
        let (_, to) = question_under_lease(&db, t.id, lease, SHORT).await;
        let id = db
            .begin_answer(t.id, &to, lease, 0)
            .await
            .unwrap()
            .assistant_message
            .id;
        tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
        // Within the sweep's grace nothing is marked.
        assert_eq!(db.recover_interrupted_answers(None, LONG).await.unwrap(), 0);
        assert!(saved(&db, id, lease, &progress("part", 6, false)).await);
        assert_eq!(
            db.recover_interrupted_answers(None, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(db.token_quota(alice.id).await.unwrap().usage[0], 6);
        let end = db
            .save_answer(id, lease, &progress("part and end", 9, true))
            .await
            .unwrap();
        assert_eq!(
            end,
            AnswerSaved::Written {
                counted: 6,
                reserved: 0
            }
        );
        assert!(db.renew_generation_lease(t.id, lease, LONG).await.unwrap());
        let rows = active(&db, t.uuid).await;
        assert_eq!(
            (rows[1].content.as_str(), rows[1].is_generating),
            ("part and end", false)
        );
    }

    palisade_store::test_on_both_backends!(
        an_expired_lease_nobody_took_is_still_its_holders,
        older_transcripts_are_dropped,
        an_answer_grows_under_its_lease,
        a_lost_lease_writes_nothing,
        an_expired_lease_is_recovered_by_a_sweep,
        edit_and_reload_after_an_unanswered_question,
        reservations_are_settled_once,
    );
}
