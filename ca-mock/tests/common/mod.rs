//! Shared fixtures: a CA on a temp dir served on 127.0.0.1:0, CSRs built with the openssl
//! crate, and the `openssl` CLI as oracle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    unused_imports,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ca_api::client::CaClient;
use ca_api::wire::IssueRequest;
use ca_api::{GrantKey, GrantStatement, GrantVerifier, IssueCall, SignedGrant};
use ca_mock::auth::{Caller, Callers, Operation, hash_token};
use ca_mock::keys::KeySpec;
use ca_mock::store::SqlStore;
use ca_mock::template::Template;
use ca_mock::{AppState, CaMaterial, CaSettings, CertificateAuthority, InitSource};
use foundation::clock::SystemClock;
use foundation::names::{NameAttr, San, SanKind, SubjectAttr};
use openssl::asn1::Asn1Object;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509ReqBuilder};

/// The policy module's grant key in these tests: every test CA trusts it.
pub fn grant_key() -> &'static GrantKey {
    static KEY: std::sync::OnceLock<GrantKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| GrantKey::generate().unwrap())
}

/// Lowercase hex SHA-256 of a CSR's SubjectPublicKeyInfo, as a grant binds it (empty for
/// bytes that are no CSR: a grant for a request the CA must refuse on its own).
pub fn spki_sha256(csr_der: &[u8]) -> String {
    openssl::x509::X509Req::from_der(csr_der)
        .and_then(|req| req.public_key())
        .and_then(|key| key.public_key_to_der())
        .map(|spki| hex::encode(openssl::sha::sha256(&spki)))
        .unwrap_or_default()
}

/// The statement the policy module would sign for exactly `req`, valid for five minutes.
pub fn statement_for(req: &IssueRequest) -> GrantStatement {
    let now = foundation::clock::unix_now();
    GrantStatement {
        v: 0,
        key_id: String::new(),
        request_id: req.request_id.clone(),
        spki_sha256: B64
            .decode(&req.csr)
            .map(|der| spki_sha256(&der))
            .unwrap_or_default(),
        template: req.template.clone(),
        subject: req.subject.clone(),
        sans: req.sans.clone(),
        key_usage: req.key_usage.clone(),
        extended_key_usages: req.extended_key_usages.clone(),
        validity_days: req.validity_days.unwrap_or(0),
        issued_at: now,
        expires_at: now + 300,
    }
}

/// `req` with a grant for exactly what it asks: what ndes-proxy forwards from the policy module.
/// A request without a validity asks for 30 days (the policy module always names one).
pub fn granted(mut req: IssueRequest) -> IssueRequest {
    req.validity_days.get_or_insert(30);
    req.grant = Some(grant_key().sign(statement_for(&req)).unwrap());
    req
}

pub const NDES_TOKEN: &str = "ndes-token-for-tests-only";
pub const POLICY_TOKEN: &str = "policy-token-for-tests-only";
/// Entitled to issue under the RA templates only.
pub const NARROW_TOKEN: &str = "narrow-token-for-tests-only";
/// Plain mode's entitlement: the device template, without grants, without SANs.
pub const PLAIN_TOKEN: &str = "plain-token-for-tests-only";
/// May issue, and nothing else: not even read.
pub const ISSUE_ONLY_TOKEN: &str = "issue-only-token-for-tests-only";

pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub base: String,
    pub ndes: CaClient,
    pub policy: CaClient,
    pub anonymous: CaClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestCa {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.state.ca
    }

    /// Writes root, issuing and chain PEM files for the CLI; returns (root, issuing, chain).
    pub fn write_ca_pems(&self) -> (PathBuf, PathBuf, PathBuf) {
        let m = self.ca().material();
        let root = self.path("t-root.pem");
        let issuing = self.path("t-issuing.pem");
        let chain = self.path("t-chain.pem");
        std::fs::write(&root, m.root.to_pem().unwrap()).unwrap();
        std::fs::write(&issuing, m.issuing.to_pem().unwrap()).unwrap();
        let mut both = m.issuing.to_pem().unwrap();
        both.extend(m.root.to_pem().unwrap());
        std::fs::write(&chain, both).unwrap();
        (root, issuing, chain)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

fn callers() -> Callers {
    let all = vec!["*".to_owned()];
    Callers::new(vec![
        Caller::new(
            "ndes",
            &hash_token(NDES_TOKEN),
            all.clone(),
            vec![Operation::Issue, Operation::Read],
        )
        .unwrap(),
        Caller::new(
            "policy",
            &hash_token(POLICY_TOKEN),
            all,
            vec![Operation::Revoke, Operation::Read],
        )
        .unwrap(),
        Caller::new(
            "narrow",
            &hash_token(NARROW_TOKEN),
            vec!["EnrollmentAgentOffline".into(), "CEPEncryption".into()],
            vec![Operation::Issue, Operation::Read, Operation::Revoke],
        )
        .unwrap(),
        Caller::new(
            "plain",
            &hash_token(PLAIN_TOKEN),
            vec!["IPSECIntermediateOffline".into()],
            vec![Operation::Issue, Operation::Read],
        )
        .unwrap()
        .plain_mode(),
        Caller::new(
            "issue-only",
            &hash_token(ISSUE_ONLY_TOKEN),
            vec!["*".to_owned()],
            vec![Operation::Issue],
        )
        .unwrap(),
    ])
    .unwrap()
}

/// A CA with a fresh hierarchy of `key` type, on SQLite in its temp dir, served on loopback.
pub async fn start(key: KeySpec) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let store = SqlStore::sqlite(&url).await.unwrap();
    start_with(dir, key, store).await
}

pub async fn start_with(dir: tempfile::TempDir, key: KeySpec, store: SqlStore) -> TestCa {
    start_refreshing(dir, key, store, Duration::from_secs(3600)).await
}

