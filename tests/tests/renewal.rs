//! Renewal (docs/decisions.md #5, issue 6's `renew`), through device-agent's forced renewal:
//! - due (profile threshold 100 %): a new key, a RenewalReq signed by the current
//!   certificate (authorised by it, not by a challenge), a new certificate for the same subject recorded at the CA
//!   and in the inventory. The product does not revoke the certificate it replaces: the old
//!   one stays Good at the CA and Issued in the inventory until it expires or the device is
//!   retired/unassigned.
//! - too early (threshold 20 %, P20): refused (FAILURE badRequest, RenewalNotAllowed); the
//!   device keeps its certificate and key.
//! - signed by a revoked certificate (P12): refused, whether the product revoked it (profile
//!   unassigned, then assigned again) or an admin revoked it at the CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_mock::store::{CertStatus as CaStatus, RevocationReason};
use device_agent::agent::SyncOptions;
use policy_module::model::CertStatus;
use scep::{MessageType, RequestBody};
use scep_lab_tests::*;

const NOW: &str = "renew-now";

fn force() -> SyncOptions {
    SyncOptions {
        force_renew: true,
        ..SyncOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(NOW, |s| s.renewal_threshold_percent = 100)
        .await
        .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    due_renewal_rekeys_and_keeps_the_old_certificate(&lab).await;
    early_renewal_is_refused(&lab).await;
    a_device_whose_certificate_the_product_revoked_enrolls_fresh(&lab).await;
    lab.shutdown().await;
}

async fn due_renewal_rekeys_and_keeps_the_old_certificate(lab: &TestLab) {
    let (d, old) = lab.enrolled_device("RENEW-01", NOW).await.unwrap();
    let (old_key, old_chain) = d.installed(NOW).unwrap().unwrap();
    let issued_before = lab.ca_records().await.unwrap().len();
    d.traffic.clear();

    let summary = d.sync_with(force()).await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.installed.len(), 1, "renewed");
    let (new_key, new_chain) = d.installed(NOW).unwrap().unwrap();
    assert!(
        !new_key.pkey().public_eq(old_key.pkey()),
        "renewal generates a new key"
    );
    let new_serial = serial_of(&new_chain[0]).unwrap();
    assert_ne!(new_serial, normalize_serial(&old.serial_hex));
    assert_eq!(
        name_values(new_chain[0].subject_name()),
        name_values(old_chain[0].subject_name())
    );

    // What went over the wire: a RenewalReq for the new key, signed by the old certificate,
    // without a challenge.
    let (ra_cert, ra_key) = lab.ra_decryption().await.unwrap();
    let ops = pki_operations(&d.traffic.requests());
    assert_eq!(ops.len(), 1);
    let (body, signer) = open_request(&ops[0], &ra_cert, &ra_key).unwrap();
    assert_eq!(body.message_type(), MessageType::RenewalReq);
    assert_eq!(signer.to_der().unwrap(), old_chain[0].to_der().unwrap());
    let RequestBody::RenewalReq(csr) = &body else {
        unreachable!()
    };
    assert_eq!(csr.public_key_der(), new_key.public_key_der().unwrap());
    // device-agent puts its fresh check-in challenge in the CSR anyway; the renewal is
    // authorised by the signing certificate and leaves that challenge unconsumed.
    if let Some(c) = csr.challenge_password() {
        let row = lab
            .policy()
            .store()
            .get_challenge(&foundation::secret::Secret::new(c.expose()).digest())
            .await
            .unwrap()
            .expect("a challenge the policy module issued");
        assert!(row.consumed_at.is_none() && row.reserved_tx.is_none());
    }

    // Recorded at the CA and in the inventory.
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before + 1);
    let record = lab.ca_record(&new_serial).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    assert_eq!(record.status, CaStatus::Good);
    let inv = lab.inventory_cert(&d.id, &new_serial).await.unwrap();
    assert_eq!(inv.status, CertStatus::Issued);
    assert_eq!(inv.profile_id.as_deref(), Some(NOW));
    assert!(inv.installed_at.is_some());
    assert_eq!(inv.transaction_id, record.request_id);
    let audit = lab.audit(None).await.unwrap();
    assert!(
        // Keyed by the client's transactionID, the request id beside it (issue 16 item 1).
        audit.iter().any(|e| e.event == "renewal_verified"
            && e.request_id.as_deref() == Some(record.request_id.as_str())
            && e.transaction_id.as_deref() != Some(record.request_id.as_str())),
        "{audit:?}"
    );

    // The replaced certificate is not revoked by the product.
    assert_eq!(
        lab.ca_record(&old.serial_hex).await.unwrap().status,
        CaStatus::Good
    );
    assert_eq!(
        lab.inventory_cert(&d.id, &old.serial_hex)
            .await
            .unwrap()
            .status,
        CertStatus::Issued
    );
}

