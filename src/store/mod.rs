//! Persistence over sqlx: one repository API for SQLite (the embedded default) and PostgreSQL
//! (production). Queries are written once with `$n` placeholders, which both drivers accept;
//! only the migrations differ per dialect.

mod agent_keys;
mod agents;
mod alerts;
mod calls;
mod departments;
mod queue;
mod tenants;
mod transfers;
pub mod writer;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use thiserror::Error;

pub use agents::AgentInput;
pub use alerts::{AlertStatus, NewAlert};
pub use calls::{CallEventRecord, CallFilter, CallRecord, NewCall};
pub use departments::DepartmentInput;
pub use agent_keys::AgentKey;
pub use tenants::{KeyOwner, Tenant};

use crate::config::{redact_url, DatabaseConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?}: use postgres://... or leave it unset for SQLite")]
    UnsupportedUrl(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound("row".into()),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => Self::Unavailable(err),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_string())
            }
            other => Self::Database(other),
        }
    }
}

/// The repository. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects to `config.url` (PostgreSQL) or to `<data_dir>/switchboard.db` (SQLite), and
    /// brings the schema up to date.
    pub async fn connect(config: &DatabaseConfig, data_dir: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match config.url.as_deref() {
            None | Some("") => {
                std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let file = data_dir.join("switchboard.db");
                (format!("sqlite://{}?mode=rwc", file.display()), Backend::Sqlite)
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_string(), Backend::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_string(), Backend::Sqlite),
            Some(other) => return Err(StoreError::UnsupportedUrl(redact_url(other))),
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout);
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the single writer; the busy timeout turns brief lock
            // contention into waiting instead of errors.
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await.map_err(StoreError::Unavailable)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        tracing::info!(backend = backend.as_str(), url = %redact_url(&url), "database ready");
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial round trip, bounded by `timeout`, for readiness checks.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Unix time in milliseconds: the one time format stored in every table.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn get<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(column).map_err(StoreError::Database)
}
