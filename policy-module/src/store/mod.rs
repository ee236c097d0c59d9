//! The store: one SQL text over SQLite (embedded default) or PostgreSQL (several instances).
//!
//! No sqlx `Any` driver: [`Db`] is an enum over the two pools and [`on_db!`] expands each
//! query once per backend, so both are type-checked. Queries use `$n` placeholders, integer
//! Unix seconds, `ON CONFLICT` and `RETURNING`, which both engines accept. Write transactions
//! start with `BEGIN IMMEDIATE` on SQLite so concurrent writers queue on the busy timeout
//! instead of failing on a lock upgrade. On PostgreSQL the database clock is "now".

mod challenges;
mod inventory;
mod outbox;
mod plans;
mod reconcile;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use challenges::{
    ChallengeRow, IssuedOutcome, IssuedRecord, NewChallenge, RequestRow, ReserveOutcome,
};
pub use inventory::{Assignment, Transition};
pub use outbox::{AuditEvent, CommandRow, OutboxRow};
pub use plans::LookupPlan;
pub use reconcile::{AuditCert, AuditChallenge, SqliteDurability};

use crate::clock::Clock;
use crate::error::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The two backends.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool and `$begin` to its write-transaction
/// statement.
macro_rules! on_db {
    ($store:expr, |$pool:ident, $begin:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// Policy-module persistence. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        };
        f.debug_struct("Store").field("backend", &backend).finish()
    }
}

impl Store {
    /// Opens (creating if missing) a SQLite database file in WAL mode with synchronous=FULL
    /// and a busy timeout, and migrates it. `clock` is the time source for this instance.
    pub async fn open_sqlite(
        path: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| StoreError(e.into()))?;
        Ok(Self {
            db: Db::Sqlite(pool),
            clock,
        })
    }

    /// Connects to PostgreSQL and migrates. Expiry and timestamps use the database clock, so
    /// every instance sharing the database agrees (DESIGN decision 4).
    pub async fn connect_postgres(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| StoreError(e.into()))?;
        Ok(Self {
            db: Db::Postgres(pool),
            clock,
        })
    }

    /// Unix seconds: the injected clock on SQLite, the database's on PostgreSQL.
    pub async fn now(&self) -> Result<i64, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(self.clock.now()),
            Db::Postgres(pool) => Ok(sqlx::query_scalar::<_, i64>(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
            )
            .fetch_one(pool)
            .await?),
        }
    }

    /// Closes the pools (tests use it to simulate an unavailable store).
    pub async fn close(&self) {
        on_db!(self, |pool, _b| pool.close().await)
    }

    /// True when this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }
}
