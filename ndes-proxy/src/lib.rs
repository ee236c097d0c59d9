//! ndes-proxy: the SCEP server of the NDES role (RFC 8894). HTTP <-> `scep` <-> policy
//! (policy-module's NDES contract) <-> CA (ca-mock as NDES's enrollment agent).
//!
//! Steps 3, 4, 6 and 7 of the flow: answer GetCACaps / GetCACert as NDES does, decrypt and
//! verify PKIOperation requests, ask the policy module whether to issue (VerifyRequest), ask
//! the CA to issue under the granted template, Notify the policy module, answer CertRep.
//!
//! Beyond NDES: requests under templates that need manual approval, or granted while the CA is
//! unreachable, are committed to a [`PendingStore`] (SQLite or PostgreSQL) before PENDING is
//! answered, and complete on a CertPoll, an approval ([`admin`]) or the retry task
//! ([`queue`]). [`mscep_admin`] hands out one-time challenges in NDES's page format;
//! [`server`] adds header-read timeouts and a connection cap; `/metrics` serves Prometheus.
//!
//! Plain mode ([`plain`]) replaces the policy module with one fixed challenge, as a standalone
//! NDES or micromdm `scepserver` runs; [`ca_local`] calls a ca-mock in the same process.

pub mod admin;
pub mod auth;
pub mod ca;
pub mod ca_local;
pub mod config;
pub mod fuzzing;
pub mod metrics;
pub mod mscep_admin;
pub mod pending;
pub mod pipeline;
pub mod plain;
pub mod queue;
pub mod ra;
pub mod routes;
pub mod server;
pub mod templates;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::x509::X509;
use policy_module::NdesPolicy;
pub use policy_module::rate_limit::{RateLimit, SourceLimiter};
use scep::AlgorithmPolicy;
use tokio::sync::Semaphore;

pub use ca::{CaBackend, CaMockBackend};
pub use ca_local::InProcessCa;
pub use pending::{MemoryPendingStore, PendingStore, SqlPendingStore};
pub use plain::StaticChallenge;
pub use ra::{KeyPair, RaIdentity};
pub use routes::router;
pub use server::serve;

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
    /// Templates whose requests wait for an administrator's approval (PENDING until then).
    pub approval_templates: BTreeSet<String>,
    /// A client must send its request line and headers within this (slowloris).
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// PKIOperations per source IP (token bucket); beyond it 429 with Retry-After.
    pub pki_rate_limit: RateLimit,
    /// PKIOperations in progress at once (each costs two RSA private-key operations: opening
    /// the envelope and signing the CertRep); beyond it 503 with Retry-After at once, never a
    /// queue.
    pub max_concurrent_pki_operations: usize,
    /// How queued requests are retried at the CA.
    pub queue: QueueSettings,
}

/// Retries of requests queued while the CA was unreachable.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How often the background task looks for due requests.
    pub tick: Duration,
    /// First retry delay, in seconds; doubled per failed attempt.
    pub backoff_base_secs: i64,
    /// Largest retry delay, in seconds.
    pub backoff_max_secs: i64,
    /// Requests tried per tick.
    pub batch: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            backoff_base_secs: 10,
            backoff_max_secs: 600,
            batch: 32,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strict_algorithms: false,
            signing_time_tolerance: None,
            max_body_bytes: scep::limits::MAX_MESSAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            retry_after_secs: 30,
            approval_templates: BTreeSet::new(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            pki_rate_limit: DEFAULT_PKI_RATE_LIMIT,
            max_concurrent_pki_operations: DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS,
            queue: QueueSettings::default(),
        }
    }
}

/// Default PKIOperation limit per source: 120 a minute after a burst of 60 (a device needs a
/// handful per enrolment), loopback exempt so the lab and its fleet benchmark are not limited.
pub const DEFAULT_PKI_RATE_LIMIT: RateLimit = RateLimit {
    per_minute: 120,
    burst: 60,
    exempt_loopback: true,
};

/// Default cap on PKIOperations in progress: twice the fleet benchmark's highest concurrency
/// (64), so a well-behaved fleet never sees the 503, a flood does.
pub const DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS: usize = 128;

