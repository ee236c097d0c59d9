//! Fuzz entry points (`fuzz/fuzz_targets/{http_request,ndes_config}.rs` are one-line wrappers;
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same functions). None may
//! panic on any input. Compiled only with the `fuzzing` feature (the fuzz crate and the
//! corpus test turn it on), so they are no part of the normal API.
//!
//! [`http_request`] drives the real [`router`](crate::router) in process, without a socket:
//! whatever the method, path, query and body, the answer must be one of the statuses the error
//! contract allows (never a 500, never a panic). The backends behind it are fixed fakes: the
//! policy refuses every request (so each decodable PKIOperation ends in a signed FAILURE and
//! nothing accumulates between inputs) and the CA knows no certificate and has no CRL.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use policy_api::{
    ChallengeError, ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification,
    NotifyError, Rejection, VerifyError, VerifyRequest,
};
use tower::ServiceExt;

use crate::config::Config;
use crate::{AppState, KeyPair, RaIdentity, Settings};
use ca_api::{CaBackend, CaError, IssueCall, IssuedCert};
use foundation::{Serial, SystemClock};

/// A policy module that refuses everything.
struct RefuseAll;

#[async_trait::async_trait]
impl NdesPolicy for RefuseAll {
    async fn generate_challenge(
        &self,
        _req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError> {
        Err(ChallengeError::Unavailable)
    }

    async fn verify_request(&self, _req: VerifyRequest) -> Result<Grant, VerifyError> {
        Err(VerifyError::Rejected(Rejection::ChallengeUnknown))
    }

    async fn notify(&self, _n: Notification) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// A CA that has issued nothing and cannot issue.
struct EmptyCa;

#[async_trait::async_trait]
impl CaBackend for EmptyCa {
    async fn issue(&self, _call: &IssueCall) -> Result<IssuedCert, CaError> {
        Err(CaError::Refused("fuzzing".into()))
    }
    async fn certificate(&self, _serial: &Serial) -> Result<Option<Vec<u8>>, CaError> {
        Ok(None)
    }
    async fn is_good(&self, _serial: &Serial) -> Result<Option<bool>, CaError> {
        Ok(None)
    }
    async fn by_request_id(&self, _request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        Ok(Vec::new())
    }
    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        Err(CaError::Unavailable("fuzzing".into()))
    }
}

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let (cert, key) = scep::fuzzing::fixed_identity()?;
            let pair = || KeyPair {
                cert: cert.clone(),
                key: key.clone(),
            };
            let ra = RaIdentity::new(pair(), pair(), vec![cert.clone()]).ok()?;
            let state = AppState::new(
                ra,
                Arc::new(RefuseAll),
                Arc::new(EmptyCa),
                Settings::default(),
                Arc::new(SystemClock),
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .ok()?;
            Some(Server {
                runtime,
                router: crate::router(state),
            })
        })
        .as_ref()
}

/// Statuses the SCEP endpoint may answer (docs/decisions.md #1 and the routing layer's own).
const ALLOWED: [StatusCode; 10] = [
    StatusCode::OK,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::BAD_REQUEST,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::URI_TOO_LONG,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// One HTTP request, written as `METHOD SP request-target LF body` (the first line as on the
/// wire, without the version), through the router. Inputs hyper would refuse before routing
/// (an invalid method or target) are skipped.
///
/// # Panics
///
/// When the answer's status is outside the error contract: that is the finding.
pub fn http_request(data: &[u8]) {
    let Some(server) = server() else { return };
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (method, target) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b"/"[..]),
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(target)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let response = server
        .runtime
        .block_on(server.router.clone().oneshot(request));
    let status = match response {
        Ok(r) => r.status(),
        Err(never) => match never {},
    };
    assert!(
        ALLOWED.contains(&status),
        "status {status} is outside the error contract"
    );
}

/// An ndes-proxy configuration text: parse, validate, and derive the endpoint settings (files
/// it names are not read).
pub fn ndes_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = Config::from_toml(&text)
        && config.validate().is_ok()
    {
        let _ = config.settings();
    }
}
