//! The CA as its callers see it: issue under a granted template (idempotent by request id),
//! look a certificate up, ask its status, fetch the CRL. Typed: DER bytes and [`Serial`]s, no
//! base64 (that is the HTTP layer's business, in [`crate::wire`]).
//!
//! Two implementations: [`crate::HttpCa`] over the CA's authenticated HTTP API, and ca-mock's
//! in-process one when the CA runs in the same process.

use std::fmt;

use foundation::Serial;
use foundation::names::{KeyUsage, NameAttr, San};

use crate::grant::{GrantError, GrantStatement, SignedGrant};

/// An issuance the policy module granted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IssueCall {
    /// The idempotency key at the CA (the SCEP transactionID, or a renewal's request id).
    pub request_id: String,
    /// CA template.
    pub template: String,
    /// DER PKCS#10 (the CA takes only the key from it, after its own check).
    pub csr_der: Vec<u8>,
    /// Granted subject, in DN order.
    pub subject: Vec<NameAttr>,
    /// Granted subject alternative names.
    pub sans: Vec<San>,
    /// Granted validity in days, if shorter than the template's.
    pub validity_days: Option<u32>,
    /// Granted key usage (the profile's). The template decides what is issued
    /// (docs/decisions.md #7); the grant states what was asked for.
    pub key_usage: Vec<KeyUsage>,
    /// Granted extended key usages, by name or dotted OID (see `key_usage`).
    pub extended_key_usages: Vec<String>,
    /// The policy module's signed statement of all of the above (docs/decisions.md #10). The
    /// CA refuses a call without one unless the caller holds plain mode's entitlement.
    pub grant: Option<SignedGrant>,
}

impl IssueCall {
    /// This call must be exactly what `grant` states (docs/decisions.md #10); the template
    /// still caps at the CA. The error names the first field that differs, never a value.
    pub fn check_against(&self, grant: &GrantStatement) -> Result<(), GrantError> {
        let checks = [
            (grant.request_id == self.request_id, "request_id"),
            (grant.template == self.template, "template"),
            (grant.subject == self.subject, "subject"),
            (grant.sans == self.sans, "sans"),
            (grant.key_usage == self.key_usage, "key_usage"),
            (
                grant.extended_key_usages == self.extended_key_usages,
                "extended_key_usages",
            ),
            (
                self.validity_days == Some(grant.validity_days),
                "validity_days",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, field)) => Err(GrantError::Mismatch(field)),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for IssueCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueCall")
            .field("request_id", &self.request_id)
            .field("template", &self.template)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A certificate the CA recorded and returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial.
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Issuing CA then root, DER.
    pub chain: Vec<Vec<u8>>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// True when the request id was already recorded with this CSR (a replay).
    pub replayed: bool,
}

/// Why the CA did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Could not reach the CA, or it failed internally: retry later (HTTP 503 to the client).
    #[error("CA unavailable: {0}")]
    Unavailable(String),
    /// The CA refused this request (template not entitled, key rejected, conflict).
    #[error("CA refused: {0}")]
    Refused(String),
}

/// The CA operations its callers need.
#[async_trait::async_trait]
pub trait CaBackend: Send + Sync {
    /// Issue, or return what was already issued for this request id and CSR.
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError>;
    /// The certificate with this serial, if the CA issued it.
    async fn certificate(&self, serial: &Serial) -> Result<Option<Vec<u8>>, CaError>;
    /// Whether the certificate with this serial is current at the CA: `Some(true)` good,
    /// `Some(false)` revoked or on hold, `None` not issued by this CA.
    async fn is_good(&self, serial: &Serial) -> Result<Option<bool>, CaError>;
    /// Certificates issued for this request id (CertPoll after a completed request).
    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError>;
    /// The current CRL, DER.
    async fn crl(&self) -> Result<Vec<u8>, CaError>;
    /// Whether the CA answers now, for the caller's `/readyz` (the caller bounds the wait).
    /// A CA that cannot be down (a test double) keeps this default.
    async fn ready(&self) -> Result<(), CaError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use foundation::names::{SanKind, SubjectAttr};

    fn statement() -> GrantStatement {
        GrantStatement {
            v: 1,
            key_id: "k".into(),
            request_id: "tx-1".into(),
            spki_sha256: "ab".repeat(32),
            template: "IPSECIntermediateOffline".into(),
            subject: vec![NameAttr {
                attr: SubjectAttr::CN,
                value: "dev-1".into(),
            }],
            sans: Vec::new(),
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usages: vec!["clientAuth".into()],
            validity_days: 30,
            issued_at: 0,
            expires_at: 300,
        }
    }

    fn call_for(s: &GrantStatement) -> IssueCall {
        IssueCall {
            request_id: s.request_id.clone(),
            template: s.template.clone(),
            csr_der: vec![1, 2, 3],
            subject: s.subject.clone(),
            sans: s.sans.clone(),
            validity_days: Some(s.validity_days),
            key_usage: s.key_usage.clone(),
            extended_key_usages: s.extended_key_usages.clone(),
            grant: None,
        }
    }

    #[test]
    fn every_field_of_the_call_must_match() {
        let s = statement();
        call_for(&s).check_against(&s).unwrap();
        type Edit = fn(&mut IssueCall);
        let edits: [(&str, Edit); 7] = [
            ("request_id", |c| c.request_id.push('x')),
            ("template", |c| c.template = "EnrollmentAgentOffline".into()),
            ("subject", |c| c.subject[0].value = "Administrator".into()),
            ("sans", |c| {
                c.sans.push(San {
                    kind: SanKind::Upn,
                    value: "admin@corp.test".into(),
                });
            }),
            ("key_usage", |c| c.key_usage.push(KeyUsage::KeyAgreement)),
            ("extended_key_usages", |c| {
                c.extended_key_usages.push("serverAuth".into());
            }),
            ("validity_days", |c| c.validity_days = Some(3650)),
        ];
        for (field, edit) in edits {
            let mut call = call_for(&s);
            edit(&mut call);
            assert_eq!(call.check_against(&s), Err(GrantError::Mismatch(field)));
        }
    }
}