/// `/certsrv/mscep_admin/`: who may fetch a challenge, and for which template.
#[derive(Clone, Debug)]
pub struct MscepAdmin {
    /// The CA template the challenges are for (NDES's configured template).
    pub template: String,
    /// HTTP Basic users.
    pub users: auth::BasicUsers,
    /// Bearer tokens (scripts).
    pub token: Option<auth::BearerToken>,
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
    pending: Arc<dyn PendingStore>,
    admin_token: Option<auth::BearerToken>,
    mscep_admin: Option<MscepAdmin>,
    metrics: metrics::Metrics,
    pki_limiter: SourceLimiter,
    pki_permits: Arc<Semaphore>,
    /// The RA's CA chain with each certificate's DER, to recognise the chain the CA returns.
    chain_by_der: Vec<(Vec<u8>, X509)>,
}

/// Builds an [`AppState`]; the optional parts default to off (and an in-memory pending store).
pub struct AppStateBuilder(Inner);

impl AppStateBuilder {
    /// Where pending requests are recorded (default: in memory, lost on restart).
    pub fn pending_store(mut self, store: Arc<dyn PendingStore>) -> Self {
        self.0.pending = store;
        self
    }

    /// Enable `/admin/v1/...` for holders of this bearer token.
    pub fn admin_token(mut self, token: auth::BearerToken) -> Self {
        self.0.admin_token = Some(token);
        self
    }

    /// Enable `/certsrv/mscep_admin/`.
    pub fn mscep_admin(mut self, admin: MscepAdmin) -> Self {
        self.0.mscep_admin = Some(admin);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        AppState(Arc::new(self.0))
    }
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
        Self::builder(ra, policy, ca, settings, clock).build()
    }

    /// Like [`AppState::new`], with the optional parts still to set.
    pub fn builder(
        ra: RaIdentity,
        policy: Arc<dyn NdesPolicy>,
        ca: Arc<dyn CaBackend>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> AppStateBuilder {
        let algorithms = if settings.strict_algorithms {
            AlgorithmPolicy::strict()
        } else {
            AlgorithmPolicy::default()
        };
        let caps = ra.capabilities(&algorithms).to_string();
        let chain_by_der = ra
            .chain()
            .iter()
            .filter_map(|c| c.to_der().ok().map(|d| (d, c.clone())))
            .collect();
        AppStateBuilder(Inner {
            ra,
            policy,
            ca,
            algorithms,
            caps,
            clock,
            pending: Arc::new(MemoryPendingStore::new()),
            admin_token: None,
            mscep_admin: None,
            metrics: metrics::Metrics::default(),
            pki_limiter: SourceLimiter::new(settings.pki_rate_limit),
            pki_permits: Arc::new(Semaphore::new(settings.max_concurrent_pki_operations)),
            settings,
            chain_by_der,
        })
    }

    /// The pending-request store.
    pub fn pending(&self) -> &dyn PendingStore {
        self.0.pending.as_ref()
    }

    /// The admin API token, if the admin API is enabled.
    pub fn admin_token(&self) -> Option<&auth::BearerToken> {
        self.0.admin_token.as_ref()
    }

    /// The mscep_admin configuration, if the page is enabled.
    pub fn mscep_admin(&self) -> Option<&MscepAdmin> {
        self.0.mscep_admin.as_ref()
    }

    /// The per-source PKIOperation limiter.
    pub fn pki_limiter(&self) -> &SourceLimiter {
        &self.0.pki_limiter
    }

    /// Permits for PKIOperations in progress (`try_acquire` only: beyond the cap is a 503).
    pub fn pki_permits(&self) -> &Arc<Semaphore> {
        &self.0.pki_permits
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Whether requests under `template` wait for manual approval.
    pub fn needs_approval(&self, template: &str) -> bool {
        self.0.settings.approval_templates.contains(template)
    }

    /// A CA certificate by its DER, parsed: the RA's chain is parsed once at start, not per
    /// request (with OpenSSL 3, parsing a certificate costs about as much as an RSA
    /// signature: its public key goes through the provider decoders).
    pub fn parse_ca_cert(&self, der: &[u8]) -> Result<X509, openssl::error::ErrorStack> {
        match self.0.chain_by_der.iter().find(|(d, _)| d == der) {
            Some((_, cert)) => Ok(cert.clone()),
            None => X509::from_der(der),
        }
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
