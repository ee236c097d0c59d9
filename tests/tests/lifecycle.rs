//! P24, P27: retired, wiped and blocked devices. Each holds certificates and an unexpired,
//! unused challenge from a check-in before the admin acts. Afterwards:
//! - every certificate of the device is revoked at the CA (cessationOfOperation), listed once
//!   in the CRL, and `Revoked` in the policy module's inventory;
//! - check-in hands out no profile and no challenge; the earlier challenge is refused
//!   (FAILURE badRequest, DeviceRetired / DeviceWiped / DeviceBlocked in the audit), and so
//!   is a RenewalReq signed by the device's (revoked) certificate; nothing is issued;
//! - device-agent carries out the command: retire deletes the MDM-provisioned certificates
//!   and keys, wipe leaves the state directory empty (no key file left); the command is
//!   acknowledged in the audit; a repeated retire is refused without a second CRL entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_mock::store::{CertStatus as CaStatus, RevocationReason};
use device_agent::mdm::CheckinResponse;
use policy_module::admin::Lifecycle;
use scep::FailInfo;
use scep::client::CertRep;
use scep_lab_tests::*;

const WIFI: &str = "wifi-cert";

/// Enrolled in both profiles, plus a fresh check-in (challenge) kept for later.
async fn prepared(lab: &TestLab, name: &str) -> (TestDevice, Vec<String>, CheckinResponse) {
    let d = lab.targeted_device(name, PROFILE).await.unwrap();
    lab.assign(WIFI, &d.id).await.unwrap();
    let summary = d.sync().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.installed.len(), 2, "one certificate per profile");
    let serials: Vec<String> = summary
        .installed
        .iter()
        .map(|(_, e)| normalize_serial(&e.serial_hex))
        .collect();
    let checkin = d.checkin().await.unwrap();
    assert_eq!(checkin.profiles.len(), 2);
    (d, serials, checkin)
}

