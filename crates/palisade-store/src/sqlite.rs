//! The SQLite backend: one file in the data dir, the zero-setup default.
//!
//! WAL mode lets readers run beside the single writer; foreign keys are on
//! (SQLite leaves them off by default) so deletes cascade as in PostgreSQL;
//! the busy timeout makes a writer wait for the lock instead of failing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::Result;
use crate::sql_store::sql_store;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL.
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable at every checkpoint; the WAL makes NORMAL safe against corruption.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file cannot go stale; the default
            // liveness ping would cost a worker-thread round trip per query.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Takes the database write lock at `BEGIN`, so a transaction that reads
    /// and then writes never fails on lock upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

sql_store! {
    store = SqliteStore,
    db = Sqlite,
    name = "sqlite",
    migrator = sqlx::migrate!("./migrations/sqlite"),
    dialect = crate::sql::Dialect { like: "LIKE" },
    row_lock = "",
    share_lock = "",
    db_now = "(CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER))",
}
