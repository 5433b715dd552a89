//! JSON shapes of the API, field for field and in the reference's order, and
//! the sparse-fieldset (`field=`) rule. The structs double as the OpenAPI
//! schemas, so the document cannot drift from what is sent.

use palisade_store::{ChatSession, Message, Thread, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::params::QueryParams;

/// UTC, millisecond precision, `Z` suffix: `2026-02-27T14:15:00.123Z`.
pub fn timestamp(at: &Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// 32 lowercase hex characters, no hyphens.
pub fn uuid(id: &Uuid) -> String {
    id.simple().to_string()
}

/// `GET /api/chat-sessions/` items.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    #[schema(example = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f")]
    pub uuid: String,
    /// The owner's user UUID.
    pub user: String,
    pub user_username: String,
    pub user_full_name: String,
    #[schema(example = "2026-02-27T14:15:00.123Z")]
    pub created: String,
    pub modified: String,
}

impl From<&ChatSession> for SessionOut {
    fn from(s: &ChatSession) -> Self {
        SessionOut {
            uuid: uuid(&s.uuid),
            user: uuid(&s.user_uuid),
            user_username: s.user_username.clone(),
            user_full_name: s.user_full_name.clone(),
            created: timestamp(&s.created),
            modified: timestamp(&s.modified),
        }
    }
}

/// `GET /api/chat-threads/` items.
#[derive(Serialize, ToSchema)]
pub struct ThreadOut {
    pub uuid: String,
    pub name: String,
    /// The session UUID.
    pub chat_session: String,
    /// The raw detection summary: `{}` until a flagged message arrives, then
    /// `{"is_flagged": …, "max_severity": …}` (other keys are kept).
    #[schema(value_type = Object)]
    pub flags: Map<String, Value>,
    pub is_archived: bool,
    /// All message rows, replaced (history) rows included.
    pub message_count: i64,
    pub is_flagged: bool,
    #[schema(example = "none")]
    pub max_severity: String,
    pub user_username: String,
    pub user_full_name: String,
    pub created: String,
    pub modified: String,
}

impl From<&Thread> for ThreadOut {
    fn from(t: &Thread) -> Self {
        ThreadOut {
            uuid: uuid(&t.uuid),
            name: t.name.clone(),
            chat_session: uuid(&t.session_uuid),
            flags: t.flags.clone(),
            is_archived: t.is_archived,
            message_count: t.message_count,
            is_flagged: t.is_flagged(),
            max_severity: t.max_severity().to_owned(),
            user_username: t.user_username.clone(),
            user_full_name: t.user_full_name.clone(),
            created: timestamp(&t.created),
            modified: timestamp(&t.modified),
        }
    }
}

/// The guard verdict on a message; only staff and support see it.
#[derive(Serialize, ToSchema)]
pub struct DetectionOut {
    pub is_flagged: bool,
    #[schema(example = "none")]
    pub severity: String,
    pub injection_categories: Vec<String>,
    pub pii_categories: Vec<String>,
    #[schema(example = "allow")]
    pub action_taken: String,
}

/// `GET /api/chat-messages/` items. The five detection fields are present
/// only for staff and support.
#[derive(Serialize, ToSchema)]
pub struct MessageOut {
    pub uuid: String,
    /// The thread UUID.
    pub thread: String,
    #[schema(example = "user")]
    pub role: String,
    pub content: String,
    pub sequence_index: i64,
    /// UUID of the message this one supersedes, or null.
    pub replaces: Option<String>,
    pub created: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionOut>,
    /// Palisade's addition to the reference's shape: `true` while the
    /// answer is being generated (its `content` is the part so far).
    pub is_generating: bool,
}

impl MessageOut {
    pub fn new(m: &Message, with_detection: bool) -> MessageOut {
        MessageOut {
            uuid: uuid(&m.uuid),
            thread: uuid(&m.thread_uuid),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            sequence_index: m.sequence_index,
            replaces: m.replaces.as_ref().map(uuid),
            created: timestamp(&m.created),
            detection: with_detection.then(|| DetectionOut {
                is_flagged: m.detection.is_flagged,
                severity: m.detection.severity.as_str().to_owned(),
                injection_categories: m.detection.injection_categories.clone(),
                pii_categories: m.detection.pii_categories.clone(),
                action_taken: m.detection.action_taken.as_str().to_owned(),
            }),
            is_generating: m.is_generating,
        }
    }
}

/// `POST /api/guard/scan/` body (described for OpenAPI; parsed by hand for
/// DRF's messages).
#[derive(ToSchema)]
pub struct ScanIn {
    /// The text to scan, as a user would send it (not trimmed), at most
    /// 50,000 characters.
    pub text: String,
}

/// `POST /api/chat/stream/` body, as JSON or a URL-encoded form (described
/// for OpenAPI; parsed by hand for DRF's messages).
#[derive(ToSchema)]
pub struct StreamIn {
    /// The message; trimmed, 1 to 50,000 characters.
    pub input: String,
    /// The thread to continue; a new thread is created when absent or null.
    #[schema(value_type = Option<String>, example = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f")]
    pub thread_uuid: Option<String>,
    /// `reload` (answer the last message again) or `edit` (replace the last
    /// user message); needs `thread_uuid`.
    #[schema(value_type = Option<String>, example = "reload")]
    pub mode: Option<String>,
    /// The user message to replace; only with `mode=edit`.
    #[schema(value_type = Option<String>)]
    pub edit_message_uuid: Option<String>,
}

/// Body of `POST /api-auth/password/` (JSON or form).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoginIn {
    #[schema(example = "alice")]
    pub username: String,
    pub password: String,
}

