//! Shared fixtures of the end-to-end tests in `tests/tests/`, one file per scenario.
//!
//! A thin layer over [`scep_lab::Lab`]: [`TestLab`] starts the whole lab (ca-mock,
//! policy-module, ndes-proxy) on 127.0.0.1 in a temporary directory and adds what the
//! scenarios share: a standard profile, devices registered through device-agent's MDM client
//! with their own state directory ([`TestDevice`]), a bounded wait for a revocation to reach
//! the CA, the policy module's audit trail, and [`RawScep`], a SCEP client built from the
//! `scep` crate for requests device-agent would never send (tampered CSRs, replayed
//! challenges, undersized keys).
//!
//! Helpers return `anyhow::Result` so a failing step names itself; the tests unwrap.
//!
//! [`console`] speaks to the web console over plain HTTP; [`webdriver`] drives headless
//! Chromium for the console's browser tests.
//!
//! [`processes`] runs the services as separate processes instead (scale-out, `kill -9`);
//! [`load`] drives them with clients that resend their request through the faults.

pub mod console;
pub mod load;
pub mod processes;
pub mod remote;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ca_api::wire::CertificateInfo;
use ca_mock::store::{CertStatus as CaStatus, ListFilter};
use device_agent::agent::{Agent, SyncOptions, SyncSummary};
use device_agent::ca::{CaInfo, Thumbprint, discover};
use device_agent::mdm::{
    CheckinResponse, DeviceRegistration, MdmClient, SecretString, StatusReport,
};
use device_agent::{DeviceDir, DeviceKey, HttpTransport, KeySpec, ScepRequest, ScepResponse};
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::{X509, X509NameRef};
use policy_module::model::{
    CertificateType, HashAlgorithm, IssuedCert, KeyAlgorithm, KeyUsage, Profile, ProfileSpec,
    SanKind, SanTemplate,
};
use policy_module::store::{Assignment, AuditEvent};
use scep::client::{CertRep, Transaction, build_request, open_cert_rep, self_signed_certificate};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::{AlgorithmPolicy, Nonce, RequestBody, TransactionId};

pub use scep_lab::{DEVICE_TEMPLATES, Lab, LabOptions};

/// The standard profile's id.
pub const PROFILE: &str = "corp-device-cert";
/// The template device certificates are issued under.
pub const TEMPLATE: &str = DEVICE_TEMPLATES[0];
/// The standard profile's subject format.
pub const SUBJECT_FORMAT: &str = "CN={{DeviceName}},OU=Devices,O=scep-lab";
/// The standard profile's DNS SAN.
pub const SAN_FORMAT: &str = "{{DeviceName}}.devices.scep-lab.test";
/// Longest a test waits for an asynchronous effect (the outbox delivering a revocation).
pub const WAIT: Duration = Duration::from_secs(30);

/// The whole lab on loopback, in a temporary directory removed on drop.
pub struct TestLab {
    lab: Lab,
    dir: tempfile::TempDir,
    mdm: MdmClient,
}

