//! The inference worker: one dedicated OS thread owns the model weights and
//! serves requests one at a time from a bounded queue.
//!
//! Inference is seconds of pure CPU work, so it must never run on the async
//! runtime. One worker (not one per request) because the model's attention
//! cache is per sequence and the machine's cores are already used by the
//! matrix kernels inside one forward pass: a second concurrent generation
//! would only halve the speed of both. Waiting requests queue up to a bound;
//! past it the caller gets `LlmError::Busy` at once instead of a hang.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::LocalError;
use super::gguf_tokenizer::GgufTokenizer;
use super::template::{CHATML_TEMPLATE, ChatTemplate};
use crate::types::{ChatEvent, LlmError, Usage};

/// Prompt tokens fed to the model per forward pass. The whole prompt of a
/// normal request fits in one pass (fast time to first token); longer
/// prompts are cut so the attention scores of one pass stay small
/// (9 heads × 512 × 4096 floats ≈ 75 MB at the end of the context).
const PREFILL_CHUNK: usize = 512;
/// How many recent tokens the repeat penalty looks at.
const REPEAT_WINDOW: usize = 64;

/// A loaded model: weights plus everything needed to turn messages into
/// tokens and tokens into text.
pub(crate) struct Model {
    weights: ModelWeights,
    tokenizer: Arc<GgufTokenizer>,
    context_length: usize,
    stop_tokens: Vec<u32>,
}

/// What the provider knows about the loaded model (for logs and tests).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// `general.name` from the metadata.
    pub name: String,
    /// Usable context in tokens: the model's `context_length`, capped by
    /// the positions the inference code precomputes.
    pub context_length: usize,
    pub tokenizer: Arc<GgufTokenizer>,
}

/// Reads a GGUF header and builds the tokenizer and template from it
/// (cheap: tensor data is not read).
pub(crate) fn read_header(path: &Path) -> Result<(Content, File), LocalError> {
    let mut file = File::open(path).map_err(|source| LocalError::Io {
        context: format!("cannot open the model {}", path.display()),
        source,
    })?;
    let content = Content::read(&mut file).map_err(|err| LocalError::InvalidModel {
        path: path.to_path_buf(),
        detail: err.to_string(),
    })?;
    Ok((content, file))
}

/// Builds the chat template of a GGUF (ChatML when it has none).
pub(crate) fn template_from(
    content: &Content,
    tokenizer: &GgufTokenizer,
) -> Result<ChatTemplate, LocalError> {
    let source = content
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|value| value.to_string().ok())
        .map(String::as_str)
        .unwrap_or(CHATML_TEMPLATE);
    let bos = tokenizer
        .bos_id()
        .map(|id| tokenizer.token_text(id))
        .unwrap_or_default();
    let eos = tokenizer.token_text(tokenizer.eos_id());
    ChatTemplate::new(source, &bos, &eos)
}

impl Model {
    /// Loads the weights (the slow part: the whole file is read). The chat
    /// template is returned beside the model: prompts are built outside
    /// the inference thread (see `prompt.rs`).
    pub(crate) fn load(path: &Path) -> Result<(Self, ModelInfo, ChatTemplate), LocalError> {
        let invalid = |detail: String| LocalError::InvalidModel {
            path: path.to_path_buf(),
            detail,
        };
        let (content, mut file) = read_header(path)?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(LocalError::Unsupported(format!(
                "model architecture {arch:?} in {}: only \"llama\" GGUF models are supported",
                path.display()
            )));
        }
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| path.display().to_string());
        let declared_context = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_SEQ_LEN, |n| n as usize);
        let context_length = declared_context.min(MAX_SEQ_LEN);

        let tokenizer = Arc::new(GgufTokenizer::from_gguf(&content)?);
        let template = template_from(&content, &tokenizer)?;
        let mut stop_tokens = vec![tokenizer.eos_id()];
        for text in [
            "<|im_end|>",
            "<|endoftext|>",
            "<|eot_id|>",
            "<|end_of_text|>",
        ] {
            if let Some(id) = tokenizer.token_id(text)
                && tokenizer.is_control(id)
                && !stop_tokens.contains(&id)
            {
                stop_tokens.push(id);
            }
        }

        let needs_requantizing = content
            .tensor_infos
            .values()
            .any(|info| lacks_simd_kernel(info.ggml_dtype));
        let weights = if needs_requantizing {
            let (content, mut cursor) =
                requantize(content, &mut file).map_err(|err| invalid(err.to_string()))?;
            ModelWeights::from_gguf(content, &mut cursor, &Device::Cpu)
        } else {
            ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
        }
        .map_err(|err| invalid(err.to_string()))?;
        let info = ModelInfo {
            path: path.to_path_buf(),
            name,
            context_length,
            tokenizer: tokenizer.clone(),
        };
        Ok((
            Model {
                weights,
                tokenizer,
                context_length,
                stop_tokens,
            },
            info,
            template,
        ))
    }
}

