//! Row shapes shared by both backends, and their conversion to model records.
//!
//! Both schemas use the same column types (BIGINT microseconds, TEXT UUIDs and
//! JSON, BOOLEAN), so one `FromRow` struct per query decodes on either driver.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::model::{
    AuditEvent, ChatSession, Detection, Message, StoredToken, Thread, User, from_micros,
};

fn parse_uuid(table: &'static str, text: &str) -> Result<Uuid> {
    Uuid::try_parse(text).map_err(|err| StoreError::Corrupt {
        table,
        detail: format!("uuid {text:?}: {err}"),
    })
}

fn parse_enum<T: std::str::FromStr>(table: &'static str, text: &str) -> Result<T> {
    text.parse().map_err(|_| StoreError::Corrupt {
        table,
        detail: format!("unexpected value {text:?}"),
    })
}

pub(crate) fn parse_object(table: &'static str, text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(StoreError::Corrupt {
            table,
            detail: format!("expected a JSON object, found {text:?}"),
        }),
    }
}

fn parse_strings(table: &'static str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        table,
        detail: format!("expected a JSON list of strings: {err}"),
    })
}

/// The 32-hex form every UUID is stored and rendered in.
pub(crate) fn uuid_text(uuid: Uuid) -> String {
    uuid.simple().to_string()
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    uuid: String,
    username: String,
    full_name: String,
    email: String,
    is_staff: bool,
    is_support: bool,
    is_active: bool,
    created: i64,
}

impl UserRow {
    pub(crate) fn into_model(self) -> Result<User> {
        Ok(User {
            id: self.id,
            uuid: parse_uuid("users", &self.uuid)?,
            username: self.username,
            full_name: self.full_name,
            email: self.email,
            is_staff: self.is_staff,
            is_support: self.is_support,
            is_active: self.is_active,
            created: from_micros(self.created),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: i64,
    user_id: i64,
    prefix: String,
    hash: Vec<u8>,
    created: i64,
    expires: Option<i64>,
}

impl TokenRow {
    pub(crate) fn into_model(self) -> StoredToken {
        StoredToken {
            id: self.id,
            user_id: self.user_id,
            prefix: self.prefix,
            hash: self.hash,
            created: from_micros(self.created),
            expires: self.expires.map(from_micros),
        }
    }
}

/// A token and its owner, read in one round trip on every authenticated request.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenOwnerRow {
    token_id: i64,
    token_prefix: String,
    token_hash: Vec<u8>,
    token_created: i64,
    token_expires: Option<i64>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TokenOwnerRow {
    pub(crate) fn into_model(self) -> Result<(StoredToken, User)> {
        let user = self.user.into_model()?;
        let token = StoredToken {
            id: self.token_id,
            user_id: user.id,
            prefix: self.token_prefix,
            hash: self.token_hash,
            created: from_micros(self.token_created),
            expires: self.token_expires.map(from_micros),
        };
        Ok((token, user))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: i64,
    uuid: String,
    user_id: i64,
    user_uuid: String,
    user_username: String,
    user_full_name: String,
    created: i64,
    modified: i64,
}

impl SessionRow {
    pub(crate) fn into_model(self) -> Result<ChatSession> {
        Ok(ChatSession {
            id: self.id,
            uuid: parse_uuid("chat_sessions", &self.uuid)?,
            user_id: self.user_id,
            user_uuid: parse_uuid("users", &self.user_uuid)?,
            user_username: self.user_username,
            user_full_name: self.user_full_name,
            created: from_micros(self.created),
            modified: from_micros(self.modified),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ThreadRow {
    id: i64,
    uuid: String,
    name: String,
    session_uuid: String,
    flags: String,
    is_archived: bool,
    message_count: i64,
    user_id: i64,
    user_uuid: String,
    user_username: String,
    user_full_name: String,
    created: i64,
    modified: i64,
}

impl ThreadRow {
    pub(crate) fn into_model(self) -> Result<Thread> {
        Ok(Thread {
            id: self.id,
            uuid: parse_uuid("threads", &self.uuid)?,
            name: self.name,
            session_uuid: parse_uuid("chat_sessions", &self.session_uuid)?,
            flags: parse_object("threads", &self.flags)?,
            is_archived: self.is_archived,
            message_count: self.message_count,
            user_id: self.user_id,
            user_uuid: parse_uuid("users", &self.user_uuid)?,
            user_username: self.user_username,
            user_full_name: self.user_full_name,
            created: from_micros(self.created),
            modified: from_micros(self.modified),
        })
    }
}

/// A thread of a page, with the count of the whole filter.
#[derive(sqlx::FromRow)]
pub(crate) struct ThreadPageRow {
    #[sqlx(flatten)]
    pub(crate) thread: ThreadRow,
    pub(crate) total: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: i64,
    uuid: String,
    thread_id: i64,
    thread_uuid: String,
    owner_id: i64,
    owner_username: String,
    role: String,
    content: String,
    sequence_index: i64,
    replaces_uuid: Option<String>,
    created: i64,
    is_flagged: bool,
    severity: String,
    injection_categories: String,
    pii_categories: String,
    action_taken: String,
    input_tokens: i64,
    output_tokens: i64,
    is_generating: bool,
}

impl MessageRow {
    pub(crate) fn into_model(self) -> Result<Message> {
        const T: &str = "messages";
        Ok(Message {
            id: self.id,
            uuid: parse_uuid(T, &self.uuid)?,
            thread_id: self.thread_id,
            thread_uuid: parse_uuid("threads", &self.thread_uuid)?,
            owner_id: self.owner_id,
            owner_username: self.owner_username,
            role: parse_enum(T, &self.role)?,
            content: self.content,
            sequence_index: self.sequence_index,
            replaces: self
                .replaces_uuid
                .as_deref()
                .map(|text| parse_uuid(T, text))
                .transpose()?,
            created: from_micros(self.created),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            is_generating: self.is_generating,
            detection: Detection {
                is_flagged: self.is_flagged,
                severity: parse_enum(T, &self.severity)?,
                injection_categories: parse_strings(T, &self.injection_categories)?,
                pii_categories: parse_strings(T, &self.pii_categories)?,
                action_taken: parse_enum(T, &self.action_taken)?,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    uuid: String,
    event_type: String,
    message: String,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    context: String,
    created: i64,
}

impl AuditRow {
    pub(crate) fn into_model(self) -> Result<AuditEvent> {
        Ok(AuditEvent {
            id: self.id,
            uuid: parse_uuid("audit_events", &self.uuid)?,
            event_type: self.event_type,
            message: self.message,
            actor_id: self.actor_id,
            target_id: self.target_id,
            context: parse_object("audit_events", &self.context)?,
            created: from_micros(self.created),
        })
    }
}

/// Applies `into_model` to every row, failing on the first corrupt one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>, convert: impl Fn(R) -> Result<T>) -> Result<Vec<T>> {
    rows.into_iter().map(convert).collect()
}
