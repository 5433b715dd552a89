//! The route table. Every endpoint answers unknown methods with DRF's 405
//! body (after authentication, as DRF checks credentials first) and OPTIONS
//! with a small metadata object; unknown paths get a JSON 404.

mod docs;
mod guard;
mod login;
mod messages;
mod sessions;
mod stream;
mod threads;
mod web;

use axum::Json;
use axum::Router;
use axum::http::header::ALLOW;
use axum::http::{HeaderValue, Method};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, any, get, post};
use serde_json::json;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

pub use docs::ApiDoc;

/// An endpoint: its handlers, plus OPTIONS and the 405 fallback.
fn endpoint(
    name: &'static str,
    allow: &'static str,
    handlers: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    handlers
        .options(move |_user: AuthUser| async move {
            let body = json!({
                "name": name,
                "description": "",
                "renders": ["application/json"],
                "parses": ["application/json"],
            });
            ([(ALLOW, HeaderValue::from_static(allow))], Json(body))
        })
        .fallback(move |user: AuthUser, method: Method| method_not_allowed(user, method, allow))
}

/// 405 with the `Allow` header RFC 9110 requires on it (DRF sends it too).
async fn method_not_allowed(
    _user: AuthUser,
    method: Method,
    allow: &'static str,
) -> impl IntoResponse {
    not_allowed(method, allow)
}

fn not_allowed(method: Method, allow: &'static str) -> impl IntoResponse {
    (
        [(ALLOW, HeaderValue::from_static(allow))],
        ApiError::MethodNotAllowed(method.to_string()),
    )
}

async fn not_found() -> impl IntoResponse {
    ApiError::not_found()
}

/// The load balancer's liveness probe: no database, no authentication.
async fn health() -> &'static str {
    "ok"
}

/// The readiness probe: 200 while this node can serve (its database
/// answers), 503 with the reason otherwise, so a load balancer stops sending
/// traffic to a node whose database is gone. No authentication.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    match state.store.ping().await {
        Ok(()) => {
            Json(json!({"status": "ready", "database": state.store.backend()})).into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, "not ready: the database does not answer");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from_static("5"),
                )],
                Json(json!({"detail": "The database is unavailable. Please try again shortly."})),
            )
                .into_response()
        }
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/chat-sessions/",
            endpoint(
                "Chat Session List",
                "GET, HEAD, OPTIONS",
                get(sessions::list),
            ),
        )
        .route(
            "/api/chat-sessions/current/",
            endpoint(
                "Chat Session Current",
                "GET, HEAD, OPTIONS",
                get(sessions::current),
            ),
        )
        .route(
            "/api/chat-sessions/{uuid}/",
            endpoint(
                "Chat Session Instance",
                "GET, HEAD, OPTIONS",
                get(sessions::retrieve),
            ),
        )
        .route(
            "/api/chat-threads/",
            endpoint("Chat Thread List", "GET, HEAD, OPTIONS", get(threads::list)),
        )
        .route(
            "/api/chat-threads/{uuid}/",
            endpoint(
                "Chat Thread Instance",
                "GET, HEAD, OPTIONS",
                get(threads::retrieve),
            ),
        )
        .route(
            "/api/chat-threads/{uuid}/archive/",
            endpoint(
                "Chat Thread Archive",
                "POST, OPTIONS",
                post(threads::archive),
            ),
        )
        .route(
            "/api/chat-threads/{uuid}/unarchive/",
            endpoint(
                "Chat Thread Unarchive",
                "POST, OPTIONS",
                post(threads::unarchive),
            ),
        )
        .route(
            "/api/chat-threads/{uuid}/cancel/",
            endpoint("Chat Thread Cancel", "POST, OPTIONS", post(stream::cancel)),
        )
        .route(
            "/api/chat-threads/{uuid}/stream/",
            endpoint(
                "Chat Thread Stream",
                "GET, HEAD, OPTIONS",
                get(stream::follow),
            ),
        )
        .route(
            "/api/chat/stream/",
            endpoint("Chat Stream", "POST, OPTIONS", post(stream::stream)),
        )
        .route(
            "/api/chat-messages/",
            endpoint(
                "Chat Message List",
                "GET, HEAD, OPTIONS",
                get(messages::list),
            ),
        )
        .route(
            "/api/guard/scan/",
            endpoint("Guard Scan", "POST, OPTIONS", post(guard::scan)),
        )
        .route(
            "/api/users/me/",
            endpoint("User Me", "GET, HEAD, OPTIONS", get(login::me)),
        )
        .route(
            "/api-auth/logout/",
            endpoint("Logout", "POST, OPTIONS", post(login::logout)),
        )
        // Anyone may try to log in: no authentication before the 405.
        .route(
            "/api-auth/password/",
            post(login::obtain_token)
                .fallback(|method: Method| async move { not_allowed(method, "POST") }),
        )
        // Retrieve is disabled in the reference: the URL exists, every method is 405.
        // No method is allowed, so `Allow` is empty.
        .route(
            "/api/chat-messages/{uuid}/",
            any(|user: AuthUser, method: Method| method_not_allowed(user, method, "")),
        )
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(crate::metrics::scrape))
        .merge(web::routes())
        .fallback(not_found)
        .with_state(state);
    api.merge(docs::routes())
}
