//! What an operator configures about chat: the switch, the model provider,
//! the persona, how much history the model sees, default token quotas, and
//! the timings of the generation lease.

use std::sync::Arc;
use std::time::Duration;

use palisade_llm::ChatProvider;
use palisade_store::QuotaDefaults;

use crate::prompt::DEFAULT_SYSTEM_PROMPT;

/// How `POST /api/chat/stream/` behaves. Built once at start and shared.
#[derive(Clone)]
pub struct ChatSettings {
    /// `false` answers every stream request with 424 (`PALISADE_CHAT_ENABLED`).
    pub enabled: bool,
    /// The model. `None` answers 409 "LLM inference API URL is not
    /// configured." (the openai provider without a base URL).
    pub provider: Option<Arc<dyn ChatProvider>>,
    /// The system message of every normal call.
    pub system_prompt: String,
    /// History messages sent upstream, newest first chosen; 0 or less sends
    /// none (`PALISADE_HISTORY_LIMIT`).
    pub history_limit: i64,
    /// System default token limits, daily/weekly/monthly; −1 is unlimited.
    pub quota_defaults: QuotaDefaults,
    /// Answers one user may have running at once, across nodes
    /// (`PALISADE_MAX_GENERATIONS_PER_USER`); `None` for no limit.
    pub max_generations_per_user: Option<u32>,
    /// How long a generation lease lasts without renewal. A node that dies
    /// mid-answer frees its threads after at most this long.
    pub lease_ttl: Duration,
    /// How often the node's cancel watcher reads the cancel requests (made
    /// on any node) of the generations running here, in one query; a cancel
    /// served by this node signals its generation directly.
    pub cancel_poll_interval: Duration,
    /// The whole title call, start to end.
    pub title_timeout: Duration,
    /// The longest one answer may take, start to end (`PALISADE_LLM_DEADLINE`):
    /// an upstream that never stops is cut there, with the `e` line.
    pub llm_deadline: Duration,
    /// How often a growing answer is written to its row (at most), so a
    /// dead node loses at most this much of what its clients saw.
    pub save_interval: Duration,
    /// How long a finished answer keeps being retried while the database
    /// cannot store it (`PALISADE_SAVE_RETRY`).
    pub save_retry: Duration,
}

impl ChatSettings {
    /// Chat enabled with this provider and the defaults for everything else.
    pub fn new(provider: Option<Arc<dyn ChatProvider>>) -> ChatSettings {
        ChatSettings {
            enabled: true,
            provider,
            system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
            history_limit: 20,
            quota_defaults: QuotaDefaults::UNLIMITED,
            max_generations_per_user: Some(3),
            // Renewed every ttl/3 (3 s): a dead node's threads are free
            // again within 9 s.
            lease_ttl: Duration::from_secs(9),
            cancel_poll_interval: Duration::from_millis(500),
            title_timeout: Duration::from_secs(30),
            llm_deadline: Duration::from_secs(300),
            save_interval: Duration::from_millis(250),
            save_retry: Duration::from_secs(120),
        }
    }
}

impl std::fmt::Debug for ChatSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSettings")
            .field("enabled", &self.enabled)
            .field(
                "provider",
                &self.provider.as_ref().map(|p| p.name().to_owned()),
            )
            .field("history_limit", &self.history_limit)
            .field("quota_defaults", &self.quota_defaults)
            .field("max_generations_per_user", &self.max_generations_per_user)
            .field("lease_ttl", &self.lease_ttl)
            .field("cancel_poll_interval", &self.cancel_poll_interval)
            .finish_non_exhaustive()
    }
}
