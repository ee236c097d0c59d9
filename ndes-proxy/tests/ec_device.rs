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

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = testkit::openssl(args, None).unwrap();
    assert!(out.success(), "openssl {args:?}: {}", out.stderr_str());
    out.stdout
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

    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    std::fs::write(path("rep.der"), &rep).unwrap();
    std::fs::write(path("dev.pem"), d.signer.to_pem().unwrap()).unwrap();
    std::fs::write(path("dev.key"), d.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    openssl(&[
        "cms",
        "-verify",
        "-noverify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &path("rep.der"),
        "-out",
        &path("env.der"),
    ]);
    let dump = String::from_utf8(openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        &path("env.der"),
    ]))
    .unwrap();
    assert!(
        dump.contains("dhSinglePass-stdDH-sha256kdf-scheme"),
        "{dump}"
    );
    openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &path("env.der"),
        "-recip",
        &path("dev.pem"),
        "-inkey",
        &path("dev.key"),
        "-out",
        &path("payload.der"),
    ]);
    let certs = String::from_utf8(openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        &path("payload.der"),
        "-print_certs",
    ]))
    .unwrap();
    assert!(
        certs.contains(std::str::from_utf8(&cert.to_pem().unwrap()).unwrap().trim()),
        "the issued certificate is in the envelope: {certs}"
    );

    // A CertPoll for it is sealed the same way and names the same certificate.
    let polled = issued(d.send(&s, &poll_body("ec-device")).await);
    assert_eq!(polled.to_der().unwrap(), cert.to_der().unwrap());
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1, "issued once");
}
