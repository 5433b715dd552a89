//! `POST /api/chat/stream/`: validation, configuration and quota checks in
//! the reference's order (checklist 25–33), against a fake OpenAI-compatible
//! model server, on both databases.

mod common;

use std::sync::Arc;

use common::chat::ChatServer;
use palisade_llm::testing::FakeResponse;
use palisade_server::ChatSettings;
use palisade_store::{QuotaDefaults, QuotaLimits, Store};
use serde_json::{Value, json};

use common::{TestServer, assert_body, hex};

/// Items 25, 29, 30: field and cross-field validation with DRF's messages.
async fn invalid_bodies_are_400(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    let t = hex(&thread.uuid);
    let cases = [
        (json!({}), json!({"input": ["This field is required."]})),
        (
            json!({"input": null}),
            json!({"input": ["This field may not be null."]}),
        ),
        (
            json!({"input": "   "}),
            json!({"input": ["This field may not be blank."]}),
        ),
        (
            json!({"input": "hi", "mode": "reload"}),
            json!({"mode": ["mode requires thread_uuid to be provided."]}),
        ),
        (
            json!({"input": "hi", "thread_uuid": t, "mode": "rewrite"}),
            json!({"mode": ["\"rewrite\" is not a valid choice."]}),
        ),
        (
            json!({"input": "hi", "thread_uuid": t, "mode": "edit"}),
            json!({"edit_message_uuid": ["edit_message_uuid is required when mode='edit'."]}),
        ),
        (
            json!({"input": "hi", "thread_uuid": t, "edit_message_uuid": t}),
            json!({"edit_message_uuid": ["edit_message_uuid is only valid with mode='edit'."]}),
        ),
        (
            json!({"input": "hi", "thread_uuid": "nope"}),
            json!({"thread_uuid": ["Must be a valid UUID."]}),
        ),
        (
            json!(["input"]),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ),
    ];
    for (body, expected) in cases {
        assert_body(chat.post_stream(&alice, &body).await, 400, expected).await;
    }
    assert_eq!(chat.llm.request_count(), 0, "no model call for bad input");
    assert!(chat.all_messages(thread.uuid).await.is_empty());
}

/// NUL characters in `input` are refused as DRF's `CharField` does (JSON
/// and form bodies), and a `\u` escape of a lone surrogate is a JSON parse
/// error that says so; nothing is stored and the model is not called.
async fn nul_and_lone_surrogates_are_400(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let nul = json!({"input": ["Null characters are not allowed."]});
    for input in ["a\u{0}b", "\u{0}", "  x\u{0}  "] {
        assert_body(
            chat.post_stream(&alice, &json!({ "input": input })).await,
            400,
            nul.clone(),
        )
        .await;
    }
    let form = chat
        .client
        .post(chat.url("/api/chat/stream/"))
        .header("Authorization", format!("Token {}", alice.token))
        .form(&[("input", "hello\u{0}")])
        .send()
        .await
        .unwrap();
    assert_body(form, 400, nul).await;

    for body in [
        r#"{"input": "\ud800"}"#,
        r#"{"input": "\udfff x"}"#,
        r#"{"input": "\ud83d\u0041"}"#,
    ] {
        let response = chat
            .client
            .post(chat.url("/api/chat/stream/"))
            .header("Authorization", format!("Token {}", alice.token))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("JSON parse error - invalid \\u escape at line 1 column ")
                && detail.ends_with(
                    "a UTF-16 surrogate (\\ud800-\\udfff) must be part of a high-low pair"
                ),
            "{body}: {answer}"
        );
    }
    assert_eq!(chat.llm.request_count(), 0, "no model call for bad input");
    assert!(
        chat.store
            .list_threads(
                &palisade_store::ThreadFilter::new(palisade_store::Scope::All),
                palisade_store::Window {
                    limit: 10,
                    offset: 0
                },
            )
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing stored"
    );
}

/// Item 28: 50,000 characters (after trimming) are accepted, 50,001 are not.
async fn input_length_limit(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let too_long = "a".repeat(50_001);
    assert_body(
        chat.post_stream(&alice, &json!({ "input": too_long }))
            .await,
        400,
        json!({"input": ["Ensure this field has no more than 50000 characters."]}),
    )
    .await;
    chat.answer("ok");
    let longest = format!("  {}  ", "a".repeat(50_000));
    let streamed = chat.stream(&alice, &json!({ "input": longest })).await;
    let messages = chat.all_messages(streamed.thread_uuid()).await;
    assert_eq!(
        messages[0].content.chars().count(),
        50_000,
        "stored trimmed"
    );
}

