//! `/api/chat-threads/`: list, retrieve, archive and unarchive threads.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use palisade_store::{Scope, Severity, ThreadFilter, ThreadOrder, ThreadOrderField, User};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{
    DateFilter, Lenient, PageNumber, SearchText, SeverityFilter, ThreadOrdering, UuidFilter,
};
use crate::pagination::{self, PageRequest};
use crate::params::{PathUuid, Problems, QueryParams, django_bool, invalid_choice};
use crate::render::{Detail, FieldErrors, Fieldset, ThreadOut};

fn parse_order(value: &str) -> Result<Vec<ThreadOrder>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(|term| {
            let (descending, name) = match term.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, term),
            };
            let field = match name {
                "created" => ThreadOrderField::Created,
                "modified" => ThreadOrderField::Modified,
                _ => return Err(invalid_choice(term)),
            };
            Ok(ThreadOrder { field, descending })
        })
        .collect()
}

/// The list filters, which also apply to retrieve, archive and unarchive.
/// Invalid values of `user`, `created`, `modified`, `max_severity`, `query`
/// (a NUL character) and `o` are 400s; invalid booleans are ignored, as in
/// the reference.
fn thread_filter(user: &User, params: &QueryParams) -> Result<ThreadFilter, ApiError> {
    let mut problems = Problems::default();
    let mut filter = ThreadFilter::new(Scope::for_user(user));
    filter.user = problems.uuid(params, "user");
    filter.created_on = problems.date(params, "created");
    filter.modified_on = problems.date(params, "modified");
    filter.is_archived = params.last("is_archived").and_then(django_bool);
    filter.is_flagged = params.last("is_flagged").and_then(django_bool);
    filter.max_severity = problems.choice(params, "max_severity", |v| v.parse::<Severity>().ok());
    filter.query = params
        .last("query")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    // Django's CharField refuses NUL (and PostgreSQL could not take it).
    if filter.query.as_deref().is_some_and(|q| q.contains('\0')) {
        problems.add("query", "Null characters are not allowed.");
    }
    if let Some(order) = params.non_empty("o") {
        match parse_order(order) {
            Ok(order) => filter.order = order,
            Err(message) => problems.add("o", message),
        }
    }
    problems.into_result()?;
    Ok(filter)
}

/// List threads: your own, or every user's for staff and support. Archived
/// threads are listed too unless `is_archived` is given.
#[utoipa::path(
    get, path = "/api/chat-threads/", tag = "chat-threads",
    params(
        ("user" = Option<UuidFilter>, Query, description = "Owner's user UUID; invalid: 400"),
        ("created" = Option<DateFilter>, Query, description = "Creation date, YYYY-MM-DD (UTC); invalid: 400"),
        ("modified" = Option<DateFilter>, Query, description = "Modification date, YYYY-MM-DD (UTC); invalid: 400"),
        ("is_archived" = Option<Lenient>, Query, description = "true/True or false/False; other values are ignored", example = "true"),
        ("is_flagged" = Option<Lenient>, Query, description = "true/True or false/False; other values are ignored", example = "true"),
        ("max_severity" = Option<SeverityFilter>, Query, description = "none (= not flagged), low, medium, high or critical (exact match); other values: 400"),
        ("query" = Option<SearchText>, Query, description = "Substring of the thread name or the owner's username, full name or email; a NUL character: 400"),
        ("o" = Option<ThreadOrdering>, Query, description = "Ordering: created, -created, modified, -modified; comma-separated; other values: 400"),
        ("page" = Option<PageNumber>, Query, description = "1-based page number, or `last`; anything else, or past the end: 404 `Invalid page.`"),
        ("page_size" = Option<Lenient>, Query, description = "Items per page: default 10, at most 300 (larger values are clamped; invalid, zero or negative values give 10)", example = "10"),
        ("field" = Option<Vec<String>>, Query, description = "Sparse fieldset", explode = true),
    ),
    responses(
        (status = 200, description = "Headers `X-Result-Count` and `Link`", body = [ThreadOut]),
        (status = 400, body = FieldErrors), (status = 401, body = Detail),
        (status = 404, description = "Invalid page.", body = Detail),
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
    let filter = thread_filter(&user, &params)?;
    let request = PageRequest::parse(&params)?;
    // A numbered page and its total come in one query; `page=last` must
    // count first to know which page that is.
    let number = match request.number {
        Some(number) => number,
        None => {
            request
                .resolve(state.store.count_threads(&filter).await?)?
                .number
        }
    };
    let listing = state
        .store
        .list_threads(&filter, request.window(number))
        .await?;
    let page = request.resolve(listing.total)?;
    let fields = Fieldset::from_params(&params);
    let body: Vec<Value> = listing
        .items
        .iter()
        .map(|t| fields.apply(&ThreadOut::from(t)))
        .collect();
    Ok((
        pagination::headers(&headers, &uri, &params, &page),
        Json(body),
    ))
}

