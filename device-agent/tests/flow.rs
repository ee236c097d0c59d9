//! The client flow against an in-process SCEP responder (the `scep` crate's server side):
//! PENDING then CertPoll, a restart that resumes the same transaction, 503 backoff, EC keys,
//! an RA, and replies from a signer the pinned CA did not issue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fake_scep::{FakeScep, identity};
use device_agent::{DeviceDir, EnrollConfig, Error, RenewOptions, RenewOutcome, enroll, renew};
use scep::csr::ChallengePassword;

fn config(server: &FakeScep, key: &str) -> EnrollConfig {
    let mut c = EnrollConfig::plain("http://127.0.0.1:1/scep", "flow-device");
    c.ca_thumbprint = Some(server.ca_sha256());
    c.key = key.into();
    c.retry_delay_secs = 0;
    c.retry_count = 3;
    c
}

fn slot(tmp: &tempfile::TempDir) -> device_agent::Slot {
    DeviceDir::open(tmp.path())
        .unwrap()
        .slot("default")
        .unwrap()
}

#[tokio::test]
async fn polls_while_pending_then_installs() {
    let server = FakeScep::new(true);
    *server.pending.lock().unwrap() = 2;
    let tmp = tempfile::tempdir().unwrap();
    let slot = slot(&tmp);
    let challenge = ChallengePassword::new("c");
    let got = enroll(
        &server,
        &slot,
        &config(&server, "rsa2048"),
        Some(&challenge),
        None,
    )
    .await
    .unwrap();
    assert_eq!(got.polls, 2);
    let log = server.log.lock().unwrap();
    assert_eq!(log.message_types, ["19", "20", "20"]);
    assert!(
        log.transaction_ids.iter().all(|t| *t == got.transaction_id),
        "one transaction"
    );
    let (key, chain) = slot.installed().unwrap().unwrap();
    assert!(chain[0].public_key().unwrap().public_eq(key.pkey()));
    assert_eq!(chain.len(), 2, "leaf then the CA (not the RA)");
    assert!(!slot.path().join("transaction.json").exists());
}

#[tokio::test]
async fn a_restarted_agent_resumes_the_same_transaction_with_the_same_key() {
    let server = FakeScep::new(true);
    *server.pending.lock().unwrap() = 3;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, "rsa2048");
    cfg.retry_count = 1;
    let challenge = ChallengePassword::new("c");
    let err = enroll(&server, &slot(&tmp), &cfg, Some(&challenge), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StillPending { .. }), "{err:?}");
    let pending_key = slot(&tmp).read_key("next-key.pem").unwrap().unwrap();
    assert!(slot(&tmp).installed().unwrap().is_none());

    // A new process: same directory, no challenge (a poll needs none).
    cfg.retry_count = 5;
    let got = enroll(&server, &slot(&tmp), &cfg, None, None)
        .await
        .unwrap();
    let log = server.log.lock().unwrap();
    assert_eq!(log.message_types, ["19", "20", "20", "20"]);
    assert!(log.transaction_ids.iter().all(|t| *t == got.transaction_id));
    assert_eq!(got.polls, 3, "the poll count survives the restart");
    let (key, _) = slot(&tmp).installed().unwrap().unwrap();
    assert_eq!(
        key.public_key_der().unwrap(),
        pending_key.public_key_der().unwrap()
    );
    assert!(!slot(&tmp).path().join("next-key.pem").exists());
}

#[tokio::test]
async fn backs_off_on_503_and_then_enrolls() {
    let server = FakeScep::new(false);
    *server.unavailable.lock().unwrap() = 2;
    let tmp = tempfile::tempdir().unwrap();
    enroll(
        &server,
        &slot(&tmp),
        &config(&server, "rsa2048"),
        Some(&ChallengePassword::new("c")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(server.log.lock().unwrap().bodies.len(), 3);

    *server.unavailable.lock().unwrap() = 10;
    let tmp = tempfile::tempdir().unwrap();
    let err = enroll(
        &server,
        &slot(&tmp),
        &config(&server, "rsa2048"),
        Some(&ChallengePassword::new("c")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Http { status: 503, .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_ec_key_enrolls_through_a_transient_rsa_signer() {
    let server = FakeScep::new(true);
    let tmp = tempfile::tempdir().unwrap();
    let got = enroll(
        &server,
        &slot(&tmp),
        &config(&server, "ec256"),
        Some(&ChallengePassword::new("c")),
        None,
    )
    .await
    .unwrap();
    let (key, chain) = slot(&tmp).installed().unwrap().unwrap();
    assert_eq!(key.spec().unwrap(), device_agent::KeySpec::EcP256);
    assert!(chain[0].public_key().unwrap().public_eq(key.pkey()));
    assert_eq!(got.subject, "CN=flow-device");
    assert!(
        !slot(&tmp).path().join("transport-key.pem").exists(),
        "transient key removed"
    );
}

#[tokio::test]
async fn renewal_is_signed_by_the_current_certificate_and_installs_a_new_key() {
    let server = FakeScep::new(true);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&server, "rsa2048");
    let challenge = ChallengePassword::new("c");
    let first = enroll(&server, &slot(&tmp), &cfg, Some(&challenge), None)
        .await
        .unwrap();
    let (old_key, old_chain) = slot(&tmp).installed().unwrap().unwrap();
    *server.pending.lock().unwrap() = 1;
    let window =
        device_agent::RenewalWindow::of(&old_chain[0], cfg.renewal_threshold_percent).unwrap();
    let not_due = renew(
        &server,
        &slot(&tmp),
        &cfg,
        None,
        RenewOptions {
            force: false,
            now: Some(window.renew_at - 1),
        },
    )
    .await
    .unwrap();
    assert!(matches!(not_due, RenewOutcome::NotDue { .. }));
    let out = renew(
        &server,
        &slot(&tmp),
        &cfg,
        None,
        RenewOptions {
            force: false,
            now: Some(window.renew_at),
        },
    )
    .await
    .unwrap();
    let RenewOutcome::Renewed { certificate } = out else {
        panic!()
    };
    assert_ne!(certificate.serial_hex, first.serial_hex);
    assert_eq!(certificate.polls, 1, "PENDING during renewal is polled");
    assert_eq!(server.log.lock().unwrap().message_types, ["19", "17", "20"]);
    let (new_key, _) = slot(&tmp).installed().unwrap().unwrap();
    assert_ne!(
        new_key.public_key_der().unwrap(),
        old_key.public_key_der().unwrap()
    );
}

#[tokio::test]
async fn replies_signed_by_a_certificate_outside_the_pinned_chain_are_refused() {
    let mut server = FakeScep::new(true);
    let rogue = identity("Rogue RA", None, false);
    server.extra.push(rogue.cert.clone());
    server.reply_signer = Some(rogue);
    let tmp = tempfile::tempdir().unwrap();
    let err = enroll(
        &server,
        &slot(&tmp),
        &config(&server, "rsa2048"),
        Some(&ChallengePassword::new("c")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(slot(&tmp).installed().unwrap().is_none());
}
