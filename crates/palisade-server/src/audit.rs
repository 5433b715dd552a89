//! Audit events: who read whose chats, and risky chat inputs. Stored in the
//! database and logged, so both an operator and a query can find them.

use palisade_guard::{Severity, Verdict};
use palisade_store::{NewAuditEvent, Store, User};
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
    tracing::info!(event_type, %message, object, uuid = %render::uuid(uuid), "audit");
    let mut context = Map::new();
    context.insert(object.to_owned(), render::uuid(uuid).into());
    store
        .record_audit_event(&NewAuditEvent {
            event_type: event_type.to_owned(),
            message,
            actor_id: Some(accessor.id),
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
