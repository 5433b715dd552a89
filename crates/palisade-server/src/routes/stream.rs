//! `POST /api/chat/stream/`: the reference's order of checks (section 3.2),
//! then the user message is stored, the thread's generation lease taken and
//! the answer streamed as NDJSON by a generation task of its own.
//! `POST /api/chat-threads/{uuid}/cancel/` stops a running generation.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as ResponseBody;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_guard::Verdict;
use palisade_llm::ChatProvider;
use palisade_store::{
    AnswerTo, Detection, LeaseGrant, MessageFilter, QuotaCheck, Reservation, Scope, StoreError,
    Thread, ThreadFilter, User,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::AppState;
use crate::audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::input_guard::scan_off_runtime;
use crate::params::{Body, PathUuid};
use crate::prompt;
use crate::render::{BadRequest, Detail, StreamForm, StreamIn};
use crate::stream::follow::{self, Transcript};
use crate::stream::generation::{Generation, Lines, Reply};
use crate::stream::request::{Mode, StreamRequest};

/// Stream an answer to a message as NDJSON.
///
/// Lines: `{"m":{"thread_uuid":…}}` first; `{"w":…}` when personal data was
/// redacted or blocked; content lines (`markdown`, `load`, `code`,
/// `mermaid`); `{"e":…}` when the model failed; last
/// `{"m":{"user_message_uuid":…,"assistant_message_uuid":…}}`. The answer
/// is generated and stored even if the client disconnects.
#[utoipa::path(
    post, path = "/api/chat/stream/", tag = "chat",
    request_body(content(
        (StreamIn = "application/json"),
        (StreamForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "NDJSON lines", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "Invalid input (field errors), malformed JSON (`detail`), or an edit the reference refuses (a bare array)", body = BadRequest),
        (status = 401, body = Detail),
        (status = 404, description = "Thread not found. / Message not found.", body = Detail),
        (status = 409, description = "Model not configured, token quota spent, or a reply already being generated in this thread", body = Detail),
        (status = 413, description = "Body over 1 MiB", body = Detail),
        (status = 415, body = Detail),
        (status = 424, description = "Chat is disabled (checked before authentication)", body = Detail),
        (status = 429, description = "Too many answers running for this user at once (header `Retry-After`)", body = Detail),
    ),
    security(("token" = []))
)]
pub async fn stream(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    if !state.chat.enabled {
        return Err(ApiError::ChatDisabled);
    }
    let (mut parts, body) = request.into_parts();
    let AuthUser(user) = AuthUser::from_request_parts(&mut parts, &state).await?;
    let Some(provider) = state.chat.provider.clone() else {
        return Err(ApiError::Conflict(
            "LLM inference API URL is not configured.".to_owned(),
        ));
    };
    let body = Body::read(Request::from_parts(parts, body), &state, true).await?;
    let request = StreamRequest::from_body(&body)?;
    let quota_limited = check_quota(&state, &user).await?;
    let scanning = std::time::Instant::now();
    let verdict = scan_off_runtime(state.guard.clone(), request.input.clone()).await;
    state.metrics.verdict(&verdict, scanning.elapsed());
    audit::risky_input(state.store.as_ref(), &user, &verdict).await?;
    let (thread, new_thread) = resolve_thread(&state, &user, request.thread).await?;
    let (store, save_interval) = (state.store.clone(), state.chat.save_interval);

    // From the lease on, the work must not stop halfway if the client goes
    // away (a dropped handler future would leave a stored question without
    // an answer and a held lease): it runs on a task of its own.
    let start = tokio::spawn(tracing::Instrument::instrument(
        start_generation(
            state,
            provider,
            user,
            request,
            verdict,
            (thread, new_thread),
            quota_limited,
        ),
        tracing::Span::current(),
    ));
    let transcript = start
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;
    Ok(ndjson(ResponseBody::from_stream(follow::local(
        transcript,
        store,
        save_interval,
    ))))
}