/// A body over the documented 1 MiB limit is refused with 413 in the DRF
/// style, before it is parsed.
async fn oversized_bodies_are_413(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let staff = chat.staff("root").await;
    let huge = format!("{{\"input\": \"{}\"}}", "a".repeat(1536 * 1024));
    for (path, who) in [
        ("/api/chat/stream/", &alice),
        ("/api-auth/password/", &alice),
        ("/api/guard/scan/", &staff),
    ] {
        let response = chat
            .client
            .post(chat.url(path))
            .header("Authorization", format!("Token {}", who.token))
            .header("Content-Type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_body(
            response,
            413,
            json!({"detail": "Request body too large: at most 1 MiB is accepted."}),
        )
        .await;
    }
}

/// Item 29: `mode` may be omitted or null; a form body works like JSON.
async fn optional_fields_and_form_bodies(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.answer("one");
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "hi", "mode": null, "thread_uuid": null}),
        )
        .await;
    assert_eq!(streamed.markdown(), "one");

    chat.answer("two");
    let response = chat
        .client
        .post(chat.url("/api/chat/stream/"))
        .header("Authorization", format!("Token {}", alice.token))
        .form(&[
            ("input", "  hello from a form "),
            ("thread_uuid", &hex(&streamed.thread_uuid())),
            ("mode", ""),
        ])
        .send()
        .await
        .unwrap();
    let form = common::chat::Streamed::read(response).await;
    assert_eq!(form.thread_uuid(), streamed.thread_uuid());
    let messages = chat.active_messages(streamed.thread_uuid()).await;
    assert_eq!(messages[2].content, "hello from a form");

    let response = chat
        .client
        .post(chat.url("/api/chat/stream/"))
        .header("Authorization", format!("Token {}", alice.token))
        .header("Content-Type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_body(
        response,
        415,
        json!({"detail": "Unsupported media type \"text/plain\" in request."}),
    )
    .await;
    let response = chat
        .client
        .post(chat.url("/api/chat/stream/"))
        .header("Authorization", format!("Token {}", alice.token))
        .header("Content-Type", "application/json")
        .body("{\"input\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - ")
    );
}

