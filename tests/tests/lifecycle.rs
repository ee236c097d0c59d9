//! P24, P27: retired, wiped, blocked and deleted devices. Each holds certificates and an
//! unexpired, unused challenge from a check-in before the admin acts. Afterwards:
//! - every certificate of the device is revoked at the CA (cessationOfOperation; a block
//!   holds: certificateHold), listed once in the CRL, and `Revoked` (`Held`) in the policy
//!   module's inventory; unblock releases the hold (good again, gone from the CRL);
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
use policy_module::model::CertStatus;
use policy_module::store::Assignment;
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
    // Revoked at the CA (a block holds), once in the CRL, Revoked (Held) in the inventory.
    let (ca_status, ca_reason, inventory) = if state == "blocked" {
        (
            CaStatus::Hold,
            RevocationReason::CertificateHold,
            CertStatus::Held,
        )
    } else {
        (
            CaStatus::Revoked,
            RevocationReason::CessationOfOperation,
            CertStatus::Revoked,
        )
    };
    for serial in serials {
        let info = lab.wait_revoked(serial).await.unwrap();
        assert_eq!(info.status, ca_status, "{serial}");
        assert_eq!(info.reason, Some(ca_reason));
        assert_eq!(
            lab.crl_count(serial).await.unwrap(),
            1,
            "{serial} in the CRL"
        );
    }
    lab.wait_inventory(&d.id, serials, inventory).await.unwrap();

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

    // Block: held and refused; unblock releases the holds and makes the device eligible again.
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
    for serial in &serials {
        lab.wait_good(serial).await.unwrap();
    }
    lab.wait_inventory(&d.id, &serials, CertStatus::Issued)
        .await
        .unwrap();
    let checkin = d.checkin().await.unwrap();
    assert_eq!(checkin.state, "active");
    assert_eq!(checkin.profiles.len(), 2, "challenges again after unblock");
    assert!(
        checkin
            .profiles
            .iter()
            .all(|p| p.revoked_thumbprints.is_empty()),
        "released certificates are good: nothing to replace"
    );

    let report = lab.reconcile().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    lab.shutdown().await;
}

/// Block holds the device's certificates; once unblocked, the hold is released and the device
/// keeps its certificate, good again (as Intune: no re-enrollment after an unblock). (A block
/// configured to revoke for good names the revoked thumbprint at check-in instead, and the
/// device enrolls anew: policy-module's suite and device-agent's tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblocked_device_keeps_its_released_certificate() {
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
    lab.wait_good(&cert.serial_hex).await.unwrap();
    let serials = [normalize_serial(&cert.serial_hex)];
    lab.wait_inventory(&d.id, &serials, CertStatus::Issued)
        .await
        .unwrap();
    let summary = d.sync().await.unwrap();
    assert!(summary.installed.is_empty(), "{summary:?}");
    let installed = serial_of(&d.certificate(PROFILE).unwrap()).unwrap();
    assert_eq!(normalize_serial(&installed), serials[0]);
    assert_eq!(
        lab.ca_record(&installed).await.unwrap().status,
        CaStatus::Good
    );
    let report = lab.reconcile().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    lab.shutdown().await;
}

/// Delete revokes the device's certificates (cessationOfOperation) and keeps its history;
/// the admin API no longer shows it. Unassigning a profile revokes that profile's
/// certificate (superseded) and leaves the others good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_revokes_and_keeps_history_and_unassign_supersedes() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    lab.profile(WIFI, |s| {
        s.name = "Wi-Fi".into();
        s.subject_name_format = "CN={{DeviceName}},OU=WiFi,O=scep-lab".into();
    })
    .await
    .unwrap();

    // Unassign Wi-Fi: only its certificate is revoked, as superseded.
    let (d, serials, _) = prepared(&lab, "UNASSIGN-01").await;
    let view = lab.policy().device_view(&d.id).await.unwrap();
    let of = |p: &str| {
        view.certificates
            .iter()
            .find(|c| c.profile_id.as_deref() == Some(p))
            .map(|c| normalize_serial(&c.serial_hex))
            .unwrap()
    };
    let (wifi, main) = (of(WIFI), of(PROFILE));
    let queued = lab
        .policy()
        .unassign(
            WIFI,
            Assignment {
                kind: "device".into(),
                id: d.id.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|s| normalize_serial(s))
            .collect::<Vec<_>>(),
        std::slice::from_ref(&wifi)
    );
    let info = lab.wait_revoked(&wifi).await.unwrap();
    assert_eq!(info.reason, Some(RevocationReason::Superseded));
    lab.wait_inventory_revoked(&d.id, std::slice::from_ref(&wifi))
        .await
        .unwrap();
    assert_eq!(lab.ca_record(&main).await.unwrap().status, CaStatus::Good);

    // Delete: every certificate revoked; the device is gone from the API, its history kept.
    let (d, serials2, _) = prepared(&lab, "DELETE-01").await;
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Delete)
        .await
        .unwrap();
    for serial in &serials2 {
        let info = lab.wait_revoked(serial).await.unwrap();
        assert_eq!(info.status, CaStatus::Revoked);
        assert_eq!(info.reason, Some(RevocationReason::CessationOfOperation));
    }
    lab.wait_inventory(&d.id, &serials2, CertStatus::Revoked)
        .await
        .unwrap();
    assert!(lab.policy().device_view(&d.id).await.is_err());
    let audit = lab.audit(Some(&d.id)).await.unwrap();
    for e in ["device_registered", "device_deleted"] {
        assert!(audit.iter().any(|a| a.event == e), "{e}: {audit:?}");
    }
    assert!(serials.len() == 2 && serials2.len() == 2);
    let report = lab.reconcile().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    lab.shutdown().await;
}
