//! The PostgreSQL backend, for several Palisade nodes sharing one database.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::Result;
use crate::sql_store::sql_store;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While the database is down a request should hear so quickly
            // (503) rather than hold its client for the default 30 s.
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await?;
        Ok(PostgresStore { pool })
    }

    /// Wraps an existing pool (tests use one bound to a private schema).
    pub fn from_pool(pool: PgPool) -> PostgresStore {
        PostgresStore { pool }
    }

    /// Row locks (`FOR UPDATE`) do the serialising here, so a plain `BEGIN`.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

sql_store! {
    store = PostgresStore,
    db = Postgres,
    name = "postgres",
    migrator = sqlx::migrate!("./migrations/postgres"),
    dialect = crate::sql::Dialect { like: "ILIKE" },
    row_lock = " FOR UPDATE",
    share_lock = " FOR SHARE",
    db_now = "(CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT))",
}