/// A token issued by password login.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    #[schema(example = "6c1f…")]
    pub token: String,
}

/// `GET /api/users/me/`: who the caller is, and what they may see.
#[derive(Serialize, ToSchema)]
pub struct MeOut {
    #[schema(value_type = String, example = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f")]
    pub uuid: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub is_staff: bool,
    pub is_support: bool,
}

impl MeOut {
    pub fn new(user: &palisade_store::User) -> MeOut {
        MeOut {
            uuid: user.uuid.simple().to_string(),
            username: user.username.clone(),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            is_staff: user.is_staff,
            is_support: user.is_support,
        }
    }
}

/// `{"detail": "…"}`: 401, 404, 405, 409 and 424 bodies.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    #[schema(example = "Not found.")]
    pub detail: String,
}

/// 400 body: each invalid field with its messages, e.g.
/// `{"created": ["Enter a valid date."]}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"created": ["Enter a valid date."]}))]
pub struct FieldErrors(pub std::collections::BTreeMap<String, Vec<String>>);

/// The requested `field=` names, if any are valid for `allowed`.
pub struct Fieldset(Option<Vec<String>>);

impl Fieldset {
    pub fn from_params(params: &QueryParams) -> Fieldset {
        let names: Vec<String> = params.all("field").map(str::to_owned).collect();
        Fieldset((!names.is_empty()).then_some(names))
    }

    /// Serialises `item` and keeps only the requested fields, in the
    /// serializer's order; unknown names are ignored, and when no valid name
    /// remains every field is kept.
    pub fn apply<T: Serialize>(&self, item: &T) -> Value {
        let value = serde_json::to_value(item).unwrap_or(Value::Null);
        let (Some(names), Value::Object(map)) = (&self.0, &value) else {
            return value;
        };
        if !names.iter().any(|n| map.contains_key(n)) {
            return value;
        }
        let kept = map
            .iter()
            .filter(|(k, _)| names.iter().any(|n| n == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let at = chrono::DateTime::from_timestamp_micros(1_772_201_700_123_456).unwrap();
        assert_eq!(timestamp(&at), "2026-02-27T14:15:00.123Z");
        let whole = chrono::DateTime::from_timestamp(1_772_201_700, 0).unwrap();
        assert_eq!(timestamp(&whole), "2026-02-27T14:15:00.000Z");
    }
}
