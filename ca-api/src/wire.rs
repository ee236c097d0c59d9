//! The JSON bodies of the CA's HTTP API, shared by the server (ca-mock) and [`crate::client`].
//! Binary values are standard base64 with padding; serials are lowercase hex; times are RFC 3339
//! UTC with the same instant in unix seconds beside them as `<name>_unix` (docs/decisions.md #12).

use serde::{Deserialize, Serialize};

use crate::grant::SignedGrant;
use crate::status::{CertStatus, RevocationReason};
use foundation::names::{KeyUsage, NameAttr, San};

/// `POST /api/v1/certificates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The SCEP transactionID (idempotency key).
    pub request_id: String,
    /// Template name.
    pub template: String,
    /// DER PKCS#10, base64.
    pub csr: String,
    /// Granted subject, in DN order.
    #[serde(default)]
    pub subject: Vec<NameAttr>,
    /// Granted subject alternative names.
    #[serde(default)]
    pub sans: Vec<San>,
    /// Shorter validity than the template's, if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
    /// Granted key usage (what the profile asked for; the template decides what is issued).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_usage: Vec<KeyUsage>,
    /// Granted extended key usages, by name or dotted OID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extended_key_usages: Vec<String>,
    /// The policy module's signed grant for all of the above (docs/decisions.md #10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<SignedGrant>,
}

/// Answer to an issuance (201, or 200 when replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The certificate, DER base64.
    pub certificate: String,
    /// Issuing CA then root, DER base64.
    pub chain: Vec<String>,
    /// RFC 3339 UTC (docs/decisions.md #12).
    pub not_before: String,
    /// The same instant in unix seconds, for machines.
    pub not_before_unix: i64,
    /// RFC 3339 UTC.
    pub not_after: String,
    /// The same instant in unix seconds, for machines.
    pub not_after_unix: i64,
    /// Template name.
    pub template: String,
    /// Echo of the request id.
    pub request_id: String,
}

/// `GET /api/v1/certificates/{serial}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The certificate, DER base64.
    pub certificate: String,
    /// good, revoked or hold.
    pub status: CertStatus,
    /// When revoked or held, RFC 3339 UTC.
    pub revoked_at: Option<String>,
    /// The same instant in unix seconds, for machines.
    pub revoked_at_unix: Option<i64>,
    /// Revocation reason.
    pub reason: Option<RevocationReason>,
    /// Template name.
    pub template: String,
    /// Request id it was issued for.
    pub request_id: String,
    /// Subject as text.
    pub subject: String,
    /// RFC 3339 UTC.
    pub not_before: String,
    /// The same instant in unix seconds, for machines.
    pub not_before_unix: i64,
    /// RFC 3339 UTC.
    pub not_after: String,
    /// The same instant in unix seconds, for machines.
    pub not_after_unix: i64,
}

/// `GET /api/v1/certificates?request_id=..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateList {
    /// Matching certificates, ordered by serial.
    pub certificates: Vec<CertificateInfo>,
}

/// `POST /api/v1/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Serial, hex.
    pub serial: String,
    /// RFC 5280 reason.
    pub reason: RevocationReason,
}

/// Answer to a revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The reason on record (the original one when already revoked).
    pub reason: RevocationReason,
    /// When, as on record, RFC 3339 UTC.
    pub revoked_at: String,
    /// The same instant in unix seconds, for machines.
    pub revoked_at_unix: i64,
    /// True when nothing changed.
    pub already_revoked: bool,
}

/// Answer to `DELETE /api/v1/revocations/{serial}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Status after the call (good).
    pub status: CertStatus,
    /// False when it was not on hold to begin with.
    pub released: bool,
}

/// Every error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub error: String,
    /// Short human text; never internals.
    pub message: String,
}

/// One line of the CA's own record: an issuance, a revocation, a hold or its release, as the CA
/// wrote it in the same transaction as the change (`GET /api/v1/records`). Lets the policy
/// module and `scep-lab trace` tell a transaction's story without the CA's database file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    /// Monotonic record number; the cursor for paging (`after`).
    pub id: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The same instant in unix seconds, for machines.
    pub at_unix: i64,
    /// `issued`, `replayed`, `revoked`, `held`, `released`, ...
    pub action: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// The request id (the SCEP transactionID) the certificate was issued for.
    pub request_id: String,
    /// Caller identity that asked.
    pub actor: String,
    /// Template name, when the record concerns an issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// What else the CA noted (reason, `issued_under`, ...); never a secret.
    #[serde(default)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// `GET /api/v1/records?serial=..&request_id=..&since=..&until=..&after=..&limit=..`; every
/// filter is optional and they combine with AND. `since`/`until` are RFC 3339.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Inclusive lower bound, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only records with a larger `id` (paging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Answer to `GET /api/v1/records`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordList {
    pub records: Vec<CaRecord>,
    /// Pass as `after` to read on; absent when this page was the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

/// One finding of the CA's RFC 5280 profile lint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintViolation {
    /// The check's name (ca-mock's `lint::Check`, e.g. `BasicConstraints`).
    pub check: String,
    /// What was found (certificate fields only).
    pub detail: String,
}

/// Answer to `GET /api/v1/certificates/{serial}/lint`: the CA's own lint run on a stored
/// certificate at the time it was issued, so a report can show it without a second linter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintReport {
    pub serial: String,
    /// Empty when the certificate is lint-clean.
    pub violations: Vec<LintViolation>,
}
