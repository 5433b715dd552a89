//! The records the store reads and writes, and the filters it understands.
//!
//! These are plain data: the HTTP layer decides how they are rendered, the
//! backends decide how they are queried.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Wall-clock instants; stored as microseconds since the Unix epoch.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to the microsecond the database keeps, so a
/// value read back equals the value written.
pub fn now() -> Timestamp {
    from_micros(Utc::now().timestamp_micros())
}

pub(crate) fn from_micros(micros: i64) -> Timestamp {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

/// The guards' vocabulary (severity `none < … < critical`, action
/// `allow < … < block`) is the guard crate's; the store keeps it as text.
pub use palisade_guard::{Action, Severity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub uuid: Uuid,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub is_active: bool,
    pub created: Timestamp,
}

impl User {
    /// Staff and support see every user's chats.
    pub fn is_privileged(&self) -> bool {
        self.is_staff || self.is_support
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub is_staff: bool,
    pub is_support: bool,
}

/// An API token as stored: never the secret itself, only a lookup prefix and
/// the SHA-256 of the whole token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: i64,
    pub user_id: i64,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub prefix: String,
    pub hash: Vec<u8>,
    pub expires: Option<Timestamp>,
}

/// A user's single chat session, with the owner fields the API renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSession {
    pub id: i64,
    pub uuid: Uuid,
    pub user_id: i64,
    pub user_uuid: Uuid,
    pub user_username: String,
    pub user_full_name: String,
    pub created: Timestamp,
    pub modified: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub session_uuid: Uuid,
    /// The raw detection summary; `{}` until a flagged message arrives.
    pub flags: Map<String, Value>,
    pub is_archived: bool,
    /// Every message row of the thread, replaced (history) rows included.
    pub message_count: i64,
    pub user_id: i64,
    pub user_uuid: Uuid,
    pub user_username: String,
    pub user_full_name: String,
    pub created: Timestamp,
    pub modified: Timestamp,
}

impl Thread {
    pub fn is_flagged(&self) -> bool {
        self.flags
            .get("is_flagged")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `flags.max_severity` as stored, `"none"` when absent.
    pub fn max_severity(&self) -> &str {
        self.flags
            .get("max_severity")
            .and_then(Value::as_str)
            .unwrap_or("none")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: i64,
    pub uuid: Uuid,
    pub thread_id: i64,
    pub thread_uuid: Uuid,
    /// The thread owner's user id and username (for audit events when
    /// staff or support read someone else's messages).
    pub owner_id: i64,
    pub owner_username: String,
    pub role: Role,
    pub content: String,
    pub sequence_index: i64,
    pub replaces: Option<Uuid>,
    pub created: Timestamp,
    /// What the answer cost upstream (assistant messages; 0 otherwise).
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// An answer whose generation is still running (its content is partial).
    pub is_generating: bool,
    pub detection: Detection,
}

/// The guard verdict as recorded on a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub is_flagged: bool,
    pub severity: Severity,
    pub injection_categories: Vec<String>,
    pub pii_categories: Vec<String>,
    pub action_taken: Action,
}

impl Default for Detection {
    fn default() -> Self {
        Detection {
            is_flagged: false,
            severity: Severity::None,
            injection_categories: Vec::new(),
            pii_categories: Vec::new(),
            action_taken: Action::Allow,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: Role,
    pub content: String,
    pub sequence_index: i64,
    /// The row this one supersedes (edit and reload).
    pub replaces: Option<i64>,
}

/// Where an assistant answer is written (the reference's persistence rules,
/// section 3.4).
#[derive(Debug, Clone)]
pub enum AnswerTo {
    /// Normal mode: right after this user message.
    Message { user_message_id: i64 },
    /// Edit mode: replaces the thread's last active assistant message, or, if
    /// there is none, follows the replacement user message.
    Edit { user_message_id: i64 },
    /// Reload mode: replaces the thread's last active assistant message, or,
    /// if there is none, follows a new user message holding `input`.
    Reload { input: String },
}

/// An answer in progress, as [`Store::save_answer`](crate::Store::save_answer) writes it.
#[derive(Debug, Clone, Copy)]
pub struct AnswerProgress<'a> {
    /// The answer so far (all of it when `done`).
    pub content: &'a str,
    /// The NDJSON lines the client was sent so far (with the final line
    /// when `done`), for followers on other nodes.
    pub transcript: &'a str,
    /// Tokens the model produced so far (an estimate until the end).
    pub output_tokens: i64,
    /// The generation ended: the row stops being "generating".
    pub done: bool,
}

/// A connection pool's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    /// Connections open (idle or in use).
    pub open: u32,
    pub idle: u32,
}

/// The answer to a lease request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseGrant {
    Granted,
    /// Another generation holds the thread.
    ThreadBusy,
    /// The thread's owner has as many generations running as allowed.
    UserBusy,
}

