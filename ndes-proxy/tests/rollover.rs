//! CA/RA rollover: GetNextCACert announces the next certificates (RFC 8894 §4.7), and the
//! previous RA encryption key keeps opening envelopes for its grace period only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Device, Server, failure, issued, now, pki};
use ndes_proxy::{KeyPair, RaIdentity, Settings};
use scep::caps::{Capabilities, Capability};
use scep::cms::signed::{CertsOnly, SignedData};
use scep::http::CONTENT_TYPE_NEXT_CA_CERT;
use scep::{AlgorithmPolicy, FailInfo, RequestBody};
use testkit::pki::Usage;

fn pairs() -> (KeyPair, KeyPair) {
    let p = pki();
    (
        KeyPair {
            cert: p.ra_sign.clone(),
            key: p.ra_sign_key.clone(),
        },
        KeyPair {
            cert: p.ra_enc.clone(),
            key: p.ra_enc_key.clone(),
        },
    )
}

#[tokio::test]
async fn get_next_ca_cert_announces_the_next_ca_signed_by_the_current_ra() {
    let p = pki();
    let next_key = testkit::pki::rsa_key(2048);
    let next = testkit::pki::certificate(
        &common::name("next CA"),
        &next_key,
        None,
        Usage::Ca,
        now() + 20 * 365 * 86_400,
    );
    let (sign, enc) = pairs();
    let ra = RaIdentity::new(sign, enc, vec![p.ca.clone()])
        .unwrap()
        .with_next_ca(std::slice::from_ref(&next))
        .unwrap();
    let s = Server::start_with_identity(ra, &[], Settings::default()).await;
    let caps = Capabilities::parse(
        &s.get("/scep?operation=GetCACaps")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(caps.has(Capability::GetNextCaCert));
    let r = s
        .get("/certsrv/mscep/mscep.dll?operation=GetNextCACert")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], CONTENT_TYPE_NEXT_CA_CERT);
    let body = r.bytes().await.unwrap();
    let sd = SignedData::from_content_info(&body).unwrap();
    let content = sd.content.as_deref().unwrap();
    let si = &sd.signer_infos[0];
    assert!(
        si.sid.matches(&p.ra_sign),
        "signed by the current RA signing certificate"
    );
    si.verify(
        scep::oid::DATA,
        content,
        &p.ra_sign.public_key().unwrap(),
        &AlgorithmPolicy::default(),
    )
    .unwrap();
    let announced = CertsOnly::from_der(content).unwrap();
    assert_eq!(
        announced.certificates[0].to_der().unwrap(),
        next.to_der().unwrap()
    );
}

#[tokio::test]
async fn the_previous_encryption_key_opens_envelopes_during_its_grace_period_only() {
    let p = pki();
    let old_key = testkit::pki::rsa_key(2048);
    let old = testkit::pki::certificate(
        &common::name("old RA encryption"),
        &old_key,
        Some((&p.ca, &p.ca_key)),
        Usage::RaEnc,
        now() + 86_400,
    );
    let previous = || KeyPair {
        cert: old.clone(),
        key: old_key.clone(),
    };
    let within = {
        let (sign, enc) = pairs();
        RaIdentity::new(sign, enc, vec![p.ca.clone()])
            .unwrap()
            .with_previous_encryption(previous(), now() + 3600)
            .unwrap()
    };
    let after = {
        let (sign, enc) = pairs();
        RaIdentity::new(sign, enc, vec![p.ca.clone()])
            .unwrap()
            .with_previous_encryption(previous(), now() - 1)
            .unwrap()
    };
    for (ra, expect_success) in [(within, true), (after, false)] {
        let s = Server::start_with_identity(ra, &["c"], Settings::default()).await;
        let d = Device::new(0, "rollover");
        // A client that fetched GetCACert before the rollover encrypts to the old certificate.
        let der = d.request_to(&RequestBody::PkcsReq(d.csr(Some("c"))), &old);
        let r = s.post("/scep?operation=PKIOperation", der).await;
        let rep = d.open(&r.bytes().await.unwrap());
        if expect_success {
            issued(rep);
        } else {
            assert_eq!(failure(rep), FailInfo::BadMessageCheck);
            assert!(s.ca.issued.lock().unwrap().is_empty());
        }
    }
}
