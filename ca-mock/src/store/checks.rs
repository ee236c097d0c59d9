//! Read-only checks for reconcilers (`ca-mock audit`, `scep-lab audit`): the database's own
//! integrity check, its durability settings, and the CRL counter without advancing it.

use sqlx::Row;

pub use foundation::sql::SqliteDurability;

use super::{SqlStore, StoreError};

impl SqlStore {
    /// SQLite's `PRAGMA integrity_check` lines other than `ok`; always empty on PostgreSQL.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.db().integrity_check().await?)
    }

    /// The durability settings of a pooled SQLite connection; `None` on PostgreSQL.
    pub async fn sqlite_durability(&self) -> Result<Option<SqliteDurability>, StoreError> {
        Ok(self.db().sqlite_durability().await?)
    }

    /// The last CRL number allocated (the published CRL's number is at most this).
    pub async fn crl_number(&self) -> Result<i64, StoreError> {
        let sql = "SELECT number FROM crl_state WHERE id = 1";
        Ok(foundation::on_db!(self.db(), |p, _begin| sqlx::query(sql)
            .fetch_one(p)
            .await?
            .try_get(0)?))
    }
}
