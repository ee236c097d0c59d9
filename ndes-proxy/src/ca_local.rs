//! [`CaBackend`] over a ca-mock [`CertificateAuthority`] in the same process.
//!
//! Why: when ndes-proxy and the CA run in one process (the lab, the plain-mode benchmark), the
//! HTTP round-trip to ca-mock costs a JSON encode/decode, base64 of every certificate, a
//! loopback connection and a token check per request, with nothing gained. Issuance still
//! goes through the same [`CertificateAuthority::issue`] and its committed store, so the
//! durability and idempotency guarantees are unchanged; the entitlement check the API layer
//! does (which templates the enrollment agent may issue under) is kept here.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ca_mock::CertificateAuthority;
use ca_mock::error::CaError as MockError;
use ca_mock::store::{CertStatus, ListFilter};

use crate::ca::{CaBackend, CaError, IssueCall, IssuedCert};

/// The CA, called directly.
#[derive(Clone, Debug)]
pub struct InProcessCa {
    ca: Arc<CertificateAuthority>,
    actor: String,
    templates: BTreeSet<String>,
}

impl InProcessCa {
    /// Issue as `actor` (the audit trail's name), under `templates` only.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        actor: impl Into<String>,
        templates: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            ca,
            actor: actor.into(),
            templates: templates.into_iter().collect(),
        }
    }
}

/// The same split as the HTTP backend: the CA's own failures are "try later", a refusal of
/// this request is final.
fn map_err(e: MockError) -> CaError {
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
        let req = ca_mock::wire::IssueRequest {
            request_id: call.request_id.clone(),
            template: call.template.clone(),
            csr: B64.encode(&call.csr_der),
            subject: call.subject.clone(),
            sans: call.sans.clone(),
            validity_days: call.validity_days,
        };
        let out = self
            .ca
            .issue(&self.actor, &req)
            .await
            .map_err(map_err)?
            .response;
        Ok(IssuedCert {
            serial_hex: out.serial,
            der: crate::ca::der(&out.certificate)?,
            chain: out
                .chain
                .iter()
                .map(|c| crate::ca::der(c))
                .collect::<Result<_, _>>()?,
            not_after: out.not_after,
        })
    }

    async fn certificate(&self, serial_hex: &str) -> Result<Option<Vec<u8>>, CaError> {
        match self.ca.get(serial_hex).await {
            Ok(rec) => Ok(Some(rec.cert.der)),
            Err(MockError::UnknownSerial | MockError::InvalidSerial) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn is_good(&self, serial_hex: &str) -> Result<Option<bool>, CaError> {
        match self.ca.get(serial_hex).await {
            Ok(rec) => Ok(Some(rec.status == CertStatus::Good)),
            Err(MockError::UnknownSerial | MockError::InvalidSerial) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let filter = ListFilter {
            request_id: Some(request_id.to_owned()),
            after: None,
            limit: 100,
        };
        let list = self.ca.list(&filter).await.map_err(map_err)?;
        list.iter()
            .map(|c| crate::ca::der(&c.certificate))
            .collect()
    }

    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        self.ca
            .crl()
            .await
            .map(|snapshot| snapshot.der.clone())
            .map_err(map_err)
    }
}
