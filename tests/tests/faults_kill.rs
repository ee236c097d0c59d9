//! Crash faults (reliability.md part 3 (c)): the whole lab runs as a child process
//! (`lab-node`) that is `kill -9`ed and restarted on the same data and ports, then the
//! reconciler (`scep-lab audit`) must find nothing.
//!
//! - F1: kills at random points while 20 devices enroll concurrently, each retrying its own
//!   in-flight transaction (device-agent resumes the same transactionID); every device ends
//!   with exactly one certificate, the one the CA and the policy module recorded (I5).
//! - F14: a retire acknowledged by the admin API, then `kill -9` before anything else runs:
//!   after the restart the revocation reaches the CA, the CRL file and OCSP.
//! - F13: `kill -9` at random points while retirements republish the CRL: the published file
//!   always parses and verifies (atomic replace), and its number never goes back; right
//!   after each restart OCSP answers, signed, and has every revocation the store has (OCSP
//!   is signed on request: there is no pre-generated response a kill could lose or tear).
//!
//! All three services die together here (one process); `scale_out.rs` kills one service at a
//! time in the multi-process deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep_lab_tests::{PROFILE, TestLab, ensure_clean, normalize_serial, reconcile_dir};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The lab as a child process.
struct Node {
    child: Child,
    data: PathBuf,
    ports: [u16; 3],
}

impl Node {
    async fn spawn(data: &Path, ports: [u16; 3]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lab-node"))
            .arg(data)
            .args(ports.iter().map(u16::to_string))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line == "ready" {
                    return Ok(());
                }
            }
            bail!("lab-node exited before it was ready")
        })
        .await
        .context("lab-node not ready within 60 s")?;
        ready?;
        Ok(Self {
            child,
            data: data.to_owned(),
            ports,
        })
    }

    /// SIGKILL, then wait for the process to be gone.
    async fn kill9(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    async fn restart(mut self) -> Result<Self> {
        self.kill9().await?;
        Self::spawn(&self.data, self.ports).await
    }

    fn admin_token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(
            self.data.join("secrets/policy-admin.token"),
        )?)
    }

    fn policy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[1])
    }
}

