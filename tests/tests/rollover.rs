//! A scheduled CA rollover in the lab (issue 17 item 1; RFC 8894 §4.7): before `switch_at`
//! GetNextCACert announces the next issuing CA, signed by the RA and chaining to the same root;
//! the first start from `switch_at` on makes it the issuing CA, and the retired one keeps
//! answering for the certificates it issued (its CRL at `/crl/retired/<serial>.crl`, OCSP).
//! Time moves by the injected clock; every certificate is checked with the OpenSSL CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foundation::Clock;
use foundation::clock::ManualClock;
use openssl::x509::{X509, X509Crl};
use policy_module::admin::Lifecycle;
use scep_lab::{Databases, RolloverPlan};
use scep_lab_tests::*;

const PROFILE: &str = "corp";
const HOUR: i64 = 3600;

fn openssl(args: &[&OsStr]) -> (bool, String) {
    let out = testkit::openssl(args, None).unwrap();
    (
        out.success(),
        format!("{}{}", out.stdout_str(), out.stderr_str()),
    )
}

/// `openssl verify` of `leaf` against `root` only, with `intermediates` as untrusted.
fn verify(dir: &Path, root: &X509, intermediates: &[&X509], leaf: &X509) -> (bool, String) {
    let root = write_pem(dir, "verify-root.pem", &[root]).unwrap();
    let leaf = write_pem(dir, "verify-leaf.pem", &[leaf]).unwrap();
    let mut args: Vec<&OsStr> = vec!["verify".as_ref(), "-CAfile".as_ref(), root.as_os_str()];
    let untrusted = write_pem(dir, "verify-untrusted.pem", intermediates).unwrap();
    if !intermediates.is_empty() {
        args.extend(["-untrusted".as_ref(), untrusted.as_os_str()]);
    }
    args.push(leaf.as_os_str());
    openssl(&args)
}

async fn scep_get(lab: &TestLab, operation: &str) -> reqwest::Response {
    reqwest::get(format!("{}?operation={operation}", lab.scep_url()))
        .await
        .unwrap()
}

async fn caps(lab: &TestLab) -> String {
    scep_get(lab, "GetCACaps").await.text().await.unwrap()
}

/// The certificates GetNextCACert announces, decoded with `openssl cms -verify` (the RA's
/// signature checked up to the current issuing CA and root) and `openssl pkcs7 -print_certs`.
async fn next_ca_with_openssl(lab: &TestLab, dir: &Path) -> Vec<X509> {
    let r = scep_get(lab, "GetNextCACert").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        scep::http::CONTENT_TYPE_NEXT_CA_CERT
    );
    let signed = dir.join("next.p7");
    std::fs::write(&signed, r.bytes().await.unwrap()).unwrap();
    let m = lab.ca().material();
    let cas = write_pem(dir, "current-cas.pem", &[&m.root, &m.issuing]).unwrap();
    let payload = dir.join("next-payload.der");
    let (ok, out) = openssl(&[
        "cms".as_ref(),
        "-verify".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        signed.as_os_str(),
        "-CAfile".as_ref(),
        cas.as_os_str(),
        "-purpose".as_ref(),
        "any".as_ref(),
        "-binary".as_ref(),
        "-out".as_ref(),
        payload.as_os_str(),
    ]);
    assert!(ok, "openssl cms -verify of GetNextCACert: {out}");
    let pem = dir.join("next.pem");
    let (ok, out) = openssl(&[
        "pkcs7".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        payload.as_os_str(),
        "-print_certs".as_ref(),
        "-out".as_ref(),
        pem.as_os_str(),
    ]);
    assert!(ok, "openssl pkcs7 -print_certs: {out}");
    X509::stack_from_pem(&std::fs::read(&pem).unwrap()).unwrap()
}

fn has_openssl() -> bool {
    testkit::binary("openssl").is_some() || std::env::var("CI").is_ok_and(|v| v == "true")
}

fn der(c: &X509) -> Vec<u8> {
    c.to_der().unwrap()
}