impl std::ops::Deref for TestLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl TestLab {
    /// Start every service on free 127.0.0.1 ports.
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestLab::start`], with the options changed by `edit` (clock, databases, ...).
    pub async fn start_with(edit: impl FnOnce(&mut LabOptions)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut options = LabOptions::new(&dir.path().join("lab"));
        options.outbox_poll = Duration::from_millis(200);
        edit(&mut options);
        let lab = Lab::start(options).await?;
        let http = lab_http(&lab)?.timeout(Duration::from_secs(30)).build()?;
        let mdm = MdmClient::new(http, &lab.policy_url());
        Ok(Self { lab, dir, mdm })
    }

    /// Stop every service.
    pub async fn shutdown(self) {
        self.lab.shutdown().await;
    }

    /// Stop every service and start them again on the same data directory and ports (so the
    /// SCEP URL in profiles stays valid), with `edit` applied to the previous options.
    pub async fn restart(self, edit: impl FnOnce(&mut LabOptions)) -> Result<Self> {
        let Self { lab, dir, mdm } = self;
        let mut options = lab.options().clone();
        lab.shutdown().await;
        edit(&mut options);
        let lab = Lab::start(options).await?;
        Ok(Self { lab, dir, mdm })
    }

    /// Stops the lab but keeps its directory (and so its data and the devices' state), for a
    /// test that runs the lab elsewhere (a child process) on the same data and ports.
    pub async fn stop_keeping_data(self) -> (tempfile::TempDir, LabOptions) {
        let options = self.lab.options().clone();
        self.lab.shutdown().await;
        (self.dir, options)
    }

    /// Runs the reconciler (`scep-lab audit`) over this lab's stores while it runs.
    pub async fn reconcile(&self) -> Result<scep_lab::reconcile::Report> {
        let sources =
            scep_lab::reconcile::Sources::open(self.lab.data_dir(), &self.lab.options().databases)
                .await?;
        let now = self.lab.options().clock.now();
        let report = scep_lab::reconcile::reconcile(&sources, now).await;
        sources.close().await;
        report
    }

    /// Runs the reconciler and fails, with its whole report, unless every invariant holds.
    pub async fn assert_reconciled(&self) -> Result<scep_lab::reconcile::Report> {
        let report = self.reconcile().await?;
        let mut text = Vec::new();
        report.write_to(&mut text)?;
        ensure!(
            report.is_clean(),
            "reconciler found violations:\n{}",
            String::from_utf8_lossy(&text)
        );
        Ok(report)
    }

    /// The standard profile ([`standard_profile_spec`]) with this lab's SCEP URL and root.
    pub fn spec(&self) -> ProfileSpec {
        standard_profile_spec(
            "Corporate device certificate",
            vec![self.lab.scep_url()],
            self.lab.root_fingerprint(),
        )
    }

    /// Create profile `id` from the standard spec changed by `edit`.
    pub async fn profile(&self, id: &str, edit: impl FnOnce(&mut ProfileSpec)) -> Result<Profile> {
        let mut spec = self.spec();
        edit(&mut spec);
        Ok(self.lab.policy().create_profile(id, spec).await?)
    }

    /// Register a device named `name` through the admin API with device-agent's MDM client;
    /// its state directory is `<tmp>/devices/<name>`.
    pub async fn device(&self, name: &str) -> Result<TestDevice> {
        let path = self.dir.path().join("devices").join(name);
        let dir = DeviceDir::open(&path)?;
        let admin = SecretString::new(self.lab.tokens().policy_admin.expose());
        let registration = DeviceRegistration {
            name: name.into(),
            platform: "windows".into(),
            serial_number: Some(format!("SN-{name}")),
            owner_upn: Some("alice@scep-lab.test".into()),
            ..DeviceRegistration::default()
        };
        let reg = self.mdm.register(&dir, &admin, &registration).await?;
        let transport = Recorder::new(HttpTransport::new(Duration::from_secs(30))?);
        let agent = Agent::new(
            DeviceDir::open(&path)?,
            self.mdm.clone(),
            Arc::new(transport.clone()),
        );
        Ok(TestDevice {
            id: reg.device_id,
            name: name.into(),
            path,
            dir,
            agent,
            mdm: self.mdm.clone(),
            traffic: transport,
        })
    }

    /// Register `name` and assign it `profile`.
    pub async fn targeted_device(&self, name: &str, profile: &str) -> Result<TestDevice> {
        let d = self.device(name).await?;
        self.assign(profile, &d.id).await?;
        Ok(d)
    }

    /// Register `name`, assign `profile` and enroll through one device-agent sync; the
    /// installed certificate's record in the policy module's inventory.
    pub async fn enrolled_device(
        &self,
        name: &str,
        profile: &str,
    ) -> Result<(TestDevice, IssuedCert)> {
        let d = self.targeted_device(name, profile).await?;
        let summary = d.sync().await?;
        ensure!(
            summary.errors.is_empty(),
            "enrollment failed: {:?}",
            summary.errors
        );
        let (_, enrolled) = summary.installed.first().context("nothing installed")?;
        let cert = self.inventory_cert(&d.id, &enrolled.serial_hex).await?;
        Ok((d, cert))
    }

    /// Assign `profile` to one device.
    pub async fn assign(&self, profile: &str, device_id: &str) -> Result<()> {
        Ok(self
            .lab
            .policy()
            .assign(profile, device_target(device_id))
            .await?)
    }

    /// The policy module's record of a device's certificate, by serial (any hex spelling).
    pub async fn inventory_cert(&self, device_id: &str, serial: &str) -> Result<IssuedCert> {
        let view = self.lab.policy().device_view(device_id).await?;
        let want = normalize_serial(serial);
        view.certificates
            .into_iter()
            .find(|c| normalize_serial(&c.serial_hex) == want)
            .with_context(|| format!("no inventory record of serial {serial}"))
    }

    /// ca-mock's record of a serial.
    pub async fn ca_record(&self, serial: &str) -> Result<CertificateInfo> {
        Ok(ca_mock::api::info_of(&self.lab.ca().get(serial).await?))
    }

    /// Every certificate ca-mock issued (RA certificates included).
    pub async fn ca_records(&self) -> Result<Vec<CertificateInfo>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .lab
                .ca()
                .list(&ListFilter {
                    request_id: None,
                    after: after.clone(),
                    limit: 1000,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.cert.serial.clone());
            let full = page.len() == 1000;
            out.extend(page.iter().map(ca_mock::api::info_of));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Wait (bounded by [`WAIT`]) until ca-mock has `serial` revoked and its current CRL
    /// lists it; its record. (The store commits before the CRL is rebuilt, so seeing the
    /// record revoked alone races the publication the revoke call waits for.)
    pub async fn wait_revoked(&self, serial: &str) -> Result<CertificateInfo> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let info = self.ca_record(serial).await?;
            if info.status != CaStatus::Good && self.crl_count(serial).await? > 0 {
                return Ok(info);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("serial {serial} not revoked at the CA after {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait (bounded by [`WAIT`]) until ca-mock has `serial` good and its current CRL no
    /// longer lists it (a released certificateHold).
    pub async fn wait_good(&self, serial: &str) -> Result<CertificateInfo> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let info = self.ca_record(serial).await?;
            if info.status == CaStatus::Good && self.crl_count(serial).await? == 0 {
                return Ok(info);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("serial {serial} not good again at the CA after {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The policy module's audit trail, oldest first (optionally one device's).
    pub async fn audit(&self, device_id: Option<&str>) -> Result<Vec<AuditEvent>> {
        let mut events = self
            .lab
            .policy()
            .store()
            .list_audit(device_id, 10_000)
            .await?;
        events.reverse();
        Ok(events)
    }

    /// The named rejection the policy module audited for a transactionID, if any.
    pub async fn rejection(&self, transaction_id: &str) -> Result<Option<String>> {
        Ok(self
            .audit(None)
            .await?
            .into_iter()
            .rev()
            .find(|e| {
                e.event == "request_rejected" && e.transaction_id.as_deref() == Some(transaction_id)
            })
            .and_then(|e| e.detail)
            .and_then(|d| d.split_whitespace().next().map(str::to_owned)))
    }

    /// A raw SCEP client of this lab's ndes-proxy, pinned to its root.
    pub async fn raw_scep(&self) -> Result<RawScep> {
        RawScep::discover(&self.lab.scep_url(), self.lab.root_fingerprint()).await
    }

    /// The RA encryption key and certificate (to read what a device sent).
    pub async fn ra_decryption(&self) -> Result<(X509, PKey<Private>)> {
        let raw = self.raw_scep().await?;
        let pem = std::fs::read(self.lab.data_dir().join("ndes/ra-encryption.key.pem"))
            .context("reading the RA encryption key")?;
        Ok((raw.ca.recipient, PKey::private_key_from_pem(&pem)?))
    }

    /// The temporary directory everything lives in.
    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs the reconciler over the lab in `data` (SQLite), running or not.
pub async fn reconcile_dir(data: &Path) -> Result<scep_lab::reconcile::Report> {
    let sources = scep_lab::reconcile::Sources::open(data, &scep_lab::Databases::Sqlite).await?;
    let now = foundation::clock::unix_now();
    let report = scep_lab::reconcile::reconcile(&sources, now).await;
    sources.close().await;
    report
}

/// Fails with the whole report unless it is clean.
pub fn ensure_clean(report: &scep_lab::reconcile::Report) -> Result<()> {
    let mut text = Vec::new();
    report.write_to(&mut text)?;
    ensure!(
        report.is_clean(),
        "reconciler found violations:\n{}",
        String::from_utf8_lossy(&text)
    );
    Ok(())
}

/// A reqwest builder for `lab`'s APIs: pinned to its root when TLS is on.
pub fn lab_http(lab: &Lab) -> Result<reqwest::ClientBuilder> {
    Ok(match lab.tls() {
        Some(t) => t.pin().builder()?,
        None => reqwest::Client::builder(),
    })
}

/// A device with its own device-agent state directory and MDM credential.
pub struct TestDevice {
    /// The policy module's device id.
    pub id: String,
    /// The device name the profile renders.
    pub name: String,
    /// The state directory.
    pub path: PathBuf,
    /// The state directory, opened.
    pub dir: DeviceDir,
    agent: Agent,
    mdm: MdmClient,
    /// Every SCEP request this device's agent sent, with the answer.
    pub traffic: Recorder,
}

impl TestDevice {
    /// One device-agent run: check in, carry out commands, enroll/renew, report.
    pub async fn sync(&self) -> Result<SyncSummary> {
        self.sync_with(SyncOptions::default()).await
    }

    /// [`TestDevice::sync`] with options (force renewal).
    pub async fn sync_with(&self, options: SyncOptions) -> Result<SyncSummary> {
        Ok(self.agent.sync(options).await?)
    }

    /// A bare check-in with an empty report: what the MDM hands the device now.
    pub async fn checkin(&self) -> Result<CheckinResponse> {
        let (reg, credential) = self.agent.registration()?;
        Ok(self
            .mdm
            .checkin(&reg.device_id, &credential, &StatusReport::default())
            .await?)
    }

    /// The installed key and chain of a profile's slot, if any.
    pub fn installed(&self, profile: &str) -> Result<Option<(DeviceKey, Vec<X509>)>> {
        Ok(self.dir.slot(profile)?.installed()?)
    }

    /// The installed certificate of a profile's slot.
    pub fn certificate(&self, profile: &str) -> Result<X509> {
        let (_, chain) = self
            .installed(profile)?
            .context("no certificate installed")?;
        chain.into_iter().next().context("empty chain")
    }

    /// Every file under the device directory, relative paths, sorted.
    pub fn files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.path, &self.path, &mut out)?;
        out.sort();
        Ok(out)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root)?.display().to_string());
        }
    }
    Ok(())
}

/// A device-agent SCEP transport over plain HTTP that records every request and answer.
pub type Recorder = testkit::transport::Recording<HttpTransport>;

/// Open a recorded PKIOperation body as the RA would: the request body inside and the
/// certificate that signed the request.
pub fn open_request(
    der: &[u8],
    ra_cert: &X509,
    ra_key: &PKey<Private>,
) -> Result<(RequestBody, X509)> {
    let policy = AlgorithmPolicy::default();
    let decoded =
        scep::server::DecodedRequest::decode(der).map_err(|e| anyhow::anyhow!("decode: {e}"))?;
    let verified = decoded
        .verify(&policy)
        .map_err(|e| anyhow::anyhow!("verify: {e:?}"))?;
    let signer = verified.signer_certificate().clone();
    let opened = verified
        .open(
            &[DecryptionKey {
                cert: ra_cert,
                key: ra_key,
            }],
            &policy,
        )
        .map_err(|e| anyhow::anyhow!("open: {e:?}"))?;
    Ok((opened.body, signer))
}

/// The PKIOperation bodies a device sent.
pub fn pki_operations(traffic: &[(ScepRequest, ScepResponse)]) -> Vec<Vec<u8>> {
    traffic
        .iter()
        .filter_map(|(r, _)| match r {
            ScepRequest::PkiOperationPost(b) | ScepRequest::PkiOperationGet(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// A SCEP client of the lab built from the `scep` crate, for requests device-agent does not
/// send. Discovery (GetCACaps, GetCACert pinned to the root) is device-agent's.
pub struct RawScep {
    url: String,
    transport: HttpTransport,
    /// What discovery learned.
    pub ca: CaInfo,
}

impl RawScep {
    /// Discover the server at `url`, pinned to `root_sha256`.
    pub async fn discover(url: &str, root_sha256: &str) -> Result<Self> {
        let transport = HttpTransport::new(Duration::from_secs(30))?;
        let pin = Thumbprint::parse(root_sha256)?;
        let ca = discover(&transport, url, Some(&pin)).await?;
        Ok(Self {
            url: url.into(),
            transport,
            ca,
        })
    }

    /// Send `body` signed by `signer_key` with `signer_cert`, under `transaction_id`; the
    /// opened CertRep (a SUCCESS is decrypted with the signer's key).
    pub async fn send(
        &self,
        body: &RequestBody,
        signer_key: &PKeyRef<Private>,
        signer_cert: &X509,
        transaction_id: &TransactionId,
    ) -> Result<CertRep> {
        let (der, tx) = self.build(body, signer_key, signer_cert, transaction_id)?;
        let resp = device_agent::ScepTransport::send(
            &self.transport,
            &self.url,
            &ScepRequest::PkiOperationPost(der),
        )
        .await?;
        ensure!(
            resp.status == 200,
            "PKIOperation answered HTTP {}",
            resp.status
        );
        let key = DecryptionKey {
            cert: signer_cert,
            key: signer_key,
        };
        Ok(open_cert_rep(
            &resp.body,
            &tx,
            &self.ca.reply_signers,
            key,
            &AlgorithmPolicy::default(),
        )?)
    }

    /// POST a PKIOperation body as it is; the HTTP answer, unopened (for a test that hands the
    /// CertRep to another tool).
    pub async fn post(&self, der: Vec<u8>) -> Result<ScepResponse> {
        Ok(device_agent::ScepTransport::send(
            &self.transport,
            &self.url,
            &ScepRequest::PkiOperationPost(der),
        )
        .await?)
    }

    /// The pkiMessage [`RawScep::send`] would send (a fresh senderNonce), DER, and its
    /// transaction, for a test that sends it by other means.
    pub fn build(
        &self,
        body: &RequestBody,
        signer_key: &PKeyRef<Private>,
        signer_cert: &X509,
        transaction_id: &TransactionId,
    ) -> Result<(Vec<u8>, Transaction)> {
        let tx = Transaction {
            transaction_id: transaction_id.clone(),
            sender_nonce: Nonce::random()?,
        };
        let signer = SignerIdentity {
            cert: signer_cert,
            key: signer_key,
        };
        let der = build_request(body, signer, &[&self.ca.recipient], &tx, &self.ca.options)?;
        Ok((der, tx))
    }

    /// A PKCSReq carrying `csr_der`, signed by a self-signed certificate of `signer` (the
    /// request's own key, or a transport key for keys that cannot sign it), under a fresh
    /// random transactionID; that ID and the CertRep.
    pub async fn pkcs_req(
        &self,
        csr_der: &[u8],
        signer: &PKeyRef<Private>,
    ) -> Result<(TransactionId, CertRep)> {
        let csr = scep::csr::Csr::from_der(csr_der).map_err(|e| anyhow::anyhow!("CSR: {e}"))?;
        let subject = csr.subject_name()?;
        let now = unix_now();
        let cert = self_signed_certificate(signer, &subject, now - 3600, now + 86_400)?;
        let id = random_transaction_id()?;
        let rep = self
            .send(&RequestBody::PkcsReq(csr), signer, &cert, &id)
            .await?;
        Ok((id, rep))
    }
}

impl RawScep {
    /// A RenewalReq carrying `csr_der`, signed by the current certificate and its key, under
    /// a fresh random transactionID; that ID and the CertRep.
    pub async fn renewal_req(
        &self,
        csr_der: &[u8],
        current_key: &PKeyRef<Private>,
        current_cert: &X509,
    ) -> Result<(TransactionId, CertRep)> {
        let csr = scep::csr::Csr::from_der(csr_der).map_err(|e| anyhow::anyhow!("CSR: {e}"))?;
        let id = random_transaction_id()?;
        let rep = self
            .send(
                &RequestBody::RenewalReq(csr),
                current_key,
                current_cert,
                &id,
            )
            .await?;
        Ok((id, rep))
    }
}

/// A random transactionID (40 hex characters).
pub fn random_transaction_id() -> Result<TransactionId> {
    let mut b = [0u8; 20];
    openssl::rand::rand_bytes(&mut b)?;
    TransactionId::new(&hex::encode_upper(b)).context("transactionID")
}

/// A new RSA key for a hand-built request (any size, unlike device-agent's).
pub fn rsa_key(bits: u32) -> Result<PKey<Private>> {
    Ok(testkit::pki::rsa_key(bits))
}

/// A device-agent key.
pub fn device_key(spec: KeySpec) -> Result<DeviceKey> {
    Ok(DeviceKey::generate(spec)?)
}

/// An assignment to one device.
pub fn device_target(device_id: &str) -> Assignment {
    Assignment {
        kind: "device".into(),
        id: device_id.into(),
    }
}

/// The canonical spelling of a serial (the foundation's), or the text lowercased if it is not
/// one.
pub fn normalize_serial(s: &str) -> String {
    foundation::serial::canonical(s).unwrap_or_else(|| s.trim().to_ascii_lowercase())
}

/// The serial of a certificate, in its canonical spelling.
pub fn serial_of(cert: &X509) -> Result<String> {
    Ok(foundation::Serial::of_certificate(cert)?.to_hex())
}

/// Current Unix time.
pub fn unix_now() -> i64 {
    foundation::clock::unix_now()
}

/// Write PEM files for `openssl` CLI checks into `dir`; their paths.
pub fn write_pem(dir: &Path, name: &str, certs: &[&X509]) -> Result<PathBuf> {
    let mut pem = Vec::new();
    for c in certs {
        pem.extend(c.to_pem()?);
    }
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path)
}

/// Whether a CertRep is FAILURE with `fail_info`.
pub fn is_failure(rep: &CertRep, fail_info: scep::FailInfo) -> bool {
    matches!(rep, CertRep::Failure { fail_info: f, .. } if *f == fail_info)
}

/// The values of a name's entries, in order.
pub fn name_values(name: &X509NameRef) -> Vec<String> {
    name.entries()
        .map(|e| e.data().to_string().unwrap_or_else(|_| "<not text>".into()))
        .collect()
}

/// A PKCS#10 request for `key` as `spec` describes it (device-agent's CSR layout), with an
/// optional challenge; any key size, so undersized keys can be tried.
pub fn build_csr(
    spec: &device_agent::csr::CsrSpec,
    key: &PKeyRef<Private>,
    challenge: Option<&str>,
) -> Result<Vec<u8>> {
    let subject = spec.subject_name()?;
    let extensions = spec.extensions()?;
    let ext = (!extensions.is_empty()).then_some(&*extensions);
    let challenge = challenge.map(scep::csr::ChallengePassword::new);
    Ok(scep::csr::build(
        key,
        &subject,
        ext,
        challenge.as_ref(),
        openssl::hash::MessageDigest::sha256(),
    )?)
}

/// The CSR a device would send for the first profile of a check-in, with its challenge.
pub fn profile_csr(checkin: &CheckinResponse, key: &PKeyRef<Private>) -> Result<Vec<u8>> {
    let p = checkin.profiles.first().context("no profile at check-in")?;
    build_csr(&p.enroll_config()?.csr, key, Some(p.challenge.expose()))
}

/// The certificate of a SUCCESS CertRep for `key`.
pub fn issued_cert(rep: &CertRep, key: &PKeyRef<Private>) -> Result<X509> {
    let CertRep::Success(certs) = rep else {
        bail!("not a SUCCESS: {rep:?}");
    };
    certs
        .certificates
        .iter()
        .find(|c| c.public_key().is_ok_and(|k| k.public_eq(key)))
        .cloned()
        .context("no certificate for the request key in the CertRep")
}

/// Poll `check` every 100 ms until it is true, for at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what}: not true after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestLab {
    /// Wait until the policy module's inventory shows every listed serial of a device
    /// `Revoked` (the CA acknowledged the outbox's request).
    pub async fn wait_inventory_revoked(&self, device_id: &str, serials: &[String]) -> Result<()> {
        self.wait_inventory(
            device_id,
            serials,
            policy_module::model::CertStatus::Revoked,
        )
        .await
    }

    /// Wait until the inventory shows every listed serial of a device in `status` (e.g.
    /// `Held` once a block is confirmed, `Issued` once its release is). A deleted device's
    /// inventory is read from the store, since the admin API no longer shows the device.
    pub async fn wait_inventory(
        &self,
        device_id: &str,
        serials: &[String],
        status: policy_module::model::CertStatus,
    ) -> Result<()> {
        let want: Vec<String> = serials.iter().map(|s| normalize_serial(s)).collect();
        eventually("inventory shows the lifecycle action", || async {
            let certs = self
                .lab
                .policy()
                .store()
                .certs_for_device(device_id)
                .await?;
            Ok(want.iter().all(|w| {
                certs
                    .iter()
                    .any(|c| normalize_serial(&c.serial_hex) == *w && c.status == status)
            }))
        })
        .await
    }

    /// How many times the current CRL lists `serial`, after checking its signature with the
    /// issuing CA's key.
    pub async fn crl_count(&self, serial: &str) -> Result<usize> {
        let snapshot = self.lab.ca().crl().await?;
        let crl = openssl::x509::X509Crl::from_der(&snapshot.der)?;
        let issuing = &self.lab.ca().material().issuing;
        ensure!(
            crl.verify(&*issuing.public_key()?)?,
            "the CRL signature does not verify"
        );
        let want = normalize_serial(serial);
        Ok(crl.get_revoked().map_or(0, |r| {
            r.iter()
                .filter(|e| {
                    e.serial_number()
                        .to_bn()
                        .and_then(|b| b.to_hex_str().map(|h| normalize_serial(&h)))
                        .is_ok_and(|h| h == want)
                })
                .count()
        }))
    }
}

/// micromdm `scepclient` enrolling once (no renewal) with every GetCACert certificate as a
/// recipient: (success, results.tsv, a report for failure messages).
pub async fn micromdm_scepclient(
    url: &str,
    challenge: &str,
    out: &Path,
    cn: &str,
) -> (bool, String, String) {
    let env = [("MICROMDM_SELECT", "all"), ("MICROMDM_RENEW", "0")];
    let run = testkit::peers::micromdm_scepclient(url, challenge, out, cn, &env).await;
    (run.success, run.results, run.report)
}

/// The standard profile: RSA 2048, subject [`SUBJECT_FORMAT`], one DNS SAN [`SAN_FORMAT`],
/// client auth, 365 days, renewal at 20 % left, template [`TEMPLATE`], served at `scep_urls`
/// and pinned to the root whose SHA-256 thumbprint is `root`.
pub fn standard_profile_spec(name: &str, scep_urls: Vec<String>, root: &str) -> ProfileSpec {
    ProfileSpec {
        name: name.into(),
        certificate_type: CertificateType::Device,
        subject_name_format: SUBJECT_FORMAT.into(),
        subject_alternative_names: vec![SanTemplate {
            kind: SanKind::Dns,
            value: SAN_FORMAT.into(),
        }],
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
        key_algorithm: KeyAlgorithm::Rsa,
        key_size: 2048,
        hash_algorithm: HashAlgorithm::Sha256,
        validity_days: 365,
        renewal_threshold_percent: 20,
        template: TEMPLATE.into(),
        scep_server_urls: scep_urls,
        ca_thumbprint: root.into(),
        retry_count: 3,
        retry_delay_minutes: 1,
    }
}
