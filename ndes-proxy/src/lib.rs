//! ndes-proxy: the SCEP server of the NDES role (RFC 8894). HTTP <-> `scep` <-> policy
//! (policy-module's NDES contract) <-> CA (ca-mock as NDES's enrollment agent).
//!
//! Steps 3, 4, 6 and 7 of the flow: answer GetCACaps / GetCACert as NDES does, decrypt and
//! verify PKIOperation requests, ask the policy module whether to issue (VerifyRequest), ask
//! the CA to issue under the granted template, Notify the policy module, answer CertRep.

pub mod ca;
pub mod config;
pub mod pipeline;
pub mod ra;
pub mod routes;
pub mod templates;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::x509::X509;
use policy_module::NdesPolicy;
use scep::AlgorithmPolicy;

pub use ca::{CaBackend, CaMockBackend};
pub use ra::{KeyPair, RaIdentity};
pub use routes::router;

/// The time, injected so tests can move it.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// Tunables of the SCEP endpoint.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Refuse DES, 3DES and SHA-1 (and stop advertising them).
    pub strict_algorithms: bool,
    /// Refuse requests whose signingTime is further than this from now (seconds), if set.
    pub signing_time_tolerance: Option<i64>,
    /// Largest PKIOperation POST body.
    pub max_body_bytes: usize,
    /// Deadline for a whole request.
    pub request_timeout: Duration,
    /// Seconds a client is told to wait when a backend is down.
    pub retry_after_secs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strict_algorithms: false,
            signing_time_tolerance: None,
            max_body_bytes: scep::limits::MAX_MESSAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            retry_after_secs: 30,
        }
    }
}

/// Everything a request needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    ra: RaIdentity,
    policy: Arc<dyn NdesPolicy>,
    ca: Arc<dyn CaBackend>,
    settings: Settings,
    algorithms: AlgorithmPolicy,
    caps: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ra", &self.0.ra)
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Wire the RA identity, the policy module, the CA and the settings together.
    pub fn new(
        ra: RaIdentity,
        policy: Arc<dyn NdesPolicy>,
        ca: Arc<dyn CaBackend>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let algorithms = pipeline::algorithms(settings.strict_algorithms);
        let caps = ra.capabilities(&algorithms).to_string();
        Self(Arc::new(Inner {
            ra,
            policy,
            ca,
            settings,
            algorithms,
            caps,
            clock,
        }))
    }

    /// The RA identity.
    pub fn ra(&self) -> &RaIdentity {
        &self.0.ra
    }

    /// The policy module.
    pub fn policy(&self) -> &dyn NdesPolicy {
        self.0.policy.as_ref()
    }

    /// The CA.
    pub fn ca(&self) -> &dyn CaBackend {
        self.0.ca.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The algorithm policy in force.
    pub fn algorithms(&self) -> &AlgorithmPolicy {
        &self.0.algorithms
    }

    /// The GetCACaps body.
    pub fn caps(&self) -> &str {
        &self.0.caps
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.0.clock.now()
    }

    /// Whether `cert` is a current certificate signed by our issuing CA (a renewal signer).
    /// Revocation and device binding are the policy module's to check.
    pub fn issued_by_our_ca(&self, cert: &X509) -> bool {
        let Some(issuing) = self.0.ra.chain().first() else {
            return false;
        };
        let same_issuer = cert
            .issuer_name()
            .try_cmp(issuing.subject_name())
            .is_ok_and(|o| o.is_eq());
        let signed = issuing
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false);
        let current = Asn1Time::from_unix(self.now())
            .is_ok_and(|now| cert.not_after() >= now && cert.not_before() <= now);
        same_issuer && signed && current
    }

    /// Whether a DER issuer Name is our issuing CA's subject.
    pub fn is_our_issuer(&self, issuer_der: &[u8]) -> bool {
        let Some(issuing) = self.0.ra.chain().first() else {
            return false;
        };
        openssl::x509::X509Name::from_der(issuer_der)
            .and_then(|n| n.try_cmp(issuing.subject_name()))
            .is_ok_and(|o| o.is_eq())
    }
}

/// Serve the SCEP endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
