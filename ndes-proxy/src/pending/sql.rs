//! [`PendingStore`] on SQLite or PostgreSQL: one SQL text (`$n` placeholders, integer unix
//! seconds, `ON CONFLICT`) run on whichever pool is configured (no `Any` driver: its binds
//! emit `?`, which PostgreSQL rejects).

use std::time::Duration;

use foundation::on_db;
use foundation::sql::{Db, PoolOptions, SqliteDurability};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use super::{
    PendingRecord, PendingState, PendingStore, StateKind, StoreError, grant_from_json,
    grant_to_json,
};

/// The pending store on the foundation's durable pool (SQLite WAL + `synchronous=FULL`, or
/// PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlPendingStore {
    db: Db,
}

/// Pool settings: a few connections (requests wait here only when queued or polled).
const POOL: PoolOptions = PoolOptions {
    max_connections: 4,
    busy_timeout: Duration::from_secs(10),
};

const COLUMNS: &str = "request_id, transaction_id, template, csr_der, grant_json, state, serial, \
     cert_der, reason, attempts, next_attempt_at, created_at, updated_at, notified_at, \
     signer_key_sha256";

/// Decodes a row; a macro so it works on both backends' row types.
macro_rules! record_from_row {
    ($row:expr) => {{
        let row = $row;
        let state: String = row.try_get("state")?;
        let kind = StateKind::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?;
        let serial: Option<String> = row.try_get("serial")?;
        let cert_der: Option<Vec<u8>> = row.try_get("cert_der")?;
        let reason: Option<String> = row.try_get("reason")?;
        let grant: String = row.try_get("grant_json")?;
        let attempts: i64 = row.try_get("attempts")?;
        PendingRecord {
            request_id: row.try_get("request_id")?,
            transaction_id: row.try_get("transaction_id")?,
            template: row.try_get("template")?,
            csr_der: row.try_get("csr_der")?,
            grant: grant_from_json(&grant)?,
            state: state_of(kind, serial, cert_der, reason)?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            next_attempt_at: row.try_get("next_attempt_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            notified_at: row.try_get("notified_at")?,
            signer_key_sha256: row.try_get("signer_key_sha256")?,
        }
    }};
}

fn state_of(
    kind: StateKind,
    serial: Option<String>,
    cert_der: Option<Vec<u8>>,
    reason: Option<String>,
) -> Result<PendingState, StoreError> {
    Ok(match kind {
        StateKind::AwaitingApproval => PendingState::AwaitingApproval,
        StateKind::QueuedForCa => PendingState::QueuedForCa,
        StateKind::Denied => PendingState::Denied,
        StateKind::Failed => PendingState::Failed {
            reason: reason.unwrap_or_default(),
        },
        StateKind::Issued => match (serial, cert_der) {
            (Some(serial_hex), Some(cert_der)) => PendingState::Issued {
                serial_hex,
                cert_der,
            },
            _ => return Err(StoreError::Corrupt("issued row without certificate".into())),
        },
    })
}

/// The (serial, cert_der, reason) columns of a state.
fn columns_of(state: &PendingState) -> (Option<&str>, Option<&[u8]>, Option<&str>) {
    match state {
        PendingState::Issued {
            serial_hex,
            cert_der,
        } => (Some(serial_hex), Some(cert_der), None),
        PendingState::Failed { reason } => (None, None, Some(reason)),
        _ => (None, None, None),
    }
}

/// The migrations of one backend, in order: (description, SQL).
fn migrator(steps: [(&'static str, &'static str); 3]) -> Migrator {
    let migrations = steps
        .into_iter()
        .zip(1..)
        .map(|((name, sql), version)| {
            Migration::new(
                version,
                name.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

impl SqlPendingStore {
    /// Opens (creating if needed) a SQLite database in WAL mode with `synchronous=FULL`, so a
    /// request answered PENDING survives power loss, and runs its migrations. `url` is a
    /// `sqlite://path` or `sqlite::memory:` URL.
    pub async fn sqlite(url: &str) -> Result<Self, StoreError> {
        Self::migrated(Db::open_sqlite_url(url, POOL).await?).await
    }

    /// [`SqlPendingStore::sqlite`] on a file path (no URL escaping needed).
    pub async fn sqlite_file(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::migrated(Db::open_sqlite_file(path, POOL).await?).await
    }

    /// Connects to PostgreSQL and runs its migrations.
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        let options = PoolOptions {
            max_connections: 8,
            ..POOL
        };
        Self::migrated(Db::connect_postgres(url, options).await?).await
    }

    /// Opens the store a URL names: `postgres://` / `postgresql://`, else SQLite.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if foundation::sql::is_postgres_url(url) {
            Self::postgres(url).await
        } else {
            Self::sqlite(url).await
        }
    }

    async fn migrated(db: Db) -> Result<Self, StoreError> {
        let sqlite = migrator([
            (
                "pending",
                include_str!("../../migrations/sqlite/0001_pending.sql"),
            ),
            (
                "notified",
                include_str!("../../migrations/sqlite/0002_notified.sql"),
            ),
            (
                "signer key",
                include_str!("../../migrations/sqlite/0003_signer_key.sql"),
            ),
        ]);
        let postgres = migrator([
            (
                "pending",
                include_str!("../../migrations/postgres/0001_pending.sql"),
            ),
            (
                "notified",
                include_str!("../../migrations/postgres/0002_notified.sql"),
            ),
            (
                "signer key",
                include_str!("../../migrations/postgres/0003_signer_key.sql"),
            ),
        ]);
        db.migrate(&sqlite, &postgres).await?;
        Ok(Self { db })
    }

    /// The SQLite journal mode and synchronous level in force (for the durability test).
    pub async fn sqlite_durability(&self) -> Result<Option<SqliteDurability>, StoreError> {
        Ok(self.db.sqlite_durability().await?)
    }

    /// SQLite's `PRAGMA integrity_check` lines other than `ok` (for reconcilers such as
    /// `scep-lab audit`); always empty on PostgreSQL.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.db.integrity_check().await?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

#[async_trait::async_trait]
impl PendingStore for SqlPendingStore {
    async fn insert(&self, rec: &PendingRecord) -> Result<PendingRecord, StoreError> {
        let insert = format!(
            "INSERT INTO pending_requests ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (request_id) DO NOTHING"
        );
        let grant = grant_to_json(&rec.grant)?;
        let (serial, cert, reason) = columns_of(&rec.state);
        on_db!(write & self.db, |p, _begin| {
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(&rec.request_id)
                .bind(&rec.transaction_id)
                .bind(&rec.template)
                .bind(&rec.csr_der)
                .bind(&grant)
                .bind(rec.state.kind().as_str())
                .bind(serial)
                .bind(cert)
                .bind(reason)
                .bind(i64::from(rec.attempts))
                .bind(rec.next_attempt_at)
                .bind(rec.created_at)
                .bind(rec.updated_at)
                .bind(rec.notified_at)
                .bind(&rec.signer_key_sha256)
                .execute(p)
                .await?;
        });
        self.get(&rec.request_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("inserted row not found".into()))
    }

    async fn get(&self, request_id: &str) -> Result<Option<PendingRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pending_requests WHERE request_id = $1");
        on_db!(&self.db, |p, _begin| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(request_id)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => Ok(Some(record_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn list(
        &self,
        state: Option<StateKind>,
        limit: u32,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pending_requests WHERE ($1 IS NULL OR state = $1) \
             ORDER BY created_at, request_id LIMIT $2"
        );
        let state = state.map(StateKind::as_str);
        on_db!(&self.db, |p, _begin| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(state)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(record_from_row!(row));
            }
            Ok(out)
        })
    }

    async fn transition(
        &self,
        request_id: &str,
        from: StateKind,
        to: &PendingState,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Moving to queued resets the schedule so the row is tried at once.
        let sql = "UPDATE pending_requests SET state = $1, serial = $2, cert_der = $3, \
             reason = $4, updated_at = $5, \
             next_attempt_at = CASE WHEN $1 = 'queued_for_ca' THEN $5 ELSE next_attempt_at END \
             WHERE request_id = $6 AND state = $7";
        let (serial, cert, reason) = columns_of(to);
        on_db!(write & self.db, |p, _begin| {
            let done = sqlx::query(sql)
                .bind(to.kind().as_str())
                .bind(serial)
                .bind(cert)
                .bind(reason)
                .bind(now)
                .bind(request_id)
                .bind(from.as_str())
                .execute(p)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn reschedule(
        &self,
        request_id: &str,
        next_attempt_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE pending_requests SET attempts = attempts + 1, next_attempt_at = $1, \
             updated_at = $2 WHERE request_id = $3 AND state = 'queued_for_ca'";
        on_db!(write & self.db, |p, _begin| {
            sqlx::query(sql)
                .bind(next_attempt_at)
                .bind(now)
                .bind(request_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    async fn due(&self, now: i64, limit: u32) -> Result<Vec<PendingRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pending_requests \
             WHERE state = 'queued_for_ca' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, request_id LIMIT $2"
        );
        on_db!(&self.db, |p, _begin| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(record_from_row!(row));
            }
            Ok(out)
        })
    }

    async fn unnotified(&self, limit: u32) -> Result<Vec<PendingRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pending_requests \
             WHERE notified_at IS NULL AND state IN ('issued', 'denied', 'failed') \
             ORDER BY updated_at, request_id LIMIT $1"
        );
        on_db!(&self.db, |p, _begin| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(record_from_row!(row));
            }
            Ok(out)
        })
    }

    async fn mark_notified(&self, request_id: &str, now: i64) -> Result<(), StoreError> {
        let sql = "UPDATE pending_requests SET notified_at = $1 \
             WHERE request_id = $2 AND notified_at IS NULL";
        on_db!(write & self.db, |p, _begin| {
            sqlx::query(sql)
                .bind(now)
                .bind(request_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }
}
