//! [`CertStore`] on SQLite or PostgreSQL: one SQL text (`$n` placeholders, integer unix
//! seconds, `RETURNING`) run on whichever pool is configured.

use std::time::Duration;

use async_trait::async_trait;
use foundation::on_db;
use foundation::sql::{Db, PoolOptions, is_unique_violation};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use super::{
    AuditEntry, CertStatus, CertStore, CertificateRecord, InsertOutcome, ListFilter,
    NewCertificate, RecordFilter, RecordRow, ReleaseOutcome, RevocationReason, RevokeOutcome,
    RevokedEntry, StatusRecord, StoreError,
};

/// The SQL store: the foundation's durable pool (SQLite WAL + `synchronous=FULL`, or
/// PostgreSQL) with the CA's schema.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
}

const COLUMNS: &str = "serial, request_id, csr_sha256, template, subject, sans, public_key_sha256, \
     der, not_before, not_after, issued_at, issued_to, issued_under, status, revoked_at, reason";

/// Decodes a certificates row; a macro so it works on both backends' row types.
macro_rules! record_from_row {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let reason: Option<String> = row.try_get("reason")?;
        CertificateRecord {
            cert: NewCertificate {
                serial: row.try_get("serial")?,
                request_id: row.try_get("request_id")?,
                csr_sha256: row.try_get("csr_sha256")?,
                template: row.try_get("template")?,
                subject: row.try_get("subject")?,
                sans: row.try_get("sans")?,
                public_key_sha256: row.try_get("public_key_sha256")?,
                der: row.try_get("der")?,
                not_before: row.try_get("not_before")?,
                not_after: row.try_get("not_after")?,
                issued_at: row.try_get("issued_at")?,
                issued_to: row.try_get("issued_to")?,
                issued_under: row.try_get("issued_under")?,
            },
            status: CertStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
            revoked_at: row.try_get("revoked_at")?,
            reason: match reason {
                None => None,
                Some(r) => Some(
                    RevocationReason::parse(&r)
                        .ok_or_else(|| StoreError::Corrupt(format!("reason {r:?}")))?,
                ),
            },
        }
    }};
}

