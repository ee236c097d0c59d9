//! The CA's durable state behind one small trait: issued certificates, revocations, the audit
//! trail and the CRL number. [`SqlStore`] implements it on SQLite (the default, and in-memory for
//! tests) and on PostgreSQL with the same SQL text.

mod checks;
mod plans;
mod records;
mod sql;

use async_trait::async_trait;
pub use ca_api::{CertStatus, RevocationReason};
use serde::Serialize;

pub use checks::SqliteDurability;
pub use plans::LookupPlan;
pub use sql::SqlStore;

/// A store failure. Its text may contain database internals: log it, never send it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database driver failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not one this code writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// What is recorded when a certificate is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Lowercase hex serial.
    pub serial: String,
    /// The caller's request id (SCEP transactionID).
    pub request_id: String,
    /// SHA-256 of the CSR DER, hex; decides replay versus conflict.
    pub csr_sha256: String,
    /// Template name.
    pub template: String,
    /// Subject as text.
    pub subject: String,
    /// SANs as JSON.
    pub sans: String,
    /// SHA-256 of the SubjectPublicKeyInfo DER, hex.
    pub public_key_sha256: String,
    /// The certificate.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Caller identity.
    pub issued_to: String,
    /// The right it was issued under: `grant <key id>`, `plain mode` or `operator`
    /// (docs/decisions.md #10); `unrecorded` for records older than the column.
    pub issued_under: String,
}

/// A stored certificate with its revocation state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// What was issued.
    pub cert: NewCertificate,
    /// Current status.
    pub status: CertStatus,
    /// When it was revoked or put on hold.
    pub revoked_at: Option<i64>,
    /// Why.
    pub reason: Option<RevocationReason>,
}

/// The revocation state of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRecord {
    /// Current status.
    pub status: CertStatus,
    /// When it was revoked or put on hold.
    pub revoked_at: Option<i64>,
    /// Why.
    pub reason: Option<RevocationReason>,
}

/// One line of the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Lowercase hex serial.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: i64,
    /// Reason.
    pub reason: RevocationReason,
}

/// Why an insert did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Recorded and committed.
    Inserted,
    /// The random serial collided; draw another.
    SerialTaken,
    /// The request id is already recorded (possibly by a concurrent identical request).
    RequestIdTaken,
}

/// Result of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// No such serial.
    NotFound,
    /// The record after the call; `already` when nothing changed.
    Done {
        /// The record.
        record: Box<CertificateRecord>,
        /// True if it was already revoked (or on hold and asked for hold again).
        already: bool,
    },
}

/// Result of releasing a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// No such serial.
    NotFound,
    /// It was on hold and is good again.
    Released(CertificateRecord),
    /// It was not on hold (good, or revoked with a final reason).
    NotOnHold(CertificateRecord),
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// `issue`, `revoke`, `release`.
    pub action: String,
    /// Serial concerned.
    pub serial: String,
    /// Request id of the certificate concerned.
    pub request_id: String,
    /// Caller identity.
    pub actor: String,
    /// Template, reason or similar.
    pub detail: String,
}

/// Filter for listings; results are ordered by serial, `after` continues a page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this request id.
    pub request_id: Option<String>,
    /// Only serials greater than this one.
    pub after: Option<String>,
    /// Page size (capped at 1000).
    pub limit: u32,
}

/// Filter for the audit trail (`GET /api/v1/records`); the filters given combine with AND,
/// rows come oldest first (by id), `after` continues a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only this serial (lowercase hex, canonical).
    pub serial: Option<String>,
    /// Only this request id.
    pub request_id: Option<String>,
    /// Only records at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Only records before this time (unix seconds).
    pub until: Option<i64>,
    /// Only records with a larger id.
    pub after: Option<i64>,
    /// Page size (capped at [`MAX_RECORDS`]).
    pub limit: u32,
}

/// Most audit rows one read returns.
pub const MAX_RECORDS: u32 = 1000;

/// One audit line with what the certificate it concerns adds (template, issuing right,
/// subject, validity end); those are `None` only if the certificate row is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// The audit line.
    pub id: i64,
    /// Its fields.
    pub entry: AuditEntry,
    /// The certificate's template.
    pub template: Option<String>,
    /// The right it was issued under (docs/decisions.md #10).
    pub issued_under: Option<String>,
    /// The certificate's subject.
    pub subject: Option<String>,
    /// The certificate's notAfter, unix seconds.
    pub not_after: Option<i64>,
}

/// The CA's durable state. Every write is committed before the call returns.
#[async_trait]
pub trait CertStore: Send + Sync + std::fmt::Debug {
    /// Records an issued certificate and its audit line in one transaction.
    async fn insert_issued(&self, cert: &NewCertificate) -> Result<InsertOutcome, StoreError>;
    /// One certificate by serial.
    async fn get(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// Only the revocation state of a serial (the OCSP hot path: no DER is read).
    async fn status(&self, serial: &str) -> Result<Option<StatusRecord>, StoreError>;
    /// One certificate by request id.
    async fn get_by_request_id(&self, id: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// A page of certificates.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<CertificateRecord>, StoreError>;
    /// Revokes (or holds) a certificate, idempotently; a hold may be upgraded to a final reason.
    async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: i64,
        actor: &str,
    ) -> Result<RevokeOutcome, StoreError>;
    /// Releases a certificateHold.
    async fn release(
        &self,
        serial: &str,
        at: i64,
        actor: &str,
    ) -> Result<ReleaseOutcome, StoreError>;
    /// Every revoked or held certificate, for the CRL.
    async fn revoked(&self) -> Result<Vec<RevokedEntry>, StoreError>;
    /// Allocates the next CRL number; it only ever grows.
    async fn next_crl_number(&self) -> Result<i64, StoreError>;
    /// The most recent audit lines, newest first.
    async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// A page of the audit trail with the certificates' template, oldest first.
    async fn records(&self, filter: &RecordFilter) -> Result<Vec<RecordRow>, StoreError>;
    /// Number of certificates recorded.
    async fn count(&self) -> Result<i64, StoreError>;
    /// One trivial round trip: whether the database answers (`/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}
