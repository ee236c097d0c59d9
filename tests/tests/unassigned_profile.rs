//! A device whose profile is unassigned loses that profile's certificate: the policy module
//! revokes it (superseded, as Intune) and only it (the device's other profile keeps its
//! certificate), stops handing out that profile and its challenges at check-in, and refuses a
//! challenge of that profile issued before (ScepProfileNoLongerTargetedToTheClient).
//!
//! The device side: at its next check-in, device-agent removes the certificate and key of a
//! profile no longer listed for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_mock::store::{CertStatus as CaStatus, RevocationReason};
use policy_module::model::CertStatus;
use scep::FailInfo;
use scep_lab_tests::*;

const WIFI: &str = "wifi-cert";

async fn two_profile_device(lab: &TestLab, name: &str) -> (TestDevice, String, String) {
    let d = lab.targeted_device(name, PROFILE).await.unwrap();
    lab.assign(WIFI, &d.id).await.unwrap();
    let summary = d.sync().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let serial = |p: &str| {
        summary
            .installed
            .iter()
            .find(|(id, _)| id == p)
            .map(|(_, e)| normalize_serial(&e.serial_hex))
            .unwrap()
    };
    (d, serial(PROFILE), serial(WIFI))
}

async fn lab_with_profiles() -> TestLab {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    lab.profile(WIFI, |s| {
        s.name = "Wi-Fi".into();
        s.subject_name_format = "CN={{DeviceName}},OU=WiFi,O=scep-lab".into();
    })
    .await
    .unwrap();
    lab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassigning_a_profile_revokes_its_certificate_only() {
    let lab = lab_with_profiles().await;
    let (d, corp, wifi) = two_profile_device(&lab, "UNASSIGN-01").await;
    let early = d.checkin().await.unwrap();
    let early_wifi = early
        .profiles
        .iter()
        .find(|p| p.profile_id == WIFI)
        .unwrap()
        .clone();

    let queued = lab
        .policy()
        .unassign(WIFI, device_target(&d.id))
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
    assert_eq!(info.status, CaStatus::Revoked);
    assert_eq!(info.reason, Some(RevocationReason::Superseded));
    lab.wait_inventory_revoked(&d.id, std::slice::from_ref(&wifi))
        .await
        .unwrap();
    assert_eq!(lab.crl_count(&wifi).await.unwrap(), 1);
    assert_eq!(lab.ca_record(&corp).await.unwrap().status, CaStatus::Good);
    assert_eq!(
        lab.inventory_cert(&d.id, &corp).await.unwrap().status,
        CertStatus::Issued
    );
    let audit = lab.audit(None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "profile_unassigned" && e.profile_id.as_deref() == Some(WIFI)),
        "{audit:?}"
    );

    // Check-in: only the profile still assigned, so no challenge for the other.
    let now = d.checkin().await.unwrap();
    let ids: Vec<&str> = now.profiles.iter().map(|p| p.profile_id.as_str()).collect();
    assert_eq!(ids, [PROFILE]);

    // A challenge of the unassigned profile, handed out before, is refused.
    let raw = lab.raw_scep().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = build_csr(
        &early_wifi.enroll_config().unwrap().csr,
        &key,
        Some(early_wifi.challenge.expose()),
    )
    .unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some("ScepProfileNoLongerTargetedToTheClient")
    );

    // The device's next sync: the still-assigned profile is up to date, nothing new is
    // enrolled (the device removes the unassigned profile's slot at its next check-in).
    let summary = d.sync().await.unwrap();
    assert!(summary.errors.is_empty() && summary.installed.is_empty());
    assert_eq!(summary.up_to_date, [PROFILE]);

    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_removes_the_certificate_of_an_unassigned_profile() {
    let lab = lab_with_profiles().await;
    let (d, _, wifi) = two_profile_device(&lab, "UNASSIGN-02").await;
    lab.policy()
        .unassign(WIFI, device_target(&d.id))
        .await
        .unwrap();
    lab.wait_revoked(&wifi).await.unwrap();
    d.sync().await.unwrap();
    assert!(
        d.installed(WIFI).unwrap().is_none(),
        "the revoked certificate is still installed: {:?}",
        d.files().unwrap()
    );
    assert!(d.installed(PROFILE).unwrap().is_some());
    lab.shutdown().await;
}
