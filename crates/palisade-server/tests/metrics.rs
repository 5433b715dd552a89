//! `GET /metrics`: Prometheus (OpenMetrics) text with the request, model,
//! guard and database metrics, routes labelled by template; optionally
//! behind a bearer token. On both databases.

mod common;

use std::sync::Arc;

use common::chat::ChatServer;
use common::{TestServer, hex, shared_guard};
use palisade_llm::Usage;
use palisade_llm::testing::FakeResponse;
use palisade_server::{AppState, ChatSettings};
use palisade_store::Store;
use reqwest::Method;
use serde_json::json;

async fn scrape(server: &TestServer) -> String {
    let response = server.anonymous(Method::GET, "/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.parse().ok()
    })
}

async fn requests_answers_and_verdicts_are_counted(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.get_json(&alice, "/api/chat-threads/").await;
    chat.get_json(&alice, &format!("/api/chat-threads/{}/", hex(&thread.uuid)))
        .await;
    chat.get(&alice, "/no-such-page").await;
    chat.llm.push(FakeResponse::answer(
        &["An answer."],
        Some(Usage {
            prompt_tokens: 30,
            completion_tokens: 4,
        }),
    ));
    chat.stream(
        &alice,
        &json!({"input": "my IBAN is EE382200221020145685", "thread_uuid": hex(&thread.uuid)}),
    )
    .await;
    let text = scrape(&chat).await;
    let count =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        count(
            r#"palisade_http_requests_total{route="/api/chat-threads/",method="GET",status="200"}"#
        ),
        1.0
    );
    // Routes by template, never by raw path.
    assert_eq!(
        count(
            r#"palisade_http_requests_total{route="/api/chat-threads/{uuid}/",method="GET",status="200"}"#
        ),
        1.0
    );
    assert!(
        !text.contains(&hex(&thread.uuid)),
        "a raw path leaked into a label"
    );
    assert_eq!(
        count(r#"palisade_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(
            r#"palisade_http_requests_total{route="/api/chat/stream/",method="POST",status="200"}"#
        ),
        1.0
    );
    assert!(
        count(r#"palisade_http_request_duration_seconds_count{route="/api/chat/stream/"}"#) >= 1.0
    );
    assert_eq!(count(r#"palisade_llm_tokens_total{kind="input"}"#), 30.0);
    assert_eq!(count(r#"palisade_llm_tokens_total{kind="output"}"#), 4.0);
    assert_eq!(count("palisade_generation_duration_seconds_count"), 1.0);
    assert_eq!(count("palisade_generations_running"), 0.0);
    assert_eq!(count("palisade_guard_scan_duration_seconds_count"), 1.0);
    let pii = text
        .lines()
        .find(|line| line.starts_with(r#"palisade_guard_verdicts_total{detector="pii""#))
        .unwrap_or_else(|| panic!("no PII verdict in\n{text}"));
    assert!(pii.ends_with(" 1"), "{pii}");
    assert!(
        sample(&text, r#"palisade_db_pool_connections{state="idle"}"#).is_some(),
        "{text}"
    );
}

async fn model_failures_are_counted_by_reason(store: Arc<dyn Store>) {
    let chat = ChatServer::start(store).await;
    let alice = chat.user("alice").await;
    let thread = chat.thread(&alice, "t").await;
    chat.llm.push(FakeResponse::error(500, "down"));
    chat.stream(
        &alice,
        &json!({"input": "q", "thread_uuid": hex(&thread.uuid)}),
    )
    .await;
    let text = scrape(&chat).await;
    assert_eq!(
        sample(&text, r#"palisade_llm_errors_total{reason="status"}"#),
        Some(1.0),
        "{text}"
    );
}

async fn a_metrics_token_is_required_when_set(store: Arc<dyn Store>) {
    let mut state = AppState::new(store, shared_guard(), ChatSettings::new(None));
    state.metrics_token = Some("scrape-secret".into());
    let server = TestServer::start_state(state).await;
    let response = server.anonymous(Method::GET, "/metrics").await;
    assert_eq!(response.status(), 401);
    let response = server.get_with_auth("Bearer wrong", "/metrics").await;
    assert_eq!(response.status(), 401);
    let response = server
        .get_with_auth("Bearer scrape-secret", "/metrics")
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("palisade_http_requests_total")
    );
}

/// The scrape parses as OpenMetrics with a real parser, declares every
/// family with its type, and its request counter moves by exactly the
/// requests made.
async fn the_scrape_parses_and_counters_move(store: Arc<dyn Store>) {
    use openmetrics_parser::openmetrics::parse_openmetrics;
    use openmetrics_parser::{OpenMetricsType, OpenMetricsValue};
    let server = ChatServer::start(store).await;
    let alice = server.user("alice").await;
    // Labelled families appear once they have a sample: one answer with
    // usage and a guard verdict, one failed model call.
    server.llm.push(FakeResponse::answer(
        &["An answer."],
        Some(Usage {
            prompt_tokens: 30,
            completion_tokens: 4,
        }),
    ));
    let thread = server.thread(&alice, "t").await;
    server
        .stream(
            &alice,
            &json!({"input": "my IBAN is EE382200221020145685", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    server.llm.push(FakeResponse::error(500, "down"));
    server
        .stream(
            &alice,
            &json!({"input": "again", "thread_uuid": hex(&thread.uuid)}),
        )
        .await;
    let threads_listed = |text: &str| -> f64 {
        // openmetrics-parser 0.4 refuses a UNIT on histograms, which the
        // OpenMetrics specification allows: the units are checked here and
        // their lines left out of what it parses.
        for unit in [
            "# UNIT palisade_http_request_duration_seconds seconds",
            "# UNIT palisade_generation_duration_seconds seconds",
            "# UNIT palisade_guard_scan_duration_seconds seconds",
        ] {
            assert!(text.lines().any(|line| line == unit), "{unit}\n{text}");
        }
        let without_units: String = text
            .lines()
            .filter(|line| !line.starts_with("# UNIT "))
            .map(|line| format!("{line}\n"))
            .collect();
        let exposition =
            parse_openmetrics(&without_units).unwrap_or_else(|err| panic!("{err:?}\n{text}"));
        let families = &exposition.families;
        for (name, kind) in [
            ("palisade_http_requests", OpenMetricsType::Counter),
            (
                "palisade_http_request_duration_seconds",
                OpenMetricsType::Histogram,
            ),
            ("palisade_generations_running", OpenMetricsType::Gauge),
            (
                "palisade_generation_duration_seconds",
                OpenMetricsType::Histogram,
            ),
            ("palisade_llm_tokens", OpenMetricsType::Counter),
            ("palisade_llm_errors", OpenMetricsType::Counter),
            ("palisade_guard_verdicts", OpenMetricsType::Counter),
            (
                "palisade_guard_scan_duration_seconds",
                OpenMetricsType::Histogram,
            ),
            ("palisade_db_pool_connections", OpenMetricsType::Gauge),
            ("palisade_lease_takeovers", OpenMetricsType::Counter),
        ] {
            let family = families
                .get(name)
                .unwrap_or_else(|| panic!("no family {name} in\n{text}"));
            assert_eq!(family.family_type, kind, "{name}");
        }
        families["palisade_http_requests"]
            .iter_samples()
            .filter(|sample| {
                let labels = sample.get_labelset().expect("labels");
                labels.get_label_value("route") == Some("/api/chat-threads/")
                    && labels.get_label_value("method") == Some("GET")
                    && labels.get_label_value("status") == Some("200")
            })
            .map(|sample| match &sample.value {
                OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
                other => panic!("not a counter: {other:?}"),
            })
            .sum()
    };
    server.get_json(&alice, "/api/chat-threads/").await;
    let before = threads_listed(&scrape(&server).await);
    for _ in 0..3 {
        server.get_json(&alice, "/api/chat-threads/").await;
    }
    let after = threads_listed(&scrape(&server).await);
    assert_eq!(after - before, 3.0);
}

palisade_store::test_on_both_backends!(
    the_scrape_parses_and_counters_move,
    requests_answers_and_verdicts_are_counted,
    model_failures_are_counted_by_reason,
    a_metrics_token_is_required_when_set,
);
