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
//! - F7: ca-mock killed, so its port refuses connections: every PKIOperation is answered
//!   within a hang guard with PENDING, each one durably queued, its challenge reserved and
//!   not consumed; 200 failed CA attempts leave ndes-proxy's open descriptors where they
//!   were; with the CA back each queued request issues exactly once.
//! - F8: a policy module answering HTTP 500 (a stub) and one unreachable (killed): 503,
//!   nothing issued; the same request issues once the real one is back.
//! - F10: all three services logging at trace level to `/dev/full` keep serving SCEP,
//!   the CRL and OCSP, and exit cleanly on SIGTERM.
//!
//! Every test ends with the reconciler run over the three configuration files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
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

/// Longest any single request may take before a test calls it a hang (a guard against
/// hangs, not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Sends `e` once, bounded by [`HANG_GUARD`].
async fn send_guarded(e: &Enrollment, scep: &RawScep) -> anyhow::Result<CertRep> {
    tokio::time::timeout(HANG_GUARD, e.send(scep))
        .await
        .expect("no answer within the hang guard")
}

/// How many certificates the CA recorded whose CN starts with `prefix`.
async fn issued_with_prefix(cluster: &Cluster, prefix: &str) -> usize {
    let store = cluster.ca_certificates().await.unwrap();
    store
        .values()
        .filter(|der| subject_cn(der).starts_with(prefix))
        .count()
}

/// The open file descriptors of a process (sockets, database files, pipes).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The policy module's view of the challenge reserved for `tx`: (consumed, request state).
async fn challenge_of(cluster: &Cluster, tx: &str) -> Option<(bool, Option<String>)> {
    let cfg = policy_module::config::Config::load(&cluster.layout().policy_configs[0]).unwrap();
    let policy_module::config::StoreLocation::Sqlite(path) = cfg.store().unwrap() else {
        panic!("policy store is not SQLite");
    };
    let clock = Arc::new(foundation::clock::SystemClock);
    let store = policy_module::store::Store::open_sqlite(&path, clock)
        .await
        .unwrap();
    let found = store
        .audit_challenges()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.reserved_tx == tx)
        .map(|c| (c.consumed_at.is_some(), c.request_state));
    store.close().await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f7_ca_refusing_connections_queues_durably_leaks_nothing_and_issues_once_back() {
    const CLIENTS: usize = 4;
    const RESENDS: usize = 50;
    let mut lab = Sqlite::start().await;
    let mut enrollments = Vec::new();
    for i in 0..CLIENTS {
        enrollments.push(Arc::new(lab.enrollment(&format!("REFUSED-{i}")).await.1));
    }
    // ca-mock killed: its port refuses connections (nothing listens there any more).
    let ca = ServiceId::new(Role::Ca, 0);
    lab.cluster.kill(ca).unwrap();
    let ca_addr = lab.cluster.layout().ca_addr;
    assert!(
        std::net::TcpStream::connect(ca_addr).is_err(),
        "the CA port still accepts"
    );

    // First attempts: PENDING, because each request is durably queued; the challenge is only
    // reserved for that request, not consumed.
    for e in &enrollments {
        let rep = send_guarded(e, &lab.scep).await.unwrap();
        assert!(matches!(rep, CertRep::Pending), "{rep:?}");
        let challenge = challenge_of(&lab.cluster, e.transaction_id.as_str()).await;
        assert_eq!(challenge, Some((false, Some("granted".into()))));
    }
    let report = lab.cluster.reconcile().await.unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains(&format!("{CLIENTS} request(s) pending"))),
        "PENDING without a queued row: {report:?}"
    );

    // Every resend tries the CA again and fails: the ndes-proxy process must not keep a
    // socket, a file or a task per failure. Warm up first (pools fill to their working
    // size), then compare the descriptor count before and after the failed attempts.
    let ndes_pid = lab.cluster.pid(ServiceId::new(Role::Ndes, 0)).unwrap();
    let resend_all = |times: usize| {
        let scep = lab.scep.clone();
        let mut set = tokio::task::JoinSet::new();
        for e in &enrollments {
            let (scep, e) = (scep.clone(), e.clone());
            set.spawn(async move {
                for _ in 0..times {
                    let rep = send_guarded(&e, &scep).await.unwrap();
                    assert!(matches!(rep, CertRep::Pending), "{rep:?}");
                }
            });
        }
        set.join_all()
    };
    resend_all(5).await;
    let before = open_fds(ndes_pid);
    resend_all(RESENDS).await;
    let after = open_fds(ndes_pid);
    eprintln!(
        "F7 refused: {} failed CA attempts, ndes-proxy fds {before} -> {after}",
        CLIENTS * RESENDS
    );
    assert!(
        after <= before + 4,
        "descriptors grew from {before} to {after} over {} failed attempts",
        CLIENTS * RESENDS
    );
    assert_eq!(issued_with_prefix(&lab.cluster, "REFUSED-").await, 0);

    // The CA is back: each queued request issues, exactly once, and consumes its challenge.
    lab.cluster.restart(ca).await.unwrap();
    for e in &enrollments {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match send_guarded(e, &lab.scep).await.unwrap() {
                CertRep::Success(_) => break,
                CertRep::Pending => {}
                other => panic!("after the CA came back: {other:?}"),
            }
            assert!(tokio::time::Instant::now() < deadline, "still not issued");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let challenge = challenge_of(&lab.cluster, e.transaction_id.as_str()).await;
        assert_eq!(challenge, Some((true, Some("issued".into()))));
    }
    assert_eq!(issued_with_prefix(&lab.cluster, "REFUSED-").await, CLIENTS);
    ensure_clean(&lab.cluster.reconcile().await.unwrap()).unwrap();
}

