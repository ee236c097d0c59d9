//! The durable SQL pool every service store runs on: embedded SQLite (the default) or a
//! shared PostgreSQL (several instances), behind one SQL text.
//!
//! No sqlx `Any` driver: [`Db`] is an enum over the two pools and [`on_db!`] expands each query
//! once per backend, so both are type-checked. Queries use `$n` placeholders, integer unix
//! seconds, `ON CONFLICT` and `RETURNING`, which both engines accept. SQLite runs in WAL with
//! `synchronous=FULL` so a committed row survives power loss (docs/decisions.md #8), and write
//! transactions start with `BEGIN IMMEDIATE` so concurrent writers queue on the busy timeout
//! instead of failing on a lock upgrade.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A pool on one of the two backends. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite (a file, or `sqlite::memory:` for tests), with this process's queue of writers.
    Sqlite(SqlitePool, WriteQueue),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's concrete pool and `$begin` to its
/// write-transaction statement (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL).
/// `$db` is an expression of type `&Db`. `on_db!(write $db, ...)` runs `$body` in this
/// process's turn to write ([`Db::write_turn`]), held until `$body` is done: the form for every
/// write transaction.
#[macro_export]
macro_rules! on_db {
    (write $db:expr, |$pool:ident, $begin:ident| $body:expr) => {{
        let db: &$crate::sql::Db = $db;
        let _turn = db.write_turn().await;
        $crate::on_db!(db, |$pool, $begin| $body)
    }};
    ($db:expr, |$pool:ident, $begin:ident| $body:expr) => {
        match $db {
            $crate::sql::Db::Sqlite($pool, _) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
            $crate::sql::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
        }
    };
}

/// SQLite takes one writer at a time. Writers of this process wait for their turn here, in
/// arrival order, instead of in SQLite's busy handler, which polls with sleeps of 1 to 100 ms:
/// under concurrent enrollments that polling, not the commits, was most of the full
/// pipeline's latency (issue 19). Another process's writer still meets the busy timeout.
#[derive(Debug, Clone, Default)]
pub struct WriteQueue(Arc<tokio::sync::Mutex<()>>);

/// The turn of one write transaction; the next writer goes when it is dropped.
pub type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

/// How a pool is opened.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Connections in the pool (SQLite in memory always gets one: each connection would get
    /// its own database).
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock, or a PostgreSQL caller for a connection.
    pub busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// The durability SQLite runs with (what the durability tests and the reconciler check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDurability {
    /// `PRAGMA journal_mode` (`wal` expected for a file).
    pub journal_mode: String,
    /// `PRAGMA synchronous` (2 = FULL expected).
    pub synchronous: i64,
}

/// True for the URLs [`Db::connect`] opens on PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Db {
    /// Opens (creating if missing) a SQLite database file in WAL mode with synchronous=FULL,
    /// foreign keys on and a busy timeout.
    pub async fn open_sqlite_file(path: &Path, options: PoolOptions) -> Result<Self, sqlx::Error> {
        let connect = SqliteConnectOptions::new().filename(path);
        Self::open_sqlite_with(connect, false, options).await
    }

    /// Opens a SQLite database by URL (`sqlite://path`, `sqlite:path` or `sqlite::memory:`).
    pub async fn open_sqlite_url(url: &str, options: PoolOptions) -> Result<Self, sqlx::Error> {
        let memory = url.contains(":memory:");
        let connect = SqliteConnectOptions::from_str(url)?;
        Self::open_sqlite_with(connect, memory, options).await
    }

    async fn open_sqlite_with(
        connect: SqliteConnectOptions,
        memory: bool,
        options: PoolOptions,
    ) -> Result<Self, sqlx::Error> {
        let connect = connect
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { options.max_connections })
            .connect_with(connect)
            .await?;
        Ok(Self::Sqlite(pool, WriteQueue::default()))
    }

    /// Connects to PostgreSQL.
    pub async fn connect_postgres(url: &str, options: PoolOptions) -> Result<Self, sqlx::Error> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self::Postgres(pool))
    }

    /// Opens what a URL names: `postgres://` / `postgresql://` on PostgreSQL, else SQLite.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, sqlx::Error> {
        if is_postgres_url(url) {
            Self::connect_postgres(url, options).await
        } else {
            Self::open_sqlite_url(url, options).await
        }
    }

    /// Runs the migrations of the backend in use.
    pub async fn migrate(
        &self,
        sqlite: &sqlx::migrate::Migrator,
        postgres: &sqlx::migrate::Migrator,
    ) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Self::Sqlite(pool, _) => sqlite.run(pool).await,
            Self::Postgres(pool) => postgres.run(pool).await,
        }
    }

    /// Waits for this process's turn to write, on SQLite; hold it for the whole write
    /// transaction (`BEGIN IMMEDIATE` to commit). `None` on PostgreSQL, whose writers take row
    /// locks and do not poll.
    pub async fn write_turn(&self) -> Option<WriteTurn> {
        match self {
            Self::Sqlite(_, queue) => Some(Arc::clone(&queue.0).lock_owned().await),
            Self::Postgres(_) => None,
        }
    }

    /// The backend's name, for logs and `Debug`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(..) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The SQLite journal mode and synchronous level in force; `None` on PostgreSQL.
    pub async fn sqlite_durability(&self) -> Result<Option<SqliteDurability>, sqlx::Error> {
        let Self::Sqlite(pool, _) = self else {
            return Ok(None);
        };
        let mut conn = pool.acquire().await?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Some(SqliteDurability {
            journal_mode,
            synchronous,
        }))
    }

    /// SQLite's `PRAGMA integrity_check` lines other than `ok` (for reconcilers); always empty
    /// on PostgreSQL, which checks its pages itself.
    pub async fn integrity_check(&self) -> Result<Vec<String>, sqlx::Error> {
        let Self::Sqlite(pool, _) = self else {
            return Ok(Vec::new());
        };
        let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(pool)
            .await?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    /// Unix seconds from the database clock (PostgreSQL), so instances sharing it agree;
    /// `None` on SQLite, where the caller's [`crate::Clock`] decides.
    pub async fn database_now(&self) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Self::Sqlite(..) => Ok(None),
            Self::Postgres(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
            )
            .fetch_one(pool)
            .await
            .map(Some),
        }
    }

    /// One trivial round trip (`SELECT 1`): whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool, _begin| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// Closes the pool (tests use it to simulate an unavailable store).
    pub async fn close(&self) {
        on_db!(self, |pool, _begin| pool.close().await);
    }
}

