//! Audit events: who read whose chats, and (later) risky inputs. Stored in
//! the database and logged, so both an operator and a query can find them.

use palisade_store::{NewAuditEvent, Store, User};
use serde_json::Map;
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
