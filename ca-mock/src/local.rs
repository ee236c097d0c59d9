//! The CA contract ([`ca_api::CaBackend`]) over a [`CertificateAuthority`] in the same
//! process.
//!
//! Why: when ndes-proxy and the CA run in one process (the lab, the plain-mode benchmark), the
//! HTTP round-trip costs a JSON encode/decode, base64 of every certificate, a loopback
//! connection and a token check per request, with nothing gained. Issuance still goes through
//! the same [`CertificateAuthority::issue`] and its committed store, so the durability and
//! idempotency guarantees are unchanged; the entitlement checks the API layer does (which
//! templates the caller may issue under, and the signed grant) are kept here.

use std::collections::BTreeSet;
use std::sync::Arc;

use ca_api::{CaBackend, CaError, IssueCall, IssuedCert};
use foundation::Serial;

use crate::ca::CertificateAuthority;
use crate::entitlement::IssueRight;
use crate::error::CaError as MockError;
use crate::store::{CertStatus, ListFilter};

/// The CA, called directly.
#[derive(Clone, Debug)]
pub struct InProcessCa {
    ca: Arc<CertificateAuthority>,
    actor: String,
    templates: BTreeSet<String>,
    right: IssueRight,
}

impl InProcessCa {
    /// Issue as `actor` (the audit trail's name), under `templates` only, each call under
    /// `right` (a signed grant, or plain mode's entitlement) as over HTTP.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        actor: impl Into<String>,
        templates: impl IntoIterator<Item = String>,
        right: IssueRight,
    ) -> Self {
        Self {
            ca,
            actor: actor.into(),
            templates: templates.into_iter().collect(),
            right,
        }
    }
}

/// The same split as the HTTP backend: the CA's own failures are "try later", a refusal of
/// this request is final.
fn contract_error(e: MockError) -> CaError {
    match e {
        MockError::Store(_) | MockError::Crypto(_) | MockError::Io(_) | MockError::Config(_) => {
            CaError::Unavailable(e.to_string())
        }
        other => CaError::Refused(other.to_string()),
    }
}

#[async_trait::async_trait]
impl CaBackend for InProcessCa {
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError> {
        if !self.templates.contains(&call.template) {
            return Err(CaError::Refused(MockError::Forbidden.to_string()));
        }
        self.ca
            .issue_as(&self.actor, self.right, call)
            .await
            .map_err(contract_error)
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<Vec<u8>>, CaError> {
        match self.ca.record(serial).await {
            Ok(rec) => Ok(Some(rec.cert.der)),
            Err(MockError::UnknownSerial) => Ok(None),
            Err(e) => Err(contract_error(e)),
        }
    }

    async fn is_good(&self, serial: &Serial) -> Result<Option<bool>, CaError> {
        match self.ca.record(serial).await {
            Ok(rec) => Ok(Some(rec.status == CertStatus::Good)),
            Err(MockError::UnknownSerial) => Ok(None),
            Err(e) => Err(contract_error(e)),
        }
    }

    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let filter = ListFilter {
            request_id: Some(request_id.to_owned()),
            after: None,
            limit: 100,
        };
        let list = self.ca.list(&filter).await.map_err(contract_error)?;
        Ok(list.into_iter().map(|r| r.cert.der).collect())
    }

    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        self.ca
            .crl()
            .await
            .map(|snapshot| snapshot.der.clone())
            .map_err(contract_error)
    }

    async fn ready(&self) -> Result<(), CaError> {
        self.ca
            .store()
            .ping()
            .await
            .map_err(|e| CaError::Unavailable(e.to_string()))
    }
}
