//! Palisade's storage: one [`Store`] trait, one implementation per database.
//!
//! The server holds an `Arc<dyn Store>` and never sees SQL. SQLite (the
//! default, one file in the data dir) and PostgreSQL (for several nodes) each
//! have a module and their own migrations; the conformance suite in `tests/`
//! runs unchanged against both.

mod error;
pub mod model;
mod placement;
mod postgres;
mod quota;
mod rows;
mod sql;
mod sql_store;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

pub use error::{EditRejection, Result, StoreError};
pub use model::*;
pub use placement::{Plan, Slot, ThreadState, place_answer};
pub use postgres::PostgresStore;
pub use quota::{QuotaCheck, QuotaDefaults, QuotaLimits, QuotaPeriod, Reservation, TokenQuota};
pub use sqlite::SqliteStore;

/// Everything Palisade persists. All methods are safe to call concurrently.
///
/// Reads take a [`Scope`] (or a filter holding one) so that visibility rules
/// are part of the query: a row the caller may not see is indistinguishable
/// from one that does not exist.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for logs and diagnostics.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations of this backend.
    async fn migrate(&self) -> Result<()>;

    /// One round trip to the database: the readiness probe.
    async fn ping(&self) -> Result<()>;

    /// This process's connection pool right now, for metrics.
    fn pool_connections(&self) -> PoolConnections;

    // Users and tokens.

    /// Fails with [`StoreError::Conflict`] when the username is taken.
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn count_users(&self) -> Result<i64>;
    async fn set_user_active(&self, user_id: i64, active: bool) -> Result<()>;
    async fn insert_token(&self, user_id: i64, token: &NewToken) -> Result<StoredToken>;
    /// The token with this lookup prefix and its owner. Expiry and the hash
    /// comparison are the caller's to check.
    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<(StoredToken, User)>>;
    /// Deletes one token; `false` when it was already gone.
    async fn revoke_token(&self, token_id: i64) -> Result<bool>;
    /// Deletes every token of a user; how many there were.
    async fn revoke_user_tokens(&self, user_id: i64) -> Result<u64>;

    // Passwords and the login lockout.

    /// Sets (or with `None` removes) the user's password hash, a PHC string.
    /// `NotFound` when there is no such user.
    async fn set_password_hash(&self, user_id: i64, hash: Option<&str>) -> Result<()>;
    /// The user's password hash; `None` when they have no password.
    async fn password_hash(&self, user_id: i64) -> Result<Option<String>>;
    /// Failed logins for this username from this client since `since`.
    async fn count_login_failures(
        &self,
        username: &str,
        client_ip: &str,
        since: Timestamp,
    ) -> Result<i64>;
    /// Records a failed login, and forgets every failure (of any user) older
    /// than `forget_before`, which keeps the table as small as the window.
    async fn record_login_failure(
        &self,
        username: &str,
        client_ip: &str,
        forget_before: Timestamp,
    ) -> Result<()>;
    /// Forgets this username's failures from this client (after a success).
    async fn clear_login_failures(&self, username: &str, client_ip: &str) -> Result<()>;

    // Chat sessions: at most one per user.

    /// The user's session, created on first use; safe against concurrent calls.
    async fn get_or_create_session(&self, user_id: i64) -> Result<ChatSession>;
    async fn count_sessions(&self, scope: Scope) -> Result<i64>;
    /// Newest first.
    async fn list_sessions(&self, scope: Scope, window: Window) -> Result<Vec<ChatSession>>;
    async fn find_session(&self, scope: Scope, uuid: Uuid) -> Result<Option<ChatSession>>;

    // Threads.

    async fn create_thread(&self, session_id: i64, name: &str) -> Result<Thread>;
    async fn count_threads(&self, filter: &ThreadFilter) -> Result<i64>;
    /// One page of the threads a filter matches, and how many it matches in all.
    async fn list_threads(&self, filter: &ThreadFilter, window: Window) -> Result<Listing<Thread>>;
    /// The thread with this uuid, if it also passes every filter.
    async fn find_thread(&self, filter: &ThreadFilter, uuid: Uuid) -> Result<Option<Thread>>;
    /// Sets `is_archived` (bumping `modified`) on the thread if it passes the
    /// filter; `false` when there is no such thread.
    async fn set_thread_archived(
        &self,
        filter: &ThreadFilter,
        uuid: Uuid,
        archived: bool,
    ) -> Result<bool>;
    /// Renames a thread without bumping `modified` (the generated title is
    /// not a user change); `false` when the thread does not exist.
    async fn set_thread_name(&self, thread_id: i64, name: &str) -> Result<bool>;

    // Generation leases: one answer per thread at a time, across nodes.

    /// Takes the thread's generation lease for `ttl`, unless another unexpired
    /// lease holds it, and clears any earlier cancel request. `false` when the
    /// thread is busy. Concurrent callers cannot both win.
    async fn acquire_generation_lease(
        &self,
        thread_id: i64,
        lease: Uuid,
        ttl: Duration,
    ) -> Result<bool> {
        let grant = self
            .acquire_limited_lease(thread_id, lease, ttl, None)
            .await?;
        Ok(grant == LeaseGrant::Granted)
    }
    /// As [`Store::acquire_generation_lease`], and also refused
    /// ([`LeaseGrant::UserBusy`]) when the thread's owner already has
    /// `max_per_user` unexpired leases, on any node: the check and the take
    /// are serialised per user, so concurrent requests cannot overshoot.
    async fn acquire_limited_lease(
        &self,
        thread_id: i64,
        lease: Uuid,
        ttl: Duration,
        max_per_user: Option<u32>,
    ) -> Result<LeaseGrant>;
    /// Extends a lease its holder still owns; `false` when it was lost.
    async fn renew_generation_lease(
        &self,
        thread_id: i64,
        lease: Uuid,
        ttl: Duration,
    ) -> Result<bool>;
    /// Gives a lease up; nothing happens when this holder no longer owns it.
    async fn release_generation_lease(&self, thread_id: i64, lease: Uuid) -> Result<()>;
    /// Asks the generation running on the thread (on any node) to stop;
    /// `false` when none is running.
    async fn request_generation_cancel(&self, thread_id: i64) -> Result<bool>;
    /// Which of these threads have a cancel request pending: one query for
    /// all the generations a node runs.
    async fn cancel_requests(&self, thread_ids: &[i64]) -> Result<Vec<i64>>;

    // Messages.

    /// Inserts a message as given. A second original (non-replacement) row at
    /// the same `(thread, sequence_index)` fails with [`StoreError::Conflict`].
    async fn insert_message(&self, thread_id: i64, message: &NewMessage) -> Result<Message>;
    /// Appends a user message at the thread's highest sequence index + 1 (1
    /// in an empty thread), under the thread's write lock.
    async fn append_user_message(&self, thread_id: i64, content: &str) -> Result<Message>;
    /// Edit mode: writes a replacement of the thread's user message `target`
    /// (same sequence index, `replaces` = target). `NotFound` when it is not
    /// in this thread; `EditRejected` when it is not a user message or not
    /// the last active one.
    async fn edit_user_message(
        &self,
        thread_id: i64,
        target: Uuid,
        content: &str,
    ) -> Result<Message>;
    /// Writes an assistant answer where the mode puts it (see
    /// [`placement`]) and bumps the thread's `modified`, in one transaction.
    async fn append_answer(&self, thread_id: i64, to: &AnswerTo, content: &str) -> Result<Answer>;
    /// Starts an answer: an empty assistant message where the mode puts it,
    /// marked as generating under `lease`, written only while `lease` holds
    /// the thread (by the database's clock); [`StoreError::LeaseLost`]
    /// otherwise. `reserved_tokens` (see [`Store::reserve_tokens`]) stays on
    /// the row until the answer is settled: by its final save, or by the
    /// recovery sweep.
    async fn begin_answer(
        &self,
        thread_id: i64,
        to: &AnswerTo,
        lease: Uuid,
        reserved_tokens: i64,
    ) -> Result<Answer>;
    /// Saves an answer begun with [`Store::begin_answer`]; with `done` it
    /// stops being "generating" and the thread's `modified` is bumped.
    /// Written only while `lease` still holds the thread (expired or not:
    /// until another generation takes it); nothing is written otherwise.
    async fn save_answer(
        &self,
        message_id: i64,
        lease: Uuid,
        progress: &AnswerProgress<'_>,
    ) -> Result<AnswerSaved>;
    /// Marks answers whose generation no longer holds its thread as
    /// interrupted — content kept, no longer generating — and settles their
    /// usage: their output tokens replace their reservation. Answers whose thread lease was
    /// taken over or released, or expired at least `expired_for` ago (its
    /// node died). One thread, or all with `None`. Returns how many.
    async fn recover_interrupted_answers(
        &self,
        thread_id: Option<i64>,
        expired_for: Duration,
    ) -> Result<u64>;
    /// The message id of the thread's answer being generated now; `None`
    /// when nothing is generating there.
    async fn generating_answer(&self, thread_id: i64) -> Result<Option<i64>>;
    /// At most `limit` bytes of an answer's transcript from byte `from`, with
    /// its state, by message id (a follower's poll). Read in parts, so a
    /// follower never holds more than one part of a long answer.
    async fn answer_transcript(
        &self,
        message_id: i64,
        from: usize,
        limit: usize,
    ) -> Result<Option<AnswerTranscript>>;
    /// Records a guard verdict on a message; when it is flagged, recomputes
    /// the thread's `flags` summary from all its flagged rows.
    async fn record_detection(&self, message_id: i64, detection: &Detection) -> Result<()>;
    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<Message>>;

    // Token quotas and usage.

    /// The user's quota row (created on first use), after lazy resets.
    async fn token_quota(&self, user_id: i64) -> Result<TokenQuota>;
    /// Sets the user's own limits (`None`: the system default; -1: unlimited).
    async fn set_token_limits(&self, user_id: i64, limits: QuotaLimits) -> Result<()>;
    /// Adds spent tokens to the day's, week's and month's counters, after
    /// lazy resets, in one locked transaction. A negative amount gives back
    /// part of a reservation; no counter goes below zero.
    async fn add_token_usage(&self, user_id: i64, tokens: i64) -> Result<TokenQuota>;
    /// Reserves an answer's cost before it is generated, in one locked
    /// transaction: refused when a limit is reached (see
    /// [`TokenQuota::check`]), else up to `wanted` tokens — no more than the
    /// tightest limit leaves — are added to the usage at once, so concurrent
    /// requests on any node cannot together pass a limit.
    async fn reserve_tokens(
        &self,
        user_id: i64,
        defaults: QuotaDefaults,
        wanted: i64,
    ) -> Result<Reservation>;
    /// Records the tokens an answer cost on its message.
    async fn record_message_usage(
        &self,
        message_id: i64,
        input_tokens: i64,
        output_tokens: i64,
    ) -> Result<()>;

    // Audit trail.

    async fn record_audit_event(&self, event: &NewAuditEvent) -> Result<AuditEvent>;
    /// Events about a user (all events with `None`), oldest first.
    async fn list_audit_events(&self, target_id: Option<i64>) -> Result<Vec<AuditEvent>>;
}

