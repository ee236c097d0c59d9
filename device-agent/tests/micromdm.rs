//! Plain SCEP mode against micromdm `scepserver`, software nobody here wrote: enroll, renew
//! (RenewalReq signed by the current certificate), PKCS#12 export, a refused challenge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::micromdm::Micromdm;
use device_agent::{
    DeviceDir, EnrollConfig, Error, HttpTransport, RenewOptions, RenewOutcome, enroll, renew,
};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::csr::ChallengePassword;
use testkit::transport::Recording;

fn message_types(rec: &Recording<HttpTransport>) -> Vec<String> {
    rec.bodies()
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| {
            scep::server::DecodedRequest::decode(b)
                .unwrap()
                .message_type_text()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_and_renews_against_micromdm_scepserver() {
    let Some(server) = Micromdm::start("static-secret") else {
        return;
    };
    let ca = X509::from_pem(&server.ca_pem()).unwrap();
    let pin = hex::encode(ca.digest(MessageDigest::sha256()).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let slot = DeviceDir::open(tmp.path().join("dev-1"))
        .unwrap()
        .slot("default")
        .unwrap();
    let mut config = EnrollConfig::plain(&server.url, "micromdm-device-1");
    config.ca_thumbprint = Some(pin);
    let rec = Recording::new(HttpTransport::new(Duration::from_secs(20)).unwrap());
    let challenge = ChallengePassword::new("static-secret");

    let first = enroll(&rec, &slot, &config, Some(&challenge), None)
        .await
        .unwrap();
    assert_eq!(first.subject, "CN=micromdm-device-1");
    assert_eq!(first.polls, 0);
    let (key, chain) = slot.installed().unwrap().unwrap();
    assert!(
        chain[0].verify(&ca.public_key().unwrap()).unwrap(),
        "issued by the pinned CA"
    );
    assert!(chain[0].public_key().unwrap().public_eq(key.pkey()));
    assert_eq!(message_types(&rec), ["19"]);
    assert!(!slot.path().join("transaction.json").exists());

    let outcome = renew(
        &rec,
        &slot,
        &config,
        Some(&challenge),
        RenewOptions {
            force: false,
            now: None,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, RenewOutcome::NotDue { .. }),
        "{outcome:?}"
    );

    let outcome = renew(
        &rec,
        &slot,
        &config,
        Some(&challenge),
        RenewOptions {
            force: true,
            now: None,
        },
    )
    .await
    .unwrap();
    let RenewOutcome::Renewed { certificate } = outcome else {
        panic!("{outcome:?}")
    };
    assert_ne!(certificate.serial_hex, first.serial_hex);
    assert_eq!(message_types(&rec), ["19", "17"], "renewal is a RenewalReq");
    let (new_key, new_chain) = slot.installed().unwrap().unwrap();
    assert!(
        !new_key
            .public_key_der()
            .unwrap()
            .eq(&key.public_key_der().unwrap()),
        "new key"
    );
    assert!(new_chain[0].public_key().unwrap().public_eq(new_key.pkey()));

    let p12 = slot.export_pkcs12("export-pass").unwrap();
    let parsed = openssl::pkcs12::Pkcs12::from_der(&p12)
        .unwrap()
        .parse2("export-pass")
        .unwrap();
    assert_eq!(
        parsed
            .cert
            .unwrap()
            .digest(MessageDigest::sha256())
            .unwrap()
            .to_vec(),
        new_chain[0]
            .digest(MessageDigest::sha256())
            .unwrap()
            .to_vec()
    );
    assert!(parsed.pkey.unwrap().public_eq(new_key.pkey()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_challenge_is_refused_and_leaves_no_transaction() {
    let Some(server) = Micromdm::start("right-secret") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let slot = DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap();
    let config = EnrollConfig::plain(&server.url, "micromdm-device-2");
    let transport = HttpTransport::new(Duration::from_secs(20)).unwrap();
    let err = enroll(
        &transport,
        &slot,
        &config,
        Some(&ChallengePassword::new("wrong")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"));
    assert!(slot.installed().unwrap().is_none());
    assert!(!slot.path().join("transaction.json").exists());
    assert!(!slot.path().join("next-key.pem").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_does_not_match_the_pin_is_refused_before_any_request() {
    let Some(server) = Micromdm::start("s") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let slot = DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap();
    let mut config = EnrollConfig::plain(&server.url, "d3");
    config.ca_thumbprint = Some("00".repeat(32));
    let rec = Recording::new(HttpTransport::new(Duration::from_secs(20)).unwrap());
    let err = enroll(
        &rec,
        &slot,
        &config,
        Some(&ChallengePassword::new("s")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::CaNotPinned), "{err:?}");
    assert_eq!(rec.operations(), ["GetCACaps", "GetCACert"]);
}
