//! PostgreSQL stopped for 20 s under load, through real processes: one
//! `palisade serve` on a PostgreSQL server of the test's own (the machine's
//! shared one must not be stopped), a fake OpenAI server answering slowly,
//! and 8 clients asking question after question, each in a thread of its
//! own. Mid-way the database is stopped (`pg_ctl stop -m immediate`, as a
//! crash) and started again 20 s later; answers that run across the outage
//! must be stored once it is back (the final save is retried for
//! `save_retry`, the lease survives its expiry as long as nobody else took
//! the thread).
//!
//! Why: a database outage is the fault most likely to cost a user an answer
//! they already saw, or to leave a client hanging on a stream that never
//! ends. What must hold:
//!
//! - every stream that got a 200 ends with the final `{"m":…}` line or an
//!   `{"e":…}` line — never cut without one, never hanging;
//! - every answer whose final line a client received is stored with exactly
//!   the text the client received, and an answer ended without an `e` line is
//!   the model's whole answer (nothing silently cut off);
//! - every question has exactly one answer, sequence indexes are contiguous
//!   and no row is left marked as generating;
//! - a running answer keeps streaming to its client while the database is
//!   down (no gap over 3 s between content lines: saving it is the server's
//!   business, the client only waits for the final line);
//! - the user is charged an answer's tokens once;
//! - while the database is down, new requests get 503 "The database is
//!   unavailable…" with `Retry-After` within ~3 s (not a hang, not a 500);
//! - once it is back, new requests succeed again.
//!
//! The answers are plain text, so the `c` fields of the markdown lines
//! concatenated are exactly the stored content. On failure the server's log
//! (`RUST_LOG=info`) is kept in a temp dir, whose path is printed with the
//! warnings and errors it holds, with a table of the streams. Takes about
//! 45 s.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::testing::{
    FakeOpenAi, FakeResponse, FakeStep, content_chunk, done, finish_chunk, role_chunk,
};
use palisade_store::{DatabaseUrl, Message, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use common::{PrivatePostgres, account, free_port, messages, serve_logged, thread};

/// Clients asking questions continuously, each in its own thread.
const CLIENTS: usize = 8;
/// Load before the database is stopped.
const WARMUP: Duration = Duration::from_secs(8);
/// How long the database stays stopped.
const OUTAGE: Duration = Duration::from_secs(20);
/// Clients start no new question after this (from the start of the load).
const LOAD_END: Duration = Duration::from_secs(36);
/// Every stream must have ended by this (from the start of the load).
const HARD_DEADLINE: Duration = Duration::from_secs(65);
/// A bound on the questions one client asks.
const MAX_QUESTIONS: usize = 120;
/// A request that gets no response headers within this is a hang.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// How fast a request must hear that the database is down.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(3);
/// The model sends a piece every 250 ms, a markdown line every 500 ms or
/// so; a database outage may not stall a running answer longer than this
/// (a little more than the pool's 2 s acquire timeout).
const MAX_CONTENT_GAP: Duration = Duration::from_secs(3);
/// How soon after the restart a new question must be answered.
const RECOVERY_WITHIN: Duration = Duration::from_secs(15);
/// Answer lengths in seconds: the first round (started together) runs
/// across the stop, two of them across the restart too; later answers
/// before the stop end during the outage; answers scripted after the stop
/// are short.
const FIRST_ROUND_SECS: [u64; CLIENTS] = [40, 10, 34, 14, 24, 6, 18, 8];
const BEFORE_STOP_SECS: [u64; 3] = [12, 16, 20];
const AFTER_STOP_SECS: [u64; 3] = [4, 5, 6];
const UNAVAILABLE: &str = "The database is unavailable. Please try again shortly.";

/// A scripted answer of about `secs` seconds: a plain-text piece every
/// 250 ms, ending with a marker, so a cut-short answer is recognisable.
fn scripted_answer(n: usize, secs: u64) -> (String, FakeResponse) {
    let pieces = secs * 4;
    let mut steps = vec![role_chunk()];
    let mut text = String::new();
    for i in 1..=pieces {
        let piece = format!("Answer {n} says piece {i} of {pieces}. ");
        steps.push(FakeStep::Delay(Duration::from_millis(250)));
        steps.push(content_chunk(&piece));
        text.push_str(&piece);
    }
    let end = format!("End of answer {n}.");
    steps.push(content_chunk(&end));
    text.push_str(&end);
    steps.push(finish_chunk("stop"));
    steps.push(done());
    (text, FakeResponse::Stream(steps))
}

/// What one request got.
#[derive(Debug)]
struct Exchange {
    client: usize,
    question: String,
    /// When it was sent, from the start of the load.
    sent: Duration,
    /// Until the response headers (or the failure).
    latency: Duration,
    status: Option<u16>,
    retry_after: Option<String>,
    body: String,
    /// When each body chunk arrived (from the start of the load) and the
    /// body's length after it.
    arrivals: Vec<(Duration, usize)>,
    /// A transport failure, a timeout, or a body that never ended.
    error: Option<String>,
}

impl Exchange {
    fn label(&self) -> String {
        let who = if self.client < CLIENTS {
            format!("client {}", self.client)
        } else {
            "probe".to_owned()
        };
        format!(
            "{who} {:?} (sent at {:.1} s)",
            self.question,
            self.sent.as_secs_f64()
        )
    }
}

/// A 200 stream, taken apart.
struct Streamed {
    lines: Vec<Value>,
    /// The markdown lines' `c` fields, concatenated.
    text: String,
    /// `(user_message_uuid, assistant_message_uuid)` of the final line.
    final_line: Option<(Option<String>, String)>,
    e_lines: Vec<String>,
    /// Lines that are not JSON, or not what a plain-text answer yields.
    odd: Vec<String>,
}

fn parse_stream(body: &str) -> Streamed {
    let mut streamed = Streamed {
        lines: Vec::new(),
        text: String::new(),
        final_line: None,
        e_lines: Vec::new(),
        odd: Vec::new(),
    };
    for line in body.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            streamed.odd.push(line.to_owned());
            continue;
        };
        if value["k"] == "markdown" {
            streamed
                .text
                .push_str(value["c"].as_str().unwrap_or_default());
        } else if let Some(e) = value["e"].as_str() {
            streamed.e_lines.push(e.to_owned());
        } else if let Some(assistant) = value["m"]["assistant_message_uuid"].as_str() {
            let user = value["m"]["user_message_uuid"].as_str().map(str::to_owned);
            streamed.final_line = Some((user, assistant.to_owned()));
        } else if value["m"]["thread_uuid"].is_null() {
            streamed.odd.push(line.to_owned());
        }
        streamed.lines.push(value);
    }
    streamed
}

