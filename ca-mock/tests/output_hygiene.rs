//! Reliability catalogue P11 and P35 on what the CA itself produces: validity never outlives
//! the issuing CA and a longer request is refused (the template decides, the CSR proposes);
//! every certificate has a positive, random, unique serial of at most 20 octets and a NotBefore
//! backdated by exactly the configured skew (default 5 minutes, under the 1 hour bound).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use ca_mock::keys::KeySpec;
use ca_mock::store::SqlStore;
use ca_mock::template::Template;
use ca_mock::{CaMaterial, CaSettings, CertificateAuthority, InitSource};
use common::*;
use foundation::clock::ManualClock;
use openssl::x509::X509;

fn now() -> i64 {
    foundation::clock::unix_now()
}

/// A CA whose issuing certificate lives `issuing_days`, on an in-memory store, at `at`.
async fn ca(dir: &std::path::Path, issuing_days: u32, at: i64) -> CertificateAuthority {
    let source = InitSource::Generate {
        key: KeySpec::EcP256,
        root_cn: "R".into(),
        issuing_cn: "I".into(),
        org: None,
        root_days: 3650,
        issuing_days,
    };
    ca_mock::init(dir, &source, None).unwrap();
    let store = SqlStore::sqlite("sqlite::memory:").await.unwrap();
    CertificateAuthority::new(
        CaMaterial::load(dir, None).unwrap(),
        Template::builtin().unwrap(),
        Arc::new(store),
        Arc::new(ManualClock::new(at)),
        CaSettings::new("http://127.0.0.1:9"),
    )
    .unwrap()
}

fn unix(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    foundation::time::asn1_to_unix(t).unwrap()
}

#[tokio::test]
async fn p11_validity_never_outlives_the_issuing_ca_and_longer_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let ca = ca(dir.path(), 30, t).await;
    let issuing = CaMaterial::load(dir.path(), None).unwrap().issuing;
    let csr_der = csr(&ec_key(), "p11", false);
    // The template's validity (a year) is longer than the issuing CA's remaining 30 days.
    let out = ca
        .issue(
            "ndes",
            &call(&issue_request(
                "p11-a",
                "IPSECIntermediateOffline",
                &csr_der,
                "d",
            )),
        )
        .await
        .unwrap();
    let cert = X509::from_der(&out.der).unwrap();
    assert_eq!(unix(cert.not_after()), unix(issuing.not_after()), "capped");
    assert_eq!(out.not_after, unix(issuing.not_after()));
    // Asking for more than the template allows is refused, not silently shortened.
    let mut req = issue_request("p11-b", "IPSECIntermediateOffline", &csr_der, "d");
    req.validity_days = Some(36_500);
    assert!(matches!(
        ca.issue("ndes", &call(&req)).await,
        Err(ca_mock::error::CaError::InvalidValidity(_))
    ));
}

#[tokio::test]
async fn p35_serials_and_not_before_of_every_certificate_are_hygienic() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let ca = ca(dir.path(), 1000, t).await;
    let csr_der = csr(&ec_key(), "p35", false);
    let mut serials = HashSet::new();
    let mut short = 0;
    for i in 0..64 {
        let out = ca
            .issue(
                "ndes",
                &call(&issue_request(
                    &format!("p35-{i}"),
                    "IPSECIntermediateOffline",
                    &csr_der,
                    "d",
                )),
            )
            .await
            .unwrap();
        let cert = X509::from_der(&out.der).unwrap();
        let serial = cert.serial_number().to_bn().unwrap();
        assert!(!serial.is_negative(), "positive serial");
        let bytes = serial.to_vec();
        assert!(bytes.len() <= 20, "at most 20 octets");
        assert!(bytes.len() >= 8, "at least 64 bits");
        // 16 random bytes: fewer than 15 significant bytes is a 1 in 2^16 event per serial.
        if bytes.len() < 15 {
            short += 1;
        }
        assert!(serials.insert(bytes), "unique serial");
        assert_eq!(
            unix(cert.not_before()),
            t - 300,
            "backdated by the default skew"
        );
        assert!(t - unix(cert.not_before()) < 3600);
        assert!(unix(cert.not_after()) > unix(cert.not_before()));
        assert_eq!(cert.version(), 2, "X.509 v3");
    }
    assert!(short <= 1, "serials carry their 128 random bits");
}
