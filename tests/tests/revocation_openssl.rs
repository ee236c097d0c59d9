//! Revocation as the OpenSSL CLI sees it, at the URLs the certificate itself names: the CRL
//! from its CRL distribution point (`openssl verify -crl_check`) and the OCSP responder from
//! its authorityInfoAccess (`openssl ocsp -url`). Both say good before the device is retired
//! and revoked (cessationOfOperation) after. A block holds (certificateHold in the CRL and in
//! OCSP) and unblock releases: OCSP good again, gone from the next CRL (docs/decisions.md #11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::Path;

use openssl::x509::{X509, X509Crl};
use policy_module::admin::Lifecycle;
use policy_module::model::CertStatus;
use scep_lab_tests::*;

fn cdp_url(cert: &X509) -> String {
    let points = cert
        .crl_distribution_points()
        .expect("a CRL distribution point");
    points
        .iter()
        .filter_map(|p| p.distpoint())
        .filter_map(|n| n.fullname())
        .flat_map(|names| names.iter().filter_map(|g| g.uri().map(str::to_owned)))
        .next()
        .expect("a URI distribution point")
}

fn ocsp_url(cert: &X509) -> String {
    let responders = cert.ocsp_responders().expect("an OCSP responder in AIA");
    responders.iter().next().expect("one responder").to_string()
}