async fn early_renewal_is_refused(lab: &TestLab) {
    let (d, cert) = lab
        .enrolled_device("RENEW-EARLY-01", PROFILE)
        .await
        .unwrap();
    let before = lab.ca_records().await.unwrap().len();
    d.traffic.clear();
    let summary = d.sync_with(force()).await.unwrap();
    assert!(summary.installed.is_empty());
    assert_eq!(summary.errors.len(), 1, "{summary:?}");
    assert!(
        summary.errors[0].message.contains("BadRequest"),
        "{:?}",
        summary.errors
    );
    let ops = pki_operations(&d.traffic.requests());
    let (ra_cert, ra_key) = lab.ra_decryption().await.unwrap();
    let (body, _) = open_request(&ops[0], &ra_cert, &ra_key).unwrap();
    assert_eq!(body.message_type(), MessageType::RenewalReq);
    let audit = lab.audit(None).await.unwrap();
    assert!(
        audit.iter().any(|e| e.event == "request_rejected"
            && e.detail
                .as_deref()
                .unwrap_or("")
                .starts_with("RenewalNotAllowed")),
        "{audit:?}"
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), before);
    assert_eq!(
        serial_of(&d.certificate(PROFILE).unwrap()).unwrap(),
        normalize_serial(&cert.serial_hex),
        "the device keeps its certificate"
    );
}

/// The product revoked the device's certificate (profile unassigned, then assigned again):
/// check-in names the revoked thumbprint, so the device does not try to renew with it (the
/// server would refuse: policy-module's `renews_with_a_current_certificate_and_refuses_others`)
/// but deletes it and enrolls fresh: a PKCSReq with a new key and a self-signed signer.
async fn a_device_whose_certificate_the_product_revoked_enrolls_fresh(lab: &TestLab) {
    let (d, cert) = lab.enrolled_device("RENEW-REVOKED-01", NOW).await.unwrap();
    let queued = lab
        .policy()
        .unassign(NOW, device_target(&d.id))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    lab.wait_revoked(&cert.serial_hex).await.unwrap();
    lab.wait_inventory_revoked(&d.id, std::slice::from_ref(&cert.serial_hex))
        .await
        .unwrap();
    lab.assign(NOW, &d.id).await.unwrap();
    let before = lab.ca_records().await.unwrap().len();
    d.traffic.clear();
    let summary = d.sync_with(force()).await.unwrap();
    assert!(summary.errors.is_empty(), "{summary:?}");
    assert_eq!(summary.revoked, vec![NOW.to_owned()], "{summary:?}");
    assert_eq!(summary.installed.len(), 1, "{summary:?}");
    let (ra_cert, ra_key) = lab.ra_decryption().await.unwrap();
    let ops = pki_operations(&d.traffic.requests());
    assert_eq!(ops.len(), 1, "one request, no renewal attempt");
    let (body, signer) = open_request(&ops[0], &ra_cert, &ra_key).unwrap();
    assert_eq!(body.message_type(), MessageType::PkcsReq);
    assert_eq!(
        signer.issuer_name().to_der().unwrap(),
        signer.subject_name().to_der().unwrap(),
        "signed by a self-signed certificate, not the revoked one"
    );
    let (_, chain) = d.installed(NOW).unwrap().unwrap();
    let new_serial = serial_of(&chain[0]).unwrap();
    assert_ne!(new_serial, normalize_serial(&cert.serial_hex));
    assert_eq!(lab.ca_records().await.unwrap().len(), before + 1);
    assert_eq!(
        lab.ca_record(&new_serial).await.unwrap().status,
        CaStatus::Good
    );
    assert_eq!(
        lab.ca_record(&cert.serial_hex).await.unwrap().status,
        CaStatus::Revoked
    );
}

/// An admin revokes a device certificate at the CA (keyCompromise), outside the policy
/// module. The device is still active and targeted, so a RenewalReq signed by the revoked
/// certificate must be refused (docs/decisions.md #5: "a current, unrevoked certificate").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_signed_by_a_certificate_revoked_at_the_ca_is_refused() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(NOW, |s| s.renewal_threshold_percent = 100)
        .await
        .unwrap();
    let (d, cert) = lab
        .enrolled_device("RENEW-CA-REVOKED-01", NOW)
        .await
        .unwrap();
    let ca = ca_api::client::CaClient::new(
        &lab.ca_url(),
        Some(lab.tokens().ca_policy.expose().to_owned()),
    )
    .unwrap();
    ca.revoke(&cert.serial_hex, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(
        lab.ca_record(&cert.serial_hex).await.unwrap().status,
        CaStatus::Revoked
    );
    let before = lab.ca_records().await.unwrap().len();
    let summary = d.sync_with(force()).await.unwrap();
    assert!(
        summary.installed.is_empty(),
        "renewed with a revoked signer: {:?}",
        summary.installed
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), before);
    lab.shutdown().await;
}
