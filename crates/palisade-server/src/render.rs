//! JSON shapes of the API, field for field and in the reference's order, and
//! the sparse-fieldset (`field=`) rule. The response structs double as the
//! OpenAPI schemas, so the document cannot drift from what is sent; the
//! request bodies, parsed by hand for DRF's messages, have hand-written
//! schemas here that state the parsers' limits (schemathesis holds both
//! sides to them: scripts/schemathesis.sh).

use palisade_store::{ChatSession, Message, Thread, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::params::QueryParams;
use crate::stream::request::MAX_INPUT_CHARS;

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
    #[schema(
        pattern = "^[0-9a-f]{32}$",
        example = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f"
    )]
    pub uuid: String,
    /// The owner's user UUID.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub user: String,
    pub user_username: String,
    pub user_full_name: String,
    #[schema(format = DateTime, example = "2026-02-27T14:15:00.123Z")]
    pub created: String,
    #[schema(format = DateTime, example = "2026-02-27T14:15:00.123Z")]
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
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub uuid: String,
    pub name: String,
    /// The session UUID.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub chat_session: String,
    /// The raw detection summary: `{}` until a flagged message arrives, then
    /// `{"is_flagged": …, "max_severity": …}` (other keys are kept).
    #[schema(value_type = Object)]
    pub flags: Map<String, Value>,
    pub is_archived: bool,
    /// All message rows, replaced (history) rows included.
    pub message_count: i64,
    pub is_flagged: bool,
    #[schema(value_type = SeverityName)]
    pub max_severity: String,
    pub user_username: String,
    pub user_full_name: String,
    #[schema(format = DateTime, example = "2026-02-27T14:15:00.123Z")]
    pub created: String,
    #[schema(format = DateTime, example = "2026-02-27T14:15:00.123Z")]
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

/// A guard severity, lowest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SeverityName {
    None,
    Low,
    Medium,
    High,
    Critical,
}

/// What the guards did with a message, mildest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ActionName {
    Allow,
    Flag,
    Warn,
    Redact,
    Block,
}

/// Who wrote a message.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RoleName {
    User,
    Assistant,
}

/// `GET /api/chat-messages/` items. The five detection fields (`is_flagged`
/// to `action_taken`) are present only for staff and support, so the
/// schema does not require them.
#[derive(Serialize, ToSchema)]
pub struct MessageOut {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub uuid: String,
    /// The thread UUID.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub thread: String,
    #[schema(value_type = RoleName)]
    pub role: String,
    pub content: String,
    pub sequence_index: i64,
    /// UUID of the message this one supersedes, or null.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub replaces: Option<String>,
    #[schema(format = DateTime, example = "2026-02-27T14:15:00.123Z")]
    pub created: String,
    /// Staff and support only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    pub is_flagged: Option<bool>,
    /// Staff and support only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = SeverityName, required = false)]
    pub severity: Option<String>,
    /// Staff and support only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, required = false)]
    pub injection_categories: Option<Vec<String>>,
    /// Staff and support only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, required = false)]
    pub pii_categories: Option<Vec<String>>,
    /// Staff and support only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ActionName, required = false)]
    pub action_taken: Option<String>,
    /// Palisade's addition to the reference's shape: `true` while the
    /// answer is being generated (its `content` is the part so far).
    pub is_generating: bool,
}

impl MessageOut {
    pub fn new(m: &Message, with_detection: bool) -> MessageOut {
        let detection = with_detection.then_some(&m.detection);
        MessageOut {
            uuid: uuid(&m.uuid),
            thread: uuid(&m.thread_uuid),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            sequence_index: m.sequence_index,
            replaces: m.replaces.as_ref().map(uuid),
            created: timestamp(&m.created),
            is_flagged: detection.map(|d| d.is_flagged),
            severity: detection.map(|d| d.severity.as_str().to_owned()),
            injection_categories: detection.map(|d| d.injection_categories.clone()),
            pii_categories: detection.map(|d| d.pii_categories.clone()),
            action_taken: detection.map(|d| d.action_taken.as_str().to_owned()),
            is_generating: m.is_generating,
        }
    }
}

/// Text without U+0000, which every text field refuses (`Null characters
/// are not allowed.`), as a schema pattern.
const NO_NUL: &str = "^[^\\x00]*$";

fn string_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn null_schema(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some(description))
        .into()
}

/// A UUID as the request bodies accept it: hyphenated (`format: uuid`) or
/// 32 hex characters, either case.
pub fn uuid_input(description: &str) -> Schema {
    AnyOfBuilder::new()
        .description(Some(description))
        .item(string_schema("Hyphenated.").format(Some(SchemaFormat::Custom("uuid".to_owned()))))
        .item(string_schema("32 hex characters.").pattern(Some("^[0-9A-Fa-f]{32}$")))
        .into()
}

/// `POST /api/guard/scan/` body (described for OpenAPI; parsed by hand for
/// DRF's messages).
pub struct ScanIn;

impl PartialSchema for ScanIn {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "text",
                string_schema(
                    "The text to scan, as a user would send it (not trimmed): at most \
                     50,000 characters, no NUL.",
                )
                .max_length(Some(MAX_INPUT_CHARS))
                .pattern(Some(NO_NUL)),
            )
            .required("text")
            .into()
    }
}

impl ToSchema for ScanIn {}

