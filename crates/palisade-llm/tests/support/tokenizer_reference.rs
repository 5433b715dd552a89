//! Hugging Face's `tokenizers` crate configured as SmolLM2's own
//! `tokenizer.json` (byte-level BPE; pre-tokenizer: every digit on its own,
//! then GPT-2's byte-level rule), built from a GGUF file's vocabulary and
//! merges: the reference that Palisade's hand-written tokenizer is checked
//! against, and measured beside. Shared by the tests and the benchmark
//! (`#[path]`), never part of the library.

use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{PreTokenizerWrapper, Tokenizer};

/// The reference tokenizer for a GGUF with `tokenizer.ggml.pre = smollm`.
pub fn reference_tokenizer(path: &Path) -> Tokenizer {
    let mut file = File::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let content = Content::read(&mut file).unwrap_or_else(|err| panic!("GGUF header: {err}"));
    let strings = |key: &str| -> Vec<String> {
        content.metadata[key]
            .to_vec()
            .unwrap_or_else(|err| panic!("{key}: {err}"))
            .iter()
            .map(|value| {
                value
                    .to_string()
                    .cloned()
                    .unwrap_or_else(|err| panic!("{key}: {err}"))
            })
            .collect()
    };
    let mut vocab = Vocab::new();
    for (id, token) in strings("tokenizer.ggml.tokens").into_iter().enumerate() {
        vocab.entry(token).or_insert(id as u32);
    }
    let merges: Merges = strings("tokenizer.ggml.merges")
        .iter()
        .filter_map(|line| line.split_once(' '))
        .map(|(left, right)| (left.to_string(), right.to_string()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .unwrap_or_else(|err| panic!("reference BPE: {err}"));
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]))));
    tokenizer
}

/// The reference's ids for `text` (no special tokens added).
pub fn reference_ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer
        .encode(text, false)
        .unwrap_or_else(|err| panic!("reference encode: {err}"))
        .get_ids()
        .to_vec()
}
