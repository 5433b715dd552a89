//! Palisade's HTTP API: token authentication, the chat session, thread and
//! message endpoints of the reference, OpenAPI and the docs page.
//!
//! Handlers are thin: they parse and validate the request (with the
//! reference's messages), ask the [`Store`], and render the reference's JSON.

pub mod audit;
pub mod auth;
pub mod error;
mod head_limits;
pub mod input_guard;
pub mod listener;
pub mod metrics;
pub mod openapi;
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
pub use listener::ConnectionLimits;
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
    pub metrics: Arc<metrics::Metrics>,
    /// Bearer token `/metrics` requires (`PALISADE_METRICS_TOKEN`); open
    /// when `None`.
    pub metrics_token: Option<String>,
    /// Timeouts and the cap on open connections of this node.
    pub connections: ConnectionLimits,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, guard: Arc<dyn InputGuard>, chat: ChatSettings) -> AppState {
        AppState {
            store,
            guard,
            chat: Arc::new(chat),
            generations: Arc::new(Generations::default()),
            login_token_ttl: DEFAULT_LOGIN_TOKEN_TTL,
            metrics: Arc::new(metrics::Metrics::default()),
            metrics_token: None,
            connections: ConnectionLimits::default(),
        }
    }
}

/// How long a password login's token lasts unless configured otherwise.
pub const DEFAULT_LOGIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long shutdown waits for running generations before cancelling them
/// (their partial answers are stored either way).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The request id header: taken from the client (or a proxy) when present,
/// generated otherwise, carried in the request's log lines and returned.
pub const REQUEST_ID: &str = "x-request-id";

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    use axum::http::HeaderName;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let request_id = HeaderName::from_static(REQUEST_ID);
    // Only the metrics, not the whole state: the middleware's state is
    // cloned for every request.
    let metrics_layer = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    // Outermost last: the id is set before the trace span opens, and copied
    // onto the response on the way out.
    routes::router(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            params::BODY_READ_LIMIT,
        ))
        .layer(axum::middleware::from_fn(head_limits::check))
        .layer(metrics_layer)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %id,
                )
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops as
/// [`serve_with_grace`] does with the default grace period.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_grace(
        listener,
        state,
        shutdown,
        std::future::pending(),
        SHUTDOWN_GRACE,
    )
    .await
}

/// Serves `app` on `listener`. When `stop` resolves, the listener closes at
/// once and running answers get `grace` to finish (less if `hurry`
/// resolves first: a second signal); then they are cancelled, their partial
/// answers stored and their streams ended with an `e` line. Returns when
/// every connection and generation has ended.
pub async fn serve_with_grace(
    listener: TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    hurry: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let generations = state.generations.clone();
    let _sweeper = stream::recovery::Sweeper::spawn(
        state.store.clone(),
        state.metrics.clone(),
        state.chat.lease_ttl,
    );
    let _cancel_watcher = stream::recovery::CancelWatcher::spawn(
        state.store.clone(),
        generations.clone(),
        state.chat.cancel_poll_interval,
    );
    let stopping = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let signalled = stopping.clone();
        async move {
            stop.await;
            signalled.cancel();
        }
    });
    // The grace period runs from the signal, beside the graceful shutdown
    // (which waits for open streams, and so for their answers).
    let deadline = tokio::spawn({
        let generations = generations.clone();
        let stopping = stopping.clone();
        async move {
            stopping.cancelled().await;
            tracing::info!(
                running = generations.len(),
                grace = ?grace,
                "stopping: no new connections; running answers have the grace period to finish"
            );
            tokio::select! {
                () = tokio::time::sleep(grace) => {
                    tracing::warn!(running = generations.len(), "grace period over; stopping running answers");
                }
                () = hurry => {
                    tracing::warn!(running = generations.len(), "second signal; stopping running answers now");
                }
            }
            generations.stop_all();
        }
    });
    let limits = state.connections;
    listener::serve(listener, app(state), limits, stopping).await;
    // Answers whose clients left are still running: they get the rest of
    // the grace period too.
    generations.wait().await;
    deadline.abort();
    Ok(())
}