/// What [`Store::save_answer`](crate::Store::save_answer) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSaved {
    /// Written. `counted`: output tokens a recovery sweep had already added
    /// to the owner's usage for this answer (it was marked interrupted while
    /// its node could not reach the database), so the caller counts only the
    /// rest. `reserved`: the reservation still held on the row (a final save
    /// takes it off; zero once a sweep settled it), which the caller's usage
    /// replaces.
    Written { counted: i64, reserved: i64 },
    /// Another generation holds the thread: nothing was written.
    LeaseLost,
}

/// A part of an answer's transcript (what its client was sent), read by a
/// follower, and whether the answer is still being generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTranscript {
    pub message_id: i64,
    /// The bytes asked for (the transcript is ASCII: its lines escape
    /// everything else), fewer at its end.
    pub part: String,
    /// The whole transcript's length now.
    pub length: usize,
    pub is_generating: bool,
}

/// What `append_answer` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The user message the answer belongs to; `None` in reload mode unless
    /// the fallback had to create one.
    pub user_message: Option<Message>,
    pub assistant_message: Message,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub uuid: Uuid,
    pub event_type: String,
    pub message: String,
    pub actor_id: Option<i64>,
    pub target_id: Option<i64>,
    pub context: Map<String, Value>,
    pub created: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub event_type: String,
    pub message: String,
    pub actor_id: Option<i64>,
    pub target_id: Option<i64>,
    pub context: Map<String, Value>,
}

/// Whose rows a query may see: staff and support see all, everyone else only
/// their own. Applied inside the query, so invisible rows are simply absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Owner(i64),
}

impl Scope {
    pub fn for_user(user: &User) -> Scope {
        if user.is_privileged() {
            Scope::All
        } else {
            Scope::Owner(user.id)
        }
    }

    pub(crate) fn owner(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::Owner(id) => Some(id),
        }
    }
}

/// Sort keys the thread list accepts (`o=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadOrderField {
    Created,
    Modified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadOrder {
    pub field: ThreadOrderField,
    pub descending: bool,
}

impl ThreadOrder {
    /// The reference's default ordering, `-created`.
    pub const DEFAULT: ThreadOrder = ThreadOrder {
        field: ThreadOrderField::Created,
        descending: true,
    };
}

/// The thread list filters of the API, already validated.
#[derive(Debug, Clone)]
pub struct ThreadFilter {
    pub scope: Scope,
    /// Owner's user UUID (`user=`).
    pub user: Option<Uuid>,
    /// Calendar date (UTC) of `created` / `modified`.
    pub created_on: Option<NaiveDate>,
    pub modified_on: Option<NaiveDate>,
    pub is_archived: Option<bool>,
    pub is_flagged: Option<bool>,
    pub max_severity: Option<Severity>,
    /// Case-insensitive substring of thread name, owner username, full name or email.
    pub query: Option<String>,
    /// Empty means the default ordering.
    pub order: Vec<ThreadOrder>,
}

impl ThreadFilter {
    pub fn new(scope: Scope) -> ThreadFilter {
        ThreadFilter {
            scope,
            user: None,
            created_on: None,
            modified_on: None,
            is_archived: None,
            is_flagged: None,
            max_severity: None,
            query: None,
            order: Vec::new(),
        }
    }
}

impl ThreadFilter {
    /// True when only the scope (and perhaps the owner) restricts the rows,
    /// so the count is the sessions' thread counters.
    pub(crate) fn counts_whole_sessions(&self) -> bool {
        self.created_on.is_none()
            && self.modified_on.is_none()
            && self.is_archived.is_none()
            && self.is_flagged.is_none()
            && self.max_severity.is_none()
            && self.query.is_none()
    }
}

/// The message list filters of the API, already validated.
#[derive(Debug, Clone)]
pub struct MessageFilter {
    pub scope: Scope,
    pub thread: Option<Uuid>,
    pub is_flagged: Option<bool>,
    /// Include replaced (history) rows.
    pub include_history: bool,
    /// At most this many rows (the first ones in list order); `None` for all.
    pub limit: Option<i64>,
}

/// One page of a list and the number of rows in the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub total: i64,
    pub items: Vec<T>,
}

/// A window into an ordered list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}
