//! The CA service: issuance, lookup, revocation, CRL and OCSP over a [`CertStore`], a
//! [`CaMaterial`] and a [`Clock`]. Authentication and entitlement are the API layer's job;
//! everything here trusts its `actor` argument.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ca_api::{GrantVerifier, IssueCall, IssuedCert};
use foundation::names::subject_text;
use foundation::time::asn1_to_unix;

use crate::crl::{build_crl, write_atomically};
use crate::entitlement::{IssueRight, authorise};
use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use crate::issue::{CertSpec, Urls, build_certificate, check_csr};
use crate::lint::{Profile, Violation};
use crate::metrics::CaMetrics;
use crate::ocsp;
use crate::retired::Retired;
use crate::store::{
    CertStatus, CertStore, CertificateRecord, InsertOutcome, ListFilter, NewCertificate,
    ReleaseOutcome, RevocationReason, RevokeOutcome, StoreError,
};
use crate::template::Template;
use ca_api::wire::{ReleaseResponse, RevokeResponse};
use foundation::Serial;
use foundation::clock::Clock;

/// Tunables of the CA service.
#[derive(Debug, Clone)]
pub struct CaSettings {
    /// URLs put into AIA and CDP.
    pub urls: Urls,
    /// NotBefore is backdated by this much for clients with slow clocks (docs/decisions.md #7).
    pub not_before_skew_secs: i64,
    /// CRL nextUpdate minus thisUpdate.
    pub crl_validity_secs: i64,
    /// OCSP nextUpdate minus thisUpdate.
    pub ocsp_validity_secs: i64,
    /// Where the current CRL is written (atomically), if anywhere.
    pub crl_path: Option<PathBuf>,
    /// Whose signed grants are trusted (docs/decisions.md #10); none by default.
    pub grants: GrantVerifier,
}

impl CaSettings {
    /// Defaults for a CA reachable at `base_url`: 5 min skew, 7 day CRLs, 1 h OCSP.
    pub fn new(base_url: &str) -> Self {
        Self {
            urls: Urls::from_base(base_url),
            not_before_skew_secs: 300,
            crl_validity_secs: 7 * 24 * 3600,
            ocsp_validity_secs: 3600,
            crl_path: None,
            grants: GrantVerifier::none(),
        }
    }
}

/// A signed CRL as last published.
#[derive(Debug, Clone)]
pub struct CrlSnapshot {
    /// DER.
    pub der: Vec<u8>,
    /// CRL number.
    pub number: i64,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// Number of revoked entries.
    pub entries: usize,
}

