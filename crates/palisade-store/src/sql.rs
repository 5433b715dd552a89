//! SQL shared by both backends: the column lists, the dynamic filters of the
//! thread and message lists, and the detection-summary rule for thread flags.
//!
//! Every statement here is plain SQL both SQLite and PostgreSQL accept; the
//! backends differ only in how they open write transactions and lock rows.

use chrono::NaiveDate;
use serde_json::Value;
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::error::Result;
use crate::model::{MessageFilter, Severity, ThreadFilter, ThreadOrder, ThreadOrderField, Window};
use crate::rows::{parse_object, uuid_text};

pub(crate) const USER_COLUMNS: &str =
    "id, uuid, username, full_name, email, is_staff, is_support, is_active, created";

pub(crate) const SESSION_SELECT: &str = "SELECT s.id, s.uuid, s.user_id, u.uuid AS user_uuid, \
     u.username AS user_username, u.full_name AS user_full_name, s.created, s.modified \
     FROM chat_sessions s JOIN users u ON u.id = s.user_id";

/// The page of threads is chosen from `threads` alone (every filter is a
/// condition on its columns or a subquery yielding session ids), so both
/// planners walk one `(session_id, created)`-style index in order and stop
/// after the page; the owner columns are joined to the page rows only.
const THREAD_PAGE_COLUMNS: &str = "SELECT t.id, t.uuid, t.name, t.session_id, t.flags, \
     t.is_archived, t.created, t.modified FROM threads t";

const THREAD_OWNER_COLUMNS: &str = "p.id, p.uuid, p.name, s.uuid AS session_uuid, p.flags, \
     p.is_archived, u.id AS user_id, u.uuid AS user_uuid, u.username AS user_username, \
     u.full_name AS user_full_name, p.created, p.modified";

/// Sessions whose owner matches a condition on `users` (alias `u2`).
const SESSIONS_OF_USERS: &str =
    "SELECT s2.id FROM chat_sessions s2 JOIN users u2 ON u2.id = s2.user_id WHERE ";

/// `message_count` counts every row of the thread, replaced rows included. It
/// is computed only for the rows of the page, through the
/// `messages (thread_id, sequence_index)` index.
const MESSAGE_COUNT: &str =
    "(SELECT COUNT(*) FROM messages m WHERE m.thread_id = p.id) AS message_count";

pub(crate) const MESSAGE_SELECT: &str = "SELECT m.id, m.uuid, m.thread_id, t.uuid AS thread_uuid, \
     s.user_id AS owner_id, u.username AS owner_username, m.role, m.content, m.sequence_index, \
     r.uuid AS replaces_uuid, m.created, m.is_flagged, m.severity, \
     m.injection_categories, m.pii_categories, m.action_taken, m.input_tokens, \
     m.output_tokens, m.generating_lease IS NOT NULL AS is_generating \
     FROM messages m JOIN threads t ON t.id = m.thread_id \
     JOIN chat_sessions s ON s.id = t.session_id \
     JOIN users u ON u.id = s.user_id \
     LEFT JOIN messages r ON r.id = m.replaces_id";

pub(crate) const AUDIT_COLUMNS: &str =
    "id, uuid, event_type, message, actor_id, target_id, context, created";

/// `now` plus `ttl`, in stored microseconds, saturating instead of overflowing.
/// A duration in the stored unit (microseconds).
pub(crate) fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[allow(dead_code)]
pub(crate) fn expiry(now: i64, ttl: std::time::Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

/// Half-open `[start, end)` range, in stored microseconds, of a UTC day.
fn day_range(day: NaiveDate) -> (i64, i64) {
    let start = |d: NaiveDate| {
        d.and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_micros()
    };
    let end = day.succ_opt().map(start).unwrap_or(i64::MAX);
    (start(day), end)
}

/// What differs in the SQL text between the two backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// The case-insensitive LIKE: SQLite's `LIKE` already ignores (ASCII)
    /// case; PostgreSQL needs `ILIKE`. Neither wraps columns in `LOWER()`,
    /// which would cost a function call per row.
    pub like: &'static str,
}

/// Escapes `%`, `_` and `\` so user text matches literally under `ESCAPE '\'`.
fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

