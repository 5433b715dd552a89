//! What can go wrong in the store, in terms a caller can act on.

/// Store failures. `Conflict` and `NotFound` are expected outcomes a caller
/// turns into 4xx answers; the rest are faults of the database or its data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (a taken username, a second active
    /// message at the same sequence index, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// An edit the reference refuses (section 3.2, step 9).
    #[error("edit rejected: {0}")]
    EditRejected(EditRejection),
    /// A generation's lease no longer holds its thread (it expired, or
    /// another generation took the thread over): it may write nothing more.
    #[error("the generation lease was lost")]
    LeaseLost,
    /// A row holds a value this version cannot read.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("database URL {0:?} is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot be reached right now (connection refused or
    /// lost, no pooled connection within the acquire timeout): worth
    /// retrying shortly, unlike other database errors.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            // PostgreSQL shutting down or restarting (57P01–57P03), or the
            // connection failing (class 08), under a running query.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")) =>
            {
                StoreError::Unavailable(err)
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            _ => StoreError::Database(err),
        }
    }
}

/// Why a message may not be edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditRejection {
    #[error("Can only edit user messages.")]
    NotAUserMessage,
    #[error("Can only edit the last user message.")]
    NotTheLastUserMessage,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