/// The longest wait between two consecutive content lines of a stream, and
/// when it ended (from the start of the load).
fn longest_content_gap(exchange: &Exchange) -> Option<(Duration, Duration)> {
    let mut end = 0;
    let mut previous: Option<Duration> = None;
    let mut longest: Option<(Duration, Duration)> = None;
    for line in exchange.body.split_inclusive('\n') {
        end += line.len();
        if !line.starts_with("{\"k\":\"markdown\"") {
            continue;
        }
        let Some(&(at, _)) = exchange.arrivals.iter().find(|(_, len)| *len >= end) else {
            continue;
        };
        if let Some(before) = previous {
            let gap = at - before;
            if longest.is_none_or(|(g, _)| gap > g) {
                longest = Some((gap, at));
            }
        }
        previous = Some(at);
    }
    longest
}

/// Shared by the clients.
struct Load {
    port: u16,
    token: String,
    http: reqwest::Client,
    llm: FakeOpenAi,
    /// The full text of every scripted answer.
    scripts: Mutex<Vec<String>>,
    pushed: AtomicUsize,
    stopped: AtomicBool,
    start: Instant,
}

impl Load {
    /// Queues one more answer on the fake model. Every question pushes one
    /// before it is sent, so the model never runs dry; answers of questions
    /// refused with 503 are played to later ones.
    fn push_answer(&self) {
        let n = self.pushed.fetch_add(1, Ordering::SeqCst);
        let secs = if self.stopped.load(Ordering::SeqCst) {
            AFTER_STOP_SECS[n % AFTER_STOP_SECS.len()]
        } else if n < FIRST_ROUND_SECS.len() {
            FIRST_ROUND_SECS[n]
        } else {
            BEFORE_STOP_SECS[n % BEFORE_STOP_SECS.len()]
        };
        let (text, response) = scripted_answer(n, secs);
        self.scripts.lock().expect("scripts").push(text);
        self.llm.push(response);
    }