fn push_thread_where<DB>(qb: &mut QueryBuilder<DB>, dialect: Dialect, filter: &ThreadFilter)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
{
    qb.push(" WHERE 1 = 1");
    // A user has at most one session, so these are scalar subqueries: the
    // planner treats the session id as a known value.
    if let Some(owner) = filter.scope.owner() {
        qb.push(" AND t.session_id = (SELECT id FROM chat_sessions WHERE user_id = ")
            .push_bind(owner)
            .push(")");
    }
    if let Some(user) = filter.user {
        qb.push(format_args!(
            " AND t.session_id = ({SESSIONS_OF_USERS}u2.uuid = "
        ))
        .push_bind(uuid_text(user))
        .push(")");
    }
    for (column, day) in [
        ("t.created", filter.created_on),
        ("t.modified", filter.modified_on),
    ] {
        if let Some(day) = day {
            let (start, end) = day_range(day);
            qb.push(format_args!(" AND {column} >= ")).push_bind(start);
            qb.push(format_args!(" AND {column} < ")).push_bind(end);
        }
    }
    if let Some(archived) = filter.is_archived {
        qb.push(" AND t.is_archived = ").push_bind(archived);
    }
    if let Some(flagged) = filter.is_flagged {
        qb.push(" AND t.is_flagged = ").push_bind(flagged);
    }
    match filter.max_severity {
        None => {}
        // The reference reads `none` as "not flagged", whatever the stored value.
        Some(Severity::None) => {
            qb.push(" AND t.is_flagged = ").push_bind(false);
        }
        Some(severity) => {
            qb.push(" AND t.max_severity = ")
                .push_bind(severity.as_str().to_owned());
        }
    }
    if let Some(query) = filter.query.as_deref() {
        // The owner columns are matched once, in a subquery over users, rather
        // than on every thread row.
        let pattern = like_pattern(query);
        let like = |qb: &mut QueryBuilder<DB>, column: &str| {
            qb.push(format_args!("{column} {} ", dialect.like))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        };
        qb.push(" AND (");
        like(qb, "t.name");
        qb.push(format_args!(" OR t.session_id IN ({SESSIONS_OF_USERS}"));
        like(qb, "u2.username");
        qb.push(" OR ");
        like(qb, "u2.full_name");
        qb.push(" OR ");
        like(qb, "u2.email");
        qb.push("))");
    }
}

fn push_thread_order<DB: Database>(qb: &mut QueryBuilder<DB>, alias: &str, order: &[ThreadOrder]) {
    let order = if order.is_empty() {
        &[ThreadOrder::DEFAULT][..]
    } else {
        order
    };
    qb.push(" ORDER BY ");
    for term in order {
        let column = match term.field {
            ThreadOrderField::Created => "created",
            ThreadOrderField::Modified => "modified",
        };
        let direction = if term.descending { "DESC" } else { "ASC" };
        qb.push(format_args!("{alias}.{column} {direction}, "));
    }
    // Ties broken by insertion order, in the direction of the first key, so
    // pages never overlap or skip rows.
    let direction = if order[0].descending { "DESC" } else { "ASC" };
    qb.push(format_args!("{alias}.id {direction}"));
}

/// Pushes the `SELECT` counting the threads a filter matches: the sessions'
/// counters when only scope and owner restrict it, otherwise `COUNT(*)` over
/// the matching rows.
fn push_count_threads<DB>(qb: &mut QueryBuilder<DB>, dialect: Dialect, filter: &ThreadFilter)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
{
    if filter.counts_whole_sessions() {
        qb.push(
            "SELECT CAST(COALESCE(SUM(s.thread_count), 0) AS BIGINT) FROM chat_sessions s \
             JOIN users u ON u.id = s.user_id WHERE 1 = 1",
        );
        if let Some(owner) = filter.scope.owner() {
            qb.push(" AND s.user_id = ").push_bind(owner);
        }
        if let Some(user) = filter.user {
            qb.push(" AND u.uuid = ").push_bind(uuid_text(user));
        }
        return;
    }
    qb.push("SELECT COUNT(*) FROM threads t");
    push_thread_where(qb, dialect, filter);
}

