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
    /// Set a user's password for the web app and `POST /api-auth/password/`.
    /// Reads one line from standard input when it is not a terminal;
    /// otherwise asks twice, without echo.
    SetPassword { username: String },
    /// Stop a user from logging in or using any token (their chats stay).
    Deactivate { username: String },
    /// Let a deactivated user in again.
    Activate { username: String },
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
    /// Revoke every token of a user (API tokens and web-app logins).
    Revoke { username: String },
}

/// Logs go to stderr: readable text by default, one JSON object per line
/// with `PALISADE_LOG_FORMAT=json` (for log shippers).
fn init_logging() -> Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let format = std::env::var("PALISADE_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        "json" => builder.json().with_current_span(true).init(),
        other => bail!("PALISADE_LOG_FORMAT={other:?}: use text or json"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(err) = init_logging() {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }

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
        database_url: cli.database_url.as_deref().map(config::SecretUrl::from),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    if let Command::Scan { file, jsonl } = &cli.command {
        // Pure text processing: no database needed.
        return scan::run(&config.guard(), file.as_deref(), *jsonl);
    }
    // A management command run from another folder must not quietly start
    // a new, empty default database there.
    let manages = matches!(cli.command, Command::User(_) | Command::Token(_));
    if let Some(file) = config
        .default_sqlite_file()
        .filter(|file| manages && !file.exists())
    {
        bail!(
            "there is no database at {}: run this command where `palisade serve` runs, \
             or name the database with --data-dir DIR or --database-url URL",
            file.display()
        );
    }
    let url = config.database_url()?;
    let store = palisade_store::connect(&url)
        .await
        .with_context(|| format!("opening database {url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating database {url}"))?;

    let db = Database {
        store: store.as_ref(),
        url: &url,
    };
    match cli.command {
        Command::Serve { .. } => serve(&config, store.clone(), &url).await,
        Command::Migrate => {
            eprintln!("Database {url} is up to date.");
            Ok(())
        }
        // Answered above, before any database is opened.
        Command::Scan { .. } => Ok(()),
        Command::User(UserCommand::Create(args)) => create_user(&db, args).await,
        Command::User(UserCommand::SetPassword { username }) => {
            let user = db.user(&username).await?;
            let password = read_new_password(&username)?;
            palisade_server::password::set_password(store.as_ref(), &user, &password)
                .await
                .with_context(|| format!("setting the password of {username:?}"))?;
            eprintln!("Password of {username} set.");
            Ok(())
        }
        Command::User(UserCommand::Deactivate { username }) => {
            set_active(&db, &username, false).await
        }
        Command::User(UserCommand::Activate { username }) => set_active(&db, &username, true).await,
        Command::Token(TokenCommand::Create { username, ttl }) => {
            let user = db.user(&username).await?;
            let token = palisade_server::auth::issue_token(store.as_ref(), &user, ttl).await?;
            println!("{token}");
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { username }) => {
            let user = db.user(&username).await?;
            let revoked = store.revoke_user_tokens(user.id).await?;
            eprintln!("Revoked {revoked} token(s) of {username}.");
            Ok(())
        }
    }
}

/// The database a management command works on, named in its errors so that
/// a command run against the wrong database says so.
struct Database<'a> {
    store: &'a dyn Store,
    url: &'a palisade_store::DatabaseUrl,
}

impl Database<'_> {
    async fn user(&self, username: &str) -> Result<palisade_store::User> {
        match self.store.user_by_username(username).await? {
            Some(user) => Ok(user),
            None => bail!(
                "no user named {username:?} in the database {}; create it with \
                 `palisade user create {username}`, or point --data-dir/--database-url at \
                 the right database",
                self.url
            ),
        }
    }
}

async fn set_active(db: &Database<'_>, username: &str, active: bool) -> Result<()> {
    let user = db.user(username).await?;
    db.store.set_user_active(user.id, active).await?;
    eprintln!(
        "{username} is {}.",
        if active {
            "active again"
        } else {
            "deactivated: their tokens and logins stop working"
        }
    );
    Ok(())
}

/// One line from a pipe, or a password typed twice at a terminal.
fn read_new_password(username: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input (expected one line)");
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!("New password for {username}: "))
        .context("reading the password")?;
    if first.is_empty() {
        bail!("the password may not be blank");
    }
    let second = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

async fn create_user(db: &Database<'_>, args: CreateUser) -> Result<()> {
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
    match db.store.create_user(&new).await {
        Ok(user) => {
            eprintln!(
                "Created user {} ({}) in the database {}.",
                user.username,
                user.uuid.simple(),
                db.url
            );
            Ok(())
        }
        Err(StoreError::Conflict(_)) => bail!(
            "a user named {:?} already exists in the database {}",
            new.username,
            db.url
        ),
        Err(err) => Err(err.into()),
    }
}

/// What a first start tells its operator, once.
struct FirstStart {
    password: String,
    token: String,
}

