//! `/metrics` (issue 17): after an issuance, a refusal, a revocation, a CRL and an OCSP
//! answer, the CA's Prometheus counters say so (names as ndes-proxy's: `ca_*_total`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ca_mock::keys::KeySpec;
use ca_mock::store::RevocationReason;
use common::*;
use openssl::ocsp::{OcspCertId, OcspRequest};

async fn metrics(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_issuance_refusal_revocation_crl_and_ocsp() {
    let ca = start(KeySpec::EcP256).await;
    let before = metrics(&ca.base).await;
    assert!(before.contains("ca_crl_publications_total 1"), "{before}");

    let template = "IPSECIntermediateOffline";
    let req = granted_request("m-1", template, &csr(&ec_key(), "m", false), "m");
    let issued = ca.ndes.issue(&req).await.unwrap().response;
    // The same call without its grant: refused by the CA's core.
    let ungranted = issue_request("m-2", template, &csr(&ec_key(), "n", false), "n");
    let err = ca.ndes.issue(&ungranted).await.unwrap_err();
    assert_eq!(err.code(), Some("grant_refused"));

    let leaf = openssl::x509::X509::from_der(&b64d(&issued.certificate)).unwrap();
    let mut ocsp = OcspRequest::new().unwrap();
    let id = OcspCertId::from_cert(
        openssl::hash::MessageDigest::sha1(),
        &leaf,
        &ca.ca().material().issuing,
    )
    .unwrap();
    ocsp.add_id(id).unwrap();
    ca.anonymous.ocsp(&ocsp.to_der().unwrap()).await.unwrap();
    ca.anonymous.ocsp(b"not an OCSP request").await.unwrap();
    ca.policy
        .revoke(&issued.serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    // Idempotent: a second revocation is not a new one.
    ca.policy
        .revoke(&issued.serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();

    let text = metrics(&ca.base).await;
    for line in [
        format!("ca_issued_total{{template=\"{template}\",replayed=\"false\"}} 1"),
        "ca_issue_refusals_total{code=\"grant_refused\"} 1".to_owned(),
        "ca_revocations_total{reason=\"keyCompromise\"} 1".to_owned(),
        "ca_crl_publications_total 2".to_owned(),
        "ca_ocsp_responses_total{status=\"good\"} 1".to_owned(),
        "ca_ocsp_responses_total{status=\"malformed\"} 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    let crl_bytes = ca.anonymous.crl().await.unwrap().len();
    assert!(
        text.lines()
            .any(|l| l == format!("ca_crl_size_bytes {crl_bytes}")),
        "CRL size {crl_bytes}:\n{text}"
    );
    ca.stop().await;
}
