//! Palisade's HTTP API: token authentication, the chat session, thread and
//! message endpoints of the reference, OpenAPI and the docs page.
//!
//! Handlers are thin: they parse and validate the request (with the
//! reference's messages), ask the [`Store`], and render the reference's JSON.

pub mod audit;
pub mod auth;
pub mod error;
pub mod pagination;
pub mod params;
pub mod prompt;
pub mod render;
mod routes;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use palisade_guard::Guard;
use palisade_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use routes::ApiDoc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Built once at start: compiling the patterns takes ~0.1 s.
    pub guard: Arc<Guard>,
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    routes::router(state).layer(TraceLayer::new_for_http())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
