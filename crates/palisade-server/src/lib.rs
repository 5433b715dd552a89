//! Palisade's HTTP API: token authentication, the chat session, thread and
//! message endpoints of the reference, OpenAPI and the docs page.
//!
//! Handlers are thin: they parse and validate the request (with the
//! reference's messages), ask the [`Store`], and render the reference's JSON.

pub mod audit;
pub mod auth;
pub mod error;
pub mod input_guard;
pub mod pagination;
pub mod params;
pub mod password;
pub mod prompt;
pub mod render;
mod routes;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use palisade_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use input_guard::InputGuard;
pub use routes::ApiDoc;
pub use stream::registry::Generations;
pub use stream::settings::ChatSettings;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Built once at start: compiling the patterns takes ~0.1 s.
    pub guard: Arc<dyn InputGuard>,
    pub chat: Arc<ChatSettings>,
    /// The generations running on this node.
    pub generations: Arc<Generations>,
    /// Lifetime of a token issued by password login (`PALISADE_LOGIN_TOKEN_TTL`).
    pub login_token_ttl: Duration,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, guard: Arc<dyn InputGuard>, chat: ChatSettings) -> AppState {
        AppState {
            store,
            guard,
            chat: Arc::new(chat),
            generations: Arc::new(Generations::default()),
            login_token_ttl: DEFAULT_LOGIN_TOKEN_TTL,
        }
    }
}

/// How long a password login's token lasts unless configured otherwise.
pub const DEFAULT_LOGIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long shutdown waits for running generations before cancelling them
/// (their partial answers are stored either way).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    routes::router(state).layer(TraceLayer::new_for_http())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish and running generations store their answers.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let generations = state.generations.clone();
    let _sweeper = stream::recovery::Sweeper::spawn(state.store.clone(), state.chat.lease_ttl);
    // Connection info gives the login lockout the client's address.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    generations.shutdown(SHUTDOWN_GRACE).await;
    served
}
