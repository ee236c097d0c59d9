//! The reconciler (`scep-lab audit`, reliability.md part 3 (c)) against a live lab, on SQLite
//! and on PostgreSQL: a healthy lab with issued, retired and revoked certificates has no
//! finding (which includes the RFC 5280 profile lint of every certificate, P35), and each kind
//! of violation seeded by hand into a store or the CRL file is found
//! and named with its invariant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use ndes_proxy::pending::{PendingRecord, PendingState, PendingStore};
use policy_module::admin::Lifecycle;
use scep_lab::Databases;
use scep_lab::reconcile::{Invariant, Report};
use scep_lab_tests::{PROFILE, TestLab};

/// Runs SQL in the CA's or the policy module's database, whichever backend the lab uses.
enum Seeder {
    Sqlite(std::path::PathBuf),
    Postgres(testkit::pg::PgCluster),
}

impl Seeder {
    async fn run(&self, service: &str, sql: &str) {
        match self {
            Self::Sqlite(data) => {
                let file = match service {
                    "ca" => data.join("ca/ca.db"),
                    _ => data.join("policy/policy.db"),
                };
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(file)
                    .busy_timeout(std::time::Duration::from_secs(10));
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Self::Postgres(pg) => {
                pg.psql(service, sql).unwrap();
            }
        }
    }
}

fn subjects(report: &Report, invariant: Invariant) -> BTreeSet<String> {
    report
        .findings
        .iter()
        .filter(|f| f.invariant == invariant)
        .map(|f| f.subject.clone())
        .collect()
}

/// Asserts the report has a finding of `invariant` whose subject contains `about`.
fn assert_found(report: &Report, invariant: Invariant, about: &str) {
    let found = subjects(report, invariant);
    assert!(
        found.iter().any(|s| s.contains(about)),
        "expected a {invariant} finding about {about}; findings: {:#?}",
        report.findings
    );
}

/// Records in ndes-proxy's pending store that the Notify for this issued certificate is owed
/// (what an inline issuance leaves when the policy module does not answer its Notify).
async fn owe_notify(lab: &TestLab, serial: &str, der: &[u8]) {
    let sources = scep_lab::reconcile::Sources::open(lab.data_dir(), &lab.options().databases)
        .await
        .unwrap();
    let id = format!("owed-{serial}");
    let grant = serde_json::from_value(serde_json::json!({
        "transaction_id": id, "template": scep_lab_tests::TEMPLATE, "subject": [],
        "subject_alternative_names": [], "validity_days": 30, "key_usage": [],
        "extended_key_usages": [], "device_id": null, "profile_id": null,
        "profile_version": null, "renewal": false,
    }))
    .unwrap();
    let row = PendingRecord::new(
        &ndes_proxy::RequestId::from_stored(id.clone()),
        &scep::TransactionId::new(&id).unwrap(),
        scep_lab_tests::TEMPLATE,
        b"csr",
        grant,
        PendingState::Issued {
            serial_hex: serial.to_owned(),
            cert_der: der.to_vec(),
        },
        lab.options().clock.now(),
    );
    sources.pending.insert(&row).await.unwrap();
    sources.close().await;
}

/// ndes-proxy's retry task would deliver the seeded owed Notify (and the policy module, not
/// knowing its request, would refuse it for good): it does not tick during a scenario.
fn quiet_retry_task(o: &mut scep_lab::LabOptions) {
    o.ndes_settings.queue.tick = std::time::Duration::from_secs(3600);
}

/// The reconciler's report as of `now`.
async fn reconcile_at(lab: &TestLab, now: i64) -> Report {
    let sources = scep_lab::reconcile::Sources::open(lab.data_dir(), &lab.options().databases)
        .await
        .unwrap();
    let r = scep_lab::reconcile::reconcile(&sources, now).await.unwrap();
    sources.close().await;
    r
}

async fn scenario(lab: TestLab, seeder: Seeder) {
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (_a, cert_a) = lab.enrolled_device("rec-a", PROFILE).await.unwrap();
    let (_b, cert_b) = lab.enrolled_device("rec-b", PROFILE).await.unwrap();
    let (c, cert_c) = lab.enrolled_device("rec-c", PROFILE).await.unwrap();
    let (d, cert_d) = lab.enrolled_device("rec-d", PROFILE).await.unwrap();
    lab.policy()
        .lifecycle(&c.id, Lifecycle::Retire)
        .await
        .unwrap();
    lab.wait_revoked(&cert_c.serial_hex).await.unwrap();
    // The CA spells serials in whole bytes (a leading 0 where the inventory has none).
    let ca_a = lab.ca_record(&cert_a.serial_hex).await.unwrap().serial;
    let ca_b = lab.ca_record(&cert_b.serial_hex).await.unwrap().serial;
    let ca_d = lab.ca_record(&cert_d.serial_hex).await.unwrap().serial;

    // Healthy: issued, retired and revoked certificates, nothing to report.
    let healthy = lab.assert_reconciled().await.unwrap();
    assert_eq!(healthy.inventory_certificates, 4);
    assert_eq!(healthy.ca_revoked, 1);
    // Four device certificates plus the RA's signing and encryption certificates.
    assert_eq!(healthy.ca_certificates, 6);
    assert!(healthy.crl_number.is_some());

    // I10 (docs/decisions.md #12): state changes whose records are gone (a certificate's
    // notified, a grant's decision, a confirmed revocation), and a record naming a serial the
    // inventory never held.
    seeder
        .run(
            "policy",
            &format!(
                "DELETE FROM audit WHERE (event = 'challenge_consumed' AND serial = '{a}') \
                 OR (event = 'challenge_verified' AND transaction_id = '{tx_c}') \
                 OR (event = 'revocation_confirmed' AND serial = '{c}'); \
                 INSERT INTO audit (at, event, serial, esc1_exposed) \
                 VALUES (1, 'revocation_confirmed', 'dead0001', FALSE)",
                a = cert_a.serial_hex,
                c = cert_c.serial_hex,
                tx_c = cert_c.transaction_id,
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(
        &r,
        Invariant::I10,
        &format!("certificate {}", cert_a.serial_hex),
    );
    assert_found(
        &r,
        Invariant::I10,
        &format!("request {}", cert_c.transaction_id),
    );
    assert_found(
        &r,
        Invariant::I10,
        &format!("revocation {}", cert_c.serial_hex),
    );
    assert_found(&r, Invariant::I10, "revocation_confirmed #");
    assert_eq!(subjects(&r, Invariant::I10).len(), 4, "{:#?}", r.findings);

    // I1: the CA's audit log says it signed a serial that has no record.
    seeder
        .run(
            "ca",
            "INSERT INTO audit_log (at, action, serial, request_id, actor, detail) \
             VALUES (1, 'issue', '0badc0de', 'seeded-lost', 'ndes-proxy', 'seeded')",
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I1, "0badc0de");

    // I2: the same certificate (so the same serial) recorded twice.
    seeder
        .run(
            "ca",
            &format!(
                "INSERT INTO certificates (serial, request_id, csr_sha256, template, subject, sans, \
                 public_key_sha256, der, not_before, not_after, issued_at, issued_to, status) \
                 SELECT 'ff01', 'seeded-dup', csr_sha256, template, subject, sans, \
                 public_key_sha256, der, not_before, not_after, issued_at, issued_to, status \
                 FROM certificates WHERE serial = '{ca_a}'"
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I2, &cert_a.serial_hex);

    // I3: a second certificate under the challenge device a already used.
    seeder
        .run(
            "policy",
            &format!(
                "INSERT INTO requests (transaction_id, csr_hash, spki_hash, challenge_hash, \
                 renewal_of, grant_body, state, created_at, updated_at) \
                 SELECT 'seeded-tx', csr_hash, spki_hash, challenge_hash, renewal_of, grant_body, \
                 state, created_at, updated_at FROM requests WHERE transaction_id = '{}'",
                cert_a.transaction_id
            ),
        )
        .await;
    seeder
        .run(
            "policy",
            &format!(
                "INSERT INTO certificates (serial, thumbprint, device_id, profile_id, \
                 profile_version, transaction_id, not_after, der, status, issued_at) \
                 SELECT 'ff01', 'seeded-thumbprint', device_id, profile_id, profile_version, \
                 'seeded-tx', not_after, der, status, issued_at FROM certificates \
                 WHERE serial = '{}'",
                cert_a.serial_hex
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I3, "challenge");
    let i3 = r
        .findings
        .iter()
        .find(|f| f.invariant == Invariant::I3)
        .unwrap();
    assert!(i3.detail.contains("ff01") && i3.detail.contains(&cert_a.serial_hex));

    // I3: a challenge burnt without a recorded reason (consumed by a transaction that has
    // neither a request nor a certificate).
    seeder
        .run(
            "policy",
            &format!(
                "UPDATE challenges SET reserved_tx = 'seeded-burnt', consumed_at = 1 \
                 WHERE reserved_tx = '{}'",
                cert_b.transaction_id
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    let burnt: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.invariant == Invariant::I3 && f.detail.contains("seeded-burnt"))
        .collect();
    assert_eq!(burnt.len(), 2, "no request, no certificate: {burnt:#?}");

    // I6: revoked in the CA's store but never published (no CRL regenerated since).
    seeder
        .run(
            "ca",
            &format!(
                "UPDATE certificates SET status = 'revoked', reason = 'keyCompromise', \
                 revoked_at = 1000 WHERE serial = '{ca_b}'"
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I6, &cert_b.serial_hex);

    // I7: a device certificate the policy module does not know (a retire would miss it).
    seeder
        .run(
            "policy",
            &format!(
                "DELETE FROM certificates WHERE serial = '{}'",
                cert_d.serial_hex
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I7, &cert_d.serial_hex);
    assert!(
        r.findings
            .iter()
            .any(|f| f.subject.contains(&cert_d.serial_hex)
                && f.detail.contains("no Notify is owed")),
        "issued with no record anywhere: {:#?}",
        r.findings
    );

    // I7 (issue #15 item 4): the same certificate whose Notify ndes-proxy owes is being retried,
    // a note, until it is overdue.
    owe_notify(
        &lab,
        &ca_d,
        &d.certificate(PROFILE).unwrap().to_der().unwrap(),
    )
    .await;
    let now = lab.options().clock.now();
    let r = reconcile_at(&lab, now).await;
    assert!(
        !subjects(&r, Invariant::I7)
            .iter()
            .any(|s| s.contains(&cert_d.serial_hex)),
        "an owed Notify still being retried is no violation: {:#?}",
        r.findings
    );
    assert!(
        r.notes.iter().any(|n| n.contains("still owes")),
        "{:?}",
        r.notes
    );
    let r = reconcile_at(
        &lab,
        now + scep_lab::reconcile::OWED_NOTIFY_OVERDUE_SECS + 60,
    )
    .await;
    assert_found(&r, Invariant::I7, &cert_d.serial_hex);
    assert!(
        r.findings
            .iter()
            .any(|f| f.subject.contains(&cert_d.serial_hex) && f.detail.contains("owed its Notify")),
        "overdue: {:#?}",
        r.findings
    );

    // I7: a retired device whose certificate is neither revoked nor queued.
    seeder
        .run(
            "policy",
            &format!("UPDATE devices SET state = 'retired' WHERE id = '{}'", d.id),
        )
        .await;
    seeder
        .run(
            "policy",
            &format!(
                "UPDATE devices SET state = 'retired' WHERE id = (SELECT device_id FROM \
                 certificates WHERE serial = '{}')",
                cert_a.serial_hex
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I7, &cert_a.serial_hex);

    // P35: a record whose certificate says NotBefore an hour and five minutes before the
    // recorded issuance (the lab backdates by 5 minutes): the profile lint flags it.
    seeder
        .run(
            "ca",
            &format!(
                "UPDATE certificates SET issued_at = issued_at + 3600 WHERE serial = '{ca_d}'"
            ),
        )
        .await;
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::P35, &cert_d.serial_hex);
    assert!(
        r.findings
            .iter()
            .any(|f| f.invariant == Invariant::P35 && f.detail.starts_with("Backdate")),
        "{:#?}",
        r.findings
    );

    // I8: a torn CRL file.
    let crl_path = lab.data_dir().join("ca/issuing.crl");
    let crl = std::fs::read(&crl_path).unwrap();
    std::fs::write(&crl_path, &crl[..crl.len() / 2]).unwrap();
    let r = lab.reconcile().await.unwrap();
    assert_found(&r, Invariant::I8, "issuing.crl");

    // The printed report names every violation and says it failed.
    let mut text = Vec::new();
    r.write_to(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("reconcile FAILED"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("VIOLATION ")).count(),
        r.findings.len()
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_finds_nothing_on_a_healthy_lab_and_each_seeded_violation_on_sqlite() {
    let lab = TestLab::start_with(quiet_retry_task).await.unwrap();
    let seeder = Seeder::Sqlite(lab.data_dir().to_owned());
    scenario(lab, seeder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_finds_nothing_on_a_healthy_lab_and_each_seeded_violation_on_postgres() {
    let Some(pg) = testkit::pg::PgCluster::start().unwrap() else {
        return;
    };
    let databases = Databases::Postgres {
        ca: pg.create_database("ca").unwrap(),
        policy: pg.create_database("policy").unwrap(),
        pending: pg.create_database("pending").unwrap(),
    };
    let lab = TestLab::start_with(|o| {
        o.databases = databases;
        quiet_retry_task(o);
    })
    .await
    .unwrap();
    scenario(lab, Seeder::Postgres(pg)).await;
}
