//! P1: a challenge serves exactly one certificate. Once consumed, a new request with it (new
//! key, new transactionID) is CertRep FAILURE badRequest and nothing is issued; a
//! retransmission of the very request that consumed it (same transactionID, same CSR) is
//! answered with the same certificate (docs/decisions.md #3), not a second one; and two
//! different requests racing with one challenge yield exactly one certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scep::FailInfo;
use scep::client::CertRep;
use scep_lab_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumed_challenge_is_refused_and_a_raced_one_issues_once() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let device = lab.targeted_device("REUSE-01", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();

    // First use: issued.
    let checkin = device.checkin().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(&checkin, &key).unwrap();
    let tx = random_transaction_id().unwrap();
    let now = unix_now();
    let signer = scep::client::self_signed_certificate(
        &key,
        &scep::csr::Csr::from_der(&csr)
            .unwrap()
            .subject_name()
            .unwrap(),
        now - 3600,
        now + 86_400,
    )
    .unwrap();
    let body = scep::RequestBody::PkcsReq(scep::csr::Csr::from_der(&csr).unwrap());
    let rep = raw.send(&body, &key, &signer, &tx).await.unwrap();
    let first = issued_cert(&rep, &key).unwrap();
    let serial = serial_of(&first).unwrap();
    assert_eq!(
        lab.ca_record(&serial).await.unwrap().request_id,
        tx.as_str()
    );
    let issued_before = lab.ca_records().await.unwrap().len();
    let inventory_before = lab
        .policy()
        .device_view(&device.id)
        .await
        .unwrap()
        .certificates
        .len();
    assert_eq!(inventory_before, 1);

    // Retransmission (same transactionID, same CSR, fresh senderNonce): the same certificate.
    let again = raw.send(&body, &key, &signer, &tx).await.unwrap();
    let again = issued_cert(&again, &key).unwrap();
    assert_eq!(again.to_der().unwrap(), first.to_der().unwrap());

    // Reuse with a new key and a new transactionID: FAILURE badRequest, nothing issued.
    let other = rsa_key(2048).unwrap();
    let reused = profile_csr(&checkin, &other).unwrap();
    let (reuse_tx, rep) = raw.pkcs_req(&reused, &other).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(reuse_tx.as_str()).await.unwrap().as_deref(),
        Some("ChallengeAlreadyUsed")
    );
    // The same transactionID as the consuming request but another CSR: refused as well.
    let other_signer = scep::client::self_signed_certificate(
        &other,
        &scep::csr::Csr::from_der(&reused)
            .unwrap()
            .subject_name()
            .unwrap(),
        now - 3600,
        now + 86_400,
    )
    .unwrap();
    let rep = raw
        .send(
            &scep::RequestBody::PkcsReq(scep::csr::Csr::from_der(&reused).unwrap()),
            &other,
            &other_signer,
            &tx,
        )
        .await
        .unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);
    assert_eq!(
        lab.policy()
            .device_view(&device.id)
            .await
            .unwrap()
            .certificates
            .len(),
        inventory_before
    );

    // Race: one fresh challenge, two different requests at once: exactly one certificate.
    let checkin = device.checkin().await.unwrap();
    let (k1, k2) = (other, key);
    let (c1, c2) = (
        profile_csr(&checkin, &k1).unwrap(),
        profile_csr(&checkin, &k2).unwrap(),
    );
    let (r1, r2) = tokio::join!(raw.pkcs_req(&c1, &k1), raw.pkcs_req(&c2, &k2));
    let outcomes = [r1.unwrap().1, r2.unwrap().1];
    let wins = outcomes
        .iter()
        .filter(|r| matches!(r, CertRep::Success(_)))
        .count();
    let refusals = outcomes
        .iter()
        .filter(|r| is_failure(r, FailInfo::BadRequest))
        .count();
    assert_eq!((wins, refusals), (1, 1), "{outcomes:?}");
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before + 1);

    lab.shutdown().await;
}
