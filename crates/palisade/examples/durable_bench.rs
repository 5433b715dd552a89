//! Durable-answer benchmark against the release binary (run it with
//! `scripts/bench-durable.sh`). An OpenAI-compatible upstream in this
//! process streams each answer at a steady rate; what it streams is set per
//! request by the question (`bench tag=… gap=… size=… deltas=… ids=…`), and
//! it notes when it wrote each delta. Phases, each on a fresh database:
//!
//! - `writes`: N answers stream at once on one node, with every SQL
//!   statement logged (`RUST_LOG=sqlx::query=debug`); over a fixed window
//!   the statements are counted by kind (progress save, lease renewal,
//!   cancel watcher, sweep, …) and, on PostgreSQL, checked against the
//!   `pg_stat_*` counters of the database (and WAL bytes, cluster-wide).
//! - `idle`: the same count with N answers whose model went silent after
//!   its first delta (nothing new to save).
//! - `lag`: two `serve` processes on one database; each answer is streamed
//!   by a client of node A, and two followers (`GET
//!   /api/chat-threads/{uuid}/stream/`) join it mid-answer, one on node B
//!   (reads the saved transcript) and one on node A (the in-memory one). For
//!   every line that reached the direct client after the follower's first
//!   byte: arrival at the follower minus arrival at the direct client.
//! - `load`: N slow answers at once on one node (statement logging off): the
//!   server's and the database's CPU, RSS per stream, how stale the saved
//!   copies get (the database is read directly, once a second, for every
//!   running answer), how long the final save takes after the model ended,
//!   and every warning or error the node logged.
//!
//! Usage: `durable_bench BINARY --backend sqlite|postgres [--pg-url URL]
//! [--phases writes,idle,lag,load] [--writes-streams 1,20,100]
//! [--idle-streams 20] [--load-streams 100,300,1000] [--window SECONDS]
//! [--lag-answers N] [--lag-parallel N] [--lag-lines N] [--log-dir DIR]`. PostgreSQL needs `psql` on the PATH and a database of
//! its own (the schema `public` is dropped and recreated for every run);
//! SQLite runs read the file with the `sqlite3` shell.

mod bench_common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use bench_common::{
    Server, TICKS_PER_SECOND, cpu_ticks, cpu_ticks_named, delta, machine_ticks, percentile,
    role_chunk, rss_kib, stop_chunks,
};

/// What the title prompt's user message starts with (`prompt::title_request`).
const TITLE_PREFIX: &str = "User message: ";
/// Words the text mode draws from at random, so the saved text compresses
/// about as well as prose (PostgreSQL compresses long values; a repeated
/// phrase would make its saves look cheaper than real answers).
const WORDS: [&str; 96] = [
    "the", "of", "and", "to", "in", "is", "that", "it", "for", "on", "with", "as", "was", "at",
    "by", "be", "this", "are", "from", "or", "have", "an", "they", "which", "one", "you", "were",
    "all", "there", "would", "their", "we", "been", "has", "when", "who", "will", "more", "no",
    "if", "out", "so", "what", "up", "its", "about", "into", "than", "them", "can", "only",
    "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any",
    "now", "such", "like", "our", "over", "even", "most", "made", "after", "also", "many",
    "before", "must", "through", "back", "years", "where", "much", "your", "way", "well", "down",
    "should", "because", "each", "just", "those", "people", "how", "little", "state", "good",
    "server",
];
/// Longest any client waits for one answer to end.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// The upstream

/// What one answer streams, parsed from its question.
#[derive(Debug, Clone)]
struct Spec {
    tag: u64,
    gap: Duration,
    /// Characters per delta.
    size: usize,
    /// At most this many deltas; the answer also ends at its stop time.
    deltas: u64,
    /// Each delta names a global id (`token-0000000042`), for line matching;
    /// needs `size >= 60` so every delta leaves the block parser as a line.
    ids: bool,
    /// A silent model: the first delta at once, then nothing until stopped.
    hold: bool,
}

impl Spec {
    fn question(&self) -> String {
        format!(
            "bench tag={} gap={} size={} deltas={} ids={} hold={}",
            self.tag,
            self.gap.as_millis(),
            self.size,
            self.deltas,
            u8::from(self.ids),
            u8::from(self.hold)
        )
    }

    fn parse(text: &str) -> Option<Spec> {
        let mut words = text.split_whitespace();
        if words.next()? != "bench" {
            return None;
        }
        let mut spec = Spec {
            tag: 0,
            gap: Duration::from_millis(50),
            size: 6,
            deltas: 100,
            ids: false,
            hold: false,
        };
        for word in words {
            let (key, value) = word.split_once('=')?;
            let number: u64 = value.parse().ok()?;
            match key {
                "tag" => spec.tag = number,
                "gap" => spec.gap = Duration::from_millis(number),
                "size" => spec.size = number as usize,
                "deltas" => spec.deltas = number,
                "ids" => spec.ids = number != 0,
                "hold" => spec.hold = number != 0,
                _ => return None,
            }
        }
        Some(spec)
    }
}

/// When each delta of one answer was written.
#[derive(Default)]
struct Timeline {
    size: usize,
    sent: Vec<Instant>,
    /// When the finishing events were written.
    done: Option<Instant>,
}

#[derive(Default)]
struct Upstream {
    /// Id mode: when each delta id was written.
    sent_ids: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    answers: Mutex<HashMap<u64, Timeline>>,
    /// An answer stops at this instant (if set) even with deltas left.
    stop_at: Mutex<HashMap<u64, Instant>>,
    titles: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// An endless text of random words, handed out in pieces of a fixed size.
struct Prose {
    state: u64,
    buffer: String,
}

impl Prose {
    fn new(seed: u64) -> Prose {
        Prose {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            buffer: String::new(),
        }
    }