/// A random delay in [lo, hi) milliseconds.
fn random_ms(lo: u64, hi: u64) -> Duration {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).unwrap();
    Duration::from_millis(lo + u64::from_le_bytes(b) % (hi - lo))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f1_kill9_under_load_every_device_converges_to_one_certificate() {
    const DEVICES: usize = 20;
    const KILLS: usize = 4;
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(
            lab.targeted_device(&format!("f1-{i}"), PROFILE)
                .await
                .unwrap(),
        );
    }
    let (_dir, options) = lab.stop_keeping_data().await;
    let mut node = Node::spawn(&options.data_dir, options.ports).await.unwrap();

    // Every device syncs until its certificate is installed, retrying through the crashes.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut tasks = Vec::new();
    for d in devices {
        tasks.push(tokio::spawn(async move {
            let mut syncs = 0u32;
            loop {
                syncs += 1;
                let ok = d.sync().await.is_ok_and(|s| s.errors.is_empty());
                if ok && d.installed(PROFILE)?.is_some() {
                    return Ok::<_, anyhow::Error>((d, syncs));
                }
                if Instant::now() > deadline {
                    bail!("device {} did not converge in time", d.name);
                }
                tokio::time::sleep(random_ms(100, 400)).await;
            }
        }));
    }
    for _ in 0..KILLS {
        tokio::time::sleep(random_ms(200, 2500)).await;
        node = node.restart().await.unwrap();
    }
    let mut serials = Vec::new();
    let mut total_syncs = 0;
    for t in tasks {
        let (d, syncs) = t.await.unwrap().unwrap();
        total_syncs += syncs;
        let cert = d.certificate(PROFILE).unwrap();
        let serial = hex::encode(cert.serial_number().to_bn().unwrap().to_vec());
        serials.push((normalize_serial(&serial), cert.to_der().unwrap()));
    }
    eprintln!("F1: {DEVICES} devices, {KILLS} kills, {total_syncs} syncs");
    node.kill9().await.unwrap();

    // I5 and "exactly one": each device holds the certificate the CA and the inventory
    // recorded for it, and nothing else was issued.
    let sources =
        scep_lab::reconcile::Sources::open(&options.data_dir, &scep_lab::Databases::Sqlite)
            .await
            .unwrap();
    let inventory = sources.policy.audit_certificates().await.unwrap();
    sources.close().await;
    assert_eq!(
        inventory.len(),
        DEVICES,
        "one inventory certificate per device"
    );
    for (serial, der) in &serials {
        let rec = inventory
            .iter()
            .find(|c| normalize_serial(&c.serial_hex) == *serial)
            .unwrap_or_else(|| panic!("installed {serial} is not in the inventory"));
        assert_eq!(&rec.der, der, "{serial}: installed differs from recorded");
    }
    let report = reconcile_dir(&options.data_dir).await.unwrap();
    ensure_clean(&report).unwrap();
    // Device certificates plus the RA's two.
    assert_eq!(report.ca_certificates, DEVICES + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f14_retire_acknowledged_then_kill9_reaches_ca_crl_and_ocsp() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, cert) = lab.enrolled_device("f14", PROFILE).await.unwrap();
    let (_dir, options) = lab.stop_keeping_data().await;
    let mut node = Node::spawn(&options.data_dir, options.ports).await.unwrap();

    // Retire over the admin API; kill -9 as soon as it is acknowledged.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/api/v1/devices/{}/retire",
            node.policy_url(),
            d.id
        ))
        .bearer_auth(node.admin_token().unwrap().trim())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "retire: {}", resp.status());
    node.kill9().await.unwrap();

    let node = Node::spawn(&options.data_dir, options.ports).await.unwrap();
    // After the restart the outbox delivers it: the CA has it revoked and its CRL file and
    // OCSP say so (the reconciler checks both against the store).
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = reconcile_dir(&options.data_dir).await.unwrap();
        let delivered = report.ca_revoked == 1 && report.notes.is_empty();
        if delivered || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure_clean(&report).unwrap();
    assert_eq!(report.ca_revoked, 1, "revocation delivered: {report:?}");
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let crl = std::fs::read(options.data_dir.join("ca/issuing.crl")).unwrap();
    let crl = openssl::x509::X509Crl::from_der(&crl).unwrap();
    let listed: Vec<String> = crl
        .get_revoked()
        .unwrap()
        .iter()
        .map(|r| normalize_serial(&r.serial_number().to_bn().unwrap().to_hex_str().unwrap()))
        .collect();
    assert_eq!(listed, vec![normalize_serial(&cert.serial_hex)]);
    drop(node);
}

/// The published CRL file: it must always parse and verify (an atomic replace, never torn);
/// returns its number.
fn published_crl_number(data: &Path, issuer: &X509) -> i64 {
    let der = std::fs::read(data.join("ca/issuing.crl")).unwrap();
    let crl = openssl::x509::X509Crl::from_der(&der).expect("published CRL is torn");
    assert!(crl.verify(&issuer.public_key().unwrap()).unwrap());
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    i64::try_from(parsed.crl_number().unwrap().clone()).unwrap()
}

/// OCSP of a certificate over HTTP, verified against the issuer: (revoked?, the DER).
async fn ocsp_over_http(ca_port: u16, cert: &X509, issuer: &X509) -> (bool, Vec<u8>) {
    use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspRequest, OcspResponse};
    let id = || OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer).unwrap();
    let mut req = OcspRequest::new().unwrap();
    req.add_id(id()).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{ca_port}/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(req.to_der().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let der = resp.bytes().await.unwrap().to_vec();
    let basic = OcspResponse::from_der(&der).unwrap().basic().unwrap();
    let mut issuers = openssl::stack::Stack::new().unwrap();
    issuers.push(issuer.clone()).unwrap();
    let store = openssl::x509::store::X509StoreBuilder::new()
        .unwrap()
        .build();
    basic
        .verify(&issuers, &store, openssl::ocsp::OcspFlag::TRUST_OTHER)
        .expect("OCSP response not signed by the issuing CA");
    let status = basic.find_status(&id()).expect("no status for the serial");
    assert_ne!(status.status, OcspCertStatus::UNKNOWN, "an issued serial");
    (status.status == OcspCertStatus::REVOKED, der)
}