/// `POST /api/chat/stream/` body as JSON (described for OpenAPI; parsed by
/// hand for DRF's messages). The reference's cross-field rules are the
/// three alternatives of its `anyOf`: a new message, `reload` and `edit`.
pub struct StreamIn;

impl PartialSchema for StreamIn {
    fn schema() -> RefOr<Schema> {
        stream_body(false)
    }
}

impl ToSchema for StreamIn {}

/// The same body as a URL-encoded form: every value is text, and an empty
/// value of an optional field stands for null (DRF's rule for HTML input).
pub struct StreamForm;

impl PartialSchema for StreamForm {
    fn schema() -> RefOr<Schema> {
        stream_body(true)
    }
}

impl ToSchema for StreamForm {}

/// The stream body's schema; `form` for the URL-encoded variant.
fn stream_body(form: bool) -> RefOr<Schema> {
    // "No value": null in JSON, an empty value in a form.
    let nothing = |description: &str| -> Schema {
        if form {
            string_schema(description).max_length(Some(0)).into()
        } else {
            null_schema(description)
        }
    };
    let or_nothing = |schema: Schema, description: &str| {
        AnyOfBuilder::new().item(schema).item(nothing(description))
    };
    // After trimming, 1 to 50,000 characters, so at least one that is not
    // white space; in JSON a number is taken as its text, as DRF does.
    let input_type = if form {
        SchemaType::Type(Type::String)
    } else {
        SchemaType::from_iter([Type::String, Type::Number])
    };
    let input = ObjectBuilder::new()
        .schema_type(input_type)
        .description(Some(if form {
            "The message: trimmed, then 1 to 50,000 characters, no NUL."
        } else {
            "The message: trimmed, then 1 to 50,000 characters, no NUL. A number is taken \
             as its text."
        }))
        .min_length(Some(1))
        .max_length(Some(MAX_INPUT_CHARS))
        .pattern(Some("^[^\\x00]*\\S[^\\x00]*$"));
    let none = if form {
        "Absent or empty"
    } else {
        "Absent or null"
    };
    let common = ObjectBuilder::new()
        .property("input", input)
        .required("input")
        .property(
            "thread_uuid",
            or_nothing(
                uuid_input("The thread to continue."),
                &format!("{none}: a new thread."),
            ),
        )
        .property(
            "mode",
            or_nothing(
                string_schema(
                    "`reload` (answer the last message again) or `edit` (replace the last \
                     user message); needs `thread_uuid`.",
                )
                .enum_values(Some(["reload", "edit"]))
                .into(),
                &format!("{none}: a new message."),
            ),
        )
        .property(
            "edit_message_uuid",
            or_nothing(
                uuid_input("The user message to replace; with `mode` `edit` only."),
                &format!("{none}: not an edit."),
            ),
        );
    let new_message = ObjectBuilder::new()
        .title(Some("New message"))
        .property("mode", nothing("No mode: a new message."))
        .property("edit_message_uuid", nothing("Only with `mode` `edit`."));
    let reload = ObjectBuilder::new()
        .title(Some("Reload"))
        .property(
            "mode",
            string_schema("Answer the last message again.").enum_values(Some(["reload"])),
        )
        .required("mode")
        .property("thread_uuid", uuid_input("The thread."))
        .required("thread_uuid")
        .property("edit_message_uuid", nothing("Only with `mode` `edit`."));
    let edit = ObjectBuilder::new()
        .title(Some("Edit"))
        .property(
            "mode",
            string_schema("Replace the last user message.").enum_values(Some(["edit"])),
        )
        .required("mode")
        .property("thread_uuid", uuid_input("The thread."))
        .required("thread_uuid")
        .property(
            "edit_message_uuid",
            uuid_input("The last user message of the thread."),
        )
        .required("edit_message_uuid");
    AllOfBuilder::new()
        .item(common)
        .item(
            AnyOfBuilder::new()
                .item(new_message)
                .item(reload)
                .item(edit),
        )
        .into()
}

/// Body of `POST /api-auth/password/` (JSON or form).
pub struct LoginIn;

impl PartialSchema for LoginIn {
    fn schema() -> RefOr<Schema> {
        let field = |description: &str| {
            string_schema(description)
                .min_length(Some(1))
                .pattern(Some(NO_NUL))
        };
        ObjectBuilder::new()
            .property("username", field("Not blank, no NUL.").examples(["alice"]))
            .required("username")
            .property("password", field("Not blank, no NUL."))
            .required("password")
            .into()
    }
}

impl ToSchema for LoginIn {}

/// A token issued by password login.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// 64 hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub token: String,
}

/// `GET /api/users/me/`: who the caller is, and what they may see.
#[derive(Serialize, ToSchema)]
pub struct MeOut {
    #[schema(
        pattern = "^[0-9a-f]{32}$",
        example = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f"
    )]
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

/// `{"detail": "…"}`: 401, 403, 404, 405, 409, 413, 415, 424 and 429
/// bodies, and 400 for a body that is not valid JSON
/// (`JSON parse error - …`).
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

/// 400 body of an endpoint that reads a request body: field errors, DRF's
/// `{"detail": "JSON parse error - …"}` for a body that is not JSON, or
/// (the stream's refused edits) a bare array of messages such as
/// `["Can only edit the last user message."]`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum BadRequest {
    FieldErrors(FieldErrors),
    Detail(Detail),
    Messages(Vec<String>),
}

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