    fn next(&mut self, size: usize) -> String {
        while self.buffer.len() < size {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let pick = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
            self.buffer.push_str(WORDS[pick as usize % WORDS.len()]);
            self.buffer.push(' ');
        }
        self.buffer.drain(..size).collect()
    }
}

async fn completions(State(upstream): State<Arc<Upstream>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let question = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let _ = tx.send(role_chunk()).await;
        match Spec::parse(&question) {
            _ if question.starts_with(TITLE_PREFIX) => {
                upstream.titles.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(delta("Bench")).await;
            }
            None => {
                let _ = tx.send(delta("ok")).await;
            }
            Some(spec) => stream_answer(&upstream, &spec, &tx).await,
        }
        for chunk in stop_chunks() {
            let _ = tx.send(chunk).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn stream_answer(upstream: &Upstream, spec: &Spec, tx: &tokio::sync::mpsc::Sender<Bytes>) {
    lock(&upstream.answers).insert(
        spec.tag,
        Timeline {
            size: spec.size,
            ..Timeline::default()
        },
    );
    let mut prose = Prose::new(spec.tag);
    let gap = if spec.hold {
        // The first delta at once, then silence until stopped.
        Duration::from_secs(3600)
    } else {
        spec.gap
    };
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if !spec.hold {
        tick.tick().await;
    }
    let stopped = || async {
        loop {
            let at = lock(&upstream.stop_at).get(&spec.tag).copied();
            match at {
                Some(at) if Instant::now() >= at => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    for _ in 0..spec.deltas {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped() => break,
        }
        let now = Instant::now();
        let chunk = if spec.ids {
            let id = upstream.next_id.fetch_add(1, Ordering::Relaxed);
            lock(&upstream.sent_ids).insert(id, now);
            delta(&format!(
                "{:<width$}",
                format!("token-{id:010} "),
                width = spec.size
            ))
        } else {
            delta(&prose.next(spec.size))
        };
        if let Some(t) = lock(&upstream.answers).get_mut(&spec.tag) {
            t.sent.push(now);
        }
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    if let Some(t) = lock(&upstream.answers).get_mut(&spec.tag) {
        t.done = Some(Instant::now());
    }
}

fn id_in(text: &str) -> Option<u64> {
    let start = text.find("token-")? + "token-".len();
    text.get(start..start + 10)?.parse().ok()
}

// ---------------------------------------------------------------------------
// The server's log

/// Statement kinds, by a piece of their SQL.
const KINDS: [(&str, &str); 6] = [
    ("WITH held AS", "progress save"),
    (
        "UPDATE threads SET generation_lease_expires",
        "lease renewal",
    ),
    ("SELECT id FROM threads", "cancel watcher"),
    ("SELECT stream_transcript", "follower poll"),
    ("SELECT m.id, s.user_id", "sweep"),
    ("SELECT id, stream_transcript", "follow start"),
];

#[derive(Default, Clone)]
struct LogCounts {
    /// Statements by kind (other statements by their sqlx summary).
    statements: HashMap<String, u64>,
    /// Warnings and errors by message: count and the first full line.
    warnings: HashMap<String, (u64, String)>,
}

impl LogCounts {
    fn total_statements(&self) -> u64 {
        self.statements.values().sum()
    }

    fn minus(&self, earlier: &LogCounts) -> LogCounts {
        let mut out = self.clone();
        for (k, v) in out.statements.iter_mut() {
            *v -= earlier.statements.get(k).copied().unwrap_or(0);
        }
        for (k, (v, _)) in out.warnings.iter_mut() {
            *v -= earlier.warnings.get(k).map_or(0, |w| w.0);
        }
        out
    }
}

/// The message of a tracing line: the words after the level up to the first
/// `key=value` field.
fn message_of(line: &str) -> String {
    line.split_whitespace()
        .skip(2)
        .take_while(|w| !w.contains('='))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the server's stderr: counts statements and warnings, writes
/// everything but the statement lines to `log`.
fn watch_log(stderr: ChildStderr, log: PathBuf) -> Arc<Mutex<LogCounts>> {
    let counts = Arc::new(Mutex::new(LogCounts::default()));
    let shared = counts.clone();
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(&log).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let level = line.split_whitespace().nth(1).unwrap_or_default();
            let statement = line.contains(" sqlx::query: ");
            let mut counts = lock(&shared);
            if statement {
                let kind = KINDS
                    .iter()
                    .find(|(sql, _)| line.contains(sql))
                    .map(|(_, kind)| (*kind).to_owned())
                    .unwrap_or_else(|| {
                        let summary = line
                            .split("summary=\"")
                            .nth(1)
                            .and_then(|s| s.split('"').next())
                            .unwrap_or("?");
                        format!("other: {summary}")
                    });
                *counts.statements.entry(kind).or_default() += 1;
            }
            if level == "WARN" || level == "ERROR" {
                let entry = counts
                    .warnings
                    .entry(format!("{level} {}", message_of(&line)))
                    .or_insert((0, line.clone()));
                entry.0 += 1;
            }
            drop(counts);
            if (!statement || level == "WARN" || level == "ERROR")
                && let Some(file) = file.as_mut()
            {
                let _ = writeln!(file, "{line}");
            }
        }
    });
    counts
}

fn print_warnings(node: &str, counts: &LogCounts) {
    let mut warnings: Vec<_> = counts.warnings.iter().filter(|w| w.1.0 > 0).collect();
    if warnings.is_empty() {
        println!("- {node}: no warnings or errors logged");
        return;
    }
    warnings.sort_by_key(|w| std::cmp::Reverse(w.1.0));
    for (message, (count, first)) in warnings {
        let first: String = first.chars().take(300).collect();
        println!("- {node}: {count} × `{message}` — first: `{first}`");
    }
}

// ---------------------------------------------------------------------------
// The database

enum Backend {
    Sqlite,
    Postgres(String),
}

struct Db {
    backend: Backend,
    /// The SQLite data dir of the current run.
    dir: Option<PathBuf>,
    runs: usize,
}

impl Db {
    fn name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    /// A fresh, empty database; the environment that points `serve` at it.
    fn fresh(&mut self) -> Result<Vec<(&'static str, String)>> {
        self.runs += 1;
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        match &self.backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "palisade-durable-bench-{}-{}",
                    std::process::id(),
                    self.runs
                ));
                std::fs::create_dir_all(&dir)?;
                self.dir = Some(dir.clone());
                Ok(vec![("PALISADE_DATA_DIR", dir.display().to_string())])
            }
            Backend::Postgres(url) => {
                self.query("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")?;
                Ok(vec![("PALISADE_DATABASE_URL", url.clone())])
            }
        }
    }

