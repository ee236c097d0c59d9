//! The CA as ndes-proxy sees it: issue under a granted template (idempotent by transactionID),
//! look a certificate up, fetch the CRL. [`CaMockBackend`] talks to ca-mock's authenticated
//! API as NDES's enrollment agent.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// An issuance the policy module granted.
#[derive(Clone, PartialEq, Eq)]
pub struct IssueCall {
    /// The SCEP transactionID: the idempotency key at the CA.
    pub request_id: String,
    /// CA template.
    pub template: String,
    /// DER PKCS#10 (the CA takes only the key from it).
    pub csr_der: Vec<u8>,
    /// Granted subject, in DN order.
    pub subject: Vec<ca_mock::names::NameAttr>,
    /// Granted subject alternative names.
    pub sans: Vec<ca_mock::names::San>,
    /// Granted validity, in days.
    pub validity_days: Option<u32>,
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
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Issuing CA and root, DER.
    pub chain: Vec<Vec<u8>>,
    /// Unix seconds.
    pub not_after: i64,
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

/// The CA operations ndes-proxy needs.
#[async_trait::async_trait]
pub trait CaBackend: Send + Sync {
    /// Issue, or return what was already issued for this request id and CSR.
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError>;
    /// The certificate with this serial, if the CA issued it.
    async fn certificate(&self, serial_hex: &str) -> Result<Option<Vec<u8>>, CaError>;
    /// Whether the certificate with this serial is current at the CA: `Some(true)` good,
    /// `Some(false)` revoked or on hold, `None` not issued by this CA.
    async fn is_good(&self, serial_hex: &str) -> Result<Option<bool>, CaError>;
    /// Certificates issued for this request id (CertPoll after a completed request).
    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError>;
    /// The current CRL, DER.
    async fn crl(&self) -> Result<Vec<u8>, CaError>;
}

/// [`CaBackend`] over ca-mock's HTTP API.
#[derive(Clone, Debug)]
pub struct CaMockBackend {
    client: ca_mock::client::CaClient,
}

impl CaMockBackend {
    /// Wrap a client authenticated as the NDES enrollment agent.
    pub fn new(client: ca_mock::client::CaClient) -> Self {
        Self { client }
    }
}

fn map_err(e: ca_mock::client::ClientError) -> CaError {
    use ca_mock::client::ClientError as E;
    match e {
        E::Api { status, error, .. } if (400..500).contains(&status) => CaError::Refused(error),
        other => CaError::Unavailable(other.to_string()),
    }
}

/// A certificate or chain entry as the CA's wire sends it (base64 DER).
pub(crate) fn der(b64: &str) -> Result<Vec<u8>, CaError> {
    B64.decode(b64)
        .map_err(|_| CaError::Unavailable("CA returned invalid base64".into()))
}

#[async_trait::async_trait]
impl CaBackend for CaMockBackend {
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError> {
        let req = ca_mock::wire::IssueRequest {
            request_id: call.request_id.clone(),
            template: call.template.clone(),
            csr: B64.encode(&call.csr_der),
            subject: call.subject.clone(),
            sans: call.sans.clone(),
            validity_days: call.validity_days,
        };
        let out = self.client.issue(&req).await.map_err(map_err)?.response;
        Ok(IssuedCert {
            serial_hex: out.serial,
            der: der(&out.certificate)?,
            chain: out.chain.iter().map(|c| der(c)).collect::<Result<_, _>>()?,
            not_after: out.not_after,
        })
    }

    async fn certificate(&self, serial_hex: &str) -> Result<Option<Vec<u8>>, CaError> {
        match self.client.get(serial_hex).await {
            Ok(info) => der(&info.certificate).map(Some),
            Err(e) if e.code() == Some("unknown_serial") => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn is_good(&self, serial_hex: &str) -> Result<Option<bool>, CaError> {
        match self.client.get(serial_hex).await {
            Ok(info) => Ok(Some(info.status == ca_mock::store::CertStatus::Good)),
            Err(e) if e.code() == Some("unknown_serial") => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let list = self
            .client
            .find_by_request_id(request_id)
            .await
            .map_err(map_err)?;
        list.iter().map(|c| der(&c.certificate)).collect()
    }

    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        self.client.crl().await.map_err(map_err)
    }
}
