//! A device whose key is EC (P-256) enrolls: the CertRep SUCCESS is sealed to its key by key
//! agreement (RFC 5753), which `openssl cms -decrypt` opens with the device's key; a CertPoll
//! for it gets the same certificate. Before issue #15 item 4 the CA issued and the device got
//! HTTP 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Device, Server, issued, name, now, poll_body};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use scep::client::Transaction;
use scep::{Nonce, RequestBody, TransactionId};

fn ec_device(cn: &str) -> Device {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let signer =
        scep::client::self_signed_certificate(&key, &name(cn), now() - 60, now() + 3600).unwrap();
    let tx = Transaction {
        transaction_id: TransactionId::from_public_key(&key.public_key_to_der().unwrap()).unwrap(),
        sender_nonce: Nonce::random().unwrap(),
    };
    Device {
        key,
        signer,
        tx,
        cn: cn.to_owned(),
    }
}

#[tokio::test]
async fn an_ec_device_enrolls_and_openssl_opens_its_key_agreement_envelope() {
    let s = Server::start(&["ec1"]).await;
    let d = ec_device("ec-device");
    let body = RequestBody::PkcsReq(d.csr(Some("ec1")));
    let resp = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(resp.status(), 200, "not a 500 after issuance");
    let rep = resp.bytes().await.unwrap().to_vec();
    let cert = issued(d.open(&rep));
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    assert_eq!(s.policy.notifications.lock().unwrap().len(), 1);

    let opened = testkit::cms_oracle::open_cert_rep(&rep, &d.signer, &d.key);
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
        "the issued certificate is in the envelope: {}",
        opened.certificates
    );

    // A CertPoll for it is sealed the same way and names the same certificate.
    let polled = issued(d.send(&s, &poll_body("ec-device")).await);
    assert_eq!(polled.to_der().unwrap(), cert.to_der().unwrap());
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1, "issued once");
}