/// Takes the thread's lease, writes the user message and spawns the
/// generation; returns its lines, for the response body.
async fn start_generation(
    state: AppState,
    provider: Arc<dyn ChatProvider>,
    user: User,
    request: StreamRequest,
    verdict: Verdict,
    (thread, new_thread): (Thread, bool),
    quota_limited: bool,
) -> ApiResult<watch::Receiver<Transcript>> {
    let lease = Uuid::new_v4();
    let grant = state
        .store
        .acquire_limited_lease(
            thread.id,
            lease,
            state.chat.lease_ttl,
            state.chat.max_generations_per_user,
        )
        .await?;
    match grant {
        LeaseGrant::Granted => {}
        LeaseGrant::ThreadBusy => {
            return Err(ApiError::Conflict(
                "A reply is already being generated in this thread.".to_owned(),
            ));
        }
        LeaseGrant::UserBusy => return Err(ApiError::TooManyGenerations),
    }
    // An answer left generating by a generation that lost the thread (its
    // node died) is interrupted now, before this one is placed beside it.
    match state
        .store
        .recover_interrupted_answers(Some(thread.id), Duration::ZERO)
        .await
    {
        Ok(count) => state.metrics.takeovers(count),
        Err(err) => tracing::warn!(error = %err, "cannot recover interrupted answers"),
    }
    let budget = if quota_limited {
        Some(provider.max_tokens().unwrap_or(DEFAULT_ANSWER_BUDGET))
    } else {
        None
    };
    let (reply, answer_to, stored_input, reserved_tokens) =
        match prepare(&state, &user, &request, &verdict, &thread, budget).await {
            Ok(prepared) => prepared,
            Err(err) => {
                // Nothing will be generated: free the thread at once.
                if let Err(release) = state.store.release_generation_lease(thread.id, lease).await {
                    tracing::warn!(error = %release, "cannot release the generation lease");
                }
                return Err(err);
            }
        };
    let generation = Generation {
        store: state.store.clone(),
        provider,
        settings: state.chat.clone(),
        generations: state.generations.clone(),
        metrics: state.metrics.clone(),
        user_id: user.id,
        thread_id: thread.id,
        thread_uuid: thread.uuid,
        new_thread,
        lease,
        reply,
        answer_to,
        warning: verdict.warning,
        stored_input,
        reserved_tokens,
    };
    let lines = Lines::new();
    let transcript = lines.subscribe();
    // The generation's log lines carry the request's id.
    state.generations.spawn(tracing::Instrument::instrument(
        generation.run(lines),
        tracing::Span::current(),
    ));
    Ok(transcript)
}

/// The answer length reserved for when the provider sets none of its own.
const DEFAULT_ANSWER_BUDGET: u32 = 2048;

/// Step 6: users at or over a limit are refused. Returns whether the user
/// has any limit: only then is the answer's cost reserved (see
/// [`reserve_answer`]).
async fn check_quota(state: &AppState, user: &User) -> ApiResult<bool> {
    let quota = state.store.token_quota(user.id).await?;
    match quota.check(state.chat.quota_defaults) {
        QuotaCheck::Allowed => Ok(quota.is_limited(state.chat.quota_defaults)),
        refused => Err(quota_refusal(refused)),
    }
}

/// The reference's 409 for a quota check that refused.
fn quota_refusal(check: QuotaCheck) -> ApiError {
    match check {
        QuotaCheck::Exceeded(period) => {
            ApiError::Conflict(format!("{} token limit exceeded.", period.as_str()))
        }
        QuotaCheck::Allowed | QuotaCheck::Misconfigured => ApiError::Conflict(
            "AI Token quota system is misconfigured. Please contact support.".to_owned(),
        ),
    }
}

/// Reserves a model call's cost from a limited quota before it is made: the
/// prompt's estimate plus the answer's `budget`, no more than the tightest
/// limit leaves. When less was left, the answer's `max_tokens` shrinks to
/// what the reservation leaves after the prompt. Concurrent requests (on
/// any node) thereby stay within the limit together, give or take the
/// prompt estimate's error; the generation settles the reservation to the
/// real usage. Returns the reply to make and the tokens reserved.
async fn reserve_answer(
    state: &AppState,
    user: &User,
    reply: Reply,
    budget: u32,
) -> ApiResult<(Reply, i64)> {
    let Reply::Model(mut request) = reply else {
        // The canned refusal costs nothing.
        return Ok((reply, 0));
    };
    let prompt_tokens = i64::try_from(prompt::estimate_tokens(&request)).unwrap_or(i64::MAX);
    let budget = request.max_tokens.unwrap_or(budget);
    let wanted = prompt_tokens.saturating_add(i64::from(budget));
    match state
        .store
        .reserve_tokens(user.id, state.chat.quota_defaults, wanted)
        .await?
    {
        Reservation::Granted { tokens, capped } => {
            if capped {
                let left = (tokens - prompt_tokens).max(1);
                request.max_tokens = Some(u32::try_from(left).unwrap_or(budget));
            }
            Ok((Reply::Model(request), tokens))
        }
        Reservation::Refused(check) => Err(quota_refusal(check)),
    }
}