    fn query(&self, sql: &str) -> Result<String> {
        let output = match &self.backend {
            Backend::Postgres(url) => Command::new("psql")
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    url,
                    "-c",
                    sql,
                ])
                .output()
                .context("running psql")?,
            Backend::Sqlite => {
                let file = self.dir.as_ref().context("no run")?.join("palisade.db");
                Command::new("sqlite3")
                    .args(["-cmd", ".timeout 5000"])
                    .arg(file)
                    .arg(sql)
                    .output()
                    .context("running sqlite3")?
            }
        };
        if !output.status.success() {
            bail!(
                "query failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// PostgreSQL's counters for this database (and WAL, cluster-wide).
    fn pg_stats(&self) -> Option<PgStats> {
        if !matches!(self.backend, Backend::Postgres(_)) {
            return None;
        }
        let row = self
            .query(
                "SELECT d.xact_commit, m.n_tup_ins, m.n_tup_upd, m.n_tup_hot_upd, \
                 t.n_tup_upd, t.n_tup_hot_upd, w.wal_records, w.wal_bytes, w.wal_sync, w.wal_fpi, \
                 (SELECT COALESCE(sum(xact_commit), 0) FROM pg_stat_database \
                  WHERE datname IS DISTINCT FROM current_database()), \
                 pg_total_relation_size('messages') \
                 FROM pg_stat_database d, pg_stat_user_tables m, pg_stat_user_tables t, pg_stat_wal w \
                 WHERE d.datname = current_database() AND m.relname = 'messages' \
                 AND t.relname = 'threads'",
            )
            .ok()?;
        let v: Vec<i64> = row.split('|').filter_map(|x| x.parse().ok()).collect();
        (v.len() == 12).then(|| PgStats {
            xact_commit: v[0],
            messages_ins: v[1],
            messages_upd: v[2],
            messages_hot: v[3],
            threads_upd: v[4],
            threads_hot: v[5],
            wal_records: v[6],
            wal_bytes: v[7],
            wal_sync: v[8],
            wal_fpi: v[9],
            other_xacts: v[10],
            messages_size: v[11],
        })
    }

    /// Saved content length of every running answer, by thread uuid.
    fn saved_lengths(&self) -> Result<HashMap<String, usize>> {
        let rows = self.query(
            "SELECT t.uuid, length(m.content) FROM messages m JOIN threads t ON t.id = m.thread_id \
             WHERE m.generating_lease IS NOT NULL",
        )?;
        Ok(rows
            .lines()
            .filter_map(|l| {
                let (uuid, len) = l.split_once('|')?;
                Some((uuid.to_owned(), len.parse().ok()?))
            })
            .collect())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if matches!(self.backend, Backend::Postgres(_)) {
            let _ = self.query("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
        }
    }
}

#[derive(Clone, Copy)]
struct PgStats {
    xact_commit: i64,
    messages_ins: i64,
    messages_upd: i64,
    messages_hot: i64,
    threads_upd: i64,
    threads_hot: i64,
    wal_records: i64,
    wal_bytes: i64,
    wal_sync: i64,
    wal_fpi: i64,
    other_xacts: i64,
    messages_size: i64,
}

impl PgStats {
    fn minus(&self, e: &PgStats) -> PgStats {
        PgStats {
            xact_commit: self.xact_commit - e.xact_commit,
            messages_ins: self.messages_ins - e.messages_ins,
            messages_upd: self.messages_upd - e.messages_upd,
            messages_hot: self.messages_hot - e.messages_hot,
            threads_upd: self.threads_upd - e.threads_upd,
            threads_hot: self.threads_hot - e.threads_hot,
            wal_records: self.wal_records - e.wal_records,
            wal_bytes: self.wal_bytes - e.wal_bytes,
            wal_sync: self.wal_sync - e.wal_sync,
            wal_fpi: self.wal_fpi - e.wal_fpi,
            other_xacts: self.other_xacts - e.other_xacts,
            messages_size: self.messages_size,
        }
    }
}

// ---------------------------------------------------------------------------
// Clients

/// What a client of one stream saw.
#[derive(Default, Debug)]
struct Received {
    status: u16,
    thread: Option<String>,
    /// Answer on when the first byte arrived.
    first_byte: Option<Instant>,
    /// Id mode: when the line carrying each id arrived.
    ids: HashMap<u64, Instant>,
    final_line: Option<Instant>,
    e_line: Option<String>,
}

struct Ctx {
    binary: String,
    upstream: Arc<Upstream>,
    upstream_url: String,
    http: reqwest::Client,
    log_dir: PathBuf,
    window: Duration,
    /// Tags are never reused (a stop time set for one run must not end the
    /// next run's answers).
    next_tag: AtomicU64,
}

impl Ctx {
    fn start_node(
        &self,
        db_env: &[(&'static str, String)],
        rust_log: &str,
        log_name: &str,
    ) -> Result<(Server, Arc<Mutex<LogCounts>>)> {
        let mut env = db_env.to_vec();
        env.push(("PALISADE_LLM_PROVIDER", "openai".to_owned()));
        env.push(("PALISADE_LLM_BASE_URL", self.upstream_url.clone()));
        env.push(("RUST_LOG", rust_log.to_owned()));
        // Every answer here is the admin's: no per-user limit (older
        // binaries ignore the setting).
        env.push(("PALISADE_MAX_GENERATIONS_PER_USER", "0".to_owned()));
        // Thousands of held answers are thousands of connections.
        env.push(("PALISADE_MAX_CONNECTIONS", "100000".to_owned()));
        let mut server = bench_common::serve(&self.binary, &env, Stdio::piped())?;
        let stderr = server.child.stderr.take().context("stderr")?;
        let counts = watch_log(stderr, self.log_dir.join(log_name));
        Ok((server, counts))
    }
}

/// Reads an NDJSON response to its end, noting arrivals; sends the thread
/// uuid through `thread_tx` as soon as the first line names it.
async fn read_stream(
    response: reqwest::Response,
    mut thread_tx: Option<tokio::sync::oneshot::Sender<String>>,
) -> Result<Received> {
    let mut got = Received {
        status: response.status().as_u16(),
        ..Received::default()
    };
    if !response.status().is_success() {
        return Ok(got);
    }
    let mut body = response.bytes_stream();
    let mut pending = String::new();
    while let Some(chunk) = body.next().await {
        let now = Instant::now();
        got.first_byte.get_or_insert(now);
        pending.push_str(std::str::from_utf8(&chunk?)?);
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if line.starts_with("{\"m\":") {
                if line.contains("assistant_message_uuid") {
                    got.final_line = Some(now);
                } else if let Some(uuid) = line
                    .split("\"thread_uuid\":\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                {
                    got.thread = Some(uuid.to_owned());
                    if let Some(tx) = thread_tx.take() {
                        let _ = tx.send(uuid.to_owned());
                    }
                }
            } else if line.starts_with("{\"e\":") {
                got.e_line = Some(line.trim_end().to_owned());
            } else if let Some(id) = id_in(&line) {
                got.ids.entry(id).or_insert(now);
            }
        }
    }
    Ok(got)
}

async fn post_stream(ctx: &Ctx, server: &Server, question: String) -> Result<reqwest::Response> {
    let token = server.token.as_deref().context("no token")?;
    Ok(ctx
        .http
        .post(format!("{}/api/chat/stream/", server.base()))
        .header("Authorization", format!("Token {token}"))
        .json(&json!({ "input": question }))
        .send()
        .await?)
}

/// A running answer: its spec, its thread once known, the client's result.
struct Running {
    tag: u64,
    thread: Option<String>,
    done: tokio::task::JoinHandle<Result<Received>>,
}

/// Starts `n` answers on `server` (at most 64 being opened at a time) and
/// returns once each has its thread line, or failed.
async fn open_answers(
    ctx: &Arc<Ctx>,
    server: &Arc<Server>,
    n: usize,
    spec: &Spec,
) -> Result<Vec<Running>> {
    let first_tag = ctx.next_tag.fetch_add(n as u64, Ordering::Relaxed);
    let opening = Arc::new(Semaphore::new(64));
    let mut threads = Vec::with_capacity(n);
    let mut running = Vec::with_capacity(n);
    for i in 0..n {
        let spec = Spec {
            tag: first_tag + i as u64,
            ..spec.clone()
        };
        let (thread_tx, thread_rx) = tokio::sync::oneshot::channel();
        let permit = opening.clone().acquire_owned().await?;
        let (ctx, server) = (ctx.clone(), server.clone());
        let tag = spec.tag;
        // The opening slot is free again once the thread line arrived (or
        // the request failed).
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<String>();
        tokio::spawn(async move {
            if let Ok(uuid) = opened_rx.await {
                let _ = thread_tx.send(uuid);
            }
            drop(permit);
        });
        let done = tokio::spawn(async move {
            let read = async {
                let response = post_stream(&ctx, &server, spec.question()).await?;
                read_stream(response, Some(opened_tx)).await
            };
            tokio::time::timeout(ANSWER_TIMEOUT, read)
                .await
                .context("answer timed out")?
        });
        threads.push(thread_rx);
        running.push(Running {
            tag,
            thread: None,
            done,
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    for (run, rx) in running.iter_mut().zip(threads) {
        // An error before the thread line shows in the join result.
        run.thread = tokio::time::timeout_at(deadline, rx)
            .await
            .ok()
            .and_then(Result::ok);
    }
    Ok(running)
}

/// Makes the upstream end these answers, spread evenly over `spread`.
fn stop_answers(upstream: &Upstream, tags: &[u64], spread: Duration) {
    let now = Instant::now();
    let mut stop = lock(&upstream.stop_at);
    for (i, tag) in tags.iter().enumerate() {
        stop.insert(
            *tag,
            now + spread.mul_f64(i as f64 / tags.len().max(1) as f64),
        );
    }
}

struct Outcome {
    finished: usize,
    e_lines: HashMap<String, usize>,
    statuses: HashMap<u16, usize>,
    failures: Vec<String>,
    /// Final line at the client minus the upstream's end, per answer.
    final_delays: Vec<Duration>,
}

async fn collect(upstream: &Upstream, running: Vec<Running>) -> Outcome {
    let mut out = Outcome {
        finished: 0,
        e_lines: HashMap::new(),
        statuses: HashMap::new(),
        failures: Vec::new(),
        final_delays: Vec::new(),
    };
    for run in running {
        match run.done.await {
            Ok(Ok(got)) => {
                *out.statuses.entry(got.status).or_default() += 1;
                if let Some(e) = got.e_line {
                    *out.e_lines.entry(e).or_default() += 1;
                }
                if let Some(at) = got.final_line {
                    out.finished += 1;
                    let done = lock(&upstream.answers).get(&run.tag).and_then(|t| t.done);
                    if let Some(done) = done {
                        out.final_delays.push(at.saturating_duration_since(done));
                    }
                }
            }
            Ok(Err(err)) => out.failures.push(format!("{err:#}")),
            Err(err) => out.failures.push(err.to_string()),
        }
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn dist(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "{} / {} / {}",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99)),
        ms(percentile(samples, 1.0))
    )
}

fn print_outcome(n: usize, outcome: &mut Outcome) {
    let mut statuses: Vec<_> = outcome.statuses.iter().collect();
    statuses.sort();
    println!(
        "- answers: {n} started, {} ended with the final line; HTTP statuses {:?}; `e` lines {:?}; client failures {}{}",
        outcome.finished,
        statuses,
        outcome.e_lines,
        outcome.failures.len(),
        outcome
            .failures
            .first()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    if !outcome.final_delays.is_empty() {
        println!(
            "- final line after the model's last event (final save + release), p50 / p99 / max: {}",
            dist(&mut outcome.final_delays)
        );
    }
}

/// CPU and time at one moment.
struct Snapshot {
    at: Instant,
    server: u64,
    postgres: HashMap<u32, u64>,
    bench: u64,
    machine: (u64, u64, u64),
}

fn snapshot(server_pid: u32) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        server: cpu_ticks(server_pid).unwrap_or(0),
        postgres: cpu_ticks_named("postgres"),
        bench: cpu_ticks(std::process::id()).unwrap_or(0),
        machine: machine_ticks().unwrap_or_default(),
    }
}

/// CPU used between two snapshots, in cores: server, postgres processes,
/// this benchmark, the machine (busy, steal), out of the machine's cores.
struct CpuUse {
    server: f64,
    postgres: f64,
    bench: f64,
    machine_busy: f64,
    machine_steal: f64,
    cores: f64,
}

fn cpu_use(a: &Snapshot, b: &Snapshot) -> CpuUse {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    let cores_of = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / secs;
    let postgres: u64 = b
        .postgres
        .iter()
        .map(|(pid, t)| t - a.postgres.get(pid).copied().unwrap_or(0).min(*t))
        .sum();
    let total = (b.machine.2 - a.machine.2) as f64;
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    CpuUse {
        server: cores_of(b.server - a.server),
        postgres: cores_of(postgres),
        bench: cores_of(b.bench - a.bench),
        machine_busy: (b.machine.0 - a.machine.0) as f64 / total * cores,
        machine_steal: (b.machine.1 - a.machine.1) as f64 / total * cores,
        cores,
    }
}

fn print_cpu(cpu: &CpuUse, postgres: bool) {
    println!(
        "- CPU in cores (of {:.0}): palisade {:.2}{}, this benchmark (upstream + clients) {:.2}; machine busy {:.2} (other processes {:.2}), steal {:.2}",
        cpu.cores,
        cpu.server,
        if postgres {
            format!(", postgres processes {:.2}", cpu.postgres)
        } else {
            String::new()
        },
        cpu.bench,
        cpu.machine_busy,
        (cpu.machine_busy - cpu.server - cpu.bench - if postgres { cpu.postgres } else { 0.0 })
            .max(0.0),
        cpu.machine_steal,
    );
}

// ---------------------------------------------------------------------------
// Phase 1: statements per generation

/// `idle`: the model sends one delta and then nothing (a slow first token,
/// a model thinking) until the window is over.
async fn phase_writes(ctx: &Arc<Ctx>, db: &mut Db, n: usize, idle: bool) -> Result<()> {
    let env = db.fresh()?;
    let (server, log) = ctx.start_node(
        &env,
        "warn,sqlx::query=debug",
        &format!(
            "writes-{}-{n}{}.log",
            db.name(),
            if idle { "-idle" } else { "" }
        ),
    )?;
    let server = Arc::new(server);
    // ≈ 37 tokens a second of ≈ 4 characters, as models stream prose.
    let settle = Duration::from_secs(5);
    let gap = Duration::from_millis(40);
    let spec = Spec {
        tag: 0,
        gap,
        size: 6,
        deltas: ((ctx.window + settle + Duration::from_secs(120)).as_millis() / gap.as_millis())
            as u64,
        ids: false,
        hold: idle,
    };
    let opened = Instant::now();
    let running = open_answers(ctx, &server, n, &spec).await?;
    let open_time = opened.elapsed();
    tokio::time::sleep(settle).await;
    let (log_a, pg_a, cpu_a) = (lock(&log).clone(), db.pg_stats(), snapshot(server.pid()));
    tokio::time::sleep(ctx.window).await;
    let (log_b, pg_b, cpu_b) = (lock(&log).clone(), db.pg_stats(), snapshot(server.pid()));
    let secs = cpu_b.at.duration_since(cpu_a.at).as_secs_f64();
    let row_size = db
        .query(
            "SELECT CAST(avg(length(content)) AS INTEGER), CAST(avg(length(stream_transcript)) AS INTEGER) \
             FROM messages WHERE generating_lease IS NOT NULL",
        )
        .unwrap_or_default();
    let tags: Vec<u64> = running.iter().map(|r| r.tag).collect();
    stop_answers(&ctx.upstream, &tags, Duration::from_secs(2));
    let mut outcome = collect(&ctx.upstream, running).await;

    let counts = log_b.minus(&log_a);
    let total = counts.total_statements();
    println!(
        "\n#### {}: statements with {n} answer(s) {} (window {secs:.1} s, opened in {:.1} s)\n",
        db.name(),
        if idle {
            "open, the model silent after its first delta"
        } else {
            "streaming 25 deltas of 6 characters (random words) a second"
        },
        open_time.as_secs_f64()
    );
    println!("| statement | count | per answer per second | share |");
    println!("|---|---|---|---|");
    let mut kinds: Vec<_> = counts.statements.iter().filter(|(_, c)| **c > 0).collect();
    kinds.sort_by_key(|(_, c)| std::cmp::Reverse(**c));
    for (kind, count) in &kinds {
        println!(
            "| {kind} | {count} | {:.3} | {:.1} % |",
            **count as f64 / n as f64 / secs,
            **count as f64 * 100.0 / total.max(1) as f64
        );
    }
    println!(
        "| **all** | {total} | **{:.3}** | 100 % |\n",
        total as f64 / n as f64 / secs
    );
    if let (Some(a), Some(b)) = (pg_a, pg_b) {
        let d = b.minus(&a);
        let per = |x: i64| x as f64 / n as f64 / secs;
        println!(
            "- pg_stat (this database): xact_commit {} ({:.2}/answer/s); messages n_tup_upd {} ({:.2}/answer/s, {:.0} % HOT), n_tup_ins {}; threads n_tup_upd {} ({:.3}/answer/s, {:.0} % HOT); other databases' commits in the window: {}",
            d.xact_commit,
            per(d.xact_commit),
            d.messages_upd,
            per(d.messages_upd),
            d.messages_hot as f64 * 100.0 / d.messages_upd.max(1) as f64,
            d.messages_ins,
            d.threads_upd,
            per(d.threads_upd),
            d.threads_hot as f64 * 100.0 / d.threads_upd.max(1) as f64,
            d.other_xacts,
        );
        println!(
            "- WAL (cluster-wide): {} records ({} full-page images), {:.1} KiB ({:.1} KiB/answer/s, {:.0} bytes per progress save), {} WAL syncs ({:.2}/answer/s); messages table + TOAST + indexes now {:.1} MiB",
            d.wal_records,
            d.wal_fpi,
            d.wal_bytes as f64 / 1024.0,
            d.wal_bytes as f64 / 1024.0 / n as f64 / secs,
            d.wal_bytes as f64
                / counts
                    .statements
                    .get("progress save")
                    .copied()
                    .unwrap_or(1)
                    .max(1) as f64,
            d.wal_sync,
            per(d.wal_sync),
            d.messages_size as f64 / 1024.0 / 1024.0,
        );
    }
    if let Some((content, transcript)) = row_size.split_once('|') {
        println!(
            "- each progress save writes the whole answer so far: at the window's end {content} characters of text and {transcript} of transcript (averages)"
        );
    }
    let cpu = cpu_use(&cpu_a, &cpu_b);
    print_cpu(&cpu, db.pg_stats().is_some());
    print_outcome(n, &mut outcome);
    print_warnings("node", &counts);
    Ok(())
}

// ---------------------------------------------------------------------------
// Phase 2: resume lag

/// One answer of the lag phase: direct client on A, followers on B and A.
async fn lag_answer(
    ctx: Arc<Ctx>,
    a: Arc<Server>,
    b: Arc<Server>,
    tag: u64,
    join_after: Duration,
    lines: u64,
) -> Result<(Received, Received, Received)> {
    let spec = Spec {
        tag,
        gap: Duration::from_millis(50),
        size: 60,
        deltas: lines,
        ids: true,
        hold: false,
    };
    let (thread_tx, thread_rx) = tokio::sync::oneshot::channel();
    let response = post_stream(&ctx, &a, spec.question()).await?;
    let direct = tokio::spawn(async move {
        tokio::time::timeout(ANSWER_TIMEOUT, read_stream(response, Some(thread_tx))).await
    });
    let thread = tokio::time::timeout(Duration::from_secs(30), thread_rx)
        .await
        .context("no thread line")??;
    tokio::time::sleep(join_after).await;
    let token = a.token.clone().context("no token")?;
    let follow = |server: &Server| {
        ctx.http
            .get(format!(
                "{}/api/chat-threads/{thread}/stream/",
                server.base()
            ))
            .header("Authorization", format!("Token {token}"))
            .send()
    };
    let (remote, local) = tokio::join!(follow(&b), follow(&a));
    let (remote, local) = tokio::join!(
        tokio::time::timeout(ANSWER_TIMEOUT, read_stream(remote?, None)),
        tokio::time::timeout(ANSWER_TIMEOUT, read_stream(local?, None)),
    );
    let direct = direct.await???;
    Ok((direct, remote??, local??))
}

/// Follower arrival minus direct arrival for every line the direct client
/// got after the follower's first byte; and the same for the final line.
fn lags(direct: &Received, follower: &Received, out: &mut Vec<f64>, finals: &mut Vec<f64>) {
    let Some(joined) = follower.first_byte else {
        return;
    };
    for (id, at) in &direct.ids {
        if *at < joined {
            continue;
        }
        if let Some(seen) = follower.ids.get(id) {
            out.push(signed_ms(*seen, *at));
        }
    }
    if let (Some(f), Some(d)) = (follower.final_line, direct.final_line) {
        finals.push(signed_ms(f, d));
    }
}

fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        later.duration_since(earlier).as_secs_f64() * 1e3
    } else {
        -(earlier.duration_since(later).as_secs_f64() * 1e3)
    }
}

fn dist_ms(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{:.0} | {:.0} | {:.0} | {:.0}",
        percentile(samples, 0.5),
        percentile(samples, 0.9),
        percentile(samples, 0.99),
        percentile(samples, 1.0)
    )
}

async fn phase_lag(
    ctx: &Arc<Ctx>,
    db: &mut Db,
    answers: usize,
    parallel: usize,
    lines: u64,
) -> Result<()> {
    let len = lines as usize;
    let env = db.fresh()?;
    let (a, log_a) = ctx.start_node(&env, "warn", &format!("lag-{}-a.log", db.name()))?;
    let (mut b, log_b) = ctx.start_node(&env, "warn", &format!("lag-{}-b.log", db.name()))?;
    b.token = a.token.clone();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let slots = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for i in 0..answers {
        // Staggered starts; joins spread over 2–4 s into the answer, so
        // the follower's polls meet the saves at every phase.
        let join_after = Duration::from_millis(2000 + (i as u64 * 733) % 2000);
        let stagger =
            Duration::from_millis(10_000 / parallel.max(1) as u64 * (i % parallel) as u64);
        let (ctx, a, b, slots) = (ctx.clone(), a.clone(), b.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            if i < parallel {
                tokio::time::sleep(stagger).await;
            }
            let _slot = slots.acquire_owned().await?;
            let tag = ctx.next_tag.fetch_add(1, Ordering::Relaxed);
            lag_answer(ctx, a, b, tag, join_after, lines).await
        }));
    }
    let (mut remote, mut remote_final, mut local, mut local_final) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut joins_remote, mut joins_local) = (Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut complete = 0;
    for task in tasks {
        match task.await? {
            Ok((direct, r, l)) => {
                if direct.final_line.is_some()
                    && r.final_line.is_some()
                    && l.final_line.is_some()
                    && direct.ids.len() == len
                    && r.ids.len() == len
                    && l.ids.len() == len
                {
                    complete += 1;
                } else {
                    failures.push(format!(
                        "incomplete: direct {} lines (final {}), remote {} (status {}, final {}, e {:?}), local {} (final {})",
                        direct.ids.len(),
                        direct.final_line.is_some(),
                        r.ids.len(),
                        r.status,
                        r.final_line.is_some(),
                        r.e_line,
                        l.ids.len(),
                        l.final_line.is_some()
                    ));
                }
                lags(&direct, &r, &mut remote, &mut remote_final);
                lags(&direct, &l, &mut local, &mut local_final);
                joins_remote.extend(r.first_byte);
                joins_local.extend(l.first_byte);
            }
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    println!(
        "\n#### {}: follower lag behind the direct client ({answers} answers of {lines} lines at 20 lines/s, {parallel} at a time; followers join 2–4 s in)\n",
        db.name()
    );
    println!("| follower | lines | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| other node (saved transcript) | {} | {} |",
        remote.len(),
        dist_ms(&mut remote)
    );
    println!(
        "| other node, final line | {} | {} |",
        remote_final.len(),
        dist_ms(&mut remote_final)
    );
    println!(
        "| same node (in memory) | {} | {} |",
        local.len(),
        dist_ms(&mut local)
    );
    println!(
        "| same node, final line | {} | {} |\n",
        local_final.len(),
        dist_ms(&mut local_final)
    );
    println!(
        "- {complete} of {answers} answers complete on all three clients{}",
        failures
            .first()
            .map(|f| format!("; {} problems, first: {f}", failures.len()))
            .unwrap_or_default()
    );
    print_warnings("node A", &lock(&log_a));
    print_warnings("node B", &lock(&log_b));
    Ok(())
}

// ---------------------------------------------------------------------------
// Phase 3: many slow answers on one node

async fn phase_load(ctx: &Arc<Ctx>, db: &mut Db, n: usize) -> Result<()> {
    let env = db.fresh()?;
    let (server, log) = ctx.start_node(&env, "warn", &format!("load-{}-{n}.log", db.name()))?;
    let server = Arc::new(server);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(server.pid())?;
    // A slow model: 10 deltas of 6 characters a second.
    let settle = Duration::from_secs(5);
    let gap = Duration::from_millis(100);
    let spec = Spec {
        tag: 0,
        gap,
        size: 6,
        deltas: 3_000,
        ids: false,
        hold: false,
    };
    let opened = Instant::now();
    let running = open_answers(ctx, &server, n, &spec).await?;
    let open_time = opened.elapsed();
    let open_ok = running.iter().filter(|r| r.thread.is_some()).count();
    let by_thread: HashMap<String, u64> = running
        .iter()
        .filter_map(|r| Some((r.thread.clone()?, r.tag)))
        .collect();
    tokio::time::sleep(settle).await;
    let pg_a = db.pg_stats();
    let cpu_a = snapshot(server.pid());
    let log_a = lock(&log).clone();
    // Once a second: how long ago the first delta the saved copy lacks was
    // streamed (0 when the copy is complete).
    let mut stale = Vec::new();
    let mut probes = Vec::new();
    let mut missing = Vec::new();
    let mut rss = idle;
    let until = Instant::now() + ctx.window;
    while Instant::now() < until {
        let probe = Instant::now();
        let lengths = db.saved_lengths();
        let now = Instant::now();
        probes.push(now - probe);
        rss = rss.max(rss_kib(server.pid()).unwrap_or(0));
        if let Ok(lengths) = lengths {
            missing.push(by_thread.len().saturating_sub(lengths.len()));
            let answers = lock(&ctx.upstream.answers);
            for (uuid, len) in lengths {
                let Some(t) = by_thread.get(&uuid).and_then(|tag| answers.get(tag)) else {
                    continue;
                };
                let saved = len / t.size.max(1);
                stale.push(
                    t.sent
                        .get(saved)
                        .map_or(Duration::ZERO, |sent| now.saturating_duration_since(*sent)),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(probe.elapsed())).await;
    }
    let cpu_b = snapshot(server.pid());
    let pg_b = db.pg_stats();
    let log_b = lock(&log).clone();
    let secs = cpu_b.at.duration_since(cpu_a.at).as_secs_f64();
    let tags: Vec<u64> = running.iter().map(|r| r.tag).collect();
    stop_answers(&ctx.upstream, &tags, Duration::from_secs(5));
    let mut outcome = collect(&ctx.upstream, running).await;
    let log_end = lock(&log).clone();

    println!(
        "\n#### {}: {n} slow answers at once on one node (10 deltas of 6 characters of random words a second; window {secs:.1} s)\n",
        db.name()
    );
    println!(
        "- opened in {:.1} s ({open_ok} of {n} got their thread line); RSS {:.1} MiB idle → {:.1} MiB, ≈ {:.0} KiB per running answer",
        open_time.as_secs_f64(),
        idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        rss.saturating_sub(idle) as f64 / n as f64
    );
    print_cpu(&cpu_use(&cpu_a, &cpu_b), db.pg_stats().is_some());
    if let (Some(a), Some(b)) = (pg_a, pg_b) {
        let d = b.minus(&a);
        println!(
            "- pg_stat: {:.0} commits/s, progress saves (messages n_tup_upd) {:.0}/s = {:.2}/answer/s, threads n_tup_upd {:.1}/s; WAL {:.1} MiB/s, {:.0} WAL syncs/s",
            d.xact_commit as f64 / secs,
            d.messages_upd as f64 / secs,
            d.messages_upd as f64 / secs / n as f64,
            d.threads_upd as f64 / secs,
            d.wal_bytes as f64 / secs / 1024.0 / 1024.0,
            d.wal_sync as f64 / secs,
        );
    }
    probes.sort();
    missing.sort();
    println!(
        "- saved copy's staleness (age of the oldest delta it lacks), {} samples, p50 / p99 / max: {} (probe query {} median; running answers not visible as generating: max {})",
        stale.len(),
        dist(&mut stale),
        ms(percentile(&probes, 0.5)),
        missing.last().copied().unwrap_or(0)
    );
    print_outcome(n, &mut outcome);
    print_warnings("node, in the window", &log_b.minus(&log_a));
    print_warnings("node, whole run", &log_end);
    Ok(())
}

// ---------------------------------------------------------------------------

fn list(value: &str) -> Result<Vec<usize>> {
    value
        .split(',')
        .map(|v| v.trim().parse().context("a list of numbers"))
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args.next().context(
        "usage: durable_bench BINARY --backend sqlite|postgres [--pg-url URL] [--phases writes,lag,load] …",
    )?;
    let mut backend = String::from("sqlite");
    let mut pg_url = String::from("postgres://postgres@127.0.0.1:5432/palisade_bench");
    let mut phases = String::from("writes,idle,lag,load");
    let mut writes_streams = vec![1, 20, 100];
    let mut idle_streams = vec![20];
    let mut load_streams = vec![100, 300, 1000];
    let mut window = Duration::from_secs(30);
    let mut lag_answers = 40;
    let mut lag_parallel = 4;
    let mut lag_lines = 200;
    let mut log_dir = std::env::temp_dir().join("palisade-durable-bench-logs");
    while let Some(flag) = args.next() {
        let value = args.next().context("flag without value")?;
        match flag.as_str() {
            "--backend" => backend = value,
            "--pg-url" => pg_url = value,
            "--phases" => phases = value,
            "--writes-streams" => writes_streams = list(&value)?,
            "--idle-streams" => idle_streams = list(&value)?,
            "--load-streams" => load_streams = list(&value)?,
            "--window" => window = Duration::from_secs(value.parse()?),
            "--lag-answers" => lag_answers = value.parse()?,
            "--lag-parallel" => lag_parallel = value.parse()?,
            "--lag-lines" => lag_lines = value.parse()?,
            "--log-dir" => log_dir = PathBuf::from(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    // Bounds: a runaway argument cannot start an unbounded load.
    if writes_streams
        .iter()
        .chain(&idle_streams)
        .chain(&load_streams)
        .any(|n| *n > 5_000)
        || lag_answers > 1_000
        || lag_lines > 20_000
        || window > Duration::from_secs(300)
    {
        bail!("at most 5,000 streams, 1,000 lag answers and a 300 s window");
    }
    std::fs::create_dir_all(&log_dir)?;
    let mut db = Db {
        backend: match backend.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres(pg_url),
            _ => bail!("--backend is sqlite or postgres"),
        },
        dir: None,
        runs: 0,
    };

    let upstream = Arc::new(Upstream::default());
    let app = Router::new()
        .fallback(completions)
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = listener.local_addr()?;
    // As model servers do (uvicorn, for one): without it a delta written
    // right after another waits for the ACK of the first, which Palisade's
    // side may delay by 40 ms on a reused connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ctx = Arc::new(Ctx {
        binary,
        upstream,
        upstream_url: format!("http://{upstream_addr}/v1"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(10))
            .build()?,
        log_dir: log_dir.clone(),
        window,
        next_tag: AtomicU64::new(1),
    });
    eprintln!("server logs in {}", log_dir.display());

    for phase in phases.split(',') {
        match phase.trim() {
            "writes" => {
                for n in &writes_streams {
                    eprintln!("{}: writes, {n} answers", db.name());
                    phase_writes(&ctx, &mut db, *n, false).await?;
                }
            }
            "idle" => {
                for n in &idle_streams {
                    eprintln!("{}: writes, {n} silent answers", db.name());
                    phase_writes(&ctx, &mut db, *n, true).await?;
                }
            }
            "lag" => {
                eprintln!("{}: lag, {lag_answers} answers", db.name());
                phase_lag(&ctx, &mut db, lag_answers, lag_parallel, lag_lines).await?;
            }
            "load" => {
                for n in &load_streams {
                    eprintln!("{}: load, {n} answers", db.name());
                    phase_load(&ctx, &mut db, *n).await?;
                }
            }
            other => bail!("unknown phase {other}"),
        }
    }
    let _ = std::io::stdout().flush();
    drop(db);
    Ok(())
}
