//! Benchmark of the embedded model through the provider API: time to first
//! token for a ~40-token prompt, and generated tokens per second.
//!
//! ```text
//! cargo run --release -p palisade-llm --example local_bench
//! CANDLE_NUM_THREADS=1 cargo run --release -p palisade-llm --example local_bench
//! ```
//!
//! Uses the shared model cache (fetching the model once if needed) or
//! `PALISADE_LLM_MODEL_PATH`. Greedy decoding, so runs are comparable.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palisade_llm::local::{LocalConfig, LocalProvider};
use palisade_llm::{CancellationToken, ChatEvent, ChatMessage, ChatProvider, ChatRequest};

/// Measured runs per figure (after one warm-up); `BENCH_RUNS` overrides.
const RUNS: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = LocalConfig {
        model_path: std::env::var_os("PALISADE_LLM_MODEL_PATH").map(Into::into),
        ..LocalConfig::default()
    };
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(RUNS);
    let load_started = Instant::now();
    let provider = tokio::task::spawn_blocking(move || {
        LocalProvider::load_with_progress(&config, &|line| eprintln!("{line}"))
    })
    .await??;
    let load = load_started.elapsed();

    // The template adds SmolLM2's default system message; with it this
    // question makes a prompt of 40 tokens.
    let ttft_request = ChatRequest {
        max_tokens: Some(1),
        temperature: Some(0.0),
        ..ChatRequest::new(vec![ChatMessage::user(
            "Explain why the sky looks blue on a clear day.",
        )])
    };
    let decode_request = ChatRequest {
        max_tokens: Some(256),
        temperature: Some(0.0),
        ..ChatRequest::new(vec![ChatMessage::user(
            "Write a long story about a lighthouse keeper who finds a message in a bottle.",
        )])
    };

    // Warm-up: first-touch of the weights' pages, thread pool start-up.
    run(&provider, decode_request.clone()).await?;

    let mut ttfts = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..runs {
        let result = run(&provider, ttft_request.clone()).await?;
        prompt_tokens = result.prompt_tokens;
        ttfts.push(result.first_token);
    }
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    let mut generated = 0;
    for _ in 0..runs {
        let cpu_before = process_cpu_seconds();
        let result = run(&provider, decode_request.clone()).await?;
        if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds()) {
            cpu_rates.push(result.completion_tokens as f64 / (after - before));
        }
        generated = result.completion_tokens;
        // Tokens after the first one, over the time after the first one:
        // pure decode speed, prefill excluded.
        let decode_time = result.total.saturating_sub(result.first_token);
        rates.push((result.completion_tokens.saturating_sub(1)) as f64 / decode_time.as_secs_f64());
    }

    let threads = std::env::var("CANDLE_NUM_THREADS")
        .or_else(|_| std::env::var("RAYON_NUM_THREADS"))
        .unwrap_or_else(|_| "default (one per core)".into());
    println!("model:               {}", provider.info().name);
    println!("threads:             {threads}");
    println!("load time:           {:.2} s", load.as_secs_f64());
    println!(
        "time to first token: median {:.0} ms, best {:.0} ms ({prompt_tokens}-token prompt, {runs} runs)",
        median_ms(&ttfts),
        ttfts.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    rates.sort_by(f64::total_cmp);
    println!(
        "generation:          median {:.1} tok/s, best {:.1} tok/s ({generated} tokens per run, {runs} runs)",
        rates[rates.len() / 2],
        rates.last().copied().unwrap_or_default(),
    );
    if !cpu_rates.is_empty() {
        cpu_rates.sort_by(f64::total_cmp);
        // Tokens per second of CPU time used by the whole process: with one
        // thread this is the speed on an otherwise idle core, whatever else
        // the machine is doing (wall-clock figures suffer when other jobs
        // compete for the two cores).
        println!(
            "CPU time:            median {:.1} tokens per CPU-second (whole answer, all threads)",
            cpu_rates[cpu_rates.len() / 2]
        );
    }
    Ok(())
}

/// User + system CPU time of this process so far (Linux; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may
    // contain spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

struct RunResult {
    first_token: Duration,
    total: Duration,
    prompt_tokens: u64,
    completion_tokens: u64,
}

async fn run(
    provider: &LocalProvider,
    request: ChatRequest,
) -> Result<RunResult, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut stream = provider.stream(request, CancellationToken::new()).await?;
    let mut first_token = None;
    while let Some(item) = stream.next().await {
        match item? {
            ChatEvent::Delta(_) => {
                first_token.get_or_insert_with(|| started.elapsed());
            }
            ChatEvent::Done { usage, .. } => {
                let usage = usage.unwrap_or_default();
                return Ok(RunResult {
                    first_token: first_token.unwrap_or_else(|| started.elapsed()),
                    total: started.elapsed(),
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                });
            }
        }
    }
    Err("the stream ended without Done".into())
}

fn median_ms(durations: &[Duration]) -> f64 {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted
        .get(sorted.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}