    fn hard_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + HARD_DEADLINE)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends a question and reads the whole answer (bounded by the hard
    /// deadline).
    async fn ask(&self, client: usize, thread: Uuid, question: String) -> Exchange {
        let request = self
            .http
            .post(self.url("/api/chat/stream/"))
            .header("Authorization", format!("Token {}", self.token))
            .json(&json!({"input": question, "thread_uuid": thread.simple().to_string()}));
        self.exchange(client, question, request).await
    }

    async fn get(&self, path: &str) -> Exchange {
        let request = self
            .http
            .get(self.url(path))
            .header("Authorization", format!("Token {}", self.token));
        self.exchange(usize::MAX, format!("GET {path}"), request)
            .await
    }

    async fn exchange(
        &self,
        client: usize,
        question: String,
        request: reqwest::RequestBuilder,
    ) -> Exchange {
        let sent_at = Instant::now();
        let mut exchange = Exchange {
            client,
            question,
            sent: sent_at - self.start,
            latency: Duration::ZERO,
            status: None,
            retry_after: None,
            body: String::new(),
            arrivals: Vec::new(),
            error: None,
        };
        let response = tokio::time::timeout(HEADERS_TIMEOUT, request.send()).await;
        exchange.latency = sent_at.elapsed();
        let response = match response {
            Err(_) => {
                exchange.error = Some(format!("no response headers within {HEADERS_TIMEOUT:?}"));
                return exchange;
            }
            Ok(Err(err)) => {
                exchange.error = Some(format!("request failed: {err}"));
                return exchange;
            }
            Ok(Ok(response)) => response,
        };
        exchange.status = Some(response.status().as_u16());
        exchange.retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let mut body = response.bytes_stream();
        let mut bytes = Vec::new();
        loop {
            match tokio::time::timeout_at(self.hard_deadline(), body.next()).await {
                Err(_) => {
                    exchange.error = Some("the body had not ended by the test's deadline".into());
                    break;
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    bytes.extend_from_slice(&chunk);
                    exchange.arrivals.push((self.start.elapsed(), bytes.len()));
                }
                Ok(Some(Err(err))) => {
                    exchange.error = Some(format!("the body broke off: {err}"));
                    break;
                }
            }
        }
        exchange.body = String::from_utf8_lossy(&bytes).into_owned();
        exchange
    }
}