/// Gives a reservation back when nothing will be generated.
async fn release_reservation(state: &AppState, user: &User, tokens: i64) {
    if tokens == 0 {
        return;
    }
    if let Err(err) = state.store.add_token_usage(user.id, -tokens).await {
        tracing::warn!(error = %err, tokens, "cannot give back a token reservation");
    }
}

/// Step 8: the caller's own thread (staff included), or a new one.
async fn resolve_thread(
    state: &AppState,
    user: &User,
    uuid: Option<Uuid>,
) -> ApiResult<(Thread, bool)> {
    match uuid {
        Some(uuid) => {
            let own = ThreadFilter::new(Scope::Owner(user.id));
            match state.store.find_thread(&own, uuid).await? {
                Some(thread) => Ok((thread, false)),
                None => Err(ApiError::NotFound("Thread not found.")),
            }
        }
        None => {
            let session = state.store.get_or_create_session(user.id).await?;
            let thread = state.store.create_thread(session.id, "New chat").await?;
            Ok((thread, true))
        }
    }
}

/// Step 9 and the writes before streaming (reference 3.3, 3.4): the prompt
/// from the history as it was before this message, then the user message
/// (normal and edit modes) with the guard's verdict on it. With a quota
/// `budget` (a limited user), the model call's cost is reserved first.
/// Returns the reply to generate, where the answer goes, the input as stored
/// and the tokens reserved.
async fn prepare(
    state: &AppState,
    user: &User,
    request: &StreamRequest,
    verdict: &Verdict,
    thread: &Thread,
    budget: Option<u32>,
) -> ApiResult<(Reply, AnswerTo, String, i64)> {
    let active = MessageFilter {
        scope: Scope::Owner(user.id),
        thread: Some(thread.uuid),
        is_flagged: None,
        include_history: false,
        limit: None,
    };
    let messages = state.store.list_messages(&active).await?;
    let turn = match (request.mode, request.edit_message) {
        (Some(Mode::Reload), _) => prompt::Turn::Reload,
        (Some(Mode::Edit), Some(target)) => match messages.iter().find(|m| m.uuid == target) {
            Some(message) => prompt::Turn::Edit {
                message_id: message.id,
            },
            // Not an active message of this thread: the edit is refused below.
            None => prompt::Turn::Next,
        },
        _ => prompt::Turn::Next,
    };
    let (earlier, asked_again) = prompt::earlier_messages(&messages, turn);
    let history = prompt::history(earlier, state.chat.history_limit);
    // Reload asks the stored question again rather than adding the request's
    // `input` as a turn that is never stored; the input is still what the
    // guards judged, so a blocked one gets the rejection call.
    let current = match (verdict.llm_text(&request.input), asked_again) {
        (Some(_), Some(question)) => Some(question.content.as_str()),
        (text, _) => text,
    };
    let reply = match current {
        Some(text) => Reply::Model(prompt::answer_request(
            &state.chat.system_prompt,
            &history,
            text,
        )),
        None => {
            // The rejection call sees the conversation up to the question
            // being asked again (never the answer being replaced).
            let seen = earlier.len() + usize::from(asked_again.is_some());
            let context = prompt::history(&messages[..seen], state.chat.history_limit);
            if context.is_empty() {
                Reply::Canned
            } else {
                Reply::Model(prompt::rejection_request(&context))
            }
        }
    };
    let (reply, reserved) = match budget {
        Some(budget) => reserve_answer(state, user, reply, budget).await?,
        None => (reply, 0),
    };
    match store_question(state, request, verdict, thread).await {
        Ok((answer_to, stored_input)) => Ok((reply, answer_to, stored_input, reserved)),
        Err(err) => {
            release_reservation(state, user, reserved).await;
            Err(err)
        }
    }
}

