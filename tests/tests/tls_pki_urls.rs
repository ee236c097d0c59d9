//! With TLS on, what certificates point relying parties at stays plain HTTP (RFC 5280
//! §4.2.1.13, RFC 6960 practice): ca-mock keeps a plain listener serving only its CA
//! certificates, CRLs, OCSP and `/healthz`, and the URLs it writes into certificates name it;
//! its API there is refused with a 403 naming the HTTPS URL (issue 17 item 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use openssl::x509::X509Crl;
use scep_lab::TlsOptions;
use scep_lab_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_urls_stay_plain_http_and_answer_while_the_api_refuses_it() {
    let lab = TestLab::start_with(|o| o.tls = Some(TlsOptions::default()))
        .await
        .unwrap();
    let pki = lab.ca_pki_url();
    assert!(pki.starts_with("http://127.0.0.1:"), "{pki}");
    assert!(lab.ca_url().starts_with("https://"), "{}", lab.ca_url());
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, _) = lab.enrolled_device("TLS-PKI-01", PROFILE).await.unwrap();
    let (_, chain) = d.installed(PROFILE).unwrap().unwrap();
    let dir = lab.tmp();
    let material = lab.ca().material();
    let leaf = write_pem(dir, "leaf.pem", &[&chain[0]]).unwrap();
    let issuing = write_pem(dir, "issuing.pem", &[&material.issuing]).unwrap();
    let both = write_pem(dir, "cas.pem", &[&material.root, &material.issuing]).unwrap();
    let (leaf, issuing, both) = (
        leaf.to_str().unwrap(),
        issuing.to_str().unwrap(),
        both.to_str().unwrap(),
    );

    // Every URI the certificate carries (CDP, AIA caIssuers and OCSP) is the plain listener.
    let text = testkit::openssl(&["x509", "-noout", "-text", "-in", leaf], None).unwrap();
    let text = text.stdout_str();
    let uris: Vec<&str> = text
        .split("URI:")
        .skip(1)
        .map(|s| s.split_whitespace().next().unwrap())
        .collect();
    assert!(uris.len() >= 3, "CDP, caIssuers and OCSP: {uris:?}");
    for uri in &uris {
        assert!(uri.starts_with(&format!("{pki}/")), "{uri} is not {pki}");
    }
    let ocsp = uris.iter().find(|u| u.contains("/ocsp")).unwrap();
    let crl = uris.iter().find(|u| u.ends_with(".crl")).unwrap();

    // `openssl ocsp -url` over plain HTTP answers, signed and good.
    let out = testkit::openssl(
        &[
            "ocsp", "-issuer", issuing, "-cert", leaf, "-url", ocsp, "-CAfile", both, "-timeout",
            "20",
        ],
        None,
    )
    .unwrap();
    let said = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(out.success(), "openssl ocsp: {said}");
    assert!(
        said.contains("Response verify OK") && said.contains(": good"),
        "{said}"
    );

    // The CRL and the CA certificate over plain HTTP.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let der = plain.get(*crl).send().await.unwrap();
    assert_eq!(der.status(), 200, "{crl}");
    X509Crl::from_der(&der.bytes().await.unwrap()).unwrap();
    let root = plain
        .get(format!("{pki}/ca/root.crt"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 200);

    // The API (and metrics) there: refused, naming the HTTPS URL; a token never works.
    let token = lab.tokens().ca_ndes.expose().to_owned();
    for path in ["/api/v1/certificates", "/api/v1/templates", "/metrics"] {
        let r = plain
            .get(format!("{pki}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("{}{path}", lab.ca_url())), "{body}");
    }
    lab.shutdown().await;
}