/// A lab clock two hours behind, and a switch planned an hour ago: setting the clock to the
/// system's time makes the switch due, and from then on the lab's time is the OpenSSL CLI's.
fn two_hours_ago() -> (ManualClock, i64) {
    let now = unix_now();
    (ManualClock::new(now - 2 * HOUR), now - HOUR)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_next_ca_cert_announces_the_next_issuing_ca_under_the_same_root_until_the_switch() {
    if !has_openssl() {
        return;
    }
    let (clock, switch_at) = two_hours_ago();
    let lab = TestLab::start_with(|o| {
        o.clock = Arc::new(clock.clone());
        o.rollover = Some(RolloverPlan {
            switch_at_unix: switch_at,
        });
    })
    .await
    .unwrap();
    assert!(
        caps(&lab).await.contains("GetNextCACert"),
        "{}",
        caps(&lab).await
    );
    let dir = lab.tmp().to_owned();
    let announced = next_ca_with_openssl(&lab, &dir).await;
    let m = lab.ca().material();
    assert_eq!(announced.len(), 2, "the next issuing CA and the root");
    let next = &announced[0];
    assert_eq!(der(&announced[1]), der(&m.root));
    assert_ne!(der(next), der(&m.issuing), "a new issuing CA");
    assert!(
        !next
            .public_key()
            .unwrap()
            .public_eq(&m.issuing.public_key().unwrap())
    );
    assert_eq!(
        next.public_key().unwrap().bits(),
        m.issuing.public_key().unwrap().bits()
    );
    let (ok, out) = verify(&dir, &m.root, &[], next);
    assert!(
        ok && out.contains(": OK"),
        "next CA against the root: {out}"
    );

    // Kept in the data directory: a restart before the switch announces the same CA.
    let lab = lab.restart(|_| {}).await.unwrap();
    let again = next_ca_with_openssl(&lab, &dir).await;
    assert_eq!(der(&again[0]), der(next));

    // A next CA left half-written is a clear error at start, naming its directory.
    let (keep, options) = lab.stop_keeping_data().await;
    let next_dir = options.data_dir.join("ca/next");
    std::fs::remove_file(next_dir.join("issuing.key.pem")).unwrap();
    let err = format!("{:#}", Lab::start(options).await.unwrap_err());
    assert!(
        err.contains(&next_dir.display().to_string()) && err.contains("usable issuing CA"),
        "{err}"
    );
    drop(keep);

    // Without a rollover nothing is announced.
    let plain = TestLab::start().await.unwrap();
    assert!(!caps(&plain).await.contains("GetNextCACert"));
    assert_eq!(scep_get(&plain, "GetNextCACert").await.status(), 404);
    plain.shutdown().await;
}

/// The installed chain of a device: leaf, then the CA certificates that came with it.
fn installed(d: &TestDevice) -> (X509, Vec<X509>) {
    let (_, chain) = d.installed(PROFILE).unwrap().unwrap();
    (chain[0].clone(), chain[1..].to_vec())
}

async fn crl_at(url: &str, dir: &Path, name: &str) -> PathBuf {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let crl = X509Crl::from_der(&r.bytes().await.unwrap()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, crl.to_pem().unwrap()).unwrap();
    path
}

fn ocsp(dir: &Path, root: &X509, issuer: &X509, leaf: &X509, url: &str) -> String {
    let issuer_path = write_pem(dir, "ocsp-issuer.pem", &[issuer]).unwrap();
    let cas = write_pem(dir, "ocsp-cas.pem", &[root, issuer]).unwrap();
    let leaf = write_pem(dir, "ocsp-leaf.pem", &[leaf]).unwrap();
    let (ok, out) = openssl(&[
        "ocsp".as_ref(),
        "-issuer".as_ref(),
        issuer_path.as_os_str(),
        "-cert".as_ref(),
        leaf.as_os_str(),
        "-url".as_ref(),
        url.as_ref(),
        "-CAfile".as_ref(),
        cas.as_os_str(),
        "-timeout".as_ref(),
        "20".as_ref(),
    ]);
    assert!(
        ok && out.contains("Response verify OK"),
        "openssl ocsp: {out}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_switch_the_next_ca_issues_and_the_retired_one_still_answers_on_sqlite() {
    after_the_switch(Databases::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_switch_the_next_ca_issues_and_the_retired_one_still_answers_on_postgres() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    after_the_switch(Databases::Postgres {
        ca: pg.fresh_database().unwrap(),
        policy: pg.fresh_database().unwrap(),
        pending: pg.fresh_database().unwrap(),
    })
    .await;
}

/// Device A enrolled before the switch, device B after: each chain verifies against the root;
/// A's retirement shows in the retired CA's CRL and OCSP, B checks good against the new one's.
async fn after_the_switch(databases: Databases) {
    if !has_openssl() {
        return;
    }
    let (clock, switch_at) = two_hours_ago();
    let lab = TestLab::start_with(|o| {
        o.databases = databases;
        o.clock = Arc::new(clock.clone());
        o.rollover = Some(RolloverPlan {
            switch_at_unix: switch_at,
        });
    })
    .await
    .unwrap();
    let dir = lab.tmp().to_owned();
    let next = next_ca_with_openssl(&lab, &dir).await.remove(0);
    let old = lab.ca().material().issuing.clone();
    let root = lab.ca().material().root.clone();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (before, before_record) = lab.enrolled_device("ROLL-BEFORE", PROFILE).await.unwrap();
    let (leaf_before, cas_before) = installed(&before);
    assert_eq!(der(&cas_before[0]), der(&old));

    // The switch: due once the clock reaches switch_at (`scep-lab serve` then restarts the
    // lab), made by the first start from then on.
    assert!(!lab.rollover_due_now());
    clock.set(unix_now());
    assert!(clock.now() > switch_at);
    assert!(lab.rollover_due_now());
    tokio::time::timeout(std::time::Duration::from_secs(60), lab.rollover_due())
        .await
        .expect("rollover_due resolves once due");
    let lab = lab.restart(|_| {}).await.unwrap();
    assert!(!lab.rollover_due_now(), "nothing more to switch");
    assert!(!caps(&lab).await.contains("GetNextCACert"));
    assert_eq!(scep_get(&lab, "GetNextCACert").await.status(), 404);
    assert_eq!(der(&lab.ca().material().issuing), der(&next));
    let (after, _) = lab.enrolled_device("ROLL-AFTER", PROFILE).await.unwrap();
    let (leaf_after, cas_after) = installed(&after);
    assert_eq!(der(&cas_after[0]), der(&next), "issued by the next CA");
    for (leaf, cas) in [(&leaf_before, &cas_before), (&leaf_after, &cas_after)] {
        let untrusted: Vec<&X509> = cas.iter().collect();
        let (ok, out) = verify(&dir, &root, &untrusted, leaf);
        assert!(ok && out.contains(": OK"), "chain to the root: {out}");
    }

    // The retired CA answers for its own: its CRL and OCSP show the retirement.
    let retired: Vec<(String, X509)> = lab
        .ca()
        .retired()
        .map(|(name, m)| (name.to_owned(), m.issuing.clone()))
        .collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(der(&retired[0].1), der(&old));
    let old_crl_url = format!("{}/crl/retired/{}.crl", lab.ca_url(), retired[0].0);
    let ocsp_url = format!("{}/ocsp", lab.ca_url());
    assert!(ocsp(&dir, &root, &old, &leaf_before, &ocsp_url).contains(": good"));
    lab.policy()
        .lifecycle(&before.id, Lifecycle::Retire)
        .await
        .unwrap();
    lab.wait_revoked(&before_record.serial_hex).await.unwrap();

    let out = ocsp(&dir, &root, &old, &leaf_before, &ocsp_url);
    assert!(out.contains(": revoked"), "{out}");
    assert!(ocsp(&dir, &root, &next, &leaf_after, &ocsp_url).contains(": good"));
    let crl = crl_at(&old_crl_url, &dir, "old.crl.pem").await;
    let root_pem = write_pem(&dir, "root.pem", &[&root]).unwrap();
    let old_pem = write_pem(&dir, "old.pem", &[&old]).unwrap();
    let leaf_pem = write_pem(&dir, "before.pem", &[&leaf_before]).unwrap();
    let (ok, out) = openssl(&[
        "verify".as_ref(),
        "-crl_check".as_ref(),
        "-CAfile".as_ref(),
        root_pem.as_os_str(),
        "-untrusted".as_ref(),
        old_pem.as_os_str(),
        "-CRLfile".as_ref(),
        crl.as_os_str(),
        leaf_pem.as_os_str(),
    ]);
    assert!(
        !ok && out.contains("certificate revoked"),
        "old CA's CRL: {out}"
    );
    // The current CA's CRL is the next CA's, and its certificate checks good against it.
    let current = crl_at(
        &format!("{}/crl/issuing.crl", lab.ca_url()),
        &dir,
        "new.crl.pem",
    )
    .await;
    let new_pem = write_pem(&dir, "new.pem", &[&next]).unwrap();
    let after_pem = write_pem(&dir, "after.pem", &[&leaf_after]).unwrap();
    let (ok, out) = openssl(&[
        "verify".as_ref(),
        "-crl_check".as_ref(),
        "-CAfile".as_ref(),
        root_pem.as_os_str(),
        "-untrusted".as_ref(),
        new_pem.as_os_str(),
        "-CRLfile".as_ref(),
        current.as_os_str(),
        after_pem.as_os_str(),
    ]);
    assert!(ok && out.contains(": OK"), "new CA's CRL: {out}");
    // An unknown retired CA is a 404, not an error page.
    let r = reqwest::get(format!("{}/crl/retired/00.crl", lab.ca_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

/// A client that fetched GetCACert before the switch encrypts to the RA encryption certificate
/// of then; after the switch the RA's certificates are issued again by the new CA (same keys),
/// and the previous encryption certificate still opens envelopes (until it expires).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_the_pre_switch_ra_certificate_still_enrolls_after_the_switch() {
    let (clock, switch_at) = two_hours_ago();
    let lab = TestLab::start_with(|o| {
        o.clock = Arc::new(clock.clone());
        o.rollover = Some(RolloverPlan {
            switch_at_unix: switch_at,
        });
    })
    .await
    .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let device = lab.targeted_device("ROLL-STALE", PROFILE).await.unwrap();
    let stale = lab.raw_scep().await.unwrap();

    clock.set(unix_now());
    let lab = lab.restart(|_| {}).await.unwrap();
    let fresh = lab.raw_scep().await.unwrap();
    let new_ca = lab.ca().material().issuing.clone();
    assert_ne!(der(&stale.ca.recipient), der(&fresh.ca.recipient));
    assert_eq!(
        fresh.ca.recipient.issuer_name().to_der().unwrap(),
        new_ca.subject_name().to_der().unwrap(),
        "the RA encryption certificate is issued again by the new CA"
    );
    assert!(
        fresh
            .ca
            .recipient
            .public_key()
            .unwrap()
            .public_eq(&stale.ca.recipient.public_key().unwrap()),
        "for the same key"
    );

    let checkin = device.checkin().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(&checkin, &key).unwrap();
    let parsed = scep::csr::Csr::from_der(&csr).unwrap();
    let now = unix_now();
    let signer = scep::client::self_signed_certificate(
        &key,
        &parsed.subject_name().unwrap(),
        now - 3600,
        now + 86_400,
    )
    .unwrap();
    let id = random_transaction_id().unwrap();
    // Sealed to the pre-switch RA certificate, answered (and opened) as the RA is now.
    let (request, tx) = stale
        .build(&scep::RequestBody::PkcsReq(parsed), &key, &signer, &id)
        .unwrap();
    let answer = fresh.post(request).await.unwrap();
    assert_eq!(answer.status, 200);
    let rep = scep::client::open_cert_rep(
        &answer.body,
        &tx,
        &fresh.ca.reply_signers,
        scep::cms::enveloped::DecryptionKey {
            cert: &signer,
            key: &key,
        },
        &scep::AlgorithmPolicy::default(),
    )
    .unwrap();
    let cert = issued_cert(&rep, &key).unwrap();
    assert!(cert.verify(&new_ca.public_key().unwrap()).unwrap());
    lab.shutdown().await;
}
