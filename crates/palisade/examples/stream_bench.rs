//! Stream benchmark against the release binary (run it with
//! `scripts/bench-stream.sh`):
//!
//! 1. **Added latency**: an OpenAI-compatible upstream in this process sends
//!    60-character deltas (each long enough to become a markdown line at
//!    once) and notes when it wrote each; the client notes when the NDJSON
//!    line carrying it arrived. The same deltas read straight from the
//!    upstream give the baseline; the difference is what Palisade adds
//!    (SSE parsing, block parser, NDJSON encoding, one more loopback hop).
//! 2. **Memory per open stream**: N streams held open at once (the upstream
//!    sends one delta and then waits), the server's RSS before and after.
//!
//! Usage: `stream_bench BINARY [--streams N] [--samples N]`.

mod bench_common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

use bench_common::{delta, percentile, role_chunk, rss_kib, stop_chunks};

/// Deltas per answer in the latency phase, and the gap between them.
const DELTAS: u64 = 100;
const GAP: Duration = Duration::from_millis(4);

#[derive(Default)]
struct Upstream {
    /// When each delta id was written, for the latency phase.
    sent: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    /// `true`: answer one delta and wait for `release` (memory phase).
    hold: std::sync::atomic::AtomicBool,
    release: Notify,
}

/// A 60-character delta naming its id.
fn payload(id: u64) -> String {
    format!("{:<60}", format!("token-{id:010} "))
}

fn id_in(text: &str) -> Option<u64> {
    let start = text.find("token-")? + "token-".len();
    text.get(start..start + 10)?.parse().ok()
}

async fn completions(State(upstream): State<Arc<Upstream>>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let _ = tx.send(role_chunk()).await;
        if upstream.hold.load(Ordering::Relaxed) {
            let _ = tx.send(delta(&payload(0))).await;
            upstream.release.notified().await;
        } else {
            for _ in 0..DELTAS {
                let id = upstream.next_id.fetch_add(1, Ordering::Relaxed);
                let text = payload(id);
                tokio::time::sleep(GAP).await;
                upstream
                    .sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
                if tx.send(delta(&text)).await.is_err() {
                    return;
                }
            }
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

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "| {name} | {} | {:.0} µs | {:.0} µs | {:.0} µs |",
        samples.len(),
        p50.as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        percentile(&samples, 1.0).as_secs_f64() * 1e6,
    );
    p50
}

/// Reads an NDJSON or SSE body, noting when each delta id arrived.
async fn arrivals(response: reqwest::Response, upstream: &Upstream) -> Result<Vec<Duration>> {
    let mut body = response.bytes_stream();
    let mut pending = String::new();
    let mut latencies = Vec::new();
    while let Some(chunk) = body.next().await {
        let now = Instant::now();
        pending.push_str(std::str::from_utf8(&chunk?)?);
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(id) = id_in(&line) {
                let sent = upstream
                    .sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .copied();
                if let Some(sent) = sent {
                    latencies.push(now.saturating_duration_since(sent));
                }
            }
        }
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .context("usage: stream_bench BINARY [--streams N] [--samples N]")?;
    let mut streams = 1000usize;
    let mut answers = 20usize;
    while let Some(flag) = args.next() {
        let value = args.next().context("flag without value")?;
        match flag.as_str() {
            "--streams" => streams = value.parse()?,
            "--samples" => answers = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }

    let upstream = Arc::new(Upstream::default());
    let app = Router::new()
        .fallback(completions)
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data = std::env::temp_dir().join(format!("palisade-stream-bench-{}", std::process::id()));
    let server = bench_common::serve(
        &binary,
        &[
            ("PALISADE_DATA_DIR", data.display().to_string()),
            ("PALISADE_LLM_PROVIDER", "openai".to_owned()),
            (
                "PALISADE_LLM_BASE_URL",
                format!("http://{upstream_addr}/v1"),
            ),
            ("RUST_LOG", "warn".to_owned()),
            // The held streams are all the admin's: no per-user limit
            // (older binaries ignore the setting).
            ("PALISADE_MAX_GENERATIONS_PER_USER", "0".to_owned()),
            ("PALISADE_MAX_CONNECTIONS", "100000".to_owned()),
        ],
        Stdio::inherit(),
    )?;
    let pid = server.pid();
    let token = server.token.clone().context("no admin token printed")?;
    let base = server.base();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let stream = |body: Value| {
        client
            .post(format!("{base}/api/chat/stream/"))
            .header("Authorization", format!("Token {token}"))
            .json(&body)
            .send()
    };

    // Phase 1: latency, one answer at a time.
    let mut direct = Vec::new();
    let mut through = Vec::new();
    let mut thread: Option<String> = None;
    for round in 0..answers {
        let response = client
            .post(format!("http://{upstream_addr}/v1/chat/completions"))
            .json(&json!({"model": "x", "messages": [], "stream": true}))
            .send()
            .await?;
        direct.extend(arrivals(response, &upstream).await?);
        let body = match &thread {
            Some(t) => json!({"input": format!("question {round}"), "thread_uuid": t}),
            None => json!({"input": "question"}),
        };
        let response = stream(body).await?;
        if !response.status().is_success() {
            bail!("stream answered {}", response.status());
        }
        let got = arrivals(response, &upstream).await?;
        if got.len() as u64 != DELTAS {
            bail!("expected {DELTAS} lines, got {}", got.len());
        }
        through.extend(got);
        if thread.is_none() {
            let threads: Value = client
                .get(format!("{base}/api/chat-threads/"))
                .header("Authorization", format!("Token {token}"))
                .send()
                .await?
                .json()
                .await?;
            thread = threads[0]["uuid"].as_str().map(str::to_owned);
        }
    }
    println!("| path | deltas | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let base_p50 = report("upstream → client directly (baseline)", direct);
    let p50 = report("upstream → Palisade → client", through);
    println!(
        "\nPalisade adds ≈ {:.0} µs per delta at the median.\n",
        (p50.saturating_sub(base_p50)).as_secs_f64() * 1e6
    );

    // Phase 2: memory with many open streams.
    upstream.hold.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid)?;
    let opened = Instant::now();
    let mut held = Vec::with_capacity(streams);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..streams {
        let request = stream(json!({"input": format!("hold {i}")}));
        tasks.spawn(async move {
            let response = request.await?;
            if !response.status().is_success() {
                bail!("stream answered {}", response.status());
            }
            let mut body = response.bytes_stream();
            let mut seen = String::new();
            while !seen.contains("token-") {
                match body.next().await {
                    Some(chunk) => seen.push_str(std::str::from_utf8(&chunk?)?),
                    None => bail!("stream ended early"),
                }
            }
            Ok(body)
        });
    }
    while let Some(result) = tasks.join_next().await {
        held.push(result??);
    }
    let open_time = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_kib(pid)?;
    println!(
        "{streams} open streams (opened in {:.1} s): RSS {:.1} MiB idle → {:.1} MiB, ≈ {:.1} KiB per open stream",
        open_time.as_secs_f64(),
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0,
        loaded.saturating_sub(idle) as f64 / streams as f64
    );
    upstream.release.notify_waiters();
    drop(held);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