/// The writes before streaming: the user message (normal and edit modes)
/// with the guard's verdict on it. Returns where the answer goes and the
/// input as stored.
async fn store_question(
    state: &AppState,
    request: &StreamRequest,
    verdict: &Verdict,
    thread: &Thread,
) -> ApiResult<(AnswerTo, String)> {
    // What is stored: the input, with PII redacted or replaced by the
    // blocked-credentials placeholder (the fail-closed verdict keeps it raw).
    let stored_input = verdict.redacted_text.clone();
    let user_message = match (request.mode, request.edit_message) {
        (None, _) => Some(
            state
                .store
                .append_user_message(thread.id, &stored_input)
                .await?,
        ),
        (Some(Mode::Edit), Some(target)) => {
            match state
                .store
                .edit_user_message(thread.id, target, &stored_input)
                .await
            {
                Ok(message) => Some(message),
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::NotFound("Message not found."));
                }
                Err(StoreError::EditRejected(rejection)) => {
                    return Err(ApiError::Rejected(rejection_message(rejection)));
                }
                Err(err) => return Err(err.into()),
            }
        }
        // Validation guarantees the target; reload stores no user message.
        (Some(Mode::Edit), None) | (Some(Mode::Reload), _) => None,
    };
    let answer_to = match (&user_message, request.mode) {
        (Some(message), Some(Mode::Edit)) => AnswerTo::Edit {
            user_message_id: message.id,
        },
        (Some(message), _) => AnswerTo::Message {
            user_message_id: message.id,
        },
        (None, _) => AnswerTo::Reload {
            input: stored_input.clone(),
        },
    };
    // Reload mode flags nothing, even for bad input (as the reference).
    if let Some(message) = &user_message
        && verdict.is_flagged
    {
        let detection = Detection {
            is_flagged: true,
            severity: verdict.severity,
            injection_categories: verdict.injection_categories(),
            pii_categories: verdict.pii_categories(),
            action_taken: verdict.action,
        };
        state.store.record_detection(message.id, &detection).await?;
    }
    Ok((answer_to, stored_input))
}

fn rejection_message(rejection: palisade_store::EditRejection) -> &'static str {
    match rejection {
        palisade_store::EditRejection::NotAUserMessage => "Can only edit user messages.",
        palisade_store::EditRejection::NotTheLastUserMessage => {
            "Can only edit the last user message."
        }
    }
}

/// The caller's own thread (staff and support too: generations are the
/// owner's business); 404 for anything else.
async fn own_thread(state: &AppState, user: &User, uuid: Option<Uuid>) -> ApiResult<Thread> {
    let own = ThreadFilter::new(Scope::Owner(user.id));
    let thread = match uuid {
        Some(uuid) => state.store.find_thread(&own, uuid).await?,
        None => None,
    };
    thread.ok_or_else(ApiError::not_found)
}

/// Stop the generation running on a thread, on whichever node runs it. The
/// partial answer is kept. Owner only; 204 whether or not a generation was
/// running.
#[utoipa::path(
    post, path = "/api/chat-threads/{uuid}/cancel/", tag = "chat-threads",
    params(("uuid" = String, Path, description = "Thread UUID")),
    responses(
        (status = 204, description = "Cancel requested (or nothing was running)"),
        (status = 401, body = Detail), (status = 404, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
) -> ApiResult<StatusCode> {
    let thread = own_thread(&state, &user, uuid).await?;
    // The database flag reaches every node; the local signal is immediate.
    state.store.request_generation_cancel(thread.id).await?;
    state.generations.cancel_local(thread.id);
    Ok(StatusCode::NO_CONTENT)
}

/// Follow the answer being generated in a thread, from any node: the lines
/// its client was sent so far, then the live ones, then the final line.
/// 204 when nothing is generating. Owner only.
#[utoipa::path(
    get, path = "/api/chat-threads/{uuid}/stream/", tag = "chat-threads",
    params(("uuid" = String, Path, description = "Thread UUID")),
    responses(
        (status = 200, description = "NDJSON, as `POST /api/chat/stream/` sends it", content_type = "application/x-ndjson", body = String),
        (status = 204, description = "Nothing is being generated in the thread"),
        (status = 401, body = Detail), (status = 404, body = Detail),
    ),
    security(("token" = []))
)]
pub async fn follow(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    PathUuid(uuid): PathUuid,
) -> ApiResult<Response> {
    let thread = own_thread(&state, &user, uuid).await?;
    let poll = state.chat.save_interval;
    if let Some(transcript) = state.generations.follow(thread.id) {
        return Ok(ndjson(ResponseBody::from_stream(follow::local(
            transcript,
            state.store.clone(),
            poll,
        ))));
    }
    match state.store.generating_answer(thread.id).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(message_id) => Ok(ndjson(ResponseBody::from_stream(follow::remote(
            state.store.clone(),
            message_id,
            poll,
        )))),
    }
}

fn ndjson(body: ResponseBody) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