/// Rewrites the model in memory with its Q4_1/Q5_0/Q5_1 matrices converted
/// to Q8_0.
///
/// candle has SIMD (AVX2) dot-product kernels for Q4_0, Q8_0 and the k-quants
/// but only scalar code for Q4_1 and Q5_x. On this 2-core x86 machine the
/// default model's Q4_1 matrices ran at 7.6 tokens per CPU-second without
/// target features and 28 with AVX2; as Q8_0 they run at 34 and 39. Q8_0
/// represents every Q4_1 value almost exactly, so answers do not change in
/// substance; the cost is ~45 MB more memory and ~0.6 s more load time.
fn requantize(
    content: Content,
    file: &mut File,
) -> candle_core::Result<(Content, std::io::Cursor<Vec<u8>>)> {
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, info) in &content.tensor_infos {
        let tensor = content.tensor(file, name, &Device::Cpu)?;
        // A matrix whose rows are not a multiple of 32 cannot be Q8_0; it
        // stays as it is (slower, still correct).
        let tensor = if lacks_simd_kernel(info.ggml_dtype) {
            tensor
                .dequantize(&Device::Cpu)
                .and_then(|dense| QTensor::quantize(&dense, GgmlDType::Q8_0))
                .unwrap_or(tensor)
        } else {
            tensor
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &candle_core::quantized::gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut cursor = std::io::Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut cursor, &metadata, &refs)?;
    cursor.set_position(0);
    let content = Content::read(&mut cursor)?;
    Ok((content, cursor))
}

/// Quantisations for which candle has only scalar dot products.
fn lacks_simd_kernel(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// Sampling settings of one request, already merged with the defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sampler {
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
    pub seed: u64,
}

/// One request for the worker.
pub(crate) struct Job {
    /// The prompt's token ids, already fitted to the context.
    pub prompt: Vec<u32>,
    pub sampler: Sampler,
    pub cancel: CancellationToken,
    pub events: UnboundedSender<Result<ChatEvent, LlmError>>,
}

/// Starts the worker thread. It ends when every sender is dropped.
pub(crate) fn spawn(model: Model, queue_capacity: usize) -> Result<SyncSender<Job>, LocalError> {
    let (sender, receiver) = sync_channel(queue_capacity);
    thread::Builder::new()
        .name("palisade-llm-local".into())
        .spawn(move || worker(model, receiver))
        .map_err(|source| LocalError::Io {
            context: "cannot start the inference thread".into(),
            source,
        })?;
    Ok(sender)
}

fn worker(mut model: Model, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        // A request cancelled (or abandoned) while it waited costs nothing.
        if job.cancel.is_cancelled() || job.events.is_closed() {
            let _ = job.events.send(Err(LlmError::Cancelled));
            continue;
        }
        let events = job.events.clone();
        // A panic inside the numeric code must cost one answer, not the
        // worker: the next request starts from position 0, which resets the
        // attention cache.
        let outcome = catch_unwind(AssertUnwindSafe(|| model.run(&job)));
        let terminal = match outcome {
            Ok(Ok(terminal)) => terminal,
            Ok(Err(err)) => Some(Err(LlmError::Upstream(format!("local model: {err}")))),
            Err(_) => Some(Err(LlmError::Upstream(
                "local model: inference failed unexpectedly".into(),
            ))),
        };
        if let Some(item) = terminal {
            let _ = events.send(item);
        }
    }
}