/// A database URL whose `Debug` and `Display` hide the password, so it can be
/// logged and put in error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The real URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every password masked: the one in the userinfo
    /// (`scheme://user:***@host`) and the value of any query parameter whose
    /// name contains `password` (`?password=***`, `?sslpassword=***`).
    pub fn redacted(&self) -> String {
        let (head, query) = match self.0.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (self.0.as_str(), None),
        };
        let mut out = redact_userinfo(head);
        if let Some(query) = query {
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        out
    }
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`. The last `@`
/// ends the userinfo, so a password containing `@` or `/` is masked whole.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Opens the database the URL names (`sqlite://…` or `postgres://…`).
/// Migrations are not applied; call [`Store::migrate`].
pub async fn connect(url: &DatabaseUrl) -> Result<Arc<dyn Store>> {
    let raw = url.expose();
    if raw.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(raw).await?))
    } else if raw.starts_with("postgres:") || raw.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(raw).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.redacted()))
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn database_url_hides_password() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db:5432/chat");
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/chat");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/chat");
    }

    #[test]
    fn database_url_hides_query_passwords() {
        let url = DatabaseUrl::new(
            "postgres://app@db/chat?sslmode=require&password=s3cret&sslpassword=k3y",
        );
        assert_eq!(
            url.to_string(),
            "postgres://app@db/chat?sslmode=require&password=***&sslpassword=***"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let both = DatabaseUrl::new("postgres://app:p@ss/w0rd@db/chat?PASSWORD=s3cret");
        assert_eq!(both.to_string(), "postgres://app:***@db/chat?PASSWORD=***");
        let sqlite = DatabaseUrl::new("sqlite:///var/lib/palisade/palisade.db?mode=rwc");
        assert_eq!(sqlite.to_string(), sqlite.expose());
    }
}
