//! Faults of the services run as separate processes on their own SQLite files
//! (reliability.md part 3 (c); the PostgreSQL deployment is `scale_out.rs`):
//!
//! - F1: `kill -9` of ndes-proxy, then policy-module, then ca-mock, each at a random point
//!   under bounded load (40 enrollments, 6 at a time) whose clients resend their identical
//!   request: every client converges to its certificate, recorded byte for byte by the CA
//!   and the policy module, no serial twice, no challenge burnt without a recorded reason,
//!   and the reconciler (`scep-lab audit --configs`) finds nothing.
//! - F11: a client sends a whole PKIOperation over raw TCP and closes before reading the
//!   answer; once the CA has recorded the issuance the same transaction resent gets the
//!   same certificate (I5).
//!
//! Every test ends with the reconciler run over the three configuration files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::X509;
use scep::client::CertRep;
use scep_lab_tests::load::{RetryingLoad, issued_to};
use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};
use scep_lab_tests::remote::{Admin, Enrollment, RemoteDevice};
use scep_lab_tests::{PROFILE, RawScep, ensure_clean, serial_of, standard_profile_spec};

/// One of each service on SQLite, the standard profile created.
struct Sqlite {
    cluster: Cluster,
    admin: Admin,
    scep: Arc<RawScep>,
    devices: tempfile::TempDir,
}

impl Sqlite {
    async fn start() -> Self {
        let cluster = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
        let admin = Admin::new(&cluster.policy_url(0), &token(&cluster)).unwrap();
        let root = cluster.layout().root_fingerprint.clone();
        let mut spec = standard_profile_spec("SQLite processes", vec![cluster.scep_url(0)], &root);
        spec.retry_count = 3;
        admin.create_profile(PROFILE, &spec).await.unwrap();
        let scep = RawScep::discover(&cluster.scep_url(0), &root)
            .await
            .unwrap();
        Self {
            cluster,
            admin,
            scep: Arc::new(scep),
            devices: tempfile::tempdir().unwrap(),
        }
    }

    /// A registered device assigned the profile, and its request (key, CSR with a fresh
    /// challenge, transactionID) fixed so it can be resent identically.
    async fn enrollment(&self, name: &str) -> (String, Enrollment) {
        let url = self.cluster.policy_url(0);
        let d = RemoteDevice::register(&url, &token(&self.cluster), name, self.devices.path())
            .await
            .unwrap();
        self.admin.assign_device(PROFILE, &d.id).await.unwrap();
        let profile = d.rendered(&url, PROFILE).await.unwrap();
        (d.id, Enrollment::new(&profile).unwrap())
    }

    /// The serials the policy inventory holds for a device.
    async fn inventory(&self, device_id: &str) -> BTreeSet<String> {
        let view = self.admin.device(device_id).await.unwrap();
        view["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| scep_lab_tests::normalize_serial(c["serial_hex"].as_str().unwrap()))
            .collect()
    }
}

fn token(cluster: &Cluster) -> String {
    let token = cluster.layout().secret("policy-admin.token").unwrap();
    token.expose().to_owned()
}

/// A random value in [lo, hi).
fn random_in(lo: u64, hi: u64) -> u64 {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).unwrap();
    lo + u64::from_le_bytes(b) % (hi - lo)
}