impl Model {
    /// Generates one answer, sending deltas as they come. Returns the
    /// terminal item to send (`None` when the receiver is gone).
    fn run(&mut self, job: &Job) -> Result<Option<Result<ChatEvent, LlmError>>, GenError> {
        let sampler = job.sampler;
        let max_tokens = sampler.max_tokens.max(1) as usize;
        let prompt = &job.prompt;
        let prompt_len = prompt.len();

        let mut logits_processor = LogitsProcessor::from_sampling(
            sampler.seed,
            if sampler.temperature <= 0.0 {
                Sampling::ArgMax
            } else if sampler.top_p > 0.0 && sampler.top_p < 1.0 {
                Sampling::TopP {
                    p: f64::from(sampler.top_p),
                    temperature: f64::from(sampler.temperature),
                }
            } else {
                Sampling::All {
                    temperature: f64::from(sampler.temperature),
                }
            },
        );

        let cancelled = || job.cancel.is_cancelled() || job.events.is_closed();
        let mut logits = None;
        let mut pos = 0;
        for chunk in prompt.chunks(PREFILL_CHUNK) {
            if cancelled() {
                return Ok(Some(Err(LlmError::Cancelled)));
            }
            logits = Some(self.forward(chunk, pos)?);
            pos += chunk.len();
        }
        let Some(mut logits) = logits else {
            return Err(GenError("the prompt is empty".into()));
        };

        let mut history = prompt.clone();
        let mut text = Utf8Stream::default();
        let mut completion = 0usize;
        let finish_reason = loop {
            if cancelled() {
                return Ok(Some(Err(LlmError::Cancelled)));
            }
            if sampler.repeat_penalty != 1.0 {
                let start = history.len().saturating_sub(REPEAT_WINDOW);
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    sampler.repeat_penalty,
                    &history[start..],
                )?;
            }
            let next = logits_processor.sample(&logits)?;
            if self.stop_tokens.contains(&next) {
                break "stop";
            }
            completion += 1;
            history.push(next);
            if !self.tokenizer.is_control(next)
                && let Some(delta) = text.push(self.tokenizer.token_bytes(next))
                && job.events.send(Ok(ChatEvent::Delta(delta))).is_err()
            {
                return Ok(None);
            }
            if completion >= max_tokens || pos >= self.context_length {
                break "length";
            }
            logits = self.forward(&[next], pos)?;
            pos += 1;
        };
        if let Some(rest) = text.finish()
            && job.events.send(Ok(ChatEvent::Delta(rest))).is_err()
        {
            return Ok(None);
        }
        Ok(Some(Ok(ChatEvent::Done {
            usage: Some(Usage {
                prompt_tokens: prompt_len as u64,
                completion_tokens: completion as u64,
            }),
            finish_reason: Some(finish_reason.into()),
        })))
    }

    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor, GenError> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        Ok(self.weights.forward(&input, pos)?.squeeze(0)?)
    }
}

/// A failure inside generation (numeric errors from candle).
#[derive(Debug)]
pub(crate) struct GenError(pub String);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<candle_core::Error> for GenError {
    fn from(err: candle_core::Error) -> Self {
        GenError(err.to_string())
    }
}

/// Turns token bytes into text pieces, holding back a multi-byte character
/// until all its bytes have arrived (one emoji can span several tokens).
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes; returns the text that is complete so far, if any.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    break;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // An incomplete character at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Whatever is left at the end (an unfinished character becomes U+FFFD).
    pub(crate) fn finish(&mut self) -> Option<String> {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        (!rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_waits_for_whole_characters() {
        let mut stream = Utf8Stream::default();
        let smile = "🙂".as_bytes();
        assert_eq!(stream.push(b"a"), Some("a".into()));
        assert_eq!(stream.push(&smile[..1]), None);
        assert_eq!(stream.push(&smile[1..3]), None);
        assert_eq!(stream.push(&smile[3..]), Some("🙂".into()));
        assert_eq!(stream.push(&[0xff, b'b']), Some("\u{FFFD}b".into()));
        assert_eq!(stream.push(&smile[..2]), None);
        assert_eq!(stream.finish(), Some("\u{FFFD}".into()));
        assert_eq!(stream.finish(), None);
    }
}
