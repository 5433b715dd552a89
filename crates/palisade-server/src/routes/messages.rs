//! `/api/chat-messages/`: the message list (not paginated; no retrieve).

use axum::Json;
use axum::extract::State;
use palisade_store::{MessageFilter, Scope};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::params::{Problems, QueryParams, django_bool};
use crate::render::{Detail, FieldErrors, MessageOut};

/// List messages, ordered by `sequence_index`. Regular users see their own
/// messages without the five detection fields; staff and support see all
/// messages with them.
#[utoipa::path(
    get, path = "/api/chat-messages/", tag = "chat-messages",
    params(
        ("thread" = Option<String>, Query, description = "Thread UUID (another user's thread gives an empty list)"),
        ("is_flagged" = Option<bool>, Query, description = "true/True or false/False; other values are ignored"),
        ("include_history" = Option<bool>, Query, description = "Absent or false: only active rows. true, or any unparseable value: replaced rows too"),
    ),
    responses(
        (status = 200, description = "A plain array, not paginated", body = [MessageOut]),
        (status = 400, body = FieldErrors), (status = 401, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    params: QueryParams,
) -> ApiResult<Json<Vec<MessageOut>>> {
    let mut problems = Problems::default();
    let thread = problems.uuid(&params, "thread");
    problems.into_result()?;
    let filter = MessageFilter {
        scope: Scope::for_user(&user),
        thread,
        is_flagged: params.last("is_flagged").and_then(django_bool),
        // The reference's quirk: only an absent parameter (or an explicit
        // false) hides history; a value it cannot parse disables the filter.
        include_history: params
            .last("include_history")
            .is_some_and(|v| django_bool(v) != Some(false)),
        limit: None,
    };
    let messages = state.store.list_messages(&filter).await?;
    let staff_view = user.is_privileged();
    Ok(Json(
        messages
            .iter()
            .map(|m| MessageOut::new(m, staff_view))
            .collect(),
    ))
}
