//! `/api/chat-sessions/`: each user's single chat session.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use palisade_store::Scope;
use serde_json::Value;

use crate::AppState;
use crate::audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{Lenient, PageNumber};
use crate::pagination;
use crate::params::{PathUuid, QueryParams};
use crate::render::{Detail, Fieldset, SessionOut};

/// List chat sessions: your own, or everyone's for staff and support.
#[utoipa::path(
    get, path = "/api/chat-sessions/", tag = "chat-sessions",
    params(
        ("page" = Option<PageNumber>, Query, description = "1-based page number, or `last`; anything else, or past the end: 404 `Invalid page.`"),
        ("page_size" = Option<Lenient>, Query, description = "Items per page: default 10, at most 300 (larger values are clamped; invalid, zero or negative values give 10)", example = "10"),
        ("field" = Option<Vec<String>>, Query, description = "Sparse fieldset: repeat to select fields", explode = true),
    ),
    responses(
        (status = 200, description = "Newest first; headers `X-Result-Count` and `Link`", body = [SessionOut]),
        (status = 401, body = Detail), (status = 404, description = "Invalid page.", body = Detail),
    ),
    security(("token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    params: QueryParams,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let scope = Scope::for_user(&user);
    let total = state.store.count_sessions(scope).await?;
    let page = pagination::resolve(&params, total)?;
    let sessions = state.store.list_sessions(scope, page.window()).await?;
    let fields = Fieldset::from_params(&params);
    let body: Vec<Value> = sessions
        .iter()
        .map(|s| fields.apply(&SessionOut::from(s)))
        .collect();
    Ok((
        pagination::headers(&headers, &uri, &params, &page),
        Json(body),
    ))
}

/// Your own chat session, created on first call. `field` has no effect here.
#[utoipa::path(
    get, path = "/api/chat-sessions/current/", tag = "chat-sessions",
    responses((status = 200, body = SessionOut), (status = 401, body = Detail)),
    security(("token" = []))
)]
pub async fn current(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> ApiResult<Json<SessionOut>> {
    let session = state.store.get_or_create_session(user.id).await?;
    Ok(Json(SessionOut::from(&session)))
}

/// One chat session. Staff and support reading another user's session leave
/// a `chat_session_accessed` audit event.
#[utoipa::path(
    get, path = "/api/chat-sessions/{uuid}/", tag = "chat-sessions",
    params(
        ("uuid" = String, Path, description = "Session UUID (32 hex, hyphens allowed)"),
        ("field" = Option<Vec<String>>, Query, description = "Sparse fieldset", explode = true),
    ),
    responses((status = 200, body = SessionOut), (status = 401, body = Detail), (status = 404, body = Detail)),
    security(("token" = []))
)]
pub async fn retrieve(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
    params: QueryParams,
) -> ApiResult<Json<Value>> {
    let uuid = uuid.ok_or_else(ApiError::not_found)?;
    let session = state
        .store
        .find_session(Scope::for_user(&user), uuid)
        .await?
        .ok_or_else(ApiError::not_found)?;
    audit::chat_data_accessed(
        state.store.as_ref(),
        "chat_session_accessed",
        &user,
        session.user_id,
        &session.user_username,
        ("session", &session.uuid),
    )
    .await?;
    Ok(Json(
        Fieldset::from_params(&params).apply(&SessionOut::from(&session)),
    ))
}