/// Right after a restart: every certificate the CA's store has revoked is revoked in OCSP
/// (the store is read first: a revocation delivered in between may only add to OCSP's).
async fn ocsp_agrees_with_the_store(data: &Path, ca_port: u16, certs: &[X509], issuer: &X509) {
    use ca_mock::store::{CertStatus, CertStore, SqlStore};
    let url = format!("sqlite://{}", data.join("ca/ca.db").display());
    let store = SqlStore::sqlite(&url).await.unwrap();
    for cert in certs {
        let serial = hex::encode(cert.serial_number().to_bn().unwrap().to_vec());
        let rec = store
            .status(&serial)
            .await
            .unwrap()
            .expect("serial in the store");
        let (revoked, _) = ocsp_over_http(ca_port, cert, issuer).await;
        if rec.status != CertStatus::Good {
            assert!(revoked, "{serial} is revoked in the store but not in OCSP");
        }
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_kill9_during_crl_publication_never_tears_the_crl_and_numbers_grow() {
    const ROUNDS: usize = 5;
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let mut devices = Vec::new();
    for i in 0..ROUNDS {
        let (d, _) = lab
            .enrolled_device(&format!("f13-{i}"), PROFILE)
            .await
            .unwrap();
        devices.push(d);
    }
    let certs: Vec<X509> = devices
        .iter()
        .map(|d| d.certificate(PROFILE).unwrap())
        .collect();
    let issuer = lab.ca().material().issuing.clone();
    let (_dir, options) = lab.stop_keeping_data().await;
    let data = options.data_dir.clone();
    let mut number = published_crl_number(&data, &issuer);
    let mut node = Node::spawn(&data, options.ports).await.unwrap();
    let http = reqwest::Client::new();
    for d in &devices {
        // A retirement makes the outbox revoke at the CA, which republishes the CRL; the kill
        // lands at a random point of that (or just after).
        let resp = http
            .post(format!(
                "{}/api/v1/devices/{}/retire",
                node.policy_url(),
                d.id
            ))
            .bearer_auth(node.admin_token().unwrap().trim())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        tokio::time::sleep(random_ms(1, 600)).await;
        node.kill9().await.unwrap();
        let now = published_crl_number(&data, &issuer);
        assert!(now >= number, "CRL number went back from {number} to {now}");
        number = now;
        node = Node::spawn(&data, options.ports).await.unwrap();
        // A start publishes a fresh CRL: strictly newer.
        let started = published_crl_number(&data, &issuer);
        assert!(
            started > number,
            "restart republished {started} after {number}"
        );
        number = started;
        // OCSP answers at once and agrees with the store (nothing pre-generated to lose).
        ocsp_agrees_with_the_store(&data, options.ports[0], &certs, &issuer).await;
    }
    // Everything retired reaches the CA, the CRL and OCSP; nothing else is wrong.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = reconcile_dir(&data).await.unwrap();
        if (report.ca_revoked == ROUNDS && report.notes.is_empty()) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure_clean(&report).unwrap();
    assert_eq!(report.ca_revoked, ROUNDS, "{report:?}");
    // Every retirement is in OCSP. Responses are signed on request, not pre-generated: the
    // same question a second later gets a newly signed answer (its times moved on; RSA
    // PKCS#1 v1.5 signatures are deterministic, so equal times would give equal bytes).
    let ca_port = options.ports[0];
    let (revoked, first) = ocsp_over_http(ca_port, &certs[0], &issuer).await;
    assert!(revoked);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, second) = ocsp_over_http(ca_port, &certs[0], &issuer).await;
    assert_ne!(first, second, "the same OCSP bytes again: pre-generated?");
    for cert in &certs {
        assert!(
            ocsp_over_http(ca_port, cert, &issuer).await.0,
            "not revoked in OCSP"
        );
    }
    node.kill9().await.unwrap();
}
