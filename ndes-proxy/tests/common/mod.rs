//! Fixtures: a CA + RA hierarchy, a fake CA backend and a fake policy module behind the real
//! traits, an ndes-proxy on 127.0.0.1:0, and a device that speaks SCEP with the `scep` crate.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ca_api::{CaBackend, CaError, IssueCall, IssuedCert};
use foundation::{ManualClock, Serial};
use ndes_proxy::{AppState, AppStateBuilder, KeyPair, RaIdentity, Settings};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use policy_api::{
    ChallengeError, ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification,
    NotifyError, Rejection, VerifyError, VerifyRequest,
};
use scep::client::{CertRep, RequestOptions, Transaction};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr};
use scep::{AlgorithmPolicy, Nonce, RequestBody, TransactionId};
use testkit::pki::CertSpec;

/// Test time: the real time at start (certificates are checked by openssl at "now").
pub fn now() -> i64 {
    static NOW: OnceLock<i64> = OnceLock::new();
    *NOW.get_or_init(foundation::clock::unix_now)
}

pub use testkit::pki::{name, ra_hierarchy as pki};

/// An RA with one certificate for signing and encryption.
pub fn combined_ra_identity() -> RaIdentity {
    let p = pki();
    let pair = || KeyPair {
        cert: p.ra_combined.clone(),
        key: p.ra_combined_key.clone(),
    };
    RaIdentity::new(pair(), pair(), vec![p.ca.clone()]).unwrap()
}

pub fn ra_identity() -> RaIdentity {
    let p = pki();
    RaIdentity::new(
        KeyPair {
            cert: p.ra_sign.clone(),
            key: p.ra_sign_key.clone(),
        },
        KeyPair {
            cert: p.ra_enc.clone(),
            key: p.ra_enc_key.clone(),
        },
        vec![p.ca.clone()],
    )
    .unwrap()
}

/// A CA backend that signs with the test CA, idempotent by request id, switchable off.
#[derive(Default)]
pub struct FakeCa {
    pub down: AtomicBool,
    pub refuse: AtomicBool,
    pub issued: Mutex<HashMap<String, (Vec<u8>, IssuedCert)>>,
    /// Serials revoked at the CA.
    pub revoked: Mutex<std::collections::HashSet<String>>,
}

