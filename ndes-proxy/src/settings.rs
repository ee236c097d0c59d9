//! The tunables of the SCEP endpoint and its admin page, with their defaults.

use std::collections::BTreeSet;
use std::time::Duration;

use foundation::rate_limit::RateLimit;

use crate::auth;

/// Tunables of the SCEP endpoint.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Refuse DES, 3DES and SHA-1 (and stop advertising them).
    pub strict_algorithms: bool,
    /// Refuse requests whose signingTime is further than this from now (seconds), if set.
    pub signing_time_tolerance: Option<i64>,
    /// How messageType, transactionID, pkiStatus and failInfo are read: PrintableString only
    /// (RFC 8894, the default), or UTF8String and IA5String too, each one counted in
    /// `ndes_scep_lenient_attribute_strings_total`.
    pub attribute_strings: scep::AttributeStrings,
    /// FAILURE and PENDING replies carry an empty eContent (the default, which OpenSSL's PKCS7
    /// API and Python SCEP libraries need) or none (`absent_reply_content`, the strict reading
    /// of RFC 8894), docs/decisions.md #1.
    pub no_envelope_content: scep::server::NoEnvelopeContent,
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
    /// Admitted PKIOperations that run at once; the others wait their turn in arrival order.
    /// The work is CPU-bound (RSA), so running more than the cores can serve only shares the
    /// cores out and turns into tail latency (issue 19); twice the cores leaves room for the
    /// ones waiting on a commit or another service.
    pub pki_workers: usize,
    /// How queued requests are retried at the CA.
    pub queue: QueueSettings,
    /// This instance's name in the policy module's trace of a transaction (which ndes-proxy
    /// received the request and answered it).
    pub instance: String,
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
            attribute_strings: scep::AttributeStrings::Rfc8894,
            no_envelope_content: scep::server::NoEnvelopeContent::Empty,
            max_body_bytes: scep::limits::MAX_MESSAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            retry_after_secs: 30,
            approval_templates: BTreeSet::new(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            pki_rate_limit: DEFAULT_PKI_RATE_LIMIT,
            max_concurrent_pki_operations: DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS,
            pki_workers: default_pki_workers(),
            queue: QueueSettings::default(),
            instance: "ndes-proxy".into(),
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

/// Default PKIOperations running at once: twice this machine's cores.
pub fn default_pki_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

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
