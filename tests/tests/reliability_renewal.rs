//! Reliability catalogue P14, P15, P17 (and P20's same-key decision) on the whole lab: a
//! RenewalReq is authorised by the certificate that signs it (docs/decisions.md #5), so
//! - P14: device B's valid certificate signing device A's renewal CSR renews nothing: the
//!   signer makes it B's renewal, and A's subject is not what B's profile renders
//!   (badRequest, SubjectNameMismatch in the audit);
//! - P15: A's certificate named as the signer, the signature made with another key: the
//!   outer signature does not verify (badMessageCheck);
//! - P17: A's renewal CSR with a changed subject or an extra SAN (badRequest);
//! - P20 decision: renewing with the same key is allowed (micromdm's client does it).
//!
//! Nothing is issued by any refusal; A's honest renewal then is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use device_agent::csr::{NameAttr, San, SanKind, SubjectAttr};
use scep::FailInfo;
use scep_lab_tests::*;

/// The reason of the policy module's latest rejection (a renewal is audited under the request
/// id ndes-proxy derives from the transactionID and the signer, so not by transactionID).
async fn last_rejection(lab: &TestLab) -> Option<String> {
    lab.audit(None)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.event == "request_rejected")
        .and_then(|e| e.detail)
        .and_then(|d| d.split_whitespace().next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p14_p15_p17_renewals_for_another_device_forged_or_changed_are_refused() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |s| s.renewal_threshold_percent = 100)
        .await
        .unwrap();
    let (a, _) = lab.enrolled_device("RENEW-A", PROFILE).await.unwrap();
    let (b, _) = lab.enrolled_device("RENEW-B", PROFILE).await.unwrap();
    let (a_key, a_chain) = a.installed(PROFILE).unwrap().unwrap();
    let (b_key, b_chain) = b.installed(PROFILE).unwrap().unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let checkin = a.checkin().await.unwrap();
    let a_spec = checkin.profiles[0].enroll_config().unwrap().csr;
    let new_key = rsa_key(2048).unwrap();
    let a_csr = build_csr(&a_spec, &new_key, None).unwrap();
    let before = lab.ca_records().await.unwrap().len();

    // P14: B's certificate signs A's renewal.
    let (_, rep) = raw
        .renewal_req(&a_csr, b_key.pkey(), &b_chain[0])
        .await
        .unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "P14: {rep:?}");
    assert_eq!(
        last_rejection(&lab).await.as_deref(),
        Some("SubjectNameMismatch")
    );
    // P15: A's certificate in the message, the signature by another key.
    let (_, rep) = raw
        .renewal_req(&a_csr, &new_key, &a_chain[0])
        .await
        .unwrap();
    assert!(is_failure(&rep, FailInfo::BadMessageCheck), "P15: {rep:?}");
    // P17: A's own certificate, a CSR that changes the subject or adds a SAN.
    let mut other_subject = a_spec.clone();
    other_subject
        .subject
        .push(NameAttr::new(SubjectAttr::OU, "Domain Admins"));
    let mut extra_san = a_spec.clone();
    extra_san.subject_alternative_names.push(San {
        kind: SanKind::Dns,
        value: "dc01.corp.example".into(),
    });
    for (label, spec, reason) in [
        ("subject", other_subject, "SubjectNameMismatch"),
        ("SAN", extra_san, "SubjectAltNameMismatch"),
    ] {
        let csr = build_csr(&spec, &new_key, None).unwrap();
        let (_, rep) = raw
            .renewal_req(&csr, a_key.pkey(), &a_chain[0])
            .await
            .unwrap();
        assert!(
            is_failure(&rep, FailInfo::BadRequest),
            "P17 {label}: {rep:?}"
        );
        assert_eq!(
            last_rejection(&lab).await.as_deref(),
            Some(reason),
            "P17 {label}"
        );
    }
    assert_eq!(
        lab.ca_records().await.unwrap().len(),
        before,
        "nothing issued"
    );

    // The honest renewal, with the same key (P20 decision: allowed), is issued.
    let same_key = build_csr(&a_spec, a_key.pkey(), None).unwrap();
    let (_, rep) = raw
        .renewal_req(&same_key, a_key.pkey(), &a_chain[0])
        .await
        .unwrap();
    let renewed = issued_cert(&rep, a_key.pkey()).unwrap();
    assert!(renewed.public_key().unwrap().public_eq(a_key.pkey()));
    assert_eq!(lab.ca_records().await.unwrap().len(), before + 1);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