/// Whether an error is a unique-constraint violation (an outcome for idempotent inserts, not
/// a failure).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_sqlite_file_runs_in_wal_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite_file(&dir.path().join("t.db"), PoolOptions::default())
            .await
            .unwrap();
        let d = db.sqlite_durability().await.unwrap().unwrap();
        assert_eq!(d.journal_mode, "wal");
        assert_eq!(d.synchronous, 2);
        assert_eq!(db.backend(), "sqlite");
        assert_eq!(db.database_now().await.unwrap(), None);
        assert!(db.integrity_check().await.unwrap().is_empty());
        let n: i64 = on_db!(&db, |pool, _begin| sqlx::query_scalar("SELECT 41 + 1")
            .fetch_one(pool)
            .await
            .unwrap());
        assert_eq!(n, 42);
    }

    /// With no busy timeout at all, 32 concurrent write transactions on 8 connections all
    /// commit: they waited for their turn in the process, none met SQLite's lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_of_one_database_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let options = PoolOptions {
            max_connections: 8,
            busy_timeout: Duration::ZERO,
        };
        let db = Db::open_sqlite_file(&dir.path().join("t.db"), options)
            .await
            .unwrap();
        on_db!(&db, |pool, _begin| {
            sqlx::query("CREATE TABLE t (n INTEGER)")
                .execute(pool)
                .await
                .unwrap();
        });
        let writers = (0..32).map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                on_db!(write & db, |pool, begin| {
                    let mut tx = pool.begin_with(begin).await?;
                    sqlx::query("INSERT INTO t (n) VALUES ($1)")
                        .bind(n)
                        .execute(&mut *tx)
                        .await?;
                    // Another writer would now meet the lock, without a turn.
                    tokio::task::yield_now().await;
                    tx.commit().await
                })
            })
        });
        for w in writers.collect::<Vec<_>>() {
            w.await.unwrap().unwrap();
        }
        let count: i64 = on_db!(&db, |pool, _begin| sqlx::query_scalar(
            "SELECT COUNT(*) FROM t"
        )
        .fetch_one(pool)
        .await
        .unwrap());
        assert_eq!(count, 32);
        // The turn is exclusive while held.
        let held = db.write_turn().await;
        assert!(held.is_some());
        let waiting = tokio::time::timeout(Duration::from_millis(100), db.write_turn()).await;
        assert!(
            waiting.is_err(),
            "a second writer got a turn beside the first"
        );
        drop(held);
        assert!(db.write_turn().await.is_some());
    }

    #[tokio::test]
    async fn urls_choose_the_backend() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(!is_postgres_url("sqlite::memory:"));
        let db = Db::connect("sqlite::memory:", PoolOptions::default())
            .await
            .unwrap();
        assert_eq!(
            db.sqlite_durability().await.unwrap().unwrap().journal_mode,
            "memory"
        );
    }
}
