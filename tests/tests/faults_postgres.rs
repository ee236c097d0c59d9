//! F4 (reliability.md part 3 (c)): PostgreSQL is killed (`kill -9` of the postmaster) and
//! restarted while 20 devices enroll through a lab whose three services keep their state in
//! it. Requests meanwhile get 503 or PENDING; the pools recover; every device ends with
//! exactly one certificate, the one recorded; the reconciler finds nothing. Under `CI=true`
//! a missing PostgreSQL is a failure (testkit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::bail;
use scep_lab::Databases;
use scep_lab_tests::{PROFILE, TestLab};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f4_postgres_killed_and_restarted_mid_load_loses_nothing() {
    const DEVICES: usize = 20;
    let Some(mut pg) = testkit::pg::PgCluster::start().unwrap() else {
        return;
    };
    let databases = Databases::Postgres {
        ca: pg.create_database("ca").unwrap(),
        policy: pg.create_database("policy").unwrap(),
        pending: pg.create_database("pending").unwrap(),
    };
    let lab = TestLab::start_with(|o| {
        o.databases = databases;
        o.ndes_settings.queue.tick = Duration::from_millis(200);
        o.ndes_settings.queue.backoff_base_secs = 1;
        o.ndes_settings.queue.backoff_max_secs = 2;
    })
    .await
    .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(
            lab.targeted_device(&format!("f4-{i}"), PROFILE)
                .await
                .unwrap(),
        );
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut tasks = Vec::new();
    for d in devices {
        tasks.push(tokio::spawn(async move {
            loop {
                let ok = d.sync().await.is_ok_and(|s| s.errors.is_empty());
                if ok && d.installed(PROFILE)?.is_some() {
                    return Ok::<_, anyhow::Error>(d);
                }
                if Instant::now() > deadline {
                    bail!("device {} did not converge in time", d.name);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.kill().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.restart().unwrap();

    let mut serials = std::collections::BTreeSet::new();
    for t in tasks {
        let d = t.await.unwrap().unwrap();
        let cert = d.certificate(PROFILE).unwrap();
        let serial = hex::encode(cert.serial_number().to_bn().unwrap().to_vec());
        assert!(serials.insert(scep_lab_tests::normalize_serial(&serial)));
    }
    let report = lab.assert_reconciled().await.unwrap();
    assert_eq!(report.inventory_certificates, DEVICES);
    assert_eq!(report.ca_certificates, DEVICES + 2, "nothing issued twice");
    lab.shutdown().await;
}