async fn fetch_crl(url: &str, dir: &Path) -> std::path::PathBuf {
    let der = reqwest::get(url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let pem = X509Crl::from_der(&der).unwrap().to_pem().unwrap();
    let path = dir.join("crl.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

fn openssl(args: &[&OsStr]) -> (bool, String) {
    let out = testkit::openssl(args, None).unwrap();
    (
        out.success(),
        format!("{}{}", out.stdout_str(), out.stderr_str()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_the_retirement_in_the_crl_and_in_ocsp() {
    if testkit::binary("openssl").is_none() {
        return;
    }
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, record) = lab.enrolled_device("REVOKE-01", PROFILE).await.unwrap();
    let (_, chain) = d.installed(PROFILE).unwrap().unwrap();
    let cert = &chain[0];
    let material = lab.ca().material();
    let dir = lab.tmp();
    let leaf = write_pem(dir, "leaf.pem", &[cert]).unwrap();
    let root = write_pem(dir, "root.pem", &[&material.root]).unwrap();
    let issuing = write_pem(dir, "issuing.pem", &[&material.issuing]).unwrap();
    let both = write_pem(dir, "cas.pem", &[&material.root, &material.issuing]).unwrap();

    let cdp = cdp_url(cert);
    let ocsp = ocsp_url(cert);
    for url in [&cdp, &ocsp] {
        assert!(
            url.starts_with(&lab.ca_url()),
            "{url} is not this lab's ca-mock"
        );
    }

    let verify = |crl: &Path| {
        openssl(&[
            "verify".as_ref(),
            "-crl_check".as_ref(),
            "-CAfile".as_ref(),
            root.as_os_str(),
            "-untrusted".as_ref(),
            issuing.as_os_str(),
            "-CRLfile".as_ref(),
            crl.as_os_str(),
            leaf.as_os_str(),
        ])
    };
    let ocsp_check = || {
        openssl(&[
            "ocsp".as_ref(),
            "-issuer".as_ref(),
            issuing.as_os_str(),
            "-cert".as_ref(),
            leaf.as_os_str(),
            "-url".as_ref(),
            ocsp.as_ref(),
            "-CAfile".as_ref(),
            both.as_os_str(),
            "-timeout".as_ref(),
            "20".as_ref(),
        ])
    };

    // Before: good in both.
    let crl = fetch_crl(&cdp, dir).await;
    let (ok, out) = verify(&crl);
    assert!(
        ok && out.contains(": OK"),
        "verify -crl_check before: {out}"
    );
    let (ok, out) = ocsp_check();
    assert!(ok, "openssl ocsp before: {out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": good"), "{out}");

    // Retire: the revocation reaches the CA through the outbox.
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Retire)
        .await
        .unwrap();
    lab.wait_revoked(&record.serial_hex).await.unwrap();

    let crl = fetch_crl(&cdp, dir).await;
    let (ok, out) = verify(&crl);
    assert!(!ok, "verify -crl_check accepted a retired device: {out}");
    assert!(out.contains("certificate revoked"), "{out}");
    let text = testkit::openssl(
        &[
            "crl".as_ref(),
            "-in".as_ref(),
            crl.as_os_str(),
            "-noout".as_ref(),
            "-text".as_ref(),
        ],
        None,
    )
    .unwrap()
    .stdout_str();
    assert!(
        text.to_ascii_lowercase()
            .contains(&normalize_serial(&record.serial_hex)),
        "{text}"
    );
    assert!(text.contains("Cessation Of Operation"), "{text}");

    let (ok, out) = ocsp_check();
    assert!(ok, "openssl ocsp after: {out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": revoked"), "{out}");
    assert!(out.contains("Reason: cessationOfOperation"), "{out}");

    lab.shutdown().await;
}

/// The OpenSSL CLI pointed at one installed certificate's CRL and OCSP URLs.
struct Probe {
    dir: std::path::PathBuf,
    leaf: std::path::PathBuf,
    root: std::path::PathBuf,
    issuing: std::path::PathBuf,
    cas: std::path::PathBuf,
    cdp: String,
    ocsp: String,
}

impl Probe {
    fn new(lab: &TestLab, cert: &X509) -> Self {
        let material = lab.ca().material();
        let dir = lab.tmp().to_path_buf();
        Self {
            leaf: write_pem(&dir, "leaf.pem", &[cert]).unwrap(),
            root: write_pem(&dir, "root.pem", &[&material.root]).unwrap(),
            issuing: write_pem(&dir, "issuing.pem", &[&material.issuing]).unwrap(),
            cas: write_pem(&dir, "cas.pem", &[&material.root, &material.issuing]).unwrap(),
            cdp: cdp_url(cert),
            ocsp: ocsp_url(cert),
            dir,
        }
    }

    /// `openssl verify -crl_check` against the CRL fetched now, and `openssl crl -text`.
    async fn crl(&self) -> (bool, String, String) {
        let crl = fetch_crl(&self.cdp, &self.dir).await;
        let (ok, out) = openssl(&[
            "verify".as_ref(),
            "-crl_check".as_ref(),
            "-CAfile".as_ref(),
            self.root.as_os_str(),
            "-untrusted".as_ref(),
            self.issuing.as_os_str(),
            "-CRLfile".as_ref(),
            crl.as_os_str(),
            self.leaf.as_os_str(),
        ]);
        let (_, text) = openssl(&[
            "crl".as_ref(),
            "-in".as_ref(),
            crl.as_os_str(),
            "-noout".as_ref(),
            "-text".as_ref(),
        ]);
        (ok, out, text)
    }

    fn ocsp(&self) -> String {
        let (ok, out) = openssl(&[
            "ocsp".as_ref(),
            "-issuer".as_ref(),
            self.issuing.as_os_str(),
            "-cert".as_ref(),
            self.leaf.as_os_str(),
            "-url".as_ref(),
            self.ocsp.as_ref(),
            "-CAfile".as_ref(),
            self.cas.as_os_str(),
            "-timeout".as_ref(),
            "20".as_ref(),
        ]);
        assert!(
            ok && out.contains("Response verify OK"),
            "openssl ocsp: {out}"
        );
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_a_block_as_a_hold_and_the_unblock_as_good_again() {
    if testkit::binary("openssl").is_none() {
        return;
    }
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, record) = lab.enrolled_device("HOLD-01", PROFILE).await.unwrap();
    let (_, chain) = d.installed(PROFILE).unwrap().unwrap();
    let probe = Probe::new(&lab, &chain[0]);
    let serial = normalize_serial(&record.serial_hex);

    let (ok, out, _) = probe.crl().await;
    assert!(
        ok && out.contains(": OK"),
        "verify -crl_check before: {out}"
    );
    assert!(probe.ocsp().contains(": good"));

    // Block: on hold in the CRL and in OCSP.
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Block)
        .await
        .unwrap();
    lab.wait_revoked(&serial).await.unwrap();
    let (ok, out, text) = probe.crl().await;
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    assert!(text.to_ascii_lowercase().contains(&serial), "{text}");
    assert!(text.contains("Certificate Hold"), "{text}");
    let out = probe.ocsp();
    assert!(out.contains(": revoked"), "{out}");
    assert!(out.contains("Reason: certificateHold"), "{out}");

    // Unblock: released; OCSP good again, gone from the next CRL.
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Unblock)
        .await
        .unwrap();
    lab.wait_good(&serial).await.unwrap();
    let (ok, out, text) = probe.crl().await;
    assert!(
        ok && out.contains(": OK"),
        "verify -crl_check after unblock: {out}"
    );
    assert!(!text.to_ascii_lowercase().contains(&serial), "{text}");
    assert!(probe.ocsp().contains(": good"));

    lab.wait_inventory(&d.id, std::slice::from_ref(&serial), CertStatus::Issued)
        .await
        .unwrap();
    let report = lab.reconcile().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    lab.shutdown().await;
}
