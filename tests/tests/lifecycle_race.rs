//! Issue 15, item 1 (docs/decisions.md #11): a device's PKCSReq and an admin's
//! `POST /api/v1/devices/{id}/retire` sent at the same moment, over and over. Whatever the
//! interleaving, the enrollment is refused (FAILURE badRequest, `DeviceRetired` in the audit)
//! or its certificate ends revoked at the CA once the outbox has delivered; every
//! certificate the CA issued to these devices is revoked, and the reconciler finds nothing.
//! On SQLite and on PostgreSQL (all three services' stores).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ca_mock::store::CertStatus as CaStatus;
use scep::FailInfo;
use scep::client::CertRep;
use scep_lab::Databases;
use scep_lab_tests::*;
use tokio::sync::Barrier;

/// Races per store; each on a fresh device.
const TRIES: usize = 12;

async fn race_enrollments_with_retire(lab: TestLab) {
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let raw = Arc::new(lab.raw_scep().await.unwrap());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let admin = lab.tokens().policy_admin.expose().to_owned();
    let (mut refused, mut revoked_by_retire, mut queued_at_notify) = (0, 0, 0);
    let mut devices = Vec::new();
    for i in 0..TRIES {
        let d = lab
            .targeted_device(&format!("RACE-{i:02}"), PROFILE)
            .await
            .unwrap();
        let checkin = d.checkin().await.unwrap();
        let key = rsa_key(2048).unwrap();
        let csr = profile_csr(&checkin, &key).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let enroll = tokio::spawn({
            let (raw, barrier) = (raw.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                // Odd tries give the retire a head start of up to 3 ms; even ones give the
                // request one of up to 50 ms (about its processing time here), so the retire
                // lands before, inside and after the request's grant-to-Notify window.
                if i % 2 == 1 {
                    tokio::time::sleep(Duration::from_millis((i / 2 % 4) as u64)).await;
                }
                let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
                (tx, rep, key)
            }
        });
        let retire = tokio::spawn({
            let url = format!("{}/api/v1/devices/{}/retire", lab.policy_url(), d.id);
            let (http, admin, barrier) = (http.clone(), admin.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                if i % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis((i / 2 * 10) as u64)).await;
                }
                http.post(url).bearer_auth(admin).send().await.unwrap()
            }
        });
        let (tx, rep, key) = enroll.await.unwrap();
        let answer = retire.await.unwrap();
        assert_eq!(answer.status(), 200, "the retire is acknowledged");
        let answer: serde_json::Value = answer.json().await.unwrap();
        let queued_by_retire = answer["revocations_queued"].as_array().unwrap().len();
        match &rep {
            CertRep::Success(_) => {
                let cert = issued_cert(&rep, &key).unwrap();
                let serial = serial_of(&cert).unwrap();
                if queued_by_retire == 1 {
                    revoked_by_retire += 1;
                } else {
                    assert_eq!(queued_by_retire, 0);
                    queued_at_notify += 1;
                }
                let info = lab.wait_revoked(&serial).await.unwrap();
                assert_eq!(info.status, CaStatus::Revoked, "{serial}");
            }
            _ => {
                assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
                assert_eq!(
                    lab.rejection(tx.as_str()).await.unwrap().as_deref(),
                    Some("DeviceRetired")
                );
                assert_eq!(queued_by_retire, 0);
                refused += 1;
            }
        }
        devices.push(d.id.clone());
    }
    eprintln!(
        "refused: {refused}, issued then revoked by the retire: {revoked_by_retire}, \
         issued after the retire and queued at Notify: {queued_at_notify}"
    );

    // Every certificate the CA issued for these devices is revoked (RA certificates aside).
    for rec in lab.ca_records().await.unwrap() {
        if rec.template == TEMPLATE {
            assert_ne!(rec.status, CaStatus::Good, "{} still good", rec.serial);
        }
    }
    for id in &devices {
        let view = lab.policy().device_view(id).await.unwrap();
        assert!(
            view.certificates
                .iter()
                .all(|c| c.status == policy_module::model::CertStatus::Revoked),
            "{id}: {:?}",
            view.certificates
        );
    }
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_racing_an_enrollment_leaves_nothing_good_sqlite() {
    race_enrollments_with_retire(TestLab::start().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_racing_an_enrollment_leaves_nothing_good_postgres() {
    let Some(pg) = testkit::pg::shared().unwrap() else {
        return;
    };
    let databases = Databases::Postgres {
        ca: pg.fresh_database().unwrap(),
        policy: pg.fresh_database().unwrap(),
        pending: pg.fresh_database().unwrap(),
    };
    let lab = TestLab::start_with(|o| o.databases = databases)
        .await
        .unwrap();
    race_enrollments_with_retire(lab).await;
}