fn migrator(steps: [&'static str; 3]) -> Migrator {
    let names = ["init", "issued_under", "audit_indexes"];
    Migrator::with_migrations(
        steps
            .into_iter()
            .zip(names)
            .zip(1..)
            .map(|((sql, name), version)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Pool settings: writers wait up to 30 s for SQLite's lock (issuance bursts queue, they do
/// not fail).
const POOL: PoolOptions = PoolOptions {
    max_connections: 8,
    busy_timeout: Duration::from_secs(30),
};

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, action, serial, request_id, actor, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";

impl SqlStore {
    /// Opens (creating if needed) a SQLite database in WAL mode with `synchronous=FULL`, so a
    /// committed issuance survives power loss, and runs its migrations. `url` is a
    /// `sqlite://path` or `sqlite::memory:` URL.
    pub async fn sqlite(url: &str) -> Result<Self, StoreError> {
        Self::migrated(Db::open_sqlite_url(url, POOL).await?).await
    }

    /// Connects to PostgreSQL and runs its migrations.
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        let options = PoolOptions {
            max_connections: 16,
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

    /// The store on an already opened pool, after running its migrations.
    pub async fn migrated(db: Db) -> Result<Self, StoreError> {
        let sqlite = migrator([
            include_str!("../../migrations/sqlite/0001_init.sql"),
            include_str!("../../migrations/sqlite/0002_issued_under.sql"),
            include_str!("../../migrations/sqlite/0003_audit_indexes.sql"),
        ]);
        let postgres = migrator([
            include_str!("../../migrations/postgres/0001_init.sql"),
            include_str!("../../migrations/postgres/0002_issued_under.sql"),
            include_str!("../../migrations/postgres/0003_audit_indexes.sql"),
        ]);
        db.migrate(&sqlite, &postgres).await?;
        Ok(Self { db })
    }

    /// The store on a pool whose schema is already in place (tests that hold the pool).
    pub fn on_migrated_pool(db: Db) -> Self {
        Self { db }
    }

    /// The pool.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_db!(&self.db, |p, _begin| p.close().await);
    }

    async fn get_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = get_sql(column);
        on_db!(&self.db, |p, _begin| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => Ok(Some(record_from_row!(&row))),
                None => Ok(None),
            }
        })
    }
}

/// A certificate by one unique column (`serial` or `request_id`).
pub(super) fn get_sql(column: &str) -> String {
    format!("SELECT {COLUMNS} FROM certificates WHERE {column} = $1")
}

/// Status of one serial (OCSP's lookup).
pub(super) const STATUS_SQL: &str =
    "SELECT status, revoked_at, reason FROM certificates WHERE serial = $1";

/// Revoke one serial: only a good certificate, or a held one getting a final reason, changes;
/// a hold upgraded to a final reason keeps the time it was first put on hold.
pub(super) const REVOKE_SQL: &str = "UPDATE certificates SET status = $2, reason = $3, \
     revoked_at = COALESCE(revoked_at, $4) \
     WHERE serial = $1 AND (status = 'good' OR (status = 'hold' AND $2 = 'revoked')) \
     RETURNING request_id";

/// A page of certificates. Only the filters given become conditions, with placeholders
/// numbered in the order request id, after, limit: an `($1 IS NULL OR column = $1)` form
/// would hide the request_id index and the serial range from the planner, and a lookup by
/// transactionID would scan every row (reliability catalogue L7).
pub(super) fn list_sql(request_id: bool, after: bool) -> String {
    let mut conditions = Vec::new();
    let mut n = 0;
    if request_id {
        n += 1;
        conditions.push(format!("request_id = ${n}"));
    }
    if after {
        n += 1;
        conditions.push(format!("serial > ${n}"));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    format!(
        "SELECT {COLUMNS} FROM certificates {filter}ORDER BY serial LIMIT ${}",
        n + 1
    )
}

#[async_trait]
impl CertStore for SqlStore {
    async fn insert_issued(&self, c: &NewCertificate) -> Result<InsertOutcome, StoreError> {
        let insert = format!(
            "INSERT INTO certificates ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'good', NULL, NULL)"
        );
        // An async block so `?` stops here: a unique violation is an outcome, not an error.
        let result: Result<(), sqlx::Error> = on_db!(write & self.db, |p, _begin| async {
            let mut tx = p.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(&c.serial)
                .bind(&c.request_id)
                .bind(&c.csr_sha256)
                .bind(&c.template)
                .bind(&c.subject)
                .bind(&c.sans)
                .bind(&c.public_key_sha256)
                .bind(&c.der)
                .bind(c.not_before)
                .bind(c.not_after)
                .bind(c.issued_at)
                .bind(&c.issued_to)
                .bind(&c.issued_under)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_AUDIT)
                .bind(c.issued_at)
                .bind("issue")
                .bind(&c.serial)
                .bind(&c.request_id)
                .bind(&c.issued_to)
                .bind(&c.template)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await);
        match result {
            Ok(()) => Ok(InsertOutcome::Inserted),
            Err(e) if is_unique_violation(&e) => {
                // Which constraint? The request id is the only other unique column.
                if self.get_by_request_id(&c.request_id).await?.is_some() {
                    Ok(InsertOutcome::RequestIdTaken)
                } else {
                    Ok(InsertOutcome::SerialTaken)
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        self.get_where("serial", serial).await
    }

    async fn status(&self, serial: &str) -> Result<Option<StatusRecord>, StoreError> {
        on_db!(&self.db, |p, _begin| {
            let Some(row) = sqlx::query(STATUS_SQL)
                .bind(serial)
                .fetch_optional(p)
                .await?
            else {
                return Ok(None);
            };
            let status: &str = row.try_get(0)?;
            let reason: Option<&str> = row.try_get(2)?;
            Ok(Some(StatusRecord {
                status: CertStatus::parse(status)
                    .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
                revoked_at: row.try_get(1)?,
                reason: match reason {
                    None => None,
                    Some(r) => Some(
                        RevocationReason::parse(r)
                            .ok_or_else(|| StoreError::Corrupt(format!("reason {r:?}")))?,
                    ),
                },
            }))
        })
    }

    async fn get_by_request_id(&self, id: &str) -> Result<Option<CertificateRecord>, StoreError> {
        self.get_where("request_id", id).await
    }

    async fn list(&self, f: &ListFilter) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = list_sql(f.request_id.is_some(), f.after.is_some());
        let limit = i64::from(f.limit.clamp(1, 1000));
        on_db!(&self.db, |p, _begin| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(id) = &f.request_id {
                q = q.bind(id.as_str());
            }
            if let Some(after) = &f.after {
                q = q.bind(after.as_str());
            }
            let rows = q.bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(record_from_row!(row));
            }
            Ok(out)
        })
    }

    async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: i64,
        actor: &str,
    ) -> Result<RevokeOutcome, StoreError> {
        let status = if reason == RevocationReason::CertificateHold {
            CertStatus::Hold
        } else {
            CertStatus::Revoked
        };
        let changed: Option<String> = on_db!(write & self.db, |p, _begin| {
            let mut tx = p.begin().await?;
            let row = sqlx::query(REVOKE_SQL)
                .bind(serial)
                .bind(status.as_str())
                .bind(reason.as_str())
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(row) => {
                    let request_id: String = row.try_get("request_id")?;
                    sqlx::query(INSERT_AUDIT)
                        .bind(at)
                        .bind("revoke")
                        .bind(serial)
                        .bind(&request_id)
                        .bind(actor)
                        .bind(reason.as_str())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Some(request_id)
                }
                None => {
                    tx.rollback().await?;
                    None
                }
            }
        });
        match self.get(serial).await? {
            None => Ok(RevokeOutcome::NotFound),
            Some(record) => Ok(RevokeOutcome::Done {
                record: Box::new(record),
                already: changed.is_none(),
            }),
        }
    }

    async fn release(
        &self,
        serial: &str,
        at: i64,
        actor: &str,
    ) -> Result<ReleaseOutcome, StoreError> {
        let update = "UPDATE certificates SET status = 'good', reason = NULL, revoked_at = NULL \
             WHERE serial = $1 AND status = 'hold' RETURNING request_id";
        let released: bool = on_db!(write & self.db, |p, _begin| {
            let mut tx = p.begin().await?;
            let row = sqlx::query(update)
                .bind(serial)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(row) => {
                    let request_id: String = row.try_get("request_id")?;
                    sqlx::query(INSERT_AUDIT)
                        .bind(at)
                        .bind("release")
                        .bind(serial)
                        .bind(&request_id)
                        .bind(actor)
                        .bind("certificateHold released")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    true
                }
                None => {
                    tx.rollback().await?;
                    false
                }
            }
        });
        match self.get(serial).await? {
            None => Ok(ReleaseOutcome::NotFound),
            Some(r) if released => Ok(ReleaseOutcome::Released(r)),
            Some(r) => Ok(ReleaseOutcome::NotOnHold(r)),
        }
    }

    async fn revoked(&self) -> Result<Vec<RevokedEntry>, StoreError> {
        // No ORDER BY (the database would sort a million rows on one thread) and columns by
        // position: this query is most of the cost of a large CRL. Sorted here instead.
        let sql = "SELECT serial, revoked_at, reason FROM certificates \
             WHERE status IN ('revoked', 'hold')";
        let mut out: Vec<RevokedEntry> = on_db!(&self.db, |p, _begin| {
            let rows = sqlx::query(sql).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let reason: Option<&str> = row.try_get(2)?;
                let reason = reason
                    .and_then(RevocationReason::parse)
                    .ok_or_else(|| StoreError::Corrupt("revoked row without reason".into()))?;
                let revoked_at: Option<i64> = row.try_get(1)?;
                out.push(RevokedEntry {
                    serial: row.try_get(0)?,
                    revoked_at: revoked_at
                        .ok_or_else(|| StoreError::Corrupt("revoked row without time".into()))?,
                    reason,
                });
            }
            out
        });
        out.sort_unstable_by(|a, b| a.serial.cmp(&b.serial));
        Ok(out)
    }

    async fn next_crl_number(&self) -> Result<i64, StoreError> {
        let sql = "UPDATE crl_state SET number = number + 1 WHERE id = 1 RETURNING number";
        on_db!(write & self.db, |p, _begin| {
            let row = sqlx::query(sql).fetch_one(p).await?;
            Ok(row.try_get("number")?)
        })
    }

    async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = "SELECT at, action, serial, request_id, actor, detail FROM audit_log \
             ORDER BY id DESC LIMIT $1";
        on_db!(&self.db, |p, _begin| {
            let rows = sqlx::query(sql).bind(i64::from(limit)).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(AuditEntry {
                    at: row.try_get("at")?,
                    action: row.try_get("action")?,
                    serial: row.try_get("serial")?,
                    request_id: row.try_get("request_id")?,
                    actor: row.try_get("actor")?,
                    detail: row.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }

    async fn records(&self, filter: &RecordFilter) -> Result<Vec<RecordRow>, StoreError> {
        super::records::select(&self.db, filter).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }

    async fn count(&self) -> Result<i64, StoreError> {
        on_db!(&self.db, |p, _begin| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM certificates")
                .fetch_one(p)
                .await?;
            Ok(row.try_get("n")?)
        })
    }
}