/// Item 26: chat disabled is 424, even before authentication.
async fn disabled_chat_is_424_before_auth(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| s.enabled = false).await;
    let alice = chat.user("alice").await;
    let disabled = json!({"detail": "Extension is disabled."});
    assert_body(
        chat.post_stream(&alice, &json!({"input": "hi"})).await,
        424,
        disabled.clone(),
    )
    .await;
    let anonymous = chat
        .client
        .post(chat.url("/api/chat/stream/"))
        .json(&json!({"input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_body(anonymous, 424, disabled).await;
    assert_eq!(chat.llm.request_count(), 0);
}

/// Item 27 and the order of checks: 401 before "not configured", which
/// comes before body validation.
async fn unconfigured_model_is_409_after_auth(store: Arc<dyn Store>) {
    let server =
        TestServer::start_with(store, common::shared_guard(), ChatSettings::new(None)).await;
    let alice = server.user("alice").await;
    let anonymous = server
        .client
        .post(server.url("/api/chat/stream/"))
        .json(&json!({"input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        common::header(&anonymous, "www-authenticate"),
        Some("Token")
    );
    let response = server
        .client
        .post(server.url("/api/chat/stream/"))
        .header("Authorization", format!("Token {}", alice.token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_body(
        response,
        409,
        json!({"detail": "LLM inference API URL is not configured."}),
    )
    .await;
}

/// Other methods are 405 after authentication; OPTIONS describes the view.
async fn other_methods(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    common::assert_405(
        chat.request(reqwest::Method::GET, &alice, "/api/chat/stream/")
            .await,
        "GET",
    )
    .await;
    assert_eq!(
        chat.anonymous(reqwest::Method::GET, "/api/chat/stream/")
            .await
            .status(),
        401
    );
}

/// Item 31: edit targets must exist in the caller's thread, be user
/// messages, and be the last active one; other users' threads are 404.
async fn edit_refusals(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let bob = chat.user("bob").await;
    chat.answer("first answer");
    let first = chat.stream(&alice, &json!({"input": "first"})).await;
    let thread = first.thread_uuid();
    chat.answer("second answer");
    let second = chat
        .stream(
            &alice,
            &json!({"input": "second", "thread_uuid": hex(&thread)}),
        )
        .await;
    let messages = chat.active_messages(thread).await;
    let (first_question, last_question) = (&messages[0], &messages[2]);
    assert_eq!(last_question.content, "second");

    let edit = |target: String| json!({"input": "changed", "thread_uuid": hex(&thread), "mode": "edit", "edit_message_uuid": target});
    assert_body(
        chat.post_stream(&alice, &edit(hex(&uuid::Uuid::new_v4())))
            .await,
        404,
        json!({"detail": "Message not found."}),
    )
    .await;
    assert_body(
        chat.post_stream(&alice, &edit(hex(&second.assistant_uuid())))
            .await,
        400,
        json!(["Can only edit user messages."]),
    )
    .await;
    assert_body(
        chat.post_stream(&alice, &edit(hex(&first_question.uuid)))
            .await,
        400,
        json!(["Can only edit the last user message."]),
    )
    .await;
    // Bob can neither edit in Alice's thread nor name her message from his.
    assert_body(
        chat.post_stream(&bob, &edit(hex(&last_question.uuid)))
            .await,
        404,
        json!({"detail": "Thread not found."}),
    )
    .await;
    chat.answer("bob's answer");
    let bobs = chat.stream(&bob, &json!({"input": "mine"})).await;
    let bob_edit = json!({"input": "x", "thread_uuid": hex(&bobs.thread_uuid()), "mode": "edit", "edit_message_uuid": hex(&last_question.uuid)});
    assert_body(
        chat.post_stream(&bob, &bob_edit).await,
        404,
        json!({"detail": "Message not found."}),
    )
    .await;
    assert_eq!(chat.all_messages(thread).await.len(), 4, "nothing written");
    // The refused edits left the thread free for the next message.
    chat.answer("third answer");
    chat.stream(
        &alice,
        &json!({"input": "third", "thread_uuid": hex(&thread)}),
    )
    .await;
}

/// Staff cannot stream into another user's thread either; an unknown
/// thread is 404 with the reference's message.
async fn threads_must_be_your_own(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let staff = chat.staff("root").await;
    let thread = chat.thread(&alice, "alice's").await;
    for (who, uuid) in [
        (&staff, hex(&thread.uuid)),
        (&alice, hex(&uuid::Uuid::new_v4())),
    ] {
        assert_body(
            chat.post_stream(who, &json!({"input": "hi", "thread_uuid": uuid}))
                .await,
            404,
            json!({"detail": "Thread not found."}),
        )
        .await;
    }
    // Archived threads are allowed.
    chat.store
        .set_thread_archived(
            &palisade_store::ThreadFilter::new(palisade_store::Scope::All),
            thread.uuid,
            true,
        )
        .await
        .unwrap();
    chat.answer("still here");
    let streamed = chat
        .stream(
            &alice,
            &json!({"input": "hi", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    assert_eq!(streamed.markdown(), "still here");
}

/// Items 32 and 35: at the limit is 409 naming the period; below it a
/// request may go past it; −1 is unlimited.
async fn quotas(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.store
        .set_token_limits(alice.user.id, QuotaLimits([None, None, Some(100)]))
        .await
        .unwrap();
    chat.store.add_token_usage(alice.user.id, 95).await.unwrap();
    chat.answer_with_usage(&["fine"], 5, 3);
    let streamed = chat
        .stream(&alice, &json!({"input": "hi", "thread_uuid": null}))
        .await;
    assert_eq!(streamed.markdown(), "fine");
    // The title call (none queued: the fake answers 500) costs nothing.
    let quota = chat.store.token_quota(alice.user.id).await.unwrap();
    assert_eq!(quota.usage[2], 103, "95 + 5 + 3");

    assert_body(
        chat.post_stream(&alice, &json!({"input": "again"})).await,
        409,
        json!({"detail": "Monthly token limit exceeded."}),
    )
    .await;
    chat.store
        .set_token_limits(alice.user.id, QuotaLimits([Some(1), Some(-1), Some(-1)]))
        .await
        .unwrap();
    assert_body(
        chat.post_stream(&alice, &json!({"input": "again"})).await,
        409,
        json!({"detail": "Daily token limit exceeded."}),
    )
    .await;
    chat.store
        .set_token_limits(alice.user.id, QuotaLimits([Some(-1), Some(-1), Some(-1)]))
        .await
        .unwrap();
    chat.answer("unlimited");
    let long = "word ".repeat(2_000);
    let streamed = chat.stream(&alice, &json!({ "input": long })).await;
    assert_eq!(streamed.markdown(), "unlimited");
}

/// System defaults apply to users without their own limits; a weekly limit
/// is reported as such.
async fn default_quotas(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| {
        s.quota_defaults = QuotaDefaults([-1, 50, -1]);
    })
    .await;
    let alice = chat.user("alice").await;
    chat.store.add_token_usage(alice.user.id, 50).await.unwrap();
    assert_body(
        chat.post_stream(&alice, &json!({"input": "hi"})).await,
        409,
        json!({"detail": "Weekly token limit exceeded."}),
    )
    .await;
    assert_eq!(chat.llm.request_count(), 0);
}

/// Item 33: a limit below −1 is a misconfiguration, answered with 409.
async fn misconfigured_quota(store: Arc<dyn Store>) {
    let chat = ChatServer::start_with(store, |s| {
        s.quota_defaults = QuotaDefaults([-1, -1, -10]);
    })
    .await;
    let alice = chat.user("alice").await;
    assert_body(
        chat.post_stream(&alice, &json!({"input": "hi"})).await,
        409,
        json!({"detail": "AI Token quota system is misconfigured. Please contact support."}),
    )
    .await;
    // A user's own limit cannot be misconfigured: the database refuses it.
    assert!(
        chat.store
            .set_token_limits(alice.user.id, QuotaLimits([Some(-10), None, None]))
            .await
            .is_err()
    );
}

/// Issue 11: thirty answers asked for at once, half through each of two
/// nodes, against a 200-token daily limit: each answer's cost is reserved
/// before it is generated, so together they stay within the limit (give or
/// take the prompt estimate), instead of all passing a check of past usage.
async fn concurrent_requests_stay_within_the_quota(store: Arc<dyn Store>) {
    const LIMIT: i64 = 200;
    let configure = |s: &mut ChatSettings| s.max_generations_per_user = None;
    let nodes = [
        ChatServer::start_with(store.clone(), configure).await,
        ChatServer::start_with(store, configure).await,
    ];
    let alice = nodes[0].user("alice").await;
    nodes[0]
        .store
        .set_token_limits(alice.user.id, QuotaLimits([Some(LIMIT), None, None]))
        .await
        .unwrap();
    let mut threads = Vec::new();
    for i in 0..30 {
        threads.push(nodes[0].thread(&alice, &format!("t{i}")).await);
    }
    // Each answer would be 150 tokens; a real server stops at max_tokens.
    for node in &nodes {
        for _ in 0..30 {
            node.llm.push(FakeResponse::Budgeted {
                delta: "word ".to_owned(),
                count: 150,
                prompt_tokens: 10,
            });
        }
    }
    let requests = threads.iter().enumerate().map(|(i, thread)| {
        let node = &nodes[i % 2];
        let body = json!({"input": "Tell me a story.", "thread_uuid": hex(&thread.uuid)});
        let alice = &alice;
        async move {
            let response = node.post_stream(alice, &body).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
    for (status, text) in &answers {
        if *status != 200 {
            assert_eq!(*status, 409, "{text}");
            assert_eq!(text, r#"{"detail":"Daily token limit exceeded."}"#);
        }
    }
    assert!(accepted >= 1, "at least the first reservation is granted");
    assert!(accepted < 30, "the limit refuses most of them: {accepted}");
    for node in &nodes {
        node.settle().await;
    }
    let used = nodes[0]
        .store
        .token_quota(alice.user.id)
        .await
        .unwrap()
        .usage[0];
    // Prompts are reported as 10 tokens, less than the estimate reserved
    // for them: the settled total stays within the limit.
    assert!(used <= LIMIT, "used {used} of {LIMIT}");
    assert!(used > 0);
    // Every call asked for no more than what was left to reserve.
    for node in &nodes {
        for call in node.answer_calls() {
            let max_tokens = call["max_tokens"].as_i64().unwrap_or(i64::MAX);
            assert!(max_tokens <= LIMIT, "max_tokens {max_tokens}");
        }
    }
}

/// A request refused after its reservation (an edit the reference refuses)
/// gives the reservation back.
async fn refused_requests_give_their_reservation_back(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    chat.store
        .set_token_limits(alice.user.id, QuotaLimits([Some(10_000), None, None]))
        .await
        .unwrap();
    let thread = chat.thread(&alice, "t").await;
    let (_, answer) = chat.exchange(&thread, 0).await;
    let response = chat
        .post_stream(
            &alice,
            &json!({
                "input": "edited",
                "thread_uuid": hex(&thread.uuid),
                "mode": "edit",
                "edit_message_uuid": hex(&answer.uuid),
            }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let quota = chat.store.token_quota(alice.user.id).await.unwrap();
    assert_eq!(quota.usage, [0, 0, 0]);
    assert_eq!(chat.llm.request_count(), 0);
}

palisade_store::test_on_both_backends!(
    concurrent_requests_stay_within_the_quota,
    refused_requests_give_their_reservation_back,
    invalid_bodies_are_400,
    nul_and_lone_surrogates_are_400,
    input_length_limit,
    oversized_bodies_are_413,
    optional_fields_and_form_bodies,
    disabled_chat_is_424_before_auth,
    unconfigured_model_is_409_after_auth,
    other_methods,
    edit_refusals,
    threads_must_be_your_own,
    quotas,
    default_quotas,
    misconfigured_quota,
);