/// On an empty database, creates the staff user `admin` with a random
/// password and an API token: the only way in on a fresh install.
async fn bootstrap_admin(store: &dyn Store) -> Result<Option<FirstStart>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let admin = store
        .create_user(&NewUser {
            username: "admin".into(),
            full_name: "Administrator".into(),
            is_staff: true,
            ..NewUser::default()
        })
        .await?;
    let password = random_password();
    palisade_server::password::set_password(store, &admin, &password)
        .await
        .context("setting the admin password")?;
    let token = palisade_server::auth::issue_token(store, &admin, None).await?;
    Ok(Some(FirstStart { password, token }))
}

/// 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I):
/// about 113 bits, easy to type from a terminal.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rand::Rng::random_range(&mut rng, 0..ALPHABET.len())]))
        .collect()
}

/// The address a person on this machine types into a browser: a wildcard
/// bind address is reached through loopback.
fn browser_url(bind: std::net::SocketAddr) -> String {
    let host = match bind.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/", bind.port())
}

fn print_first_start(first: &FirstStart, url: &str) {
    let FirstStart { password, token } = first;
    println!(
        "\nCreated the staff user \"admin\". Its password and API token are shown only this once:\n\n    \
         password:  {password}\n    \
         API token: {token}\n\n\
         Open {url} in your browser and log in as admin with that password.\n\
         Change it with `palisade user set-password admin`.\n\n\
         Or call the API with the token, for example:\n\n    \
         curl -H \"Authorization: Token {token}\" {url}api/chat-sessions/current/\n"
    );
}

async fn serve(
    config: &Config,
    store: Arc<dyn Store>,
    url: &palisade_store::DatabaseUrl,
) -> Result<()> {
    // Settings are checked before the slow parts (the model) start.
    config.save_retry()?;
    let grace = config.shutdown_grace()?;
    let login_token_ttl = config.login_token_ttl()?;
    let connections = config.connection_limits()?;
    // The port is taken before the slow parts (the model), so a second
    // server on a busy port fails at once. Until the app serves, clients
    // wait in the listen backlog.
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| {
            format!(
                "binding {} (is another server using it? choose another address with --bind or PALISADE_BIND)",
                config.bind
            )
        })?;
    let first_start = bootstrap_admin(store.as_ref()).await?;
    let guard = palisade_guard::Guard::new(&config.guard()).context("building the input guards")?;
    let provider = chat_provider(config).await?;
    let mut state = AppState::new(
        store.clone(),
        Arc::new(guard),
        config.chat_settings(provider)?,
    );
    state.login_token_ttl = login_token_ttl;
    state.connections = connections;
    let metrics_token = config.metrics_token.0.trim();
    state.metrics_token = (!metrics_token.is_empty()).then(|| metrics_token.to_owned());
    let address = browser_url(config.bind);
    // Printed after the model is loaded (its fetch may print a lot), so it
    // is the last thing on the screen when the server is ready.
    if let Some(first) = &first_start {
        print_first_start(first, &address);
    }
    tracing::info!(
        address = %config.bind,
        database = %url,
        "Palisade is listening: open {address} in a browser (API docs at {address}api/docs/)"
    );
    let (stop, hurry) = shutdown_signals();
    palisade_server::serve_with_grace(listener, state, stop, hurry, grace).await?;
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
            // Without userinfo: `https://user:pass@host` is logged as `https://host`.
            tracing::info!(
                base_url = %palisade_llm::url_for_logs(&openai.base_url),
                model = %openai.model,
                "using an OpenAI-compatible model server"
            );
            let provider = OpenAiProvider::new(openai).context("configuring the LLM provider")?;
            Ok(Some(Arc::new(provider)))
        }
        LlmProvider::Local => {
            let local = config.local();
            // Loading reads ~100 MB (and may first fetch it): off the runtime.
            // Its progress lines are logged (to stderr) by the loader itself.
            let provider = tokio::task::spawn_blocking(move || {
                LocalProvider::load_with_progress(&local, &|_line| {})
            })
            .await
            .context("loading the embedded model")?
            .context("loading the embedded model")?;
            Ok(Some(Arc::new(provider)))
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, whichever comes next; its name.
async fn next_signal(
    #[cfg(unix)] terminate: &mut Option<tokio::signal::unix::Signal>,
) -> &'static str {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match terminate {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    }
}

/// Two futures: the first signal (stop accepting, give running answers the
/// grace period) and the second (stop them now). Both are logged.
fn shutdown_signals() -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => Some(signal),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    None
                }
            };
        let name = next_signal(
            #[cfg(unix)]
            &mut terminate,
        )
        .await;
        tracing::info!(
            signal = name,
            "shutting down; a second signal stops running answers at once"
        );
        let _ = first_tx.send(());
        let name = next_signal(
            #[cfg(unix)]
            &mut terminate,
        )
        .await;
        tracing::warn!(signal = name, "second signal");
        let _ = second_tx.send(());
    });
    // A dropped sender (the listener task died) must not read as a signal.
    let first = async move {
        if first_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let second = async move {
        if second_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    (first, second)
}