/// One thread; the list filters apply here too. Staff and support reading
/// another user's thread leave a `chat_thread_accessed` audit event.
#[utoipa::path(
    get, path = "/api/chat-threads/{uuid}/", tag = "chat-threads",
    params(
        ("uuid" = String, Path, description = "Thread UUID"),
        ("field" = Option<Vec<String>>, Query, description = "Sparse fieldset", explode = true),
    ),
    responses(
        (status = 200, body = ThreadOut), (status = 400, body = FieldErrors),
        (status = 401, body = Detail), (status = 404, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn retrieve(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
    params: QueryParams,
) -> ApiResult<Json<Value>> {
    let filter = thread_filter(&user, &params)?;
    let uuid = uuid.ok_or_else(ApiError::not_found)?;
    let thread = state
        .store
        .find_thread(&filter, uuid)
        .await?
        .ok_or_else(ApiError::not_found)?;
    audit::chat_data_accessed(
        state.store.as_ref(),
        "chat_thread_accessed",
        &user,
        thread.user_id,
        &thread.user_username,
        ("thread", &thread.uuid),
    )
    .await?;
    Ok(Json(
        Fieldset::from_params(&params).apply(&ThreadOut::from(&thread)),
    ))
}

/// Archive or unarchive. Support users only read other users' chats: on
/// another user's thread they get 403. Staff may act on any thread, which
/// leaves a `chat_thread_archived_by_staff` audit event.
async fn set_archived(
    state: AppState,
    user: User,
    uuid: Option<Uuid>,
    params: QueryParams,
    archived: bool,
) -> ApiResult<StatusCode> {
    let filter = thread_filter(&user, &params)?;
    let uuid = uuid.ok_or_else(ApiError::not_found)?;
    let thread = state
        .store
        .find_thread(&filter, uuid)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let others = thread.user_id != user.id;
    if others && !user.is_staff {
        return Err(ApiError::PermissionDenied);
    }
    if !state
        .store
        .set_thread_archived(&filter, uuid, archived)
        .await?
    {
        return Err(ApiError::not_found());
    }
    if others {
        audit::thread_archived_by_staff(state.store.as_ref(), &user, &thread, archived).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Archive a thread (soft delete; it can still be read and streamed into).
/// The request body is ignored. Another user's thread: staff only (audited).
#[utoipa::path(
    post, path = "/api/chat-threads/{uuid}/archive/", tag = "chat-threads",
    params(("uuid" = String, Path, description = "Thread UUID")),
    responses(
        (status = 204, description = "Archived"), (status = 400, body = FieldErrors),
        (status = 401, body = Detail),
        (status = 403, description = "A support user acting on another user's thread (staff only)", body = Detail),
        (status = 404, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn archive(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
    params: QueryParams,
) -> ApiResult<StatusCode> {
    set_archived(state, user, uuid, params, true).await
}

/// Unarchive a thread. The request body is ignored. Another user's thread:
/// staff only (audited).
#[utoipa::path(
    post, path = "/api/chat-threads/{uuid}/unarchive/", tag = "chat-threads",
    params(("uuid" = String, Path, description = "Thread UUID")),
    responses(
        (status = 204, description = "Unarchived"), (status = 400, body = FieldErrors),
        (status = 401, body = Detail),
        (status = 403, description = "A support user acting on another user's thread (staff only)", body = Detail),
        (status = 404, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn unarchive(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
    params: QueryParams,
) -> ApiResult<StatusCode> {
    set_archived(state, user, uuid, params, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings() {
        let order = parse_order("-modified, created").unwrap();
        assert_eq!(order.len(), 2);
        assert!(order[0].descending && order[0].field == ThreadOrderField::Modified);
        assert_eq!(
            parse_order("name").unwrap_err(),
            "Select a valid choice. name is not one of the available choices."
        );
    }
}
