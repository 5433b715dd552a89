//! Audit events: who read whose chats, and risky chat inputs. Stored in the
//! database and logged, so both an operator and a query can find them.

use palisade_guard::{Severity, Verdict};
use palisade_store::{Message, NewAuditEvent, Store, Thread, User};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::render;

/// Records that a staff or support user read another user's chat data;
/// reading your own records nothing.
pub async fn chat_data_accessed(
    store: &dyn Store,
    event_type: &str,
    accessor: &User,
    target_id: i64,
    target_username: &str,
    (object, uuid): (&str, &Uuid),
) -> ApiResult<()> {
    if target_id == accessor.id {
        return Ok(());
    }
    let message = format!(
        "Chat data of {target_username} accessed by {}",
        accessor.username
    );
    let mut context = Map::new();
    context.insert(object.to_owned(), render::uuid(uuid).into());
    staff_event(store, event_type, message, accessor, target_id, context).await
}

/// Records a message list that showed a staff or support user other users'
/// messages: one `chat_messages_accessed` event per owner, naming the
/// threads (in list order) whose messages were returned.
pub async fn chat_messages_accessed(
    store: &dyn Store,
    accessor: &User,
    messages: &[Message],
) -> ApiResult<()> {
    // Owners in order of first appearance, each with its distinct threads.
    let mut owners: Vec<(i64, &str, Vec<&Uuid>)> = Vec::new();
    for message in messages.iter().filter(|m| m.owner_id != accessor.id) {
        let index = match owners.iter().position(|(id, ..)| *id == message.owner_id) {
            Some(index) => index,
            None => {
                owners.push((message.owner_id, &message.owner_username, Vec::new()));
                owners.len() - 1
            }
        };
        let threads = &mut owners[index].2;
        if !threads.contains(&&message.thread_uuid) {
            threads.push(&message.thread_uuid);
        }
    }
    for (owner_id, owner_username, threads) in owners {
        let message = format!(
            "Chat data of {owner_username} accessed by {}",
            accessor.username
        );
        let mut context = Map::new();
        context.insert(
            "threads".to_owned(),
            Value::Array(
                threads
                    .into_iter()
                    .map(|t| render::uuid(t).into())
                    .collect(),
            ),
        );
        staff_event(
            store,
            "chat_messages_accessed",
            message,
            accessor,
            owner_id,
            context,
        )
        .await?;
    }
    Ok(())
}

/// Records that a staff user archived or unarchived another user's thread
/// (`chat_thread_archived_by_staff`; `is_archived` in the context says
/// which). Acting on your own thread records nothing.
pub async fn thread_archived_by_staff(
    store: &dyn Store,
    staff: &User,
    thread: &Thread,
    archived: bool,
) -> ApiResult<()> {
    if thread.user_id == staff.id {
        return Ok(());
    }
    let message = format!(
        "Chat thread of {} {} by {}",
        thread.user_username,
        if archived { "archived" } else { "unarchived" },
        staff.username
    );
    let mut context = Map::new();
    context.insert("thread".to_owned(), render::uuid(&thread.uuid).into());
    context.insert("is_archived".to_owned(), Value::Bool(archived));
    staff_event(
        store,
        "chat_thread_archived_by_staff",
        message,
        staff,
        thread.user_id,
        context,
    )
    .await
}

/// Logs and stores an event about `actor` touching `target_id`'s chats.
async fn staff_event(
    store: &dyn Store,
    event_type: &str,
    message: String,
    actor: &User,
    target_id: i64,
    context: Map<String, Value>,
) -> ApiResult<()> {
    let logged = Value::Object(context.clone());
    tracing::info!(event_type, %message, context = %logged, "audit");
    store
        .record_audit_event(&NewAuditEvent {
            event_type: event_type.to_owned(),
            message,
            actor_id: Some(actor.id),
            target_id: Some(target_id),
            context,
        })
        .await?;
    Ok(())
}

/// Records high-severity detections on a chat input (reference 4.1):
/// `chat_injection_detected` when the injection severity is high or
/// critical, `chat_pii_detected` when PII is redacted or blocked. The
/// fail-closed verdict records nothing, as in the reference.
pub async fn risky_input(store: &dyn Store, user: &User, verdict: &Verdict) -> ApiResult<()> {
    if verdict.is_fail_closed() {
        return Ok(());
    }
    let injection = &verdict.injection;
    if injection.severity >= Severity::High {
        let categories = verdict.injection_categories();
        let message = format!(
            "Prompt injection detected in chat input from {} (severity {}, action {})",
            user.username,
            injection.severity.as_str(),
            injection.action.as_str()
        );
        detection_event(store, user, "chat_injection_detected", message, categories).await?;
    }
    let pii = &verdict.pii;
    if pii.severity >= Severity::High {
        let categories = verdict.pii_categories();
        let message = format!(
            "Sensitive data detected in chat input from {} (severity {}, action {})",
            user.username,
            pii.severity.as_str(),
            pii.action.as_str()
        );
        detection_event(store, user, "chat_pii_detected", message, categories).await?;
    }
    Ok(())
}

async fn detection_event(
    store: &dyn Store,
    user: &User,
    event_type: &str,
    message: String,
    categories: Vec<String>,
) -> ApiResult<()> {
    tracing::warn!(event_type, %message, ?categories, "audit");
    let mut context = Map::new();
    context.insert(
        "categories".to_owned(),
        Value::Array(categories.into_iter().map(Value::String).collect()),
    );
    store
        .record_audit_event(&NewAuditEvent {
            event_type: event_type.to_owned(),
            message,
            actor_id: Some(user.id),
            target_id: Some(user.id),
            context,
        })
        .await?;
    Ok(())
}
