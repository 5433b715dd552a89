//! Criterion benchmarks of the embedded model's tokenizer on the longest
//! input a user may send (50,000 characters): one word of 50,000 letters
//! without a space (the input that used to stall the inference thread) and
//! 50,000 characters of ordinary prose.
//!
//! Beside it, for comparison, Hugging Face's `tokenizers` crate configured
//! the same way (the reference of the tests; `reference_*` entries).
//!
//! Run: `cargo bench -p palisade-llm --bench tokenizer`
//!
//! Uses the default model's tokenizer from the shared cache (fetching the
//! model once if needed) or `PALISADE_LLM_MODEL_PATH`; prints a `skipped:`
//! line when neither is available.

#[path = "../tests/support/tokenizer_reference.rs"]
mod tokenizer_reference;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_llm::local::{LocalConfig, ensure_model, load_tokenizer};

/// The server's limit on one message (`MAX_INPUT_CHARS`).
const CHARS: usize = 50_000;

const PROSE: &str = "Our research group runs molecular dynamics simulations on the \
    HPC cluster every week. Each job needs around 256 cores and two terabytes of memory, \
    and we would like to understand how the billing units are computed for the GPU \
    partition, which offerings include backup storage, and whether the project quota can \
    be raised before the end of the quarter. Please also explain the invoice lines for \
    October, because the storage costs look higher than in September.\n\n";

/// 50,000 pseudo-random lowercase letters (a fixed linear congruential
/// sequence, so every run tokenizes the same word).
fn letters() -> String {
    let mut state: u32 = 12_345;
    (0..CHARS)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((state >> 16) % 26) as u8)
        })
        .collect()
}

fn prose() -> String {
    PROSE.chars().cycle().take(CHARS).collect()
}

fn model_path() -> Option<PathBuf> {
    let config = LocalConfig {
        model_path: std::env::var_os("PALISADE_LLM_MODEL_PATH").map(Into::into),
        ..LocalConfig::default()
    };
    match ensure_model(&config, &|line| eprintln!("{line}")) {
        Ok(path) => Some(path),
        Err(err) => {
            println!("skipped: tokenizer benchmark: {err}");
            None
        }
    }
}

fn bench(c: &mut Criterion) {
    let Some(path) = model_path() else {
        return;
    };
    let tokenizer = match load_tokenizer(&path) {
        Ok(tokenizer) => tokenizer,
        Err(err) => panic!("tokenizer: {err}"),
    };
    let reference = tokenizer_reference::reference_tokenizer(&path);
    let mut group = c.benchmark_group("tokenize");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, text) in [
        ("letters_50k_no_space", letters()),
        ("prose_50k_chars", prose()),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| tokenizer.encode(black_box(&text), false));
        });
        group.bench_function(format!("reference_{name}"), |b| {
            b.iter(|| tokenizer_reference::reference_ids(&reference, black_box(&text)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