#[async_trait::async_trait]
impl CaBackend for FakeCa {
    async fn issue(&self, call: &IssueCall) -> Result<IssuedCert, CaError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CaError::Unavailable("switched off".into()));
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(CaError::Refused("template_not_entitled".into()));
        }
        let mut issued = self.issued.lock().unwrap();
        if let Some((csr, cert)) = issued.get(&call.request_id) {
            return if *csr == call.csr_der {
                Ok(cert.clone())
            } else {
                Err(CaError::Refused("request_id_conflict".into()))
            };
        }
        let p = pki();
        let csr = Csr::from_der(&call.csr_der).unwrap();
        let key = csr.public_key().unwrap();
        let cn = call
            .subject
            .iter()
            .map(|a| a.value.clone())
            .next_back()
            .unwrap_or_default();
        let subject = name(&cn);
        let cert = CertSpec {
            subject: &subject,
            issuer: Some((&p.ca, &p.ca_key)),
            usage: None,
            serial: None,
            not_before: now() - 300,
            not_after: now() + 365 * 86_400,
        }
        .build_for(&key);
        let serial = cert.serial_number().to_bn().unwrap();
        let out = IssuedCert {
            serial: Serial::from_magnitude(&serial.to_vec()).unwrap(),
            der: cert.to_der().unwrap(),
            chain: vec![p.ca.to_der().unwrap()],
            not_before: now() - 300,
            not_after: now() + 365 * 86_400,
            replayed: false,
        };
        issued.insert(call.request_id.clone(), (call.csr_der.clone(), out.clone()));
        Ok(out)
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<Vec<u8>>, CaError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CaError::Unavailable("switched off".into()));
        }
        let issued = self.issued.lock().unwrap();
        Ok(issued
            .values()
            .find(|(_, c)| c.serial == *serial)
            .map(|(_, c)| c.der.clone()))
    }

    async fn is_good(&self, serial: &Serial) -> Result<Option<bool>, CaError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CaError::Unavailable("switched off".into()));
        }
        let issued = self.issued.lock().unwrap();
        let known = issued.values().any(|(_, c)| c.serial == *serial);
        let revoked = self.revoked.lock().unwrap().contains(&serial.to_hex());
        Ok(known.then_some(!revoked))
    }

    async fn by_request_id(&self, request_id: &str) -> Result<Vec<Vec<u8>>, CaError> {
        let issued = self.issued.lock().unwrap();
        Ok(issued
            .get(request_id)
            .map(|(_, c)| vec![c.der.clone()])
            .unwrap_or_default())
    }

    async fn crl(&self) -> Result<Vec<u8>, CaError> {
        let p = pki();
        let mut b = openssl::x509::X509CrlBuilder::new().unwrap();
        b.set_issuer_name(p.ca.subject_name()).unwrap();
        b.set_last_update(&Asn1Time::from_unix(now()).unwrap())
            .unwrap();
        b.set_next_update(&Asn1Time::from_unix(now() + 86_400).unwrap())
            .unwrap();
        let holder = openssl::x509::X509Builder::new().unwrap();
        let ctx = holder.x509v3_context(Some(&p.ca), None);
        b.append_extension(
            openssl::x509::extension::AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&ctx)
                .unwrap(),
        )
        .unwrap();
        b.append_extension(
            openssl::x509::extension::CrlNumber::new(BigNum::from_u32(1).unwrap())
                .unwrap()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&p.ca_key, MessageDigest::sha256()).unwrap();
        Ok(b.build().unwrap().to_der().unwrap())
    }
}

/// Who reserved a challenge: (transaction id, CSR), once used.
pub type Reservation = Option<(String, Vec<u8>)>;

/// A policy module with one-time challenges (reserved by transactionID + CSR, as docs/decisions.md
/// #4 says), renewal by a certificate signed by the test CA, switchable off.
#[derive(Default)]
pub struct FakePolicy {
    pub down: AtomicBool,
    /// Notify fails as if the policy module were unreachable (verify still works).
    pub notify_down: AtomicBool,
    /// challenge -> Some((transaction id, csr)) once reserved.
    pub challenges: Mutex<HashMap<String, Reservation>>,
    pub notifications: Mutex<Vec<Notification>>,
    pub rejections: Mutex<Vec<Rejection>>,
    /// PasswordMax for generate_challenge (0: unlimited); counts unused challenges.
    pub password_max: AtomicUsize,
    /// Who asked generate_challenge for which template.
    pub challenge_requests: Mutex<Vec<ChallengeRequest>>,
    /// verify_request waits while a test holds this for writing (an operation in progress).
    pub verify_gate: tokio::sync::RwLock<()>,
}

impl FakePolicy {
    pub fn with_challenges(list: &[&str]) -> Self {
        let p = Self::default();
        p.challenges
            .lock()
            .unwrap()
            .extend(list.iter().map(|c| ((*c).to_owned(), None)));
        p
    }

    fn reject(&self, r: Rejection) -> Result<Grant, VerifyError> {
        self.rejections.lock().unwrap().push(r);
        Err(VerifyError::Rejected(r))
    }
}

fn grant(req: &VerifyRequest, renewal: bool) -> Grant {
    let csr = Csr::from_der(&req.csr_der).unwrap();
    let cn = csr
        .subject_name()
        .unwrap()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|e| e.data().to_string().unwrap())
        .unwrap_or_default();
    serde_json::from_value(serde_json::json!({
        "transaction_id": req.transaction_id,
        "template": "DeviceTemplate",
        "subject": [{"attr": "CN", "value": cn}],
        "subject_alternative_names": [],
        "validity_days": 365,
        "key_usage": ["digitalSignature"],
        "extended_key_usages": [],
        "device_id": "dev-1",
        "profile_id": "p-1",
        "profile_version": 1,
        "renewal": renewal,
    }))
    .unwrap()
}

