//! An EC device key end to end through the lab (issue #15 item 4): a PKCSReq signed with the
//! device's own P-256 key (as a client without device-agent's RSA transport key sends it) gets a
//! CertRep SUCCESS whose envelope is RFC 5753 key agreement, opened by `openssl cms -decrypt`
//! with the device's key; the certificate is in the policy inventory and the reconciler is
//! clean. Before, the CA issued and recorded the certificate and the device got HTTP 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use policy_module::model::KeyAlgorithm;
use scep::client::{CertRep, open_cert_rep, self_signed_certificate};
use scep::cms::enveloped::DecryptionKey;
use scep::{AlgorithmPolicy, RequestBody};
use scep_lab_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec_device_key_enrolls_through_the_lab_by_key_agreement() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |s| {
        s.key_algorithm = KeyAlgorithm::Ec;
        s.key_size = 256;
    })
    .await
    .unwrap();
    let d = lab.targeted_device("ec-own-key", PROFILE).await.unwrap();
    let key = testkit::pki::ec_key();
    let csr_der = profile_csr(&d.checkin().await.unwrap(), &key).unwrap();
    let csr = scep::csr::Csr::from_der(&csr_der).unwrap();
    let now = unix_now();
    let signer =
        self_signed_certificate(&key, &csr.subject_name().unwrap(), now - 60, now + 3600).unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let id = random_transaction_id().unwrap();
    let (der, tx) = raw
        .build(&RequestBody::PkcsReq(csr), &key, &signer, &id)
        .unwrap();
    let resp = raw.post(der).await.unwrap();
    assert_eq!(resp.status, 200, "a CertRep, not HTTP {}", resp.status);
    let rep = open_cert_rep(
        &resp.body,
        &tx,
        &raw.ca.reply_signers,
        DecryptionKey {
            cert: &signer,
            key: &key,
        },
        &AlgorithmPolicy::default(),
    )
    .unwrap();
    assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
    let cert = issued_cert(&rep, &key).unwrap();

    // The envelope as OpenSSL's CMS reads it: key agreement, opened with the device's key.
    let opened = testkit::cms_oracle::open_cert_rep(&resp.body, &signer, &key);
    assert!(
        opened
            .envelope
            .contains("dhSinglePass-stdDH-sha256kdf-scheme"),
        "{}",
        opened.envelope
    );
    let pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
    assert!(
        opened.certificates.contains(pem.trim()),
        "{}",
        opened.certificates
    );

    // The inventory knows it (so retire can revoke it) and nothing is stranded.
    lab.inventory_cert(&d.id, &serial_of(&cert).unwrap())
        .await
        .unwrap();
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
