//! P4: a challenge is bound to the device (and profile version) it was issued to. Device B
//! sending its own, correctly rendered CSR with device A's challenge is refused (FAILURE
//! badRequest, SubjectNameMismatch in the audit) and nothing is issued to anyone; the failed
//! attempt does not burn A's challenge, which A then uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scep::FailInfo;
use scep_lab_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_a_challenge_in_device_b_csr_is_refused() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let a = lab.targeted_device("DEVICE-A", PROFILE).await.unwrap();
    let b = lab.targeted_device("DEVICE-B", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();

    let a_checkin = a.checkin().await.unwrap();
    let a_challenge = a_checkin.profiles[0].challenge.expose().to_owned();
    let b_checkin = b.checkin().await.unwrap();
    let b_spec = b_checkin.profiles[0].enroll_config().unwrap().csr;
    assert_eq!(b_spec.subject[0].value, "DEVICE-B");

    let issued_before = lab.ca_records().await.unwrap().len();
    let b_key = rsa_key(2048).unwrap();
    let csr = build_csr(&b_spec, &b_key, Some(&a_challenge)).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &b_key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some("SubjectNameMismatch")
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);
    for d in [&a, &b] {
        let view = lab.policy().device_view(&d.id).await.unwrap();
        assert!(view.certificates.is_empty(), "{} got a certificate", d.name);
    }

    // A's challenge is still A's: A's own request with it is issued, for A's subject.
    let a_key = rsa_key(2048).unwrap();
    let csr = profile_csr(&a_checkin, &a_key).unwrap();
    let (_, rep) = raw.pkcs_req(&csr, &a_key).await.unwrap();
    let cert = issued_cert(&rep, &a_key).unwrap();
    assert_eq!(name_values(cert.subject_name())[0], "DEVICE-A");
    let serial = serial_of(&cert).unwrap();
    lab.inventory_cert(&a.id, &serial).await.unwrap();
    assert!(
        lab.policy()
            .device_view(&b.id)
            .await
            .unwrap()
            .certificates
            .is_empty()
    );

    lab.shutdown().await;
}
