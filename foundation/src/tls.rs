//! HTTPS for the services' own listeners and their calls to each other (issue 17 item 4).
//!
//! - [`ServerTls`]: a certificate chain and key from PEM, held behind a lock so that a renewed
//!   certificate is served from the next handshake on, without a restart ([`ServerTls::reload`]).
//! - [`serve_tls`]: the accept loop (handshake, then hyper's HTTP/1 serving an axum router),
//!   with the same graceful shutdown as `axum::serve(..).with_graceful_shutdown(..)`.
//! - Mutual TLS ([`ServerTls::verify_clients`]): a client certificate is asked for and, when
//!   presented, verified against a given CA (a failure ends the handshake); a verified one
//!   reaches handlers as the [`PeerIdentity`] request extension. Optional per handshake, so
//!   bearer-token callers and browsers keep connecting: each route that requires a
//!   certificate refuses a request without one (docs/decisions.md #18 mTLS).
//! - [`ClientTls`]: what a caller trusts, one pinned root and nothing else (no system roots),
//!   plus an optional client certificate; [`ClientTls::builder`] gives a reqwest builder.
//!
//! OpenSSL throughout (the project's one crypto stack); keys never appear in errors or Debug.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use tokio::net::TcpListener;
use tokio_openssl::SslStream;
use tower::ServiceExt;

/// A client must complete its handshake within this, or the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send its request line and headers within this (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Why a TLS configuration could not be built. Says what was wrong, never what a key holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM held no certificate or could not be parsed.
    #[error("the certificate chain is not valid PEM")]
    Certificate,
    /// The key PEM could not be parsed.
    #[error("the private key is not valid PEM")]
    Key,
    /// The key is not the certificate's.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// OpenSSL refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(String),
    /// The HTTP client could not take the configuration.
    #[error("HTTP client TLS set-up failed")]
    Client,
}

/// A server certificate and key, replaceable while serving; and, for mutual TLS, the CA that
/// client certificates must chain to.
pub struct ServerTls {
    acceptor: RwLock<Arc<SslAcceptor>>,
    client_ca_pem: Option<Vec<u8>>,
}

/// Who the client proved to be with a certificate verified during the handshake (mutual TLS
/// only): a request extension, like `ConnectInfo`. Absent when no certificate was presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name, else the first SAN URI or DNS name; empty when none.
    pub name: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256_hex: String,
}

impl PeerIdentity {
    /// The identity of a verified peer certificate.
    pub fn of(cert: &openssl::x509::X509Ref) -> Self {
        let cn = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            // The raw bytes, refused with a NUL: "ndes-proxy\0x" must not read as ndes-proxy.
            .and_then(|e| std::str::from_utf8(e.data().as_slice()).ok())
            .filter(|s| !s.contains('\0'))
            .map(ToOwned::to_owned);
        let san = || {
            cert.subject_alt_names().and_then(|names| {
                names
                    .iter()
                    .find_map(|n| n.uri().or_else(|| n.dnsname()).map(ToOwned::to_owned))
            })
        };
        let sha256_hex = cert
            .digest(openssl::hash::MessageDigest::sha256())
            .map(|d| hex::encode(&*d))
            .unwrap_or_default();
        Self {
            name: cn.or_else(san).unwrap_or_default(),
            sha256_hex,
        }
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(<key redacted>)")
    }
}

