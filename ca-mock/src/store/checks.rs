//! Read-only checks for reconcilers (`ca-mock audit`, `scep-lab audit`): the database's own
//! integrity check, its durability settings, and the CRL counter without advancing it.

use sqlx::Row;

use super::{SqlStore, StoreError};

/// How a SQLite database is configured for durability (DESIGN decision 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDurability {
    /// `PRAGMA journal_mode` (`wal` expected for a file).
    pub journal_mode: String,
    /// `PRAGMA synchronous` (2 = FULL expected).
    pub synchronous: i64,
}

impl SqlStore {
    /// SQLite's `PRAGMA integrity_check` lines other than `ok`; always empty on PostgreSQL.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(pool) => {
                let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(pool)
                    .await?;
                Ok(lines.into_iter().filter(|l| l != "ok").collect())
            }
            Self::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// The durability settings of a pooled SQLite connection; `None` on PostgreSQL.
    pub async fn sqlite_durability(&self) -> Result<Option<SqliteDurability>, StoreError> {
        match self {
            Self::Sqlite(pool) => {
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
            Self::Postgres(_) => Ok(None),
        }
    }

    /// The last CRL number allocated (the published CRL's number is at most this).
    pub async fn crl_number(&self) -> Result<i64, StoreError> {
        let sql = "SELECT number FROM crl_state WHERE id = 1";
        Ok(match self {
            Self::Sqlite(p) => sqlx::query(sql).fetch_one(p).await?.try_get(0)?,
            Self::Postgres(p) => sqlx::query(sql).fetch_one(p).await?.try_get(0)?,
        })
    }
}