/// The number of threads a filter matches.
pub(crate) fn count_threads<DB>(dialect: Dialect, filter: &ThreadFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
    DB::Arguments: Default,
{
    let mut qb = QueryBuilder::new("");
    push_count_threads(&mut qb, dialect, filter);
    qb
}

/// What `select_threads` returns besides the thread columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WithTotal {
    No,
    /// A `total` column: the count of the whole filter, computed once per
    /// statement, so a page and its count take one round trip.
    Yes,
}

/// One page of threads (or, with `uuid`, the single matching thread), with
/// `message_count` computed for the page rows only.
pub(crate) fn select_threads<DB>(
    dialect: Dialect,
    filter: &ThreadFilter,
    uuid: Option<uuid::Uuid>,
    window: Window,
    total: WithTotal,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
    DB::Arguments: Default,
{
    let mut qb = QueryBuilder::new(format!("SELECT {THREAD_OWNER_COLUMNS}, {MESSAGE_COUNT}"));
    if total == WithTotal::Yes {
        qb.push(", (");
        push_count_threads(&mut qb, dialect, filter);
        qb.push(") AS total");
    }
    qb.push(" FROM (");
    qb.push(THREAD_PAGE_COLUMNS);
    push_thread_where(&mut qb, dialect, filter);
    if let Some(uuid) = uuid {
        qb.push(" AND t.uuid = ").push_bind(uuid_text(uuid));
    }
    push_thread_order(&mut qb, "t", &filter.order);
    // Literals, not bind parameters: SQLite re-plans a statement on every
    // execution when a LIMIT is a parameter (the planner looks at its value),
    // which made each page query parse and plan anew. Both are integers.
    qb.push(format_args!(
        " LIMIT {} OFFSET {}) p JOIN chat_sessions s ON s.id = p.session_id \
         JOIN users u ON u.id = s.user_id",
        window.limit, window.offset
    ));
    push_thread_order(&mut qb, "p", &filter.order);
    qb
}

/// The message list: `sequence_index` ascending (insertion order breaks ties).
pub(crate) fn select_messages<DB>(filter: &MessageFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
    DB::Arguments: Default,
{
    let mut qb = QueryBuilder::new(MESSAGE_SELECT);
    qb.push(" WHERE 1 = 1");
    if let Some(owner) = filter.scope.owner() {
        qb.push(" AND s.user_id = ").push_bind(owner);
    }
    if let Some(thread) = filter.thread {
        qb.push(" AND t.uuid = ").push_bind(uuid_text(thread));
    }
    if let Some(flagged) = filter.is_flagged {
        qb.push(" AND m.is_flagged = ").push_bind(flagged);
    }
    if !filter.include_history {
        qb.push(" AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.replaces_id = m.id)");
    }
    qb.push(" ORDER BY m.sequence_index ASC, m.id ASC");
    if let Some(limit) = filter.limit {
        qb.push(" LIMIT ").push_bind(limit.max(0));
    }
    qb
}

/// The thread's detection summary after a flagged message arrived: the
/// reference's `update_detection_flags`. Merges `is_flagged` and
/// `max_severity` into the stored object, keeping every other key.
///
/// Returns the new JSON text and the two values for the mirror columns.
pub(crate) fn summarise_flags(
    current: &str,
    flagged_severities: &[String],
) -> Result<(String, bool, Severity)> {
    let mut flags = parse_object("threads", current)?;
    let max = flagged_severities
        .iter()
        .filter_map(|s| s.parse::<Severity>().ok())
        .max()
        .unwrap_or(Severity::None);
    let is_flagged = !flagged_severities.is_empty();
    flags.insert("is_flagged".into(), Value::Bool(is_flagged));
    flags.insert("max_severity".into(), Value::String(max.as_str().into()));
    Ok((Value::Object(flags).to_string(), is_flagged, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\B"), "%50\\%\\_a\\\\B%");
    }

    #[test]
    fn flags_summary_keeps_other_keys() {
        let (json, flagged, max) =
            summarise_flags(r#"{"note":1}"#, &["low".into(), "high".into()]).unwrap();
        assert!(flagged);
        assert_eq!(max, Severity::High);
        assert_eq!(
            json,
            r#"{"note":1,"is_flagged":true,"max_severity":"high"}"#
        );
    }

    #[test]
    fn day_range_covers_one_day() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 27).unwrap();
        let (start, end) = day_range(day);
        assert_eq!(end - start, 86_400_000_000);
    }
}
