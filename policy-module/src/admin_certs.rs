//! The certificate inventory for admins: search (paged) and manual revocation with a reason
//! (issue 18; queued through the outbox like the lifecycle's, docs/decisions.md #11).

use ca_api::RevocationReason;
use foundation::Serial;
use serde::{Deserialize, Serialize};

use crate::admin::ADMIN_ACTOR;
use crate::error::AdminError;
use crate::model::{CertStatus, IssuedCert, is_identifier};
use crate::service::PolicyService;
use crate::store::{CertSearch, ManualRevocation};

/// Largest page.
pub const MAX_PAGE: i64 = 500;
/// Longest subject searched for (a substring of an RFC 4514 subject).
pub const MAX_SUBJECT_QUERY: usize = 256;
/// Certificates one subject search reads at most (docs/decisions.md #16): no index serves a
/// substring, so a page reads this many of the newest (after `before`) and says where to go on.
pub const SUBJECT_SCAN: i64 = 10_000;

/// `GET /api/v1/certificates` query, as sent (parsed once into a [`CertSearch`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CertQuery {
    pub serial: Option<String>,
    pub device: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
    pub before: Option<String>,
    pub limit: Option<i64>,
}

/// One page of the inventory; `next_before` names the page after it, if there may be one. A
/// subject search's page may hold fewer than `limit` (even none) and still name a next page:
/// it read [`SUBJECT_SCAN`] certificates and older ones are still to be searched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertPage {
    pub certificates: Vec<IssuedCert>,
    pub next_before: Option<String>,
}

/// `POST /api/v1/certificates/{serial}/revoke` body.
#[derive(Debug, Clone, Deserialize)]
pub struct RevokeBody {
    /// An RFC 5280 reason in its wire spelling (`keyCompromise`, ...); not certificateHold,
    /// which only the block action places (and unblock releases).
    pub reason: String,
}

/// A query field given and not blank.
fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.trim().is_empty())
}

/// A serial as the inventory spells it, or which field is wrong.
fn serial(field: &str, s: &str) -> Result<String, AdminError> {
    Serial::from_hex(s)
        .map(|s| s.to_hex())
        .map_err(|_| AdminError::Invalid(format!("{field}: a serial in hex")))
}

impl CertQuery {
    /// The search this query asks for, or a 400 naming the field.
    pub fn parse(&self) -> Result<CertSearch, AdminError> {
        let subject = match opt(&self.subject) {
            Some(v) if v.chars().count() > MAX_SUBJECT_QUERY => {
                return Err(AdminError::Invalid(format!(
                    "subject: at most {MAX_SUBJECT_QUERY} characters"
                )));
            }
            v => v.map(str::to_owned),
        };
        let device = match opt(&self.device) {
            Some(d) if !is_identifier(d) => {
                return Err(AdminError::Invalid(
                    "device: 1-64 characters of [A-Za-z0-9_.-]".into(),
                ));
            }
            d => d.map(str::to_owned),
        };
        let status = match opt(&self.status) {
            Some(s) => Some(CertStatus::parse(s).ok_or_else(|| {
                AdminError::Invalid(
                    "status: issued, revoking, revoked, revoke_failed, held or releasing".into(),
                )
            })?),
            None => None,
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit: 1-{MAX_PAGE}")));
        }
        Ok(CertSearch {
            serial: opt(&self.serial).map(|s| serial("serial", s)).transpose()?,
            device_id: device,
            status,
            subject,
            scan: SUBJECT_SCAN,
            before: opt(&self.before).map(|s| serial("before", s)).transpose()?,
            limit,
        })
    }
}

impl PolicyService {
    /// One page of the certificate inventory.
    pub async fn search_certificates(&self, q: &CertSearch) -> Result<CertPage, AdminError> {
        let page = CertSearch {
            limit: q.limit + 1,
            ..q.clone()
        };
        let (mut certificates, window_end) = self.store.search_certs(&page).await?;
        let more = certificates.len() as i64 > q.limit;
        certificates.truncate(usize::try_from(q.limit).unwrap_or(0));
        let next_before = if more {
            certificates.last().map(|c| c.serial_hex.clone())
        } else {
            window_end
        };
        Ok(CertPage {
            certificates,
            next_before,
        })
    }

    /// Queues the revocation of one certificate by an admin; 404 for an unknown serial, 409 for
    /// one already revoked or being revoked.
    pub async fn revoke_certificate(&self, raw: &str, reason: &str) -> Result<(), AdminError> {
        let serial = serial("serial", raw)?;
        let reason = match RevocationReason::parse(reason) {
            Some(RevocationReason::CertificateHold) | None => {
                return Err(AdminError::Invalid(
                    "reason: an RFC 5280 reason other than certificateHold".into(),
                ));
            }
            Some(r) => r,
        };
        match self
            .store
            .revoke_certificate(&serial, reason.as_str(), ADMIN_ACTOR)
            .await?
        {
            ManualRevocation::Queued => {
                tracing::info!(serial = %serial, reason = reason.as_str(), "audit: revocation queued");
                self.outbox_wake.notify_one();
                Ok(())
            }
            ManualRevocation::NotFound => Err(AdminError::NotFound),
            ManualRevocation::Already(s) => Err(AdminError::Conflict(format!(
                "certificate is {}",
                s.as_str()
            ))),
        }
    }
}
