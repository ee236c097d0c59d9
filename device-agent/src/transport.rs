//! How SCEP requests reach a server: a small trait ([`ScepTransport`]) so tests can record or
//! answer traffic in process, and the reqwest implementation the agent uses.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};

/// Largest response body read (GetCACert chains and CertReps are a few KiB).
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// One SCEP HTTP request (RFC 8894 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScepRequest {
    /// `GET ?operation=GetCACaps`.
    GetCaCaps,
    /// `GET ?operation=GetCACert`.
    GetCaCert,
    /// `POST ?operation=PKIOperation` with the DER pkiMessage.
    PkiOperationPost(Vec<u8>),
    /// `GET ?operation=PKIOperation&message=...` (servers without `POSTPKIOperation`).
    PkiOperationGet(Vec<u8>),
}

impl ScepRequest {
    /// The operation name, for errors and logs.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::GetCaCaps => "GetCACaps",
            Self::GetCaCert => "GetCACert",
            Self::PkiOperationPost(_) | Self::PkiOperationGet(_) => "PKIOperation",
        }
    }

    /// The bytes this request carries to the server (the pkiMessage, or nothing).
    pub fn body(&self) -> &[u8] {
        match self {
            Self::PkiOperationPost(b) | Self::PkiOperationGet(b) => b,
            _ => &[],
        }
    }
}

/// A server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScepResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` essence, lowercase ("" when absent).
    pub content_type: String,
    /// `Retry-After` in seconds (delta form only).
    pub retry_after: Option<u64>,
    /// Body.
    pub body: Vec<u8>,
}

/// Sends SCEP requests to the server at `url`.
#[async_trait]
pub trait ScepTransport: Send + Sync {
    /// Send one request; any HTTP status is a response, only connection faults are errors.
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse>;
}

/// The reqwest client (native-tls when the URL is HTTPS), with timeouts.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport with a per-request timeout.
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("scep-lab-device-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Self { client })
    }

    /// Wrap an existing client (shared by a fleet so connections are reused).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ScepTransport for HttpTransport {
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let op = request.operation();
        let builder = match request {
            ScepRequest::GetCaCaps | ScepRequest::GetCaCert => {
                self.client.get(format!("{url}{sep}operation={op}"))
            }
            ScepRequest::PkiOperationGet(der) => self.client.get(format!(
                "{url}{sep}operation={op}&message={}",
                scep::http::encode_get_message(der)
            )),
            ScepRequest::PkiOperationPost(der) => self
                .client
                .post(format!("{url}{sep}operation={op}"))
                .header("content-type", scep::http::CONTENT_TYPE_PKI_MESSAGE)
                .body(der.clone()),
        };
        let resp = builder.send().await.map_err(transport_error)?;
        read_response(resp).await
    }
}

/// Status, content type, Retry-After and a bounded body.
pub(crate) async fn read_response(mut resp: reqwest::Response) -> Result<ScepResponse> {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type")
        .and_then(|c| c.split(';').next().map(|s| s.trim().to_ascii_lowercase()))
        .unwrap_or_default();
    let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(Error::Protocol("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(ScepResponse {
        status,
        content_type,
        retry_after,
        body,
    })
}

/// The error without the URL's query (a GET PKIOperation URL carries the whole message).
pub(crate) fn transport_error(e: reqwest::Error) -> Error {
    Error::Transport(e.without_url().to_string())
}
