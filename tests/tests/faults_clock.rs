//! F12, clock skew through the lab's injected clock (reliability.md part 3 (c)):
//!
//! - challenge expiry follows the one authoritative clock: a challenge minted, then the
//!   clock moved 2 h on (past the 60 min lifetime), is refused; moved back, the same
//!   challenge still works (refusal burnt nothing);
//! - with the services' clock 2 h ahead, then 2 h behind, issuance backdates NotBefore by the
//!   configured skew from *that* clock, every retirement reaches a CRL whose number still
//!   grows and whose thisUpdate is that clock, and the reconciler finds nothing;
//! - the device's clock a day behind, then a day ahead (its signer certificate's validity and
//!   the request's signingTime from that clock): issued, because signingTime is not enforced
//!   by default (docs/decisions.md #6; A30), with NotBefore from the CA's clock minus the configured skew.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use foundation::Clock;
use foundation::clock::SkewedClock;
use policy_module::admin::Lifecycle;
use scep::client::CertRep;
use scep_lab_tests::load::issued_to;
use scep_lab_tests::remote::{Enrollment, RemoteDevice};
use scep_lab_tests::{PROFILE, TestLab, unix_now};

const TWO_HOURS: i64 = 7200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_challenge_expiry_follows_the_injected_clock() {
    let clock = Arc::new(SkewedClock::new(0));
    let lab = TestLab::start_with(|o| o.clock = clock.clone())
        .await
        .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let scep = lab.raw_scep().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = lab.tokens().policy_admin.expose().to_owned();
    let d = RemoteDevice::register(&lab.policy_url(), &token, "SKEW-EXP", dir.path())
        .await
        .unwrap();
    lab.assign(PROFILE, &d.id).await.unwrap();
    let profile = d.rendered(&lab.policy_url(), PROFILE).await.unwrap();
    let e = Enrollment::new(&profile).unwrap();

    clock.set_offset(TWO_HOURS);
    let late = e.send(&scep).await.unwrap();
    assert!(
        matches!(late, CertRep::Failure { .. }),
        "an expired challenge was accepted: {late:?}"
    );
    assert_eq!(
        lab.rejection(e.transaction_id.as_str())
            .await
            .unwrap()
            .as_deref(),
        Some("ChallengeExpired")
    );

    clock.set_offset(0);
    let on_time = e.send(&scep).await.unwrap();
    assert!(matches!(on_time, CertRep::Success(_)), "{on_time:?}");
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_clock_ahead_and_behind_keeps_issuance_and_crls_sane() {
    let clock = Arc::new(SkewedClock::new(0));
    let lab = TestLab::start_with(|o| o.clock = clock.clone())
        .await
        .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let skew = ca_mock::CaSettings::new("http://x").not_before_skew_secs;
    let mut last_number = lab.ca().crl().await.unwrap().number;
    for (i, offset) in [TWO_HOURS, -TWO_HOURS, 0].into_iter().enumerate() {
        clock.set_offset(offset);
        let before = clock.now();
        let (d, cert) = lab
            .enrolled_device(&format!("skew-{i}"), PROFILE)
            .await
            .unwrap();
        let after = clock.now();
        let rec = lab.ca().get(&cert.serial_hex).await.unwrap();
        assert!(
            rec.cert.not_before >= before - skew && rec.cert.not_before <= after - skew,
            "offset {offset}: NotBefore {} not backdated from the CA's clock [{before}, {after}]",
            rec.cert.not_before
        );

        lab.policy()
            .lifecycle(&d.id, Lifecycle::Retire)
            .await
            .unwrap();
        lab.wait_revoked(&cert.serial_hex).await.unwrap();
        let crl = lab.ca().crl().await.unwrap();
        assert!(
            crl.number > last_number,
            "offset {offset}: CRL number went {last_number} -> {}",
            crl.number
        );
        last_number = crl.number;
        assert!(
            crl.this_update >= before && crl.this_update <= clock.now(),
            "offset {offset}: thisUpdate {} is not the CA's clock",
            crl.this_update
        );
        lab.assert_reconciled().await.unwrap();
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_a_device_clock_a_day_off_enrolls_with_the_servers_not_before() {
    const ONE_DAY: i64 = 86_400;
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let skew = ca_mock::CaSettings::new("http://x").not_before_skew_secs;
    let dir = tempfile::tempdir().unwrap();
    let token = lab.tokens().policy_admin.expose().to_owned();
    for (i, offset) in [-ONE_DAY, ONE_DAY].into_iter().enumerate() {
        let d = RemoteDevice::register(
            &lab.policy_url(),
            &token,
            &format!("DEV-CLOCK-{i}"),
            dir.path(),
        )
        .await
        .unwrap();
        lab.assign(PROFILE, &d.id).await.unwrap();
        let profile = d.rendered(&lab.policy_url(), PROFILE).await.unwrap();
        let device_now = unix_now() + offset;
        let e = Enrollment::new_at(&profile, device_now).unwrap();
        let mut scep = lab.raw_scep().await.unwrap();
        scep.ca.options.signing_time = Some(device_now);

        let before = unix_now();
        let rep = e.send(&scep).await.unwrap();
        let after = unix_now();
        let cert = issued_to(&rep, &e).unwrap_or_else(|err| panic!("offset {offset}: {err}"));
        let serial = scep_lab_tests::serial_of(&cert).unwrap();
        let rec = lab.ca().get(&serial).await.unwrap();
        assert_eq!(rec.cert.der, cert.to_der().unwrap());
        assert!(
            rec.cert.not_before >= before - skew && rec.cert.not_before <= after - skew,
            "device clock {offset:+}: NotBefore {} is not the CA's clock minus {skew} s [{before}, {after}]",
            rec.cert.not_before
        );
    }
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