/// A stand-in policy module that answers every request with HTTP 500.
async fn http_500_stub() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                          content-length: 5\r\nconnection: close\r\n\r\noops!",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_policy_module_answering_500_or_unreachable_fails_closed() {
    let mut lab = Sqlite::start().await;
    let (_, e) = lab.enrollment("F8-STUB").await;
    let ndes = ServiceId::new(Role::Ndes, 0);
    let config = lab.cluster.config(ndes).to_owned();
    let original = std::fs::read_to_string(&config).unwrap();
    let policy_line = format!("url = \"{}\"", lab.cluster.policy_url(0));
    assert!(original.contains(&policy_line));

    // ndes-proxy validates through a policy module that answers 500 to everything.
    let stub = http_500_stub().await;
    let edited = original.replace(&policy_line, &format!("url = \"http://{stub}\""));
    std::fs::write(&config, edited).unwrap();
    lab.cluster.restart(ndes).await.unwrap();
    for _ in 0..3 {
        let err = send_guarded(&e, &lab.scep).await.unwrap_err();
        assert!(err.to_string().contains("503"), "policy 500: {err}");
    }
    assert_eq!(issued_with_prefix(&lab.cluster, "F8-").await, 0);

    // The real policy module again, then unreachable (killed: connection refused).
    std::fs::write(&config, &original).unwrap();
    lab.cluster.restart(ndes).await.unwrap();
    let policy = ServiceId::new(Role::Policy, 0);
    lab.cluster.kill(policy).unwrap();
    for _ in 0..3 {
        let err = send_guarded(&e, &lab.scep).await.unwrap_err();
        assert!(err.to_string().contains("503"), "policy unreachable: {err}");
    }
    assert_eq!(issued_with_prefix(&lab.cluster, "F8-").await, 0);
    // Failing closed burnt nothing: with the policy module back, the same request issues.
    lab.cluster.restart(policy).await.unwrap();
    let rep = send_guarded(&e, &lab.scep).await.unwrap();
    assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
    assert_eq!(issued_with_prefix(&lab.cluster, "F8-").await, 1);
    ensure_clean(&lab.cluster.reconcile().await.unwrap()).unwrap();
}

/// An OCSP request for `cert` (issued by `issuer`), DER.
fn ocsp_request(cert: &X509, issuer: &X509) -> Vec<u8> {
    use openssl::ocsp::{OcspCertId, OcspRequest};
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), cert, issuer).unwrap();
    let mut req = OcspRequest::new().unwrap();
    req.add_id(id).unwrap();
    req.to_der().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_services_logging_at_trace_to_a_full_disk_keep_serving_and_exit_cleanly() {
    let mut lab = Sqlite::start().await;
    // Every write to stdout or stderr fails with ENOSPC from here on.
    for id in lab.cluster.ids() {
        lab.cluster.set_output(id, Path::new("/dev/full"), "trace");
        lab.cluster.restart(id).await.unwrap();
    }
    let http = reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .unwrap();
    let ca_url = lab.cluster.ca_url();
    let issuer = http
        .get(format!("{ca_url}/ca/issuing.crt"))
        .send()
        .await
        .unwrap();
    let issuer = X509::from_der(&issuer.bytes().await.unwrap()).unwrap();
    // GetCACaps/GetCACert through discovery, enrollments, the CRL and OCSP, all answered.
    let root = lab.cluster.layout().root_fingerprint.clone();
    let scep = RawScep::discover(&lab.cluster.scep_url(0), &root)
        .await
        .unwrap();
    for i in 0..3 {
        let (_, e) = lab.enrollment(&format!("FULL-{i}")).await;
        let rep = send_guarded(&e, &scep).await.unwrap();
        let cert = issued_to(&rep, &e).unwrap();
        let resp = http
            .post(format!("{ca_url}/ocsp"))
            .header("content-type", "application/ocsp-request")
            .body(ocsp_request(&cert, &issuer))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ocsp = openssl::ocsp::OcspResponse::from_der(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(ocsp.status(), openssl::ocsp::OcspResponseStatus::SUCCESSFUL);
        let crl = http
            .get(format!("{ca_url}/crl/issuing.crl"))
            .send()
            .await
            .unwrap();
        assert_eq!(crl.status(), 200);
        let crl = openssl::x509::X509Crl::from_der(&crl.bytes().await.unwrap()).unwrap();
        assert!(crl.verify(&issuer.public_key().unwrap()).unwrap());
    }
    // A refusal logs too (at warn): still answered, with its 400.
    let refused = http
        .post(format!(
            "{}?operation=PKIOperation",
            lab.cluster.scep_url(0)
        ))
        .body(&b"not a pkiMessage"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    // Still every process alive, then a clean exit on SIGTERM.
    for id in lab.cluster.ids().into_iter().rev() {
        assert!(lab.cluster.pid(id).is_some(), "{id} died");
        let status = lab.cluster.terminate(id).await.unwrap().unwrap();
        assert!(status.success(), "{id} exited with {status}");
    }
    ensure_clean(&lab.cluster.reconcile().await.unwrap()).unwrap();
}