#[async_trait::async_trait]
impl NdesPolicy for FakePolicy {
    async fn generate_challenge(
        &self,
        req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ChallengeError::Unavailable);
        }
        if req.template != "IPSECIntermediateOffline" {
            return Err(ChallengeError::InvalidTemplate);
        }
        self.challenge_requests.lock().unwrap().push(req.clone());
        let mut challenges = self.challenges.lock().unwrap();
        let unused = challenges.values().filter(|r| r.is_none()).count();
        let max = self.password_max.load(Ordering::SeqCst);
        if max != 0 && unused >= max {
            return Err(ChallengeError::CacheFull);
        }
        let mut raw = [0u8; 16];
        openssl::rand::rand_bytes(&mut raw).unwrap();
        let value = hex::encode_upper(raw);
        challenges.insert(value.clone(), None);
        Ok(IssuedChallenge {
            challenge: foundation::secret::Secret::new(&value),
            template: req.template,
            expires_at: foundation::time::rfc3339(now() + 3600),
            expires_at_unix: now() + 3600,
        })
    }

    async fn verify_request(&self, req: VerifyRequest) -> Result<Grant, VerifyError> {
        drop(self.verify_gate.read().await);
        if self.down.load(Ordering::SeqCst) {
            return Err(VerifyError::Unavailable);
        }
        if let Some(signer) = &req.signer_cert_der {
            let cert = X509::from_der(signer).unwrap();
            if cert.verify(&pki().ca.public_key().unwrap()).unwrap() {
                return Ok(grant(&req, true));
            }
            return self.reject(Rejection::SigningCertThumbprintMismatch);
        }
        let Some(challenge) = &req.challenge else {
            return self.reject(Rejection::ChallengePasswordMissing);
        };
        let mut challenges = self.challenges.lock().unwrap();
        match challenges.get_mut(challenge.expose()) {
            None => {
                drop(challenges);
                self.reject(Rejection::ChallengeUnknown)
            }
            Some(slot @ None) => {
                *slot = Some((req.transaction_id.clone(), req.csr_der.clone()));
                Ok(grant(&req, false))
            }
            Some(Some((tx, csr))) if *tx == req.transaction_id && *csr == req.csr_der => {
                Ok(grant(&req, false))
            }
            Some(Some(_)) => {
                drop(challenges);
                self.reject(Rejection::ChallengeAlreadyUsed)
            }
        }
    }

    async fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        if self.notify_down.load(Ordering::SeqCst) {
            return Err(NotifyError::Unavailable);
        }
        self.notifications.lock().unwrap().push(n);
        Ok(())
    }
}

pub struct Server {
    pub url: String,
    pub ca: Arc<FakeCa>,
    pub policy: Arc<FakePolicy>,
    pub state: AppState,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(challenges: &[&str]) -> Self {
        Self::start_with(challenges, Settings::default()).await
    }

    pub async fn start_with(challenges: &[&str], settings: Settings) -> Self {
        Self::start_with_identity(ra_identity(), challenges, settings).await
    }

    pub async fn start_with_identity(
        ra: RaIdentity,
        challenges: &[&str],
        settings: Settings,
    ) -> Self {
        Self::start_full(ra, challenges, settings, |b| b).await
    }

    /// A server whose optional parts (pending store, admin token, mscep_admin) `configure` sets.
    pub async fn start_configured(
        challenges: &[&str],
        settings: Settings,
        configure: impl FnOnce(AppStateBuilder) -> AppStateBuilder,
    ) -> Self {
        Self::start_full(ra_identity(), challenges, settings, configure).await
    }

