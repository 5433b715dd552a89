//! Test support: a fresh, migrated database per test on either backend.
//!
//! SQLite tests get their own file in the temp dir. PostgreSQL tests get their
//! own schema in the database named by `PALISADE_TEST_POSTGRES_URL`, so runs
//! and parallel tests never see each other's rows; when the variable is not
//! set they print a visible "skipped" line instead of silently passing.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rand::Rng;
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{PostgresStore, SqliteStore, Store};

/// The environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "PALISADE_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated, empty database that is removed again by [`TestDatabase::remove`].
pub struct TestDatabase {
    pub store: Arc<dyn Store>,
    /// The URL a separate process (the `palisade` binary) can use.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Schema { admin_url: String, schema: String },
}

fn random_suffix() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

impl TestDatabase {
    /// `None` (after printing why) when the backend is not available here.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let path =
                    std::env::temp_dir().join(format!("palisade-test-{}.db", random_suffix()));
                let url = format!("sqlite://{}", path.display());
                let store = SqliteStore::connect(&url)
                    .await
                    .unwrap_or_else(|err| panic!("opening {url}: {err}"));
                store.migrate().await.expect("sqlite migrations");
                Some(TestDatabase {
                    store: Arc::new(store),
                    url,
                    cleanup: Cleanup::File(path),
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
                    return None;
                };
                let schema = format!("palisade_test_{}", random_suffix());
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                    .unwrap_or_else(|err| panic!("connecting to {POSTGRES_URL_VAR}: {err}"));
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .await
                    .expect("creating test schema");
                admin.close().await;
                let options = PgConnectOptions::from_str(&admin_url)
                    .expect("valid PostgreSQL URL")
                    .options([("search_path", schema.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await
                    .expect("connecting to the test schema");
                let store = PostgresStore::from_pool(pool);
                store.migrate().await.expect("postgres migrations");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
                Some(TestDatabase {
                    store: Arc::new(store),
                    url,
                    cleanup: Cleanup::Schema { admin_url, schema },
                })
            }
        }
    }

    /// Deletes the database file or drops the schema.
    pub async fn remove(self) {
        drop(self.store);
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                        .await;
                    admin.close().await;
                }
            }
        }
    }
}

/// Runs one test body against a fresh database of `backend`, then removes it.
/// Prints a "skipped" line when the backend is unavailable.
pub async fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = TestDatabase::create(backend).await else {
        println!("skipped: {name} on PostgreSQL ({POSTGRES_URL_VAR} is not set)");
        return;
    };
    test(db.store.clone()).await;
    db.remove().await;
}

/// Declares each listed `async fn(Arc<dyn Store>)` as two tests, one per
/// backend: `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! test_on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::testing::run($crate::testing::Backend::Sqlite, stringify!($name), super::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::testing::run($crate::testing::Backend::Postgres, stringify!($name), super::$name).await;
                }
            )+
        }
    };
}
