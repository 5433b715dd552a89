//! `/api/chat-messages/`: the message list (not paginated; no retrieve).
//! Staff and support reading other users' messages leave audit events, and
//! their lists across all threads are capped so one request cannot pull the
//! whole table.

use axum::Json;
use axum::extract::State;
use palisade_store::{MessageFilter, Scope};

use crate::AppState;
use crate::audit;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::openapi::{Lenient, UuidFilter};
use crate::params::{Problems, QueryParams, django_bool};
use crate::render::{Detail, FieldErrors, MessageOut};

/// Most rows a staff or support user gets from a list without `thread=`
/// (a deviation: the reference returns every message of every user).
pub const PRIVILEGED_LIST_LIMIT: i64 = 1_000;

/// List messages, ordered by `sequence_index`. Regular users see their own
/// messages without the five detection fields; staff and support see all
/// messages with them (at most 1,000 without `thread=`), and reading other
/// users' messages leaves a `chat_messages_accessed` audit event per owner.
#[utoipa::path(
    get, path = "/api/chat-messages/", tag = "chat-messages",
    params(
        ("thread" = Option<UuidFilter>, Query, description = "Thread UUID (another user's thread gives an empty list); invalid: 400"),
        ("is_flagged" = Option<Lenient>, Query, description = "true/True or false/False; other values are ignored", example = "true"),
        ("include_history" = Option<Lenient>, Query, description = "Absent or false: only active rows. true, or any unparseable value: replaced rows too", example = "true"),
    ),
    responses(
        (status = 200, description = "A plain array, not paginated; staff and support get at most 1,000 rows without `thread`", body = [MessageOut]),
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
        limit: (user.is_privileged() && thread.is_none()).then_some(PRIVILEGED_LIST_LIMIT),
    };
    let messages = state.store.list_messages(&filter).await?;
    let staff_view = user.is_privileged();
    if staff_view {
        audit::chat_messages_accessed(state.store.as_ref(), &user, &messages).await?;
    }
    Ok(Json(
        messages
            .iter()
            .map(|m| MessageOut::new(m, staff_view))
            .collect(),
    ))
}