    pub async fn start_full(
        ra: RaIdentity,
        challenges: &[&str],
        settings: Settings,
        configure: impl FnOnce(AppStateBuilder) -> AppStateBuilder,
    ) -> Self {
        let ca = Arc::new(FakeCa::default());
        let policy = Arc::new(FakePolicy::with_challenges(challenges));
        let state = configure(AppState::builder(
            ra,
            policy.clone(),
            ca.clone(),
            settings,
            Arc::new(ManualClock::new(now())),
        ))
        .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(ndes_proxy::serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            url,
            ca,
            policy,
            state,
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop the server and wait until it has stopped (retry task included).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path_and_query: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}{path_and_query}", self.url))
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A device: its key, the certificate it signs with, and the transaction it is in.
pub struct Device {
    pub key: PKey<Private>,
    pub signer: X509,
    pub tx: Transaction,
    pub cn: String,
}

impl Device {
    pub fn new(key_index: usize, cn: &str) -> Self {
        let key = pki().device_keys[key_index].clone();
        let signer =
            scep::client::self_signed_certificate(&key, &name(cn), now() - 60, now() + 3600)
                .unwrap();
        let tx = Transaction {
            transaction_id: TransactionId::from_public_key(&key.public_key_to_der().unwrap())
                .unwrap(),
            sender_nonce: Nonce::random().unwrap(),
        };
        Self {
            key,
            signer,
            tx,
            cn: cn.to_owned(),
        }
    }

    /// Sign with an existing certificate (renewal).
    pub fn signing_with(mut self, cert: X509) -> Self {
        self.signer = cert;
        self
    }

    pub fn csr(&self, challenge: Option<&str>) -> Csr {
        let c = challenge.map(ChallengePassword::new);
        let der = scep::csr::build(
            &self.key,
            &name(&self.cn),
            None,
            c.as_ref(),
            MessageDigest::sha256(),
        )
        .unwrap();
        Csr::from_der(&der).unwrap()
    }

    /// A request whose envelope is encrypted to `recipient` instead of the RA.
    pub fn request_to(&self, body: &RequestBody, recipient: &X509) -> Vec<u8> {
        let opts = RequestOptions {
            signing_time: Some(now()),
            ..RequestOptions::default()
        };
        let signer = SignerIdentity {
            cert: &self.signer,
            key: &self.key,
        };
        scep::client::build_request(body, signer, &[recipient], &self.tx, &opts).unwrap()
    }

    pub fn request(&self, body: &RequestBody) -> Vec<u8> {
        let p = pki();
        let opts = RequestOptions {
            signing_time: Some(now()),
            ..RequestOptions::default()
        };
        scep::client::build_request(
            body,
            SignerIdentity {
                cert: &self.signer,
                key: &self.key,
            },
            &[&p.ra_enc],
            &self.tx,
            &opts,
        )
        .unwrap()
    }

    pub fn open(&self, reply: &[u8]) -> CertRep {
        let p = pki();
        scep::client::open_cert_rep(
            reply,
            &self.tx,
            std::slice::from_ref(&p.ra_sign),
            DecryptionKey {
                cert: &self.signer,
                key: &self.key,
            },
            &AlgorithmPolicy::default(),
        )
        .unwrap()
    }

    /// POST a PKIOperation and open the CertRep.
    pub async fn send(&self, server: &Server, body: &RequestBody) -> CertRep {
        let resp = server
            .post("/scep?operation=PKIOperation", self.request(body))
            .await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        assert_eq!(resp.headers()["content-type"], "application/x-pki-message");
        self.open(&resp.bytes().await.unwrap())
    }
}

pub fn poll_body(cn: &str) -> RequestBody {
    RequestBody::CertPoll(scep::IssuerAndSubject::new(&pki().ca, &name(cn)).unwrap())
}

pub fn pending(rep: CertRep) {
    assert!(
        matches!(rep, CertRep::Pending),
        "expected PENDING, got {rep:?}"
    );
}

pub fn issued(rep: CertRep) -> X509 {
    match rep {
        CertRep::Success(p) => p.certificates.into_iter().next().unwrap(),
        other => panic!("expected SUCCESS, got {other:?}"),
    }
}

pub fn failure(rep: CertRep) -> scep::FailInfo {
    match rep {
        CertRep::Failure { fail_info, .. } => fail_info,
        other => panic!("expected FAILURE, got {other:?}"),
    }
}