/// How long a revocation waits for the CRL that includes it.
pub const CRL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Attempts at drawing a fresh serial before giving up (a collision of 127-bit random serials
/// means the RNG is broken, so this is a guard, not a plan).
const SERIAL_ATTEMPTS: usize = 5;

/// The CA.
pub struct CertificateAuthority {
    material: Arc<CaMaterial>,
    templates: BTreeMap<String, Template>,
    store: Arc<dyn CertStore>,
    clock: Arc<dyn Clock>,
    settings: CaSettings,
    /// Issuing CA then root, DER: encoded once, handed out with every issuance.
    chain_der: Vec<Vec<u8>>,
    /// Bumped after every committed revocation; the CRL is rebuilt until it has caught up.
    revision: AtomicU64,
    /// Serialises CRL builds; holds the revision the current CRL includes.
    crl_lock: tokio::sync::Mutex<u64>,
    crl: RwLock<Option<Arc<CrlSnapshot>>>,
    /// The RFC 5280 profile every issued certificate is linted against (P35).
    profile: Profile,
    /// What `/metrics` reports.
    metrics: CaMetrics,
    /// Issuing CAs replaced by a rollover, still answering for what they issued.
    retired: Vec<Retired>,
    /// Their CRLs as last published, by [`Retired::name`].
    retired_crls: RwLock<BTreeMap<String, Arc<CrlSnapshot>>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("material", &self.material)
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn check_request_id(id: &str) -> Result<(), CaError> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CaError::InvalidRequest(
            "request_id must be 1-128 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

impl CertificateAuthority {
    /// Assembles the service. Call [`Self::refresh_crl`] once before serving.
    pub fn new(
        material: CaMaterial,
        templates: Vec<Template>,
        store: Arc<dyn CertStore>,
        clock: Arc<dyn Clock>,
        settings: CaSettings,
    ) -> Result<Self, CaError> {
        let mut map = BTreeMap::new();
        for t in templates {
            t.validate()?;
            let name = t.name.clone();
            if map.insert(name.clone(), t).is_some() {
                return Err(CaError::Config(format!("template {name:?} defined twice")));
            }
        }
        let chain_der = vec![material.issuing_der()?, material.root_der()?];
        let profile = Profile::new(&material.issuing, settings.not_before_skew_secs)?;
        Ok(Self {
            profile,
            material: Arc::new(material),
            templates: map,
            store,
            clock,
            settings,
            chain_der,
            revision: AtomicU64::new(1),
            crl_lock: tokio::sync::Mutex::new(0),
            crl: RwLock::new(None),
            metrics: CaMetrics::default(),
            retired: Vec::new(),
            retired_crls: RwLock::new(BTreeMap::new()),
        })
    }

    /// Adds issuing CAs retired by a rollover ([`crate::rollover`]): OCSP answers for their
    /// certificates signed by them, each publishes its CRL, and their profiles lint what they
    /// issued. Call before [`Self::refresh_crl`].
    pub fn with_retired(mut self, retired: Vec<CaMaterial>) -> Result<Self, CaError> {
        for m in retired {
            let r = Retired::new(m, self.settings.not_before_skew_secs)?;
            if self.retired.iter().any(|x| x.name == r.name) {
                return Err(CaError::Config(format!(
                    "retired CA {} loaded twice",
                    r.name
                )));
            }
            self.retired.push(r);
        }
        Ok(self)
    }

    /// The retired issuing CAs, each with the name of its CRL (`/crl/retired/<name>.crl`).
    pub fn retired(&self) -> impl Iterator<Item = (&str, &CaMaterial)> {
        self.retired.iter().map(|r| (r.name.as_str(), &*r.material))
    }

    /// The CRL of the retired issuing CA named `name` (its serial, hex), if there is one.
    pub async fn retired_crl(&self, name: &str) -> Result<Option<Arc<CrlSnapshot>>, CaError> {
        if !self.retired.iter().any(|r| r.name == name) {
            return Ok(None);
        }
        let published = || {
            self.retired_crls
                .read()
                .ok()
                .and_then(|m| m.get(name).cloned())
        };
        if let Some(c) = published() {
            return Ok(Some(c));
        }
        self.refresh_crl().await?;
        Ok(published())
    }

    /// The hierarchy.
    pub fn material(&self) -> &CaMaterial {
        &self.material
    }

    /// Where the CRL is published, if it is written to a file.
    pub fn crl_path(&self) -> Option<&std::path::Path> {
        self.settings.crl_path.as_deref()
    }

    /// Its Prometheus metrics.
    pub fn metrics(&self) -> &CaMetrics {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CertStore> {
        &self.store
    }

    /// Lints `der` (issued at `issued_at`) against this CA's RFC 5280 profile; the reconciler
    /// runs it over every stored record.
    pub fn lint(&self, der: &[u8], issued_at: i64) -> Vec<Violation> {
        let found = self.profile.lint(der, issued_at);
        // A certificate a retired issuing CA issued is held to that CA's profile.
        if !found.is_empty()
            && self
                .retired
                .iter()
                .any(|r| r.profile.lint(der, issued_at).is_empty())
        {
            return Vec::new();
        }
        found
    }

    /// Template by name.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// Loaded template names.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// Issues a certificate for `req` on behalf of `actor`, or replays the one already recorded
    /// for the same request id and CSR (`replayed` set). The record is committed before this
    /// returns. The CSR is checked here whatever the caller checked: this is the CA's boundary.
    pub async fn issue(&self, actor: &str, req: &IssueCall) -> Result<IssuedCert, CaError> {
        self.issue_as(actor, IssueRight::Operator, req).await
    }

    /// [`Self::issue`] under `right`: an API caller's issuance must match a grant signed by a
    /// trusted policy module, to the key (docs/decisions.md #10), or stay within plain mode's
    /// entitlement. Checked before anything is stored, and before a replay is answered.
    pub async fn issue_as(
        &self,
        actor: &str,
        right: IssueRight,
        req: &IssueCall,
    ) -> Result<IssuedCert, CaError> {
        let result = self.issue_checked(actor, right, req).await;
        match &result {
            Ok(issued) => self.metrics.issued(&req.template, issued.replayed),
            Err(e) => self.metrics.refused(e.code()),
        }
        result
    }

    async fn issue_checked(
        &self,
        actor: &str,
        right: IssueRight,
        req: &IssueCall,
    ) -> Result<IssuedCert, CaError> {
        check_request_id(&req.request_id)?;
        let grant = authorise(right, &self.settings.grants, req, self.clock.now())?;
        let template = self
            .templates
            .get(&req.template)
            .ok_or(CaError::UnknownTemplate)?;
        let csr = check_csr(&req.csr_der)?;
        if let Some(grant) = &grant {
            grant.check_key(&csr.public_key_sha256)?;
        }
        if let Some(existing) = self.store.get_by_request_id(&req.request_id).await? {
            return self.replay(&existing, &csr.der_sha256, &req.template);
        }
        template.check_key(&csr.public_key)?;
        template.check_subject(&req.subject)?;
        template.check_sans(&req.sans)?;
        if req.subject.is_empty() && req.sans.is_empty() {
            return Err(CaError::SubjectNotAllowed(
                "neither subject nor SANs given".into(),
            ));
        }
        let days = match req.validity_days {
            None => template.validity_days,
            Some(d) if d >= 1 && d <= template.validity_days => d,
            Some(_) => {
                return Err(CaError::InvalidValidity(format!(
                    "validity_days must be between 1 and {}",
                    template.validity_days
                )));
            }
        };
        let now = self.clock.now();
        let ca_not_after =
            asn1_to_unix(self.material.issuing.not_after()).map_err(CaError::crypto)?;
        let not_after = (now + i64::from(days) * 86_400).min(ca_not_after);
        // Backdated for slow client clocks, but never before the issuing CA's own NotBefore:
        // a certificate valid when its issuer is not would fail path validation (P35 lint).
        let ca_not_before =
            asn1_to_unix(self.material.issuing.not_before()).map_err(CaError::crypto)?;
        let not_before = (now - self.settings.not_before_skew_secs).max(ca_not_before);
        let sans_json = serde_json::to_string(&req.sans).map_err(CaError::crypto)?;
        let (key_usage, extended_key_usage) = template.issued_usages(
            csr.public_key.id(),
            &req.key_usage,
            &req.extended_key_usages,
        )?;

        for _ in 0..SERIAL_ATTEMPTS {
            let serial = Serial::random()?;
            let spec = CertSpec {
                template,
                public_key: &csr.public_key,
                subject: &req.subject,
                sans: &req.sans,
                serial: &serial,
                key_usage: &key_usage,
                extended_key_usage: &extended_key_usage,
                not_before,
                not_after,
            };
            let cert = build_certificate(&self.material, &spec, &self.settings.urls)?;
            let der = cert.to_der().map_err(CaError::crypto)?;
            let violations = self.profile.lint(&der, now);
            if !violations.is_empty() {
                // A defect of this CA, not of the request: the candidate is dropped unstored.
                let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
                tracing::error!(template = %template.name, violations = ?list, "certificate failed the RFC 5280 profile lint; not issued");
                return Err(CaError::ProfileViolation(list.join("; ")));
            }
            let record = NewCertificate {
                serial: serial.to_hex(),
                request_id: req.request_id.clone(),
                csr_sha256: csr.der_sha256.clone(),
                template: template.name.clone(),
                subject: subject_text(&req.subject),
                sans: sans_json.clone(),
                public_key_sha256: csr.public_key_sha256.clone(),
                der,
                not_before,
                not_after,
                issued_at: now,
                issued_to: actor.to_owned(),
                issued_under: match (&grant, right) {
                    (Some(g), _) => format!("grant {}", g.key_id),
                    (None, IssueRight::PlainMode) => "plain mode".to_owned(),
                    (None, _) => "operator".to_owned(),
                },
            };
            match self.store.insert_issued(&record).await? {
                InsertOutcome::Inserted => {
                    tracing::info!(
                        target: "ca_mock::audit",
                        action = "issue",
                        serial = %record.serial,
                        request_id = %record.request_id,
                        template = %record.template,
                        actor,
                        "certificate issued"
                    );
                    return self.issued(&record, false);
                }
                InsertOutcome::SerialTaken => {
                    tracing::warn!(serial = %record.serial, "random serial collided; drawing again");
                }
                InsertOutcome::RequestIdTaken => {
                    // A concurrent identical request won the race; answer as a replay.
                    let existing = self
                        .store
                        .get_by_request_id(&req.request_id)
                        .await?
                        .ok_or(CaError::RequestIdConflict)?;
                    return self.replay(&existing, &csr.der_sha256, &req.template);
                }
            }
        }
        Err(CaError::Crypto("could not draw an unused serial".into()))
    }

    fn replay(
        &self,
        existing: &CertificateRecord,
        csr_sha256: &str,
        template: &str,
    ) -> Result<IssuedCert, CaError> {
        if existing.cert.csr_sha256 != csr_sha256 || existing.cert.template != template {
            return Err(CaError::RequestIdConflict);
        }
        self.issued(&existing.cert, true)
    }

    fn issued(&self, c: &NewCertificate, replayed: bool) -> Result<IssuedCert, CaError> {
        let serial = Serial::from_hex(&c.serial)
            .map_err(|_| StoreError::Corrupt(format!("serial {:?}", c.serial)))?;
        Ok(IssuedCert {
            serial,
            der: c.der.clone(),
            chain: self.chain_der.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            replayed,
        })
    }

    /// The record for a serial (any accepted spelling).
    pub async fn get(&self, serial: &str) -> Result<CertificateRecord, CaError> {
        self.record(&Serial::from_hex(serial)?).await
    }

    /// The record for a serial.
    pub async fn record(&self, serial: &Serial) -> Result<CertificateRecord, CaError> {
        self.store
            .get(&serial.to_hex())
            .await?
            .ok_or(CaError::UnknownSerial)
    }

    /// A page of records.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<CertificateRecord>, CaError> {
        Ok(self.store.list(filter).await?)
    }

    /// Revokes (idempotently) and republishes the CRL. A CRL publication failure is logged and
    /// left to the schedule: the revocation itself is committed and OCSP already reflects it.
    pub async fn revoke(
        self: &Arc<Self>,
        actor: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeResponse, CaError> {
        let serial = serial.to_hex();
        let now = self.clock.now();
        let (record, already) = match self.store.revoke(&serial, reason, now, actor).await? {
            RevokeOutcome::NotFound => return Err(CaError::UnknownSerial),
            RevokeOutcome::Done { record, already } => (record, already),
        };
        if !already {
            self.metrics.revoked(reason.as_str());
            tracing::info!(
                target: "ca_mock::audit",
                action = "revoke",
                serial = %serial,
                request_id = %record.cert.request_id,
                reason = reason.as_str(),
                actor,
                "certificate revoked"
            );
            self.crl_changed().await;
        }
        let (Some(reason), Some(revoked_at)) = (record.reason, record.revoked_at) else {
            return Err(CaError::Crypto(
                "revoked record without reason or time".into(),
            ));
        };
        Ok(RevokeResponse {
            serial,
            reason,
            revoked_at: foundation::time::rfc3339(revoked_at),
            revoked_at_unix: revoked_at,
            already_revoked: already,
        })
    }

    /// Releases a certificateHold.
    pub async fn release(
        self: &Arc<Self>,
        actor: &str,
        serial: &Serial,
    ) -> Result<ReleaseResponse, CaError> {
        let serial = serial.to_hex();
        let now = self.clock.now();
        match self.store.release(&serial, now, actor).await? {
            ReleaseOutcome::NotFound => Err(CaError::UnknownSerial),
            ReleaseOutcome::NotOnHold(r) if r.status == CertStatus::Revoked => {
                Err(CaError::NotOnHold)
            }
            ReleaseOutcome::NotOnHold(r) => Ok(ReleaseResponse {
                serial,
                status: r.status,
                released: false,
            }),
            ReleaseOutcome::Released(r) => {
                tracing::info!(
                    target: "ca_mock::audit",
                    action = "release",
                    serial = %serial,
                    request_id = %r.cert.request_id,
                    actor,
                    "certificate hold released"
                );
                self.crl_changed().await;
                Ok(ReleaseResponse {
                    serial,
                    status: r.status,
                    released: true,
                })
            }
        }
    }

    /// Republishes the CRL after a committed change, waiting at most [`CRL_WAIT`]: a lab-sized
    /// CRL is current when the revocation is acknowledged, while a huge one (about 7 s for a
    /// million entries) finishes in the background instead of holding the caller.
    async fn crl_changed(self: &Arc<Self>) {
        self.revision.fetch_add(1, Ordering::SeqCst);
        let ca = Arc::clone(self);
        let build = tokio::spawn(async move { ca.refresh_crl().await });
        match tokio::time::timeout(CRL_WAIT, build).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "CRL publication after revocation failed; will retry on schedule");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "CRL publication task failed"),
            Err(_) => {
                tracing::warn!("CRL still building; the revocation is committed and OCSP has it")
            }
        }
    }

    /// The current CRL, building one if none exists yet.
    pub async fn crl(&self) -> Result<Arc<CrlSnapshot>, CaError> {
        let current = self.crl.read().ok().and_then(|g| g.clone());
        match current {
            Some(c) => Ok(c),
            None => self.refresh_crl().await,
        }
    }

    /// Rebuilds the CRL unless it already includes every committed revocation.
    pub async fn refresh_crl(&self) -> Result<Arc<CrlSnapshot>, CaError> {
        let wanted = self.revision.load(Ordering::SeqCst);
        let mut built = self.crl_lock.lock().await;
        if *built >= wanted
            && let Some(c) = self.crl.read().ok().and_then(|g| g.clone())
        {
            return Ok(c);
        }
        let target = self.revision.load(Ordering::SeqCst);
        let snapshot = self.build_and_publish().await?;
        *built = target;
        Ok(snapshot)
    }

    /// Builds a new CRL (new number, new thisUpdate) regardless of changes: the scheduled path.
    pub async fn regenerate_crl(&self) -> Result<Arc<CrlSnapshot>, CaError> {
        let mut built = self.crl_lock.lock().await;
        let target = self.revision.load(Ordering::SeqCst);
        let snapshot = self.build_and_publish().await?;
        *built = target;
        Ok(snapshot)
    }

    async fn build_and_publish(&self) -> Result<Arc<CrlSnapshot>, CaError> {
        let started = std::time::Instant::now();
        let entries = self.store.revoked().await?;
        let number = self.store.next_crl_number().await?;
        let now = self.clock.now();
        let next = now + self.settings.crl_validity_secs;
        let material = Arc::clone(&self.material);
        let path = self.settings.crl_path.clone();
        let retired: Vec<_> = self
            .retired
            .iter()
            .map(|r| (Arc::clone(&r.material), r.crl_path(path.as_deref())))
            .collect();
        let count = entries.len();
        let (der, retired_der) = tokio::task::spawn_blocking(move || {
            let der = build_crl(&material, &entries, number, now, next)?;
            if let Some(path) = path {
                write_atomically(&path, &der)?;
            }
            let mut retired_der = Vec::with_capacity(retired.len());
            for (m, path) in retired {
                let der = build_crl(&m, &entries, number, now, next)?;
                if let Some(path) = path {
                    write_atomically(&path, &der)?;
                }
                retired_der.push(der);
            }
            Ok::<_, CaError>((der, retired_der))
        })
        .await
        .map_err(|e| CaError::Crypto(format!("CRL task failed: {e}")))??;
        if let Ok(mut published) = self.retired_crls.write() {
            for (r, der) in self.retired.iter().zip(retired_der) {
                let snapshot = CrlSnapshot {
                    der,
                    number,
                    this_update: now,
                    entries: count,
                };
                published.insert(r.name.clone(), Arc::new(snapshot));
            }
        }
        let snapshot = Arc::new(CrlSnapshot {
            der,
            number,
            this_update: now,
            entries: count,
        });
        if let Ok(mut g) = self.crl.write() {
            *g = Some(Arc::clone(&snapshot));
        }
        self.metrics
            .crl_published(started.elapsed(), snapshot.der.len(), number, now);
        tracing::info!(number, entries = count, "CRL published");
        Ok(snapshot)
    }

    /// Answers a DER OCSP request with a DER OCSP response (always a response, never an error:
    /// malformed input gets malformedRequest, a store failure internalError).
    pub async fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        // The current issuing CA first, then the retired ones: the response is signed by the
        // one the request names.
        let issuers: Vec<&CaMaterial> = std::iter::once(&*self.material)
            .chain(self.retired.iter().map(|r| &*r.material))
            .collect();
        let Some((signer, req)) = ocsp::parse_request_among(&issuers, request) else {
            self.metrics.ocsp("malformed");
            return ocsp::malformed();
        };
        let mut statuses = Vec::with_capacity(req.items.len());
        for (_, serial) in &req.items {
            let status = match serial {
                None => ocsp::Status::Unknown,
                Some(s) => match self.store.status(&s.to_hex()).await {
                    Ok(None) => ocsp::Status::Unknown,
                    Ok(Some(r)) => match (r.status, r.revoked_at, r.reason) {
                        (CertStatus::Good, _, _) => ocsp::Status::Good,
                        (_, Some(at), Some(reason)) => ocsp::Status::Revoked { at, reason },
                        _ => ocsp::Status::Unknown,
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "OCSP lookup failed");
                        self.metrics.ocsp("internal_error");
                        return ocsp::internal_error();
                    }
                },
            };
            self.metrics.ocsp(match status {
                ocsp::Status::Good => "good",
                ocsp::Status::Revoked { .. } => "revoked",
                ocsp::Status::Unknown => "unknown",
            });
            statuses.push(status);
        }
        let now = self.clock.now();
        let signer = issuers.get(signer).copied().unwrap_or(&*self.material);
        match ocsp::sign_response(
            signer,
            &req,
            &statuses,
            now,
            self.settings.ocsp_validity_secs,
        ) {
            Ok(der) => der,
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing failed");
                ocsp::internal_error()
            }
        }
    }
}
