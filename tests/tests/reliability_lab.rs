//! Reliability catalogue rows that need the real stores, on the whole lab over 127.0.0.1:
//! L1 (fifty identical PKCSReqs at once: exactly one certificate), L4 short (distinct
//! enrolments at once: unique serials, every one recorded, no 5xx), L8 short (every one of
//! those devices retired at once: each certificate revoked once, once in the CRL), A24 (a transactionID
//! full of SQL punctuation is only text to every store; one with a blank is refused before any
//! store is written), L11 (micromdm `scepclient` processes at once enroll like our agent). The long versions of L1/L4 are
//! `bench/reliability.sh`; tests/RELIABILITY.md maps every row. After each load the
//! reconciler (`scep-lab audit`, invariants I1-I8) must find nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use ca_mock::store::CertStatus as CaStatus;
use policy_module::admin::Lifecycle;
use scep::client::CertRep;
use scep::{RequestBody, TransactionId};
use scep_lab_tests::*;

/// A size from the environment (the long versions in `bench/reliability.sh` set it), else
/// the short default the test suite runs with.
fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Print p50/p99 of `latencies` and the throughput of `n` requests in `wall` (figures for the
/// benchmark; nothing is asserted on them).
fn report(what: &str, mut latencies: Vec<std::time::Duration>, wall: std::time::Duration) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "figure {what}: n={} p50={:?} p99={:?} wall={wall:?} throughput={:.1}/s",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.len() as f64 / wall.as_secs_f64()
    );
}

