//! Read-only views for the cross-store reconciler (`scep-lab audit`): every recorded
//! certificate with the challenge its request reserved, and the database's own checks.
//!
//! These read whole tables on purpose: the reconciler runs offline or rarely, and a partial
//! view could not prove "at most one certificate per challenge" (invariant I3).

use super::{Store, on_db};
use crate::error::StoreError;
use crate::model::CertStatus;

/// One inventory certificate as the reconciler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCert {
    /// Lowercase hex serial, as the CA reported it at Notify.
    pub serial_hex: String,
    /// The SCEP transactionID it was issued for.
    pub transaction_id: String,
    /// The device it belongs to (none for admin challenges).
    pub device_id: Option<String>,
    /// Inventory status (revoked only once the CA confirmed).
    pub status: CertStatus,
    /// The certificate as Notify recorded it.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub issued_at: i64,
    /// SHA-256 of the challenge its request reserved (none for renewals).
    pub challenge_hash: Option<Vec<u8>>,
}

#[derive(sqlx::FromRow)]
struct AuditCertRow {
    serial: String,
    transaction_id: String,
    device_id: Option<String>,
    status: String,
    der: Vec<u8>,
    issued_at: i64,
    challenge_hash: Option<Vec<u8>>,
}

/// A challenge that was reserved for a request, with what became of that request: the
/// reconciler's proof that no challenge was burnt without a recorded reason.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditChallenge {
    /// SHA-256 of the challenge (the store never holds the challenge itself).
    pub hash: Vec<u8>,
    /// The transactionID it is reserved for.
    pub reserved_tx: String,
    /// Unix seconds it was consumed (Notify recorded a certificate), if it was.
    pub consumed_at: Option<i64>,
    /// The state of the reserved request (`granted`, `issued`, `failed`), if one is recorded.
    pub request_state: Option<String>,
    /// Whether a certificate is recorded for the reserved transaction.
    pub has_certificate: bool,
}

/// A request the policy module granted, as the CA must have issued it (docs/decisions.md #10).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRequest {
    /// The request id the grant names (the transactionID, or a renewal's id).
    pub transaction_id: String,
    /// SHA-256 of the granted key's SubjectPublicKeyInfo.
    pub spki_hash: Vec<u8>,
    /// The stored grant (JSON): the template it names.
    pub grant_body: String,
}

impl AuditRequest {
    /// The template the stored grant names, if it decodes.
    pub fn template(&self) -> Option<String> {
        let grant: serde_json::Value = serde_json::from_str(&self.grant_body).ok()?;
        grant.get("template")?.as_str().map(str::to_owned)
    }
}

pub use foundation::sql::SqliteDurability;

impl Store {
    /// Every recorded certificate with its request's challenge digest, ordered by serial.
    pub async fn audit_certificates(&self) -> Result<Vec<AuditCert>, StoreError> {
        let sql = "SELECT c.serial, c.transaction_id, c.device_id, c.status, c.der, c.issued_at, \
             r.challenge_hash FROM certificates c \
             LEFT JOIN requests r ON r.transaction_id = c.transaction_id ORDER BY c.serial";
        let rows = on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, AuditCertRow>(sql)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                let status = CertStatus::parse(&r.status).ok_or_else(|| {
                    StoreError(sqlx::Error::Decode(
                        format!("certificate status {:?}", r.status).into(),
                    ))
                })?;
                Ok(AuditCert {
                    serial_hex: r.serial,
                    transaction_id: r.transaction_id,
                    device_id: r.device_id,
                    status,
                    der: r.der,
                    issued_at: r.issued_at,
                    challenge_hash: r.challenge_hash,
                })
            })
            .collect()
    }

    /// Every reserved or consumed challenge with its request's state and whether a
    /// certificate is recorded for that request (challenges never used are not listed).
    pub async fn audit_challenges(&self) -> Result<Vec<AuditChallenge>, StoreError> {
        let sql = "SELECT ch.hash, ch.reserved_tx, ch.consumed_at, r.state AS request_state, \
             EXISTS (SELECT 1 FROM certificates c WHERE c.transaction_id = ch.reserved_tx) \
             AS has_certificate FROM challenges ch \
             LEFT JOIN requests r ON r.transaction_id = ch.reserved_tx \
             WHERE ch.reserved_tx IS NOT NULL ORDER BY ch.hash";
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, AuditChallenge>(sql)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every request the policy module granted (whatever became of it).
    pub async fn audit_requests(&self) -> Result<Vec<AuditRequest>, StoreError> {
        let sql = "SELECT transaction_id, spki_hash, grant_body FROM requests \
             ORDER BY transaction_id";
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, AuditRequest>(sql)
                .fetch_all(pool)
                .await?
        }))
    }

    /// SQLite's `PRAGMA integrity_check` lines other than `ok`; always empty on PostgreSQL
    /// (which checks its pages itself).
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.db.integrity_check().await?)
    }

    /// The durability settings of a pooled SQLite connection; `None` on PostgreSQL.
    pub async fn sqlite_durability(&self) -> Result<Option<SqliteDurability>, StoreError> {
        Ok(self.db.sqlite_durability().await?)
    }
}