/// Everything that must hold once `action` is applied to a prepared device.
async fn after_action(
    lab: &TestLab,
    d: &TestDevice,
    serials: &[String],
    early: &CheckinResponse,
    state: &str,
    reason: &str,
) {
    // Revoked at the CA, once in the CRL, Revoked in the inventory.
    for serial in serials {
        let info = lab.wait_revoked(serial).await.unwrap();
        assert_eq!(info.status, CaStatus::Revoked, "{serial}");
        assert_eq!(info.reason, Some(RevocationReason::CessationOfOperation));
        assert_eq!(
            lab.crl_count(serial).await.unwrap(),
            1,
            "{serial} in the CRL"
        );
    }
    lab.wait_inventory_revoked(&d.id, serials).await.unwrap();

    // No challenge any more.
    let now = d.checkin().await.unwrap();
    assert_eq!(now.state, state);
    assert!(now.profiles.is_empty(), "a {state} device got a profile");

    // The challenge handed out before is refused, and so is a renewal.
    let raw = lab.raw_scep().await.unwrap();
    let before = lab.ca_records().await.unwrap().len();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(early, &key).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some(reason)
    );
    if let Some((cur_key, chain)) = d.installed(PROFILE).unwrap() {
        let spec = early.profiles[0].enroll_config().unwrap().csr;
        let csr = build_csr(&spec, &key, None).unwrap();
        let (_, rep) = raw
            .renewal_req(&csr, cur_key.pkey(), &chain[0])
            .await
            .unwrap();
        assert!(
            matches!(
                rep,
                CertRep::Failure {
                    fail_info: FailInfo::BadRequest | FailInfo::BadMessageCheck,
                    ..
                }
            ),
            "renewal by a {state} device: {rep:?}"
        );
    }
    assert_eq!(lab.ca_records().await.unwrap().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_wiped_and_blocked_devices() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    lab.profile(WIFI, |s| {
        s.name = "Wi-Fi".into();
        s.subject_name_format = "CN={{DeviceName}},OU=WiFi,O=scep-lab".into();
    })
    .await
    .unwrap();

    // Retire.
    let (d, serials, early) = prepared(&lab, "RETIRE-01").await;
    let queued = lab
        .policy()
        .lifecycle(&d.id, Lifecycle::Retire)
        .await
        .unwrap();
    let mut queued: Vec<String> = queued.iter().map(|s| normalize_serial(s)).collect();
    queued.sort();
    let mut expected = serials.clone();
    expected.sort();
    assert_eq!(
        queued, expected,
        "every certificate of the device is queued"
    );
    after_action(&lab, &d, &serials, &early, "retired", "DeviceRetired").await;
    let checkin = d.checkin().await.unwrap();
    let retire = checkin
        .commands
        .iter()
        .find(|c| c.kind == "retire")
        .expect("a retire command")
        .id
        .clone();
    let summary = d.sync().await.unwrap();
    assert!(summary.retired && !summary.wiped);
    assert!(
        d.dir.slots().unwrap().is_empty(),
        "{:?}",
        d.files().unwrap()
    );
    assert!(
        d.files()
            .unwrap()
            .iter()
            .all(|f| !f.contains("key") && !f.contains("cert")),
        "{:?}",
        d.files().unwrap()
    );
    let audit = lab.audit(Some(&d.id)).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "command_acknowledged" && e.detail.as_deref() == Some(&retire)),
        "{audit:?}"
    );
    // Idempotent: a second retire is refused and the CRL does not list anything twice.
    assert!(
        lab.policy()
            .lifecycle(&d.id, Lifecycle::Retire)
            .await
            .is_err()
    );
    for s in &serials {
        assert_eq!(lab.crl_count(s).await.unwrap(), 1);
    }

    // Wipe: the device's keys are deleted; the state directory is left empty.
    let (d, serials, early) = prepared(&lab, "WIPE-01").await;
    let files = d.files().unwrap();
    assert_eq!(
        files.iter().filter(|f| f.ends_with("key.pem")).count(),
        2,
        "{files:?}"
    );
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Wipe)
        .await
        .unwrap();
    after_action(&lab, &d, &serials, &early, "wiped", "DeviceWiped").await;
    let summary = d.sync().await.unwrap();
    assert!(summary.wiped);
    assert_eq!(
        d.files().unwrap(),
        Vec::<String>::new(),
        "files left after wipe"
    );
    assert!(!d.path.join("certs").exists());
    assert!(
        d.checkin().await.is_err(),
        "the device forgot its MDM credential"
    );

    // Block: revoked and refused; unblock makes the device eligible again.
    let (d, serials, early) = prepared(&lab, "BLOCK-01").await;
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Block)
        .await
        .unwrap();
    after_action(&lab, &d, &serials, &early, "blocked", "DeviceBlocked").await;
    let summary = d.sync().await.unwrap();
    assert!(summary.installed.is_empty() && !summary.wiped && !summary.retired);
    assert!(
        d.installed(PROFILE).unwrap().is_some(),
        "a blocked device is not told to delete anything"
    );
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Unblock)
        .await
        .unwrap();
    let checkin = d.checkin().await.unwrap();
    assert_eq!(checkin.state, "active");
    assert_eq!(checkin.profiles.len(), 2, "challenges again after unblock");

    lab.shutdown().await;
}

/// Block revokes the device's certificates; once unblocked, the device ends up with a valid
/// certificate again: check-in names the revoked thumbprint of the profile
/// (`revoked_thumbprints`), so device-agent deletes its certificate and enrolls anew with the
/// profile's challenge (PKCSReq, new key) instead of keeping it or renewing with a revoked
/// signer (which ndes-proxy refuses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblocked_device_replaces_its_revoked_certificate() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, cert) = lab.enrolled_device("UNBLOCK-01", PROFILE).await.unwrap();
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Block)
        .await
        .unwrap();
    lab.wait_revoked(&cert.serial_hex).await.unwrap();
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Unblock)
        .await
        .unwrap();
    d.sync().await.unwrap();
    let installed = serial_of(&d.certificate(PROFILE).unwrap()).unwrap();
    let info = lab.ca_record(&installed).await.unwrap();
    assert_eq!(
        info.status,
        CaStatus::Good,
        "the device still holds revoked serial {installed}"
    );
    lab.shutdown().await;
}
