//! [`AppState`]: everything a request needs (RA identity, policy, CA, pending store, settings,
//! clock, metrics, limiters), built once at start and cheap to clone.

use std::sync::Arc;

use ca_api::CaBackend;
use foundation::Clock;
use foundation::rate_limit::SourceLimiter;
use openssl::asn1::Asn1Time;
use openssl::x509::X509;
use policy_api::NdesPolicy;
use scep::AlgorithmPolicy;
use tokio::sync::Semaphore;

use crate::pending::{MemoryPendingStore, PendingStore};
use crate::ra::RaIdentity;
use crate::settings::{MscepAdmin, Settings};
use crate::{auth, metrics};

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
    /// Turns to run an admitted PKIOperation (a fair semaphore: first come, first served).
    pki_workers: Arc<Semaphore>,
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
            pki_workers: Arc::new(Semaphore::new(settings.pki_workers.max(1))),
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

    /// Turns to run an admitted PKIOperation (`acquire`: waits in arrival order).
    pub fn pki_workers(&self) -> &Semaphore {
        &self.0.pki_workers
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
