//! A profile changed by the admin becomes a new version (step 1 again). Challenges bound to
//! the old version stop verifying (ScepProfileNoLongerTargetedToTheClient); at its next
//! check-in the device gets the new version, enrolls again with a new key, and the new
//! certificate carries the new rendering and is recorded against version 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use policy_module::model::CertStatus;
use scep::FailInfo;
use scep_lab_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_profile_version_voids_old_challenges_and_re_enrolls_the_device() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, v1) = lab.enrolled_device("UPDATE-01", PROFILE).await.unwrap();
    assert_eq!(v1.profile_version, Some(1));
    let (v1_key, _) = d.installed(PROFILE).unwrap().unwrap();
    let early = d.checkin().await.unwrap();
    assert_eq!(early.profiles[0].version, 1);

    let mut spec = lab.spec();
    spec.subject_name_format = "CN={{DeviceName}},OU=Managed,O=scep-lab".into();
    let updated = lab.policy().update_profile(PROFILE, spec).await.unwrap();
    assert_eq!(updated.version, 2);

    // The version-1 challenge, with its version-1 rendering, is refused.
    let raw = lab.raw_scep().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(&early, &key).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some("ScepProfileNoLongerTargetedToTheClient")
    );

    // The device re-enrolls for version 2.
    let summary = d.sync().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.installed.len(), 1);
    let (v2_key, chain) = d.installed(PROFILE).unwrap().unwrap();
    assert!(!v2_key.pkey().public_eq(v1_key.pkey()), "a new key");
    assert_eq!(
        name_values(chain[0].subject_name()),
        ["UPDATE-01", "Managed", "scep-lab"]
    );
    let serial = serial_of(&chain[0]).unwrap();
    let v2 = lab.inventory_cert(&d.id, &serial).await.unwrap();
    assert_eq!(v2.profile_version, Some(2));
    assert_eq!(v2.status, CertStatus::Issued);
    assert!(v2.installed_at.is_some());

    lab.shutdown().await;
}