/// One client: question after question in its thread until `LOAD_END`,
/// pausing briefly after a refusal.
async fn client(load: Arc<Load>, client: usize, thread: Uuid) -> Vec<Exchange> {
    let mut exchanges = Vec::new();
    for k in 1..=MAX_QUESTIONS {
        if load.start.elapsed() >= LOAD_END {
            break;
        }
        load.push_answer();
        let question = format!("Client {client} asks question {k}.");
        let exchange = load.ask(client, thread, question).await;
        let answered = exchange.status == Some(200);
        exchanges.push(exchange);
        if !answered {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    exchanges
}

/// Requests sent while the database is down, every 1.5 s until `until`:
/// a question, the thread list, the readiness probe, the message list.
async fn probe_outage(load: Arc<Load>, thread: Uuid, until: Instant) -> Vec<Exchange> {
    let thread_hex = thread.simple().to_string();
    let mut probes = Vec::new();
    for i in 0..20 {
        if Instant::now() >= until {
            break;
        }
        let probe = match i % 4 {
            0 => {
                load.ask(CLIENTS, thread, format!("Probe question {i}."))
                    .await
            }
            1 => load.get("/api/chat-threads/").await,
            // The readiness probe tells the load balancer, the same way.
            2 => load.get("/readyz").await,
            _ => {
                load.get(&format!("/api/chat-messages/?thread={thread_hex}"))
                    .await
            }
        };
        probes.push(probe);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    probes
}

/// Is this a proper "database unavailable" answer, quickly given?
fn unavailable_problem(exchange: &Exchange) -> Option<String> {
    if let Some(error) = &exchange.error {
        return Some(format!("{error} after {:?}", exchange.latency));
    }
    let detail = serde_json::from_str::<Value>(&exchange.body)
        .ok()
        .and_then(|body| body["detail"].as_str().map(str::to_owned));
    let mut problems = Vec::new();
    if exchange.status != Some(503) {
        problems.push(format!("status {:?}", exchange.status));
    }
    if detail.as_deref() != Some(UNAVAILABLE) {
        problems.push(format!("body {:?}", exchange.body));
    }
    if exchange
        .retry_after
        .as_deref()
        .is_none_or(|value| value.parse::<u64>().is_err())
    {
        problems.push(format!("Retry-After {:?}", exchange.retry_after));
    }
    if exchange.latency > UNAVAILABLE_WITHIN {
        problems.push(format!("took {:?}", exchange.latency));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// A temp dir for the server's log: removed when the test passes, kept
/// (and named) when it fails.
struct LogDir(std::path::PathBuf);

impl LogDir {
    fn create() -> LogDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("palisade-outage-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the log dir");
        LogDir(dir)
    }

    fn serve_log(&self) -> std::path::PathBuf {
        self.0.join("serve.log")
    }
}

/// The server log's warnings and errors, the repetitive ones counted.
fn log_excerpt(log: &str) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut first: Vec<String> = Vec::new();
    for line in log.lines() {
        if !(line.contains(" WARN ") || line.contains(" ERROR ")) {
            continue;
        }
        // Lines without their timestamp, so repeats group together.
        let key = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest)
            .trim()
            .to_owned();
        let count = counts.entry(key).or_insert(0);
        if *count == 0 {
            first.push(line.to_owned());
        }
        *count += 1;
    }
    first
        .iter()
        .take(60)
        .map(|line| {
            let key = line
                .split_once(' ')
                .map_or(line.as_str(), |(_, r)| r)
                .trim();
            format!("  ({}x) {line}", counts.get(key).copied().unwrap_or(1))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_under_load_loses_no_answer() {
    let began = Instant::now();
    let pg = match PrivatePostgres::launch() {
        Ok(pg) => pg,
        Err(why) => {
            println!("skipped: PostgreSQL outage test ({why})");
            return;
        }
    };
    let logs = LogDir::create();
    let url = pg.url();
    let store = palisade_store::connect(&DatabaseUrl::new(url.clone()))
        .await
        .expect("connect to the private PostgreSQL");
    store.migrate().await.expect("migrate");
    let (alice, token) = account(store.as_ref(), "alice").await;
    // Existing threads, so no title calls. The last one is the probes'.
    let mut threads = Vec::new();
    for i in 0..=CLIENTS {
        threads.push(
            thread(store.as_ref(), &alice, &format!("thread {i}"))
                .await
                .uuid,
        );
    }

    let llm = FakeOpenAi::start().await;
    let base_url = llm.base_url();
    let port = free_port();
    let env = [
        ("PALISADE_LLM_PROVIDER", "openai"),
        ("PALISADE_LLM_BASE_URL", base_url.as_str()),
        // One user asks in all threads at once.
        ("PALISADE_MAX_GENERATIONS_PER_USER", "0"),
        ("RUST_LOG", "info,sqlx=warn,tower_http=warn"),
    ];
    let server = serve_logged(&url, port, &env, &logs.serve_log());

    let load = Arc::new(Load {
        port,
        token,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client"),
        llm,
        scripts: Mutex::new(Vec::new()),
        pushed: AtomicUsize::new(0),
        stopped: AtomicBool::new(false),
        start: Instant::now(),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(load.clone(), i, threads[i])))
        .collect();

    // The outage.
    tokio::time::sleep_until(tokio::time::Instant::from_std(load.start + WARMUP)).await;
    load.stopped.store(true, Ordering::SeqCst);
    tokio::task::block_in_place(|| pg.stop());
    let stopped_at = Instant::now();
    // Probes start a second in (a request in flight at the very moment of
    // the stop is the clients' business); the last is answered before the
    // start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probes = tokio::spawn(probe_outage(
        load.clone(),
        threads[CLIENTS],
        stopped_at + OUTAGE - UNAVAILABLE_WITHIN - Duration::from_millis(500),
    ));
    tokio::time::sleep_until(tokio::time::Instant::from_std(stopped_at + OUTAGE)).await;
    tokio::task::block_in_place(|| pg.start());
    let restarted_at = Instant::now();
    let probes = probes.await.expect("probe task");

    // After the outage a new question is answered again.
    let mut recovery = Vec::new();
    let mut recovered_after = None;
    for i in 0..30 {
        if restarted_at.elapsed() > RECOVERY_WITHIN {
            break;
        }
        load.push_answer();
        let exchange = load
            .ask(CLIENTS, threads[CLIENTS], format!("Recovery question {i}."))
            .await;
        let answered =
            exchange.status == Some(200) && parse_stream(&exchange.body).final_line.is_some();
        recovery.push(exchange);
        if answered {
            recovered_after = Some(restarted_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let threads_after = load.get("/api/chat-threads/").await;

    let mut exchanges: Vec<Exchange> = Vec::new();
    let join_deadline = load.start + HARD_DEADLINE + Duration::from_secs(5);
    for task in clients {
        let left = join_deadline.saturating_duration_since(Instant::now());
        let done = tokio::time::timeout(left, task)
            .await
            .expect("the clients end by the deadline")
            .expect("client task");
        exchanges.extend(done);
    }
    let load_took = load.start.elapsed();

    // The checks. Failures are collected, so one run reports all of them.
    let mut failures: Vec<String> = Vec::new();
    let scripts = load.scripts.lock().expect("scripts").clone();
    let stop = stopped_at - load.start;
    let restart = restarted_at - load.start;

    // Streams: an end line; the text as stored; whole unless an `e` line says otherwise.
    let mut stored: BTreeMap<Uuid, Vec<Message>> = BTreeMap::new();
    for &thread in &threads {
        stored.insert(thread, messages(store.as_ref(), thread, true).await);
    }
    let by_uuid: BTreeMap<String, &Message> = stored
        .values()
        .flatten()
        .map(|m| (m.uuid.simple().to_string(), m))
        .collect();
    let (mut streams, mut finals, mut e_only, mut e_and_final, mut refused) = (0, 0, 0, 0, 0);
    let mut asked: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for exchange in exchanges.iter().chain(&recovery) {
        let label = exchange.label();
        match exchange.status {
            Some(200) => {}
            Some(503) => {
                refused += 1;
                if let Some(problem) = unavailable_problem(exchange) {
                    failures.push(format!("{label}: a bad 503: {problem}"));
                }
                let during = exchange.sent + exchange.latency + Duration::from_millis(500) >= stop
                    && exchange.sent <= restart + RECOVERY_WITHIN;
                if !during {
                    failures.push(format!("{label}: 503 while the database was up"));
                }
                continue;
            }
            _ => {
                failures.push(format!(
                    "{label}: status {:?} after {:?}, error {:?}, body {:?}",
                    exchange.status, exchange.latency, exchange.error, exchange.body
                ));
                continue;
            }
        }
        streams += 1;
        asked
            .entry(exchange.client)
            .or_default()
            .push(exchange.question.clone());
        let streamed = parse_stream(&exchange.body);
        if let Some(error) = &exchange.error {
            failures.push(format!("{label}: {error}; received {:?}", exchange.body));
        }
        if !streamed.odd.is_empty() {
            failures.push(format!("{label}: unexpected lines {:?}", streamed.odd));
        }
        let last = streamed.lines.last();
        let ended = last
            .is_some_and(|l| l["e"].is_string() || l["m"]["assistant_message_uuid"].is_string());
        if !ended {
            failures.push(format!(
                "{label}: the stream ended without a final or `e` line; last line {last:?}, \
                 {} lines",
                streamed.lines.len()
            ));
        }
        match (&streamed.final_line, streamed.e_lines.is_empty()) {
            (Some(_), true) => finals += 1,
            (Some(_), false) => e_and_final += 1,
            (None, false) => e_only += 1,
            (None, true) => {}
        }
        if let Some((gap, at)) = longest_content_gap(exchange)
            && gap > MAX_CONTENT_GAP
        {
            failures.push(format!(
                "{label}: the answer stalled: no content line for {:.1} s (until {:.1} s)",
                gap.as_secs_f64(),
                at.as_secs_f64()
            ));
        }
        let Some((user_uuid, assistant_uuid)) = &streamed.final_line else {
            continue;
        };
        match by_uuid.get(assistant_uuid) {
            None => failures.push(format!(
                "{label}: the final line names answer {assistant_uuid}, which is not stored"
            )),
            Some(row) => {
                if row.content != streamed.text {
                    failures.push(format!(
                        "{label}: answer stored as {:?} ({} chars), the client got {:?} ({} \
                         chars)",
                        row.content,
                        row.content.len(),
                        streamed.text,
                        streamed.text.len()
                    ));
                }
                if row.role != Role::Assistant || row.is_generating {
                    failures.push(format!("{label}: answer row {row:?}"));
                }
            }
        }
        let user_row = user_uuid.as_ref().and_then(|uuid| by_uuid.get(uuid));
        if user_row.is_none_or(|row| row.content != exchange.question) {
            failures.push(format!(
                "{label}: the final line's user message {user_uuid:?} is {user_row:?}"
            ));
        }
        if streamed.e_lines.is_empty() && !scripts.contains(&streamed.text) {
            let whole = scripts
                .iter()
                .filter(|s| s.starts_with(&streamed.text))
                .min_by_key(|s| s.len());
            failures.push(format!(
                "{label}: ended normally (no `e` line) but the answer is cut short: the client \
                 got {} chars ending {:?}, of a {}-char answer",
                streamed.text.len(),
                tail(&streamed.text),
                whole.map_or(0, String::len)
            ));
        }
    }

    // The database: one answer per question, contiguous, nothing left generating.
    for (i, thread) in threads.iter().enumerate() {
        let rows = &stored[thread];
        let shape: Vec<(i64, Role)> = rows.iter().map(|m| (m.sequence_index, m.role)).collect();
        let expected: Vec<(i64, Role)> = (1..=rows.len() as i64)
            .map(|index| {
                let role = if index % 2 == 1 {
                    Role::User
                } else {
                    Role::Assistant
                };
                (index, role)
            })
            .collect();
        if shape != expected || rows.len() % 2 == 1 {
            failures.push(format!(
                "thread {i}: rows are not question, answer, … with contiguous indexes: {shape:?}"
            ));
        }
        for row in rows {
            if row.replaces.is_some() || row.is_generating {
                failures.push(format!("thread {i}: row {row:?}"));
            }
        }
        let questions: Vec<&str> = rows
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .collect();
        let sent: Vec<&str> = asked
            .get(&i)
            .map(|list| list.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if questions != sent {
            failures.push(format!(
                "thread {i}: stored questions {questions:?}, answered with 200: {sent:?}"
            ));
        }
    }

    // While the database was down: quick 503s.
    if probes.len() < 5 {
        failures.push(format!("only {} probes during the outage", probes.len()));
    }
    for probe in &probes {
        if let Some(problem) = unavailable_problem(probe) {
            failures.push(format!("{} during the outage: {problem}", probe.label()));
        }
    }
    // After it: answered again, by every client too.
    if recovered_after.is_none() {
        failures.push(format!(
            "no question was answered within {RECOVERY_WITHIN:?} of the restart: {:?}",
            recovery.last()
        ));
    }
    if threads_after.status != Some(200) {
        failures.push(format!("thread list after the restart: {threads_after:?}"));
    }
    // Clients busy with a long answer until the end of the load ask
    // nothing new after the restart; most do.
    let mut asked_after = 0;
    for i in 0..CLIENTS {
        let after: Vec<&Exchange> = exchanges
            .iter()
            .filter(|e| e.client == i && e.sent >= restart)
            .collect();
        if after.is_empty() {
            continue;
        }
        asked_after += 1;
        let answered = after
            .iter()
            .any(|e| e.status == Some(200) && parse_stream(&e.body).final_line.is_some());
        if !answered {
            failures.push(format!(
                "client {i} asked {} questions after the restart, none was answered",
                after.len()
            ));
        }
    }
    if asked_after < CLIENTS / 2 {
        failures.push(format!(
            "only {asked_after} clients asked a question after the restart"
        ));
    }

    // Tokens: the user is charged what the answers cost, once. (Less is
    // possible: an answer stored just before the stop may have its usage
    // recording fail, and the daily counter resets at midnight.)
    let charged = store.token_quota(alice.id).await.expect("quota").usage[0];
    let cost: i64 = stored
        .values()
        .flatten()
        .map(|m| m.input_tokens + m.output_tokens)
        .sum();
    if charged > cost {
        failures.push(format!(
            "the user was charged {charged} tokens today, but the stored answers cost {cost}: \
             some were counted twice"
        ));
    }

    let latencies: Vec<String> = probes
        .iter()
        .map(|p| format!("{:.2}", p.latency.as_secs_f64()))
        .collect();
    println!(
        "outage test: {cost} tokens, {charged} charged; {streams} streams ({finals} final, {e_and_final} `e` + final, {e_only} \
         `e` only), {refused} refused with 503; stop at {:.1} s, restart at {:.1} s; outage \
         probes' latencies {latencies:?} s; answered again {recovered_after:?} after the \
         restart; load {load_took:?}, test {:?}",
        stop.as_secs_f64(),
        restart.as_secs_f64(),
        began.elapsed()
    );
    drop(server);
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&logs.0);
        return;
    }
    let _ = std::fs::write(logs.0.join("postgres.log"), pg.log());
    println!("The streams (times from the start of the load):");
    for exchange in exchanges.iter().chain(&recovery) {
        if exchange.status != Some(200) {
            continue;
        }
        let streamed = parse_stream(&exchange.body);
        let whole = scripts
            .iter()
            .filter(|s| s.starts_with(&streamed.text))
            .min_by_key(|s| s.len())
            .map_or(0, String::len);
        let ended = exchange
            .arrivals
            .last()
            .map_or(0.0, |(at, _)| at.as_secs_f64());
        let end = match (&streamed.final_line, streamed.e_lines.last()) {
            (Some(_), None) => "final line".to_owned(),
            (Some(_), Some(e)) => format!("{e:?} + final line"),
            (None, Some(e)) => format!("{e:?}"),
            (None, None) => "no end line".to_owned(),
        };
        println!(
            "  {}: ended at {ended:.1} s; {} of {whole} chars; {end}",
            exchange.label(),
            streamed.text.len(),
        );
    }
    let log = std::fs::read_to_string(logs.serve_log()).unwrap_or_default();
    panic!(
        "{} failures:\n- {}\n\nThe server's warnings and errors (log kept in {}):\n{}",
        failures.len(),
        failures.join("\n- "),
        logs.0.display(),
        log_excerpt(&log)
    );
}

/// The last 60 characters, for messages.
fn tail(text: &str) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(59)
        .map_or(0, |(index, _)| index);
    &text[start..]
}