fn subject_cn(der: &[u8]) -> String {
    let cert = X509::from_der(der).unwrap();
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f1_kill_9_of_each_service_on_sqlite_under_load_loses_nothing() {
    const DEVICES: usize = 40;
    const CONCURRENCY: usize = 6;
    let mut lab = Sqlite::start().await;
    let mut device_ids = Vec::new();
    let mut enrollments = Vec::new();
    for i in 0..DEVICES {
        let (id, e) = lab.enrollment(&format!("SQ-{i:03}")).await;
        device_ids.push(id);
        enrollments.push(e);
    }
    let load = RetryingLoad::start(enrollments, vec![lab.scep.clone()], CONCURRENCY);

    // Each service killed once, in its own random slice of the run, and restarted after a
    // random outage; clients keep resending meanwhile.
    let victims = [Role::Ndes, Role::Policy, Role::Ca];
    for (k, role) in victims.into_iter().enumerate() {
        let slice = DEVICES / (victims.len() + 1);
        load.wait_for(slice * k + random_in(0, slice as u64) as usize)
            .await;
        let id = ServiceId::new(role, 0);
        lab.cluster.kill(id).unwrap();
        eprintln!("F1 SQLite: killed {id} after {} clients", load.finished());
        tokio::time::sleep(Duration::from_millis(random_in(50, 800))).await;
        lab.cluster.restart(id).await.unwrap();
    }
    let outcomes = load.finish().await.unwrap();
    let attempts: u32 = outcomes.iter().map(|o| o.attempts).sum();
    eprintln!("F1 SQLite: {DEVICES} clients, {attempts} requests sent");
    assert!(
        outcomes.iter().any(|o| o.attempts > 1),
        "no client ever met a dead service"
    );

    // Every certificate a client holds is the CA's record, byte for byte; no serial twice;
    // one certificate per client (a resent transaction was not issued again).
    let store = lab.cluster.ca_certificates().await.unwrap();
    let mut serials = BTreeSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        assert!(
            serials.insert(o.serial.clone()),
            "serial {} twice",
            o.serial
        );
        assert_eq!(
            store.get(&o.serial),
            Some(&o.der),
            "client {i}'s certificate {} is not the CA's record",
            o.serial
        );
        assert_eq!(
            lab.inventory(&device_ids[i]).await,
            BTreeSet::from([o.serial.clone()]),
            "device {i}'s inventory"
        );
    }
    let issued = store
        .values()
        .filter(|der| subject_cn(der).starts_with("SQ-"))
        .count();
    assert_eq!(issued, DEVICES, "a resent transaction was issued twice");
    // And nothing lost or invented across the stores, the CRL and OCSP; every challenge
    // reserved has its request and every one consumed has its certificate (I3).
    let report = lab.cluster.reconcile().await.unwrap();
    ensure_clean(&report).unwrap();
    assert_eq!(report.inventory_certificates, DEVICES);
}

/// Sends `body` as `POST /certsrv/mscep/mscep.dll?operation=PKIOperation` on a raw
/// connection and closes it without reading a byte of the answer.
async fn send_and_hang_up(addr: std::net::SocketAddr, body: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/x-pki-message\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn.flush().await.unwrap();
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_a_client_that_hangs_up_after_sending_gets_the_same_certificate_on_resend() {
    let lab = Sqlite::start().await;
    let (device_id, e) = lab.enrollment("HANGUP").await;
    let ndes = lab.cluster.layout().ndes_addrs[0];
    send_and_hang_up(ndes, &e.pki_message(&lab.scep).unwrap()).await;

    // The server finishes the request it was sent although nobody reads the answer: wait
    // (bounded) until the CA has recorded the issuance.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        let store = lab.cluster.ca_certificates().await.unwrap();
        let mine: Vec<_> = store
            .into_iter()
            .filter(|(_, der)| subject_cn(der) == "HANGUP")
            .collect();
        if !mine.is_empty() || tokio::time::Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        recorded.len(),
        1,
        "the abandoned request was issued once; ndes-proxy:\n{}",
        lab.cluster.log(ServiceId::new(Role::Ndes, 0))
    );
    let (serial, der) = recorded.into_iter().next().unwrap();

    // The client, never having seen the answer, resends the same transaction: the same
    // certificate, not a second one and not a refusal of its now-consumed challenge.
    let rep = e.send(&lab.scep).await.unwrap();
    assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
    let cert = issued_to(&rep, &e).unwrap();
    assert_eq!(serial_of(&cert).unwrap(), serial);
    assert_eq!(cert.to_der().unwrap(), der, "the same certificate (I5)");
    let hangups = lab.cluster.ca_certificates().await.unwrap();
    assert_eq!(
        hangups
            .values()
            .filter(|d| subject_cn(d) == "HANGUP")
            .count(),
        1
    );
    assert_eq!(
        lab.inventory(&device_id).await,
        BTreeSet::from([serial.clone()])
    );
    ensure_clean(&lab.cluster.reconcile().await.unwrap()).unwrap();
}
