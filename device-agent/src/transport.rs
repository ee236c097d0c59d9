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

/// How long an idle keep-alive connection stays in the client's pool: shorter than the
/// servers' idle close (ndes-proxy's header-read timeout, 10 s by default), so a client that
/// reads its answers promptly does not send on a connection the server is closing (see
/// [`RESENDS_ON_CLOSED_CONNECTION`] for one that does not).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// The HTTP client settings every agent and fleet client starts from: a per-request timeout,
/// a bounded connect, and idle connections dropped before the server drops them.
pub fn http_client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .user_agent(concat!("scep-lab-device-agent/", env!("CARGO_PKG_VERSION")))
}

impl HttpTransport {
    /// A transport with a per-request timeout.
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = http_client_builder(timeout)
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Self { client })
    }

    /// Wrap an existing client (shared by a fleet so connections are reused).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The HTTP request for one SCEP operation (built anew for each send).
    fn request(&self, url: &str, request: &ScepRequest) -> reqwest::RequestBuilder {
        let sep = if url.contains('?') { '&' } else { '?' };
        let op = request.operation();
        match request {
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
        }
    }
}

/// Sends after the first on a connection the server closed under the request. A request
/// taken from the pool can meet a keep-alive connection the server is closing at that moment
/// (ndes-proxy ends idle ones at its header-read timeout); hyper reports "connection closed
/// before message completed", or cancels a request it had not written yet. A busy client that
/// reads its answers late meets it more often: it lost 1 to 3% of the 10,000-device renewal
/// herd's first round. Sending again is safe: GetCACaps and GetCACert are reads, and a
/// PKIOperation sent again carries the same transactionID, which ndes-proxy answers from its
/// record instead of issuing twice.
pub const RESENDS_ON_CLOSED_CONNECTION: usize = 2;

#[async_trait]
impl ScepTransport for HttpTransport {
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        let mut resends = 0;
        loop {
            match self.request(url, request).send().await {
                Ok(resp) => return read_response(resp).await,
                Err(e) if resends < RESENDS_ON_CLOSED_CONNECTION && closed_under_request(&e) => {
                    resends += 1;
                    tracing::debug!(
                        operation = request.operation(),
                        resends,
                        "the server closed the connection under the request; sending it again"
                    );
                }
                Err(e) => return Err(transport_error(e)),
            }
        }
    }
}

/// The errors beneath `e`, nearest first.
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |c| c.source())
}

/// Whether the connection ended before any answer: hyper's incomplete message, or its cancel
/// of a request it had not written.
fn closed_under_request(e: &reqwest::Error) -> bool {
    causes(e)
        .find_map(|c| c.downcast_ref::<hyper::Error>())
        .is_some_and(|h| h.is_incomplete_message() || h.is_canceled())
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

/// The error without the URL's query (a GET PKIOperation URL carries the whole message), with
/// its causes: "error sending request" alone does not say whether the connection was refused,
/// reset, closed by the server or timed out.
pub(crate) fn transport_error(e: reqwest::Error) -> Error {
    let e = e.without_url();
    let mut text = e.to_string();
    for line in causes(&e).map(|c| c.to_string()) {
        // hyper and reqwest repeat the cause's text in their own; say each once.
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
    }
    Error::Transport(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A refused connection says so, and a GET PKIOperation's message stays out of the text.
    #[tokio::test]
    async fn a_transport_error_names_its_cause_and_not_the_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let transport = HttpTransport::new(Duration::from_secs(5)).unwrap();
        let url = format!("http://127.0.0.1:{port}/certsrv/mscep/mscep.dll");
        let e = transport
            .send(&url, &ScepRequest::PkiOperationGet(b"secret-ish".to_vec()))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.reason(), "transport");
        assert!(text.to_ascii_lowercase().contains("refused"), "{text}");
        assert!(!text.contains("message="), "{text}");
        assert!(!text.contains(&port.to_string()), "{text}");
    }

    /// A server on loopback that reads each request and, for the first `close_first`
    /// connections, closes without answering; later ones answer "ok". Returns its URL and a
    /// count of the connections it took.
    async fn closing_server(
        close_first: usize,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/scep", listener.local_addr().unwrap());
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = taken.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                if n >= close_first {
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            }
        });
        (url, taken)
    }

    /// A connection closed under the request is sent again, on a new connection, at most
    /// [`RESENDS_ON_CLOSED_CONNECTION`] times.
    #[tokio::test]
    async fn a_request_the_server_closed_under_is_sent_again_a_bounded_number_of_times() {
        use std::sync::atomic::Ordering;
        let transport = HttpTransport::new(Duration::from_secs(5)).unwrap();
        let (url, taken) = closing_server(RESENDS_ON_CLOSED_CONNECTION).await;
        let resp = transport
            .send(&url, &ScepRequest::PkiOperationPost(b"pkcsreq".to_vec()))
            .await
            .unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(
            taken.load(Ordering::SeqCst),
            RESENDS_ON_CLOSED_CONNECTION + 1
        );

        let (url, taken) = closing_server(usize::MAX).await;
        let e = transport
            .send(&url, &ScepRequest::GetCaCaps)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("closed before message completed"),
            "{e}"
        );
        assert_eq!(
            taken.load(Ordering::SeqCst),
            RESENDS_ON_CLOSED_CONNECTION + 1
        );
    }
}
