//! A typed async client for the CA's HTTP API (ca-mock), for ndes-proxy, policy-module and
//! the lab binary.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use foundation::Serial;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::backend::{CaBackend, CaError, IssueCall, IssuedCert};
use crate::status::{CertStatus, RevocationReason};
use crate::template::{TemplateInfo, TemplateList};
use crate::wire::{
    CertificateInfo, CertificateList, ErrorBody, IssueRequest, IssueResponse, LintReport,
    RecordList, RecordQuery, ReleaseResponse, RevokeRequest, RevokeResponse,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request did not complete (connection, timeout, TLS).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The CA answered with an error body.
    #[error("{status}: {error}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The `error` code (`unknown_serial`, `request_id_conflict`, ...).
        error: String,
        /// The short message.
        message: String,
    },
    /// The answer was not what the contract says.
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The API error code, if the CA answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct CaClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for CaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Outcome of an issuance call.
#[derive(Debug, Clone)]
pub struct IssueOutcome {
    /// The answer body.
    pub response: IssueResponse,
    /// 201 (new) rather than 200 (replayed).
    pub created: bool,
}

impl CaClient {
    /// A client for the CA at `base_url` (for example `http://127.0.0.1:8180`), authenticating
    /// with `token` where the API needs it.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self::with_http(http, base_url, token))
    }

    /// The same with a caller-built reqwest client (custom roots, mTLS identity, timeouts).
    pub fn with_http(http: reqwest::Client, base_url: &str, token: Option<String>) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn error_of(resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        match resp.json::<ErrorBody>().await {
            Ok(b) => ClientError::Api {
                status,
                error: b.error,
                message: b.message,
            },
            Err(_) => ClientError::Api {
                status,
                error: "http_error".into(),
                message: format!("HTTP {status}"),
            },
        }
    }

    async fn json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        if !resp.status().is_success() {
            return Err(Self::error_of(resp).await);
        }
        resp.json::<T>()
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// `POST /api/v1/certificates`.
    pub async fn issue(&self, req: &IssueRequest) -> Result<IssueOutcome, ClientError> {
        let resp = self
            .authed(self.http.post(self.url("/api/v1/certificates")))
            .json(req)
            .send()
            .await?;
        let created = resp.status() == StatusCode::CREATED;
        Ok(IssueOutcome {
            response: Self::json(resp).await?,
            created,
        })
    }

    /// `GET /api/v1/certificates/{serial}`.
    pub async fn get(&self, serial: &str) -> Result<CertificateInfo, ClientError> {
        let url = self.url(&format!("/api/v1/certificates/{serial}"));
        Self::json(self.authed(self.http.get(url)).send().await?).await
    }

    /// `GET /api/v1/certificates/{serial}/lint`: the CA's RFC 5280 lint of a stored certificate.
    pub async fn lint(&self, serial: &str) -> Result<LintReport, ClientError> {
        let url = self.url(&format!("/api/v1/certificates/{serial}/lint"));
        Self::json(self.authed(self.http.get(url)).send().await?).await
    }

    /// `GET /api/v1/certificates?request_id=..`.
    pub async fn find_by_request_id(&self, id: &str) -> Result<Vec<CertificateInfo>, ClientError> {
        let rb = self
            .http
            .get(self.url("/api/v1/certificates"))
            .query(&[("request_id", id)]);
        let list: CertificateList = Self::json(self.authed(rb).send().await?).await?;
        Ok(list.certificates)
    }

    /// `GET /api/v1/records`: the CA's issuance and revocation records matching `query`.
    pub async fn records(&self, query: &RecordQuery) -> Result<RecordList, ClientError> {
        let rb = self.http.get(self.url("/api/v1/records")).query(query);
        Self::json(self.authed(rb).send().await?).await
    }

    /// `POST /api/v1/revocations`.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<RevokeResponse, ClientError> {
        let body = RevokeRequest {
            serial: serial.to_owned(),
            reason,
        };
        let rb = self.http.post(self.url("/api/v1/revocations")).json(&body);
        Self::json(self.authed(rb).send().await?).await
    }

    /// `DELETE /api/v1/revocations/{serial}`: release a certificateHold.
    pub async fn release(&self, serial: &str) -> Result<ReleaseResponse, ClientError> {
        let url = self.url(&format!("/api/v1/revocations/{serial}"));
        Self::json(self.authed(self.http.delete(url)).send().await?).await
    }

    /// `GET /api/v1/templates`: the templates this caller is entitled to.
    pub async fn templates(&self) -> Result<Vec<TemplateInfo>, ClientError> {
        let rb = self.http.get(self.url("/api/v1/templates"));
        let list: TemplateList = Self::json(self.authed(rb).send().await?).await?;
        Ok(list.templates)
    }

    /// `GET /api/v1/templates/{name}`; `None` when the CA has no template of that name.
    pub async fn template(&self, name: &str) -> Result<Option<TemplateInfo>, ClientError> {
        let url = self.url(&format!("/api/v1/templates/{name}"));
        match Self::json(self.authed(self.http.get(url)).send().await?).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.code() == Some("unknown_template") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /healthz`: the CA's process answers (a caller's readiness check).
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.bytes(self.http.get(self.url("/healthz")))
            .await
            .map(|_| ())
    }

    async fn bytes(&self, rb: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let resp = rb.send().await?;
        if !resp.status().is_success() {
            return Err(Self::error_of(resp).await);
        }
        Ok(resp.bytes().await?.to_vec())
    }

    /// `GET /crl/issuing.crl` (DER).
    pub async fn crl(&self) -> Result<Vec<u8>, ClientError> {
        self.bytes(self.http.get(self.url("/crl/issuing.crl")))
            .await
    }

    /// `POST /ocsp`: DER request in, DER response out.
    pub async fn ocsp(&self, request_der: &[u8]) -> Result<Vec<u8>, ClientError> {
        let rb = self
            .http
            .post(self.url("/ocsp"))
            .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
            .body(request_der.to_vec());
        self.bytes(rb).await
    }

    /// `GET /ca/issuing.crt` and `/ca/root.crt` (DER).
    pub async fn ca_certificates(&self) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let issuing = self
            .bytes(self.http.get(self.url("/ca/issuing.crt")))
            .await?;
        let root = self.bytes(self.http.get(self.url("/ca/root.crt"))).await?;
        Ok((issuing, root))
    }
}

/// [`CaBackend`] over the CA's HTTP API, authenticated as the caller the client's token names.
#[derive(Clone, Debug)]
pub struct HttpCa {
    client: CaClient,
}

impl HttpCa {
    /// Wrap a client authenticated as the NDES enrollment agent.
    pub fn new(client: CaClient) -> Self {
        Self { client }
    }
}

/// A 4xx is the CA's final word on this request; anything else is "try later".
fn backend_error(e: ClientError) -> CaError {
    match e {
        ClientError::Api { status, error, .. } if (400..500).contains(&status) => {
            CaError::Refused(error)
        }
        other => CaError::Unavailable(other.to_string()),
    }
}

/// A certificate or chain entry as the wire sends it (base64 DER).
fn der(b64: &str) -> Result<Vec<u8>, CaError> {
    B64.decode(b64)
        .map_err(|_| CaError::Unavailable("CA returned invalid base64".into()))
}

#[async_trait::async_trait]
impl CaBackend for HttpCa {
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError> {
        let req = IssueRequest {
            request_id: call.request_id.clone(),
            template: call.template.clone(),
            csr: B64.encode(&call.csr_der),
            subject: call.subject.clone(),
            sans: call.sans.clone(),
            validity_days: call.validity_days,
            key_usage: call.key_usage.clone(),
            extended_key_usages: call.extended_key_usages.clone(),
            grant: call.grant.clone(),
        };
        let out = self.client.issue(&req).await.map_err(backend_error)?;
        let r = out.response;
        Ok(IssuedCert {
            serial: Serial::from_hex(&r.serial)
                .map_err(|_| CaError::Unavailable("CA returned an invalid serial".into()))?,
            der: der(&r.certificate)?,
            chain: r.chain.iter().map(|c| der(c)).collect::<Result<_, _>>()?,
            not_before: r.not_before_unix,
            not_after: r.not_after_unix,
            replayed: !out.created,
        })
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<Vec<u8>>, CaError> {
        match self.client.get(&serial.to_hex()).await {
            Ok(info) => der(&info.certificate).map(Some),
            Err(e) if e.code() == Some("unknown_serial") => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn is_good(&self, serial: &Serial) -> Result<Option<bool>, CaError> {
        match self.client.get(&serial.to_hex()).await {
            Ok(info) => Ok(Some(info.status == CertStatus::Good)),
            Err(e) if e.code() == Some("unknown_serial") => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let list = self
            .client
            .find_by_request_id(request_id)
            .await
            .map_err(backend_error)?;
        list.iter().map(|c| der(&c.certificate)).collect()
    }

    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        self.client.crl().await.map_err(backend_error)
    }

    async fn ready(&self) -> Result<(), CaError> {
        self.client.healthz().await.map_err(backend_error)
    }
}