/// A request of `device`'s current profile: its key, CSR and a self-signed signer.
async fn request_of(
    device: &TestDevice,
) -> (
    openssl::pkey::PKey<openssl::pkey::Private>,
    Vec<u8>,
    openssl::x509::X509,
) {
    let checkin = device.checkin().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(&checkin, &key).unwrap();
    let subject = scep::csr::Csr::from_der(&csr)
        .unwrap()
        .subject_name()
        .unwrap();
    let now = unix_now();
    let signer =
        scep::client::self_signed_certificate(&key, &subject, now - 3600, now + 86_400).unwrap();
    (key, csr, signer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_fifty_identical_pkcsreqs_at_once_issue_exactly_one_certificate() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let device = lab.targeted_device("L1-IDENTICAL", PROFILE).await.unwrap();
    let raw = Arc::new(lab.raw_scep().await.unwrap());
    let (key, csr, signer) = request_of(&device).await;
    let tx = random_transaction_id().unwrap();
    let before = lab.ca_records().await.unwrap().len();

    let copies = size("SCEP_LAB_L1_COPIES", 50);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..copies {
        let (raw, key, signer, tx) = (raw.clone(), key.clone(), signer.clone(), tx.clone());
        let body = RequestBody::PkcsReq(scep::csr::Csr::from_der(&csr).unwrap());
        // `send` fails on any HTTP status but 200: zero 5xx is part of the assertion.
        tasks.spawn(async move {
            let t = std::time::Instant::now();
            (raw.send(&body, &key, &signer, &tx).await, t.elapsed())
        });
    }
    let mut certs = HashSet::new();
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (rep, took) = r.unwrap();
        latencies.push(took);
        let rep = rep.expect("HTTP 200 with a CertRep");
        assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
        certs.insert(issued_cert(&rep, &key).unwrap().to_der().unwrap());
    }
    report("L1 identical PKCSReq", latencies, started.elapsed());
    assert_eq!(certs.len(), 1, "every answer carries the same certificate");
    let records = lab.ca_records().await.unwrap();
    assert_eq!(records.len(), before + 1, "exactly one certificate issued");
    assert_eq!(
        records
            .iter()
            .filter(|r| r.request_id == tx.as_str())
            .count(),
        1
    );
    let inventory = lab.policy().device_view(&device.id).await.unwrap();
    assert_eq!(inventory.certificates.len(), 1, "one inventory entry");
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_l8_distinct_enrolments_then_mass_retirement_on_sqlite() {
    enrol_then_retire_all("sqlite", TestLab::start().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_l8_distinct_enrolments_then_mass_retirement_on_postgres() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let databases = scep_lab::Databases::Postgres {
        ca: pg.fresh_database().unwrap(),
        policy: pg.fresh_database().unwrap(),
        pending: pg.fresh_database().unwrap(),
    };
    enrol_then_retire_all(
        "postgres",
        TestLab::start_with(|o| o.databases = databases)
            .await
            .unwrap(),
    )
    .await;
}

/// L4 short: sixteen distinct enrolments at once; L8 short: every one of those devices retired
/// at once. Then the reconciler (`scep-lab audit`) finds nothing.
async fn enrol_then_retire_all(backend: &str, lab: TestLab) {
    let devices_n = size("SCEP_LAB_L4_DEVICES", 16);
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let raw = Arc::new(lab.raw_scep().await.unwrap());
    let mut requests = Vec::new();
    let mut devices = Vec::new();
    for i in 0..devices_n {
        let device = lab
            .targeted_device(&format!("L4-{i:04}"), PROFILE)
            .await
            .unwrap();
        requests.push(request_of(&device).await);
        devices.push(device.id.clone());
    }
    let before = lab.ca_records().await.unwrap().len();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (key, csr, _) in requests {
        let raw = raw.clone();
        tasks.spawn(async move {
            let t = std::time::Instant::now();
            let (tx, rep) = raw.pkcs_req(&csr, &key).await.expect("HTTP 200");
            (tx, issued_cert(&rep, &key).unwrap(), t.elapsed())
        });
    }
    let mut serials = HashSet::new();
    let mut txs = HashSet::new();
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (tx, cert, took) = r.unwrap();
        latencies.push(took);
        assert!(
            serials.insert(serial_of(&cert).unwrap()),
            "serial collision"
        );
        txs.insert(tx.as_str().to_owned());
    }
    report(
        &format!("L4 distinct PKCSReq on {backend}"),
        latencies,
        started.elapsed(),
    );
    assert_eq!(serials.len(), devices_n);
    let records = lab.ca_records().await.unwrap();
    assert_eq!(
        records.len(),
        before + devices_n,
        "every issuance recorded once"
    );
    for r in &records {
        if txs.contains(&r.request_id) {
            assert!(serials.contains(&normalize_serial(&r.serial)), "{r:?}");
        }
    }

    // L8, short: every device retired at the same moment. Each certificate is revoked at the
    // CA exactly once and listed once in the next CRL; the inventory agrees.
    let lab = Arc::new(lab);
    let started = std::time::Instant::now();
    let mut retirements = tokio::task::JoinSet::new();
    for id in devices.clone() {
        let lab = lab.clone();
        retirements.spawn(async move { lab.policy().lifecycle(&id, Lifecycle::Retire).await });
    }
    let mut queued = HashSet::new();
    while let Some(r) = retirements.join_next().await {
        for s in r.unwrap().unwrap() {
            queued.insert(normalize_serial(&s));
        }
    }
    assert_eq!(queued, serials, "every certificate queued for revocation");
    for serial in &serials {
        let info = lab.wait_revoked(serial).await.unwrap();
        assert_eq!(info.status, CaStatus::Revoked, "{serial}");
        assert_eq!(
            lab.crl_count(serial).await.unwrap(),
            1,
            "{serial} once in the CRL"
        );
    }
    println!(
        "figure L8 retire {devices_n} devices at once on {backend}: all revoked and in the CRL after {:?}",
        started.elapsed()
    );
    let lab = Arc::into_inner(lab).expect("no task holds the lab");
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a24_sql_punctuation_in_a_transaction_id_is_only_text() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let device = lab.targeted_device("A24-QUOTES", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let (key, csr, signer) = request_of(&device).await;
    let body = RequestBody::PkcsReq(scep::csr::Csr::from_der(&csr).unwrap());
    let before = lab.ca_records().await.unwrap().len();
    // Decision: the policy module and the CA take a transactionID of printable ASCII without
    // blanks (PrintableString allows the space, no client sends one): refused before any
    // store is written, and the challenge stays usable.
    let blank = TransactionId::new("x') OR ('1'='1").unwrap();
    let rep = raw.send(&body, &key, &signer, &blank).await.unwrap();
    assert!(is_failure(&rep, scep::FailInfo::BadRequest), "{rep:?}");
    assert_eq!(lab.ca_records().await.unwrap().len(), before);
    // PrintableString has no ';': this is as hostile as a transactionID gets.
    let hostile = "x')OR('1'='1'--";
    let tx = TransactionId::new(hostile).unwrap();
    let rep = raw.send(&body, &key, &signer, &tx).await.unwrap();
    let cert = issued_cert(&rep, &key).unwrap();
    let record = lab.ca_record(&serial_of(&cert).unwrap()).await.unwrap();
    assert_eq!(record.request_id, hostile, "stored verbatim");
    assert_eq!(
        lab.ca_records().await.unwrap().len(),
        before + 1,
        "nothing else matched"
    );
    // A retransmission finds it by that very text.
    let again = raw.send(&body, &key, &signer, &tx).await.unwrap();
    assert_eq!(
        issued_cert(&again, &key).unwrap().to_der().unwrap(),
        cert.to_der().unwrap()
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l11_concurrent_micromdm_scepclients_get_what_our_agent_gets() {
    if testkit::binary("scepclient").is_none() || testkit::binary("openssl").is_none() {
        return;
    }
    let clients = size("SCEP_LAB_L11_CLIENTS", 6);
    let lab = TestLab::start().await.unwrap();
    // Every client holds an unused admin password at once: room for all of them in the
    // PasswordMax cache.
    let mut settings = lab.policy().challenge_settings().await.unwrap();
    settings.password_max = settings.password_max.max(i64::try_from(clients).unwrap());
    lab.policy()
        .set_challenge_settings(&settings)
        .await
        .unwrap();
    let before = lab.ca_records().await.unwrap().len();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..clients {
        use policy_module::NdesPolicy;
        let password = lab
            .policy()
            .generate_challenge(policy_module::ChallengeRequest {
                template: TEMPLATE.into(),
                requester: "lab-admin@scep-lab.test".into(),
            })
            .await
            .unwrap()
            .challenge
            .expose()
            .to_owned();
        let (url, out) = (lab.scep_url(), lab.tmp().join(format!("l11-{i}")));
        runs.spawn(async move {
            let cn = format!("l11-client-{i}");
            let (ok, _, text) = micromdm_scepclient(&url, &password, &out, &cn).await;
            (ok, text, out)
        });
    }
    let mut serials = HashSet::new();
    while let Some(r) = runs.join_next().await {
        let (ok, text, out) = r.unwrap();
        assert!(ok, "scepclient failed under load:\n{text}");
        let pem = std::fs::read(out.join("enroll/cert.pem")).unwrap();
        let cert = openssl::x509::X509::from_pem(&pem).unwrap();
        assert!(
            serials.insert(serial_of(&cert).unwrap()),
            "serial collision"
        );
    }
    assert_eq!(serials.len(), clients);
    assert_eq!(lab.ca_records().await.unwrap().len(), before + clients);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
