//! What the CA's HTTP handlers share: the API's routes (`api`) and the operational ones
//! (`ops`: readiness, metrics) both take it, so it lives apart from either.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Callers;
use crate::ca::CertificateAuthority;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The CA.
    pub ca: Arc<CertificateAuthority>,
    /// Who may call the API.
    pub callers: Arc<Callers>,
    /// How often `serve` regenerates the CRL.
    pub crl_refresh: Duration,
}