impl ServerTls {
    /// From a PEM chain (leaf first, then intermediates) and its PEM private key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Ok(Self {
            acceptor: RwLock::new(Arc::new(acceptor(chain_pem, key_pem, None)?)),
            client_ca_pem: None,
        })
    }

    /// [`Self::from_pem`] that also asks each client for a certificate and verifies one that
    /// is presented against `client_ca_pem` (chain to it, be current, carry clientAuth);
    /// a client that presents none still connects (see the module doc).
    pub fn verify_clients(
        chain_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: &[u8],
    ) -> Result<Self, TlsError> {
        Ok(Self {
            acceptor: RwLock::new(Arc::new(acceptor(chain_pem, key_pem, Some(client_ca_pem))?)),
            client_ca_pem: Some(client_ca_pem.to_vec()),
        })
    }

    /// Serve `chain_pem`/`key_pem` from the next handshake on; connections already open keep
    /// theirs. On error the certificate in use stays. Client verification is kept.
    pub fn reload(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let new = Arc::new(acceptor(chain_pem, key_pem, self.client_ca_pem.as_deref())?);
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// The acceptor of the next handshake (for accept loops of their own, like ndes-proxy's).
    pub fn acceptor(&self) -> Arc<SslAcceptor> {
        self.current()
    }

    fn current(&self) -> Arc<SslAcceptor> {
        self.acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn acceptor(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<SslAcceptor, TlsError> {
    let chain = X509::stack_from_pem(chain_pem).map_err(|_| TlsError::Certificate)?;
    let (leaf, rest) = chain.split_first().ok_or(TlsError::Certificate)?;
    let key = PKey::private_key_from_pem(key_pem).map_err(|_| TlsError::Key)?;
    let config = |e: openssl::error::ErrorStack| TlsError::Config(e.to_string());
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(config)?;
    b.set_certificate(leaf).map_err(config)?;
    for c in rest {
        b.add_extra_chain_cert(c.clone()).map_err(config)?;
    }
    b.set_private_key(&key).map_err(|_| TlsError::KeyMismatch)?;
    b.check_private_key().map_err(|_| TlsError::KeyMismatch)?;
    if let Some(ca_pem) = client_ca_pem {
        let cas = X509::stack_from_pem(ca_pem).map_err(|_| TlsError::Certificate)?;
        if cas.is_empty() {
            return Err(TlsError::Certificate);
        }
        let mut store = X509StoreBuilder::new().map_err(config)?;
        for ca in &cas {
            store.add_cert(ca.clone()).map_err(config)?;
            b.add_client_ca(ca).map_err(config)?;
        }
        b.set_verify_cert_store(store.build()).map_err(config)?;
        // PEER without FAIL_IF_NO_PEER_CERT: asked for, verified when presented, optional.
        b.set_verify(SslVerifyMode::PEER);
        // Needed with PEER for session resumption; a resumed session keeps its verified peer.
        b.set_session_id_context(b"scep-lab").map_err(config)?;
    }
    Ok(b.build())
}

/// Serve `app` over HTTPS on `listener` until `shutdown` resolves, then let in-flight requests
/// finish (bounded). Handlers see the peer as `ConnectInfo<SocketAddr>`, as under
/// `into_make_service_with_connect_info`. A failed handshake closes that connection only.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tls.current();
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match handshake(&acceptor, tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(remote = %remote, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // Only a certificate that passed verification in this handshake counts.
            let peer = (stream.ssl().verify_result() == openssl::x509::X509VerifyResult::OK)
                .then(|| stream.ssl().peer_certificate())
                .flatten()
                .map(|c| PeerIdentity::of(&c));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                if let Some(p) = &peer {
                    req.extensions_mut().insert(p.clone());
                }
                app.clone().oneshot(req)
            });
            let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = conn.await {
                tracing::debug!(remote = %remote, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
    Ok(())
}

/// The server side of one handshake, bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(
    acceptor: &SslAcceptor,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<SslStream<tokio::net::TcpStream>> {
    let io = |e: openssl::error::ErrorStack| std::io::Error::other(e.to_string());
    let ssl = Ssl::new(acceptor.context()).map_err(io)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(io)?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// What a client trusts: one pinned CA, no system roots; and optionally who it is.
#[derive(Clone)]
pub struct ClientTls {
    root_pem: Vec<u8>,
    identity: Option<(Vec<u8>, crate::Secret)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trust only the CA certificate(s) in `root_pem`.
    pub fn pinned(root_pem: &[u8]) -> Result<Self, TlsError> {
        if X509::stack_from_pem(root_pem).map_or(true, |s| s.is_empty()) {
            return Err(TlsError::Certificate);
        }
        Ok(Self {
            root_pem: root_pem.to_vec(),
            identity: None,
        })
    }

    /// Also present a client certificate (PEM chain and PKCS#8 PEM key) for mutual TLS.
    pub fn with_identity(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let key = std::str::from_utf8(key_pem).map_err(|_| TlsError::Key)?;
        PKey::private_key_from_pem(key_pem).map_err(|_| TlsError::Key)?;
        X509::from_pem(chain_pem).map_err(|_| TlsError::Certificate)?;
        self.identity = Some((chain_pem.to_vec(), crate::Secret::new(key.to_owned())));
        Ok(self)
    }

    /// Whether a client certificate is presented ([`Self::with_identity`]).
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// A reqwest builder that trusts the pinned root only (and presents the identity).
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        self.apply(reqwest::Client::builder())
    }

    /// Pin `b` to the root (and give it the identity).
    pub fn apply(&self, b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, TlsError> {
        let roots = reqwest::Certificate::from_pem_bundle(&self.root_pem)
            .map_err(|_| TlsError::Certificate)?;
        let mut b = b.tls_certs_only(roots);
        if let Some((chain, key)) = &self.identity {
            let id = reqwest::Identity::from_pkcs8_pem(chain, key.expose().as_bytes())
                .map_err(|_| TlsError::Client)?;
            b = b.identity(id);
        }
        Ok(b)
    }
}

/// A reqwest builder pinned to `tls` when given, the default builder otherwise (plain HTTP
/// and the system roots, as before TLS).
pub fn client_builder(tls: Option<&ClientTls>) -> Result<reqwest::ClientBuilder, TlsError> {
    match tls {
        Some(t) => t.builder(),
        None => Ok(reqwest::Client::builder()),
    }
}

/// A plain-HTTP listener kept beside an HTTPS one: `app` answers only the paths `public`
/// admits; any other is a 403 naming its HTTPS URL (`https_base` + path) and what this
/// listener serves, so tokens and passwords never travel in clear (docs/decisions.md #18).
pub fn plain_only(
    app: axum::Router,
    https_base: &str,
    public: fn(&str) -> bool,
    serves: &'static str,
) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let https_base: Arc<str> = https_base.trim_end_matches('/').into();
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let https_base = https_base.clone();
            async move {
                let path = req.uri().path();
                if public(path) {
                    return next.run(req).await;
                }
                (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    format!("This listener serves {serves} only; use {https_base}{path}\n"),
                )
                    .into_response()
            }
        },
    ))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
