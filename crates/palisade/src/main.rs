//! The `palisade` binary: serve the API, apply migrations, manage users and
//! tokens. Logs go to stderr so that stdout carries only command output (a
//! script can capture `palisade token create` directly).

mod config;
mod scan;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use palisade_llm::local::LocalProvider;
use palisade_llm::{ChatProvider, OpenAiProvider};
use palisade_server::AppState;
use palisade_store::{NewUser, Store, StoreError};
use tracing_subscriber::EnvFilter;

use config::{Config, LlmProvider, Overrides};

/// mimalloc instead of the system allocator: request handling allocates many
/// small, short-lived buffers, and glibc's malloc showed up at ~13 % of CPU
/// in the API benchmark profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Self-hosted chat-assistant backend"
)]
struct Cli {
    /// Configuration file [default: ./palisade.toml, if present]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory for the SQLite file [env: PALISADE_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [env: PALISADE_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (applies migrations first).
    Serve {
        /// Listen address [env: PALISADE_BIND] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        bind: Option<std::net::SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the input guards' verdict for a text as JSON: matched patterns
    /// with spans, PII detections, the redacted text and the warning.
    Scan {
        /// File to read [default: standard input]
        file: Option<PathBuf>,
        /// One verdict per input line (JSON Lines), for bulk evaluation.
        #[arg(long)]
        jsonl: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create(CreateUser),
}

#[derive(Args)]
struct CreateUser {
    username: String,
    #[arg(long, default_value = "")]
    full_name: String,
    #[arg(long, default_value = "")]
    email: String,
    /// Staff see and moderate every user's chats.
    #[arg(long)]
    staff: bool,
    /// Support users see every user's chats, like staff.
    #[arg(long)]
    support: bool,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it (only the token, on stdout).
    Create {
        username: String,
        /// Lifetime, e.g. `90d` or `12h` [default: never expires]
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let bind = match &cli.command {
        Command::Serve { bind } => *bind,
        _ => None,
    };
    let overrides = Overrides {
        bind,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    if let Command::Scan { file, jsonl } = &cli.command {
        // Pure text processing: no database needed.
        return scan::run(&config.guard(), file.as_deref(), *jsonl);
    }
    let url = config.database_url()?;
    let store = palisade_store::connect(&url)
        .await
        .with_context(|| format!("opening database {url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating database {url}"))?;

    match cli.command {
        Command::Serve { .. } => serve(&config, store).await,
        Command::Migrate => {
            eprintln!("Database {url} is up to date.");
            Ok(())
        }
        // Answered above, before any database is opened.
        Command::Scan { .. } => Ok(()),
        Command::User(UserCommand::Create(args)) => create_user(store.as_ref(), args).await,
        Command::Token(TokenCommand::Create { username, ttl }) => {
            let Some(user) = store.user_by_username(&username).await? else {
                bail!(
                    "no user named {username:?}; create it with `palisade user create {username}`"
                );
            };
            let token = palisade_server::auth::issue_token(store.as_ref(), &user, ttl).await?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn create_user(store: &dyn Store, args: CreateUser) -> Result<()> {
    let new = NewUser {
        username: args.username.trim().to_owned(),
        full_name: args.full_name,
        email: args.email,
        is_staff: args.staff,
        is_support: args.support,
    };
    if new.username.is_empty() {
        bail!("the username may not be blank");
    }
    match store.create_user(&new).await {
        Ok(user) => {
            eprintln!("Created user {} ({}).", user.username, user.uuid.simple());
            Ok(())
        }
        Err(StoreError::Conflict(_)) => bail!("a user named {:?} already exists", new.username),
        Err(err) => Err(err.into()),
    }
}

/// On an empty database, creates the staff user `admin` and prints its token
/// once: the only way in on a fresh install.
async fn bootstrap_admin(config: &Config, store: &dyn Store) -> Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let admin = store
        .create_user(&NewUser {
            username: "admin".into(),
            full_name: "Administrator".into(),
            is_staff: true,
            ..NewUser::default()
        })
        .await?;
    let token = palisade_server::auth::issue_token(store, &admin, None).await?;
    println!(
        "\nCreated the staff user \"admin\". Its API token is shown only this once:\n\n    {token}\n\n\
         Call the API with it, for example:\n\n    \
         curl -H \"Authorization: Token {token}\" http://{}/api/chat-sessions/current/\n",
        config.bind
    );
    Ok(())
}

async fn serve(config: &Config, store: Arc<dyn Store>) -> Result<()> {
    bootstrap_admin(config, store.as_ref()).await?;
    let guard = palisade_guard::Guard::new(&config.guard()).context("building the input guards")?;
    let provider = chat_provider(config).await?;
    let state = AppState::new(
        store.clone(),
        Arc::new(guard),
        config.chat_settings(provider),
    );
    // Bound last, so that an open port means the server is ready to answer.
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(
        address = %config.bind,
        database = store.backend(),
        "Palisade is listening on http://{}/ (API docs at /api/docs/)",
        config.bind
    );
    palisade_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The model behind the stream endpoint. `None` (the endpoint answers 409)
/// when the openai provider has no base URL.
async fn chat_provider(config: &Config) -> Result<Option<Arc<dyn ChatProvider>>> {
    if !config.chat_enabled {
        return Ok(None);
    }
    match config.llm_provider {
        LlmProvider::Openai => {
            let Some(openai) = config.openai() else {
                tracing::warn!(
                    "PALISADE_LLM_PROVIDER=openai but PALISADE_LLM_BASE_URL is not set: \
                     chat requests will be answered with 409"
                );
                return Ok(None);
            };
            tracing::info!(base_url = %openai.base_url, model = %openai.model, "using an OpenAI-compatible model server");
            let provider = OpenAiProvider::new(openai).context("configuring the LLM provider")?;
            Ok(Some(Arc::new(provider)))
        }
        LlmProvider::Local => {
            let local = config.local();
            // Loading reads ~100 MB (and may first fetch it): off the runtime.
            let provider = tokio::task::spawn_blocking(move || {
                LocalProvider::load_with_progress(&local, &|line| eprintln!("{line}"))
            })
            .await
            .context("loading the embedded model")?
            .context("loading the embedded model")?;
            Ok(Some(Arc::new(provider)))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests can finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