/// The same with the scheduled CRL rebuild every `crl_refresh`.
pub async fn start_refreshing(
    dir: tempfile::TempDir,
    key: KeySpec,
    store: SqlStore,
    crl_refresh: Duration,
) -> TestCa {
    start_full(dir, key, store, crl_refresh, Template::builtin().unwrap()).await
}

/// A CA on SQLite with these templates instead of the built-in ones.
pub async fn start_with_templates(key: KeySpec, templates: Vec<Template>) -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let store = SqlStore::sqlite(&url).await.unwrap();
    start_full(dir, key, store, Duration::from_secs(3600), templates).await
}

async fn start_full(
    dir: tempfile::TempDir,
    key: KeySpec,
    store: SqlStore,
    crl_refresh: Duration,
    templates: Vec<Template>,
) -> TestCa {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let source = InitSource::Generate {
        key,
        root_cn: "Lab Root CA".into(),
        issuing_cn: "Lab Issuing CA".into(),
        org: Some("scep-lab tests".into()),
        root_days: 3650,
        issuing_days: 1825,
    };
    let ca_dir = dir.path().join("pki");
    ca_mock::init(&ca_dir, &source, None).unwrap();
    let material = CaMaterial::load(&ca_dir, None).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = CaSettings::new(&base);
    settings.crl_path = Some(dir.path().join("issuing.crl"));
    settings.grants = GrantVerifier::of_key(grant_key(), 900).unwrap();
    let ca = CertificateAuthority::new(
        material,
        templates,
        Arc::new(store),
        Arc::new(SystemClock),
        settings,
    )
    .unwrap();
    ca.refresh_crl().await.unwrap();
    let state = AppState {
        ca: Arc::new(ca),
        callers: Arc::new(callers()),
        crl_refresh,
    };
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(ca_mock::serve(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    TestCa {
        ndes: CaClient::new(&base, Some(NDES_TOKEN.into())).unwrap(),
        policy: CaClient::new(&base, Some(POLICY_TOKEN.into())).unwrap(),
        anonymous: CaClient::new(&base, None).unwrap(),
        dir,
        state,
        base,
        stop: Some(stop),
        handle: Some(handle),
    }
}

pub use testkit::pki::{ec_key, rsa_key};

/// A CSR for `key` with subject CN=`cn`. `greedy` also asks for everything a template must not
/// give: CA:TRUE, keyCertSign, anyExtendedKeyUsage, and SANs (a DNS name and a UPN otherName).
pub fn csr(key: &PKey<Private>, cn: &str, greedy: bool) -> Vec<u8> {
    let mut b = X509ReqBuilder::new().unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_pubkey(key).unwrap();
    if greedy {
        let mut exts = Stack::new().unwrap();
        exts.push(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        exts.push(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
            .unwrap();
        exts.push(
            ExtendedKeyUsage::new()
                .other("anyExtendedKeyUsage")
                .build()
                .unwrap(),
        )
        .unwrap();
        // UPN otherName: [0] EXPLICIT UTF8String "admin@contoso.com"
        let upn = b"admin@contoso.com";
        let mut content = vec![0xa0, (upn.len() + 2) as u8, 0x0c, upn.len() as u8];
        content.extend_from_slice(upn);
        let san = SubjectAlternativeName::new()
            .dns("evil.example")
            .other_name2(
                Asn1Object::from_str("1.3.6.1.4.1.311.20.2.3").unwrap(),
                &content,
            )
            .build(&b.x509v3_context(None))
            .unwrap();
        exts.push(san).unwrap();
        b.add_extensions(&exts).unwrap();
    }
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

pub fn issue_request(request_id: &str, template: &str, csr_der: &[u8], cn: &str) -> IssueRequest {
    IssueRequest {
        request_id: request_id.into(),
        template: template.into(),
        csr: B64.encode(csr_der),
        subject: vec![
            NameAttr {
                attr: SubjectAttr::CN,
                value: cn.into(),
            },
            NameAttr {
                attr: SubjectAttr::O,
                value: "Contoso".into(),
            },
        ],
        sans: vec![San {
            kind: SanKind::Dns,
            value: format!("{cn}.example.com"),
        }],
        validity_days: None,
        ..Default::default()
    }
}

/// [`issue_request`] with its grant, as the full pipeline sends it.
pub fn granted_request(request_id: &str, template: &str, csr_der: &[u8], cn: &str) -> IssueRequest {
    granted(issue_request(request_id, template, csr_der, cn))
}

pub fn b64d(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// Writes a DER certificate (base64) as PEM and returns the path.
pub fn write_cert_pem(dir: &Path, name: &str, cert_b64: &str) -> PathBuf {
    let cert = openssl::x509::X509::from_der(&b64d(cert_b64)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, cert.to_pem().unwrap()).unwrap();
    path
}

/// Runs the openssl CLI off the async runtime; returns (success, stdout + stderr).
pub async fn openssl(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = testkit::openssl(&args, None).expect("openssl CLI runs");
        (
            out.success(),
            format!("{}{}", out.stdout_str(), out.stderr_str()),
        )
    })
    .await
    .unwrap()
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The typed call a wire request stands for: what ca-mock's HTTP layer hands the CA's core.
pub fn call(req: &IssueRequest) -> IssueCall {
    IssueCall {
        request_id: req.request_id.clone(),
        template: req.template.clone(),
        csr_der: b64d(&req.csr),
        subject: req.subject.clone(),
        sans: req.sans.clone(),
        validity_days: req.validity_days,
        key_usage: req.key_usage.clone(),
        extended_key_usages: req.extended_key_usages.clone(),
        grant: req.grant.clone(),
    }
}
