//! Stopping `palisade serve` with signals, as an operator (or systemd)
//! does, while an answer is streaming: the stop is logged at once, the
//! listener closes, the answer gets the grace period, then is cancelled —
//! its partial answer stored, its stream ended with an `e` line — and the
//! process exits. A second signal cuts the grace period short.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::testing::{FakeOpenAi, FakeResponse, FakeStep, content_chunk, role_chunk};
use palisade_store::Store;
use palisade_store::testing::Backend;
use serde_json::json;

use common::{BIN, Server, account, free_port, messages, on_database, thread};

const PARTIAL: &str = "This answer was still being written when the server was told to stop.";
const INTERRUPTED: &str = "{\"e\":\"Chat processing was interrupted. Please try again later.\"}";

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Starts a hanging answer on a fresh server, signals it as `signals`
/// says, and checks what the client, the database and the log saw.
async fn stop_mid_answer(
    store: Arc<dyn Store>,
    url: &str,
    grace: &str,
    signals: &[&str],
    log_format: &str,
    min_time: Duration,
) -> String {
    let llm = FakeOpenAi::start().await;
    let base_url = llm.base_url();
    let (alice, token) = account(store.as_ref(), "alice").await;
    let thread = thread(store.as_ref(), &alice, "t").await;

    let port = free_port();
    let log = std::env::temp_dir().join(format!("palisade-shutdown-{port}.log"));
    let child = Command::new(BIN)
        .args(["--database-url", url, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("PALISADE_LLM_PROVIDER", "openai")
        .env("PALISADE_LLM_BASE_URL", &base_url)
        .env("PALISADE_SHUTDOWN_GRACE", grace)
        .env("PALISADE_LOG_FORMAT", log_format)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn serve");
    let mut server = Server(child);
    common::wait_until_serving(port, "server did not start");

    llm.push(FakeResponse::Stream(vec![
        role_chunk(),
        content_chunk(PARTIAL),
        FakeStep::Hang,
    ]));
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/chat/stream/"))
        .header("Authorization", format!("Token {token}"))
        .header("X-Request-Id", "shutdown-test-request")
        .json(&json!({"input": "q", "thread_uuid": thread.uuid.simple().to_string()}))
        .send()
        .await
        .expect("stream request");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("This answer") {
        let chunk = body.next().await.expect("more lines").expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }

    let signalled = Instant::now();
    for (n, name) in signals.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        signal(&server, name);
    }
    // The listener closes at once: no new connections.
    let mut refused = false;
    for _ in 0..40 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the listener stayed open after the signal");

    // The stream ends with the e line and the final line.
    while let Some(chunk) = body.next().await {
        seen.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("UTF-8"));
    }
    let ended = signalled.elapsed();
    assert!(seen.contains(INTERRUPTED), "{seen}");
    assert!(
        seen.trim_end().ends_with("}}") && seen.contains("assistant_message_uuid"),
        "{seen}"
    );

    // The process exits.
    let exit_deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < exit_deadline, "serve did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let logged = std::fs::read_to_string(&log).expect("log");
    let _ = std::fs::remove_file(&log);
    assert!(logged.contains("shutting down"), "{logged}");
    assert!(logged.contains("stopped"), "{logged}");

    // The partial answer is stored, no longer generating.
    let messages = messages(store.as_ref(), thread.uuid, false).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1].content, PARTIAL);
    assert!(!messages[1].is_generating);
    assert!(
        ended >= min_time,
        "stopped before the grace period ended: {ended:?}"
    );
    logged
}

/// With JSON logs: every line is a JSON object, and the generation's lines
/// carry the request's id.
async fn grace_period(url: String, store: Arc<dyn Store>) {
    let logged =
        stop_mid_answer(store, &url, "2s", &["TERM"], "json", Duration::from_secs(2)).await;
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["span"]["request_id"] == "shutdown-test-request"
                && line["fields"]["message"] == "generation stopped by shutdown"),
        "{logged}"
    );
}

async fn second_signal(url: String, store: Arc<dyn Store>) {
    // With a grace period of a minute, only the second signal can end the
    // answer before the test's own deadlines.
    stop_mid_answer(store, &url, "60s", &["INT", "INT"], "text", Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_signal_gives_running_answers_the_grace_period() {
    on_database(Backend::Sqlite, "shutdown test", grace_period).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_signal_gives_running_answers_the_grace_period() {
    on_database(Backend::Postgres, "shutdown test", grace_period).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_second_signal_stops_running_answers_at_once() {
    on_database(Backend::Sqlite, "shutdown test", second_signal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_second_signal_stops_running_answers_at_once() {
    on_database(Backend::Postgres, "shutdown test", second_signal).await;
}
