//! One store test suite, run on SQLite and on PostgreSQL (a throwaway cluster from
//! `testkit::pg`; under CI=true a missing PostgreSQL is a failure, not a skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use ca_mock::keys::KeySpec;
use ca_mock::store::{
    CertStatus, CertStore, InsertOutcome, ListFilter, NewCertificate, RecordFilter, ReleaseOutcome,
    RevocationReason, RevokeOutcome, SqlStore,
};
use ca_mock::template::Template;
use ca_mock::{CaMaterial, CaSettings, CertificateAuthority, InitSource};
use common::*;
use foundation::clock::ManualClock;

fn record(serial: &str, request_id: &str) -> NewCertificate {
    NewCertificate {
        serial: serial.into(),
        request_id: request_id.into(),
        csr_sha256: "aa".repeat(32),
        template: "IPSECIntermediateOffline".into(),
        subject: "CN=dev".into(),
        sans: "[]".into(),
        public_key_sha256: "bb".repeat(32),
        der: vec![0x30, 0x00, 0xff, 0x00],
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        issued_at: 1_700_000_300,
        issued_to: "ndes".into(),
        issued_under: "operator".into(),
    }
}

/// The suite: every trait method, its edge cases, and concurrent issuance through the CA.
async fn suite(store: SqlStore) {
    // Insert, read back by serial and by request id; binary DER survives byte for byte.
    assert_eq!(
        store.insert_issued(&record("0a01", "r1")).await.unwrap(),
        InsertOutcome::Inserted
    );
    let got = store.get("0a01").await.unwrap().unwrap();
    assert_eq!(got.cert, record("0a01", "r1"));
    assert_eq!(
        (got.status, got.revoked_at, got.reason),
        (CertStatus::Good, None, None)
    );
    assert_eq!(
        store
            .get_by_request_id("r1")
            .await
            .unwrap()
            .unwrap()
            .cert
            .serial,
        "0a01"
    );
    assert!(store.get("0a02").await.unwrap().is_none());

    // Unique constraints: a taken serial and a taken request id are outcomes, not errors.
    assert_eq!(
        store.insert_issued(&record("0a01", "r2")).await.unwrap(),
        InsertOutcome::SerialTaken
    );
    assert_eq!(
        store.insert_issued(&record("0a02", "r1")).await.unwrap(),
        InsertOutcome::RequestIdTaken
    );
    assert_eq!(store.count().await.unwrap(), 1);
    for (s, r) in [("0a02", "r2"), ("0a03", "r3"), ("0a04", "r4")] {
        assert_eq!(
            store.insert_issued(&record(s, r)).await.unwrap(),
            InsertOutcome::Inserted
        );
    }

    // Revocation: idempotent, original record kept, hold upgradable, release only from hold.
    let RevokeOutcome::Done { record: r, already } = store
        .revoke("0a01", RevocationReason::KeyCompromise, 100, "policy")
        .await
        .unwrap()
    else {
        panic!("0a01 exists")
    };
    assert!(!already);
    assert_eq!(
        (r.status, r.revoked_at, r.reason),
        (
            CertStatus::Revoked,
            Some(100),
            Some(RevocationReason::KeyCompromise)
        )
    );
    let RevokeOutcome::Done { record: r, already } = store
        .revoke("0a01", RevocationReason::Superseded, 200, "policy")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(already);
    assert_eq!(
        (r.revoked_at, r.reason),
        (Some(100), Some(RevocationReason::KeyCompromise))
    );
    assert_eq!(
        store
            .revoke("ffff", RevocationReason::Superseded, 1, "p")
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );

    store
        .revoke("0a02", RevocationReason::CertificateHold, 300, "policy")
        .await
        .unwrap();
    let RevokeOutcome::Done { already, .. } = store
        .revoke("0a02", RevocationReason::CertificateHold, 301, "policy")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(already, "hold on hold changes nothing");
    store
        .revoke("0a03", RevocationReason::CertificateHold, 400, "policy")
        .await
        .unwrap();
    let RevokeOutcome::Done { record: r, already } = store
        .revoke(
            "0a03",
            RevocationReason::CessationOfOperation,
            450,
            "policy",
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!already);
    assert_eq!(
        (r.status, r.revoked_at),
        (CertStatus::Revoked, Some(400)),
        "upgrade keeps the hold time"
    );

    assert!(
        matches!(store.release("0a01", 500, "p").await.unwrap(), ReleaseOutcome::NotOnHold(r) if r.status == CertStatus::Revoked)
    );
    assert!(
        matches!(store.release("0a04", 500, "p").await.unwrap(), ReleaseOutcome::NotOnHold(r) if r.status == CertStatus::Good)
    );
    assert_eq!(
        store.release("ffff", 500, "p").await.unwrap(),
        ReleaseOutcome::NotFound
    );
    store
        .revoke("0a04", RevocationReason::CertificateHold, 600, "policy")
        .await
        .unwrap();
    let ReleaseOutcome::Released(r) = store.release("0a04", 700, "policy").await.unwrap() else {
        panic!("0a04 was on hold")
    };
    assert_eq!(
        (r.status, r.revoked_at, r.reason),
        (CertStatus::Good, None, None)
    );

    // The OCSP view agrees with the full records.
    let st = store.status("0a01").await.unwrap().unwrap();
    assert_eq!(
        (st.status, st.revoked_at, st.reason),
        (
            CertStatus::Revoked,
            Some(100),
            Some(RevocationReason::KeyCompromise)
        )
    );
    let st = store.status("0a02").await.unwrap().unwrap();
    assert_eq!(
        (st.status, st.reason),
        (CertStatus::Hold, Some(RevocationReason::CertificateHold))
    );
    assert_eq!(
        store.status("0a04").await.unwrap().unwrap().status,
        CertStatus::Good
    );
    assert!(store.status("ffff").await.unwrap().is_none());

    // The CRL view lists exactly the revoked and held certificates.
    let revoked: Vec<_> = store
        .revoked()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.serial, e.reason))
        .collect();
    assert_eq!(
        revoked,
        [
            ("0a01".to_owned(), RevocationReason::KeyCompromise),
            ("0a02".to_owned(), RevocationReason::CertificateHold),
            ("0a03".to_owned(), RevocationReason::CessationOfOperation),
        ]
    );

    // CRL numbers only grow.
    let a = store.next_crl_number().await.unwrap();
    let b = store.next_crl_number().await.unwrap();
    assert!(b > a && a >= 1);

    // Listing: filter by request id, page by serial.
    let page = store
        .list(&ListFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter()
            .map(|r| r.cert.serial.as_str())
            .collect::<Vec<_>>(),
        ["0a01", "0a02"]
    );
    let next = store
        .list(&ListFilter {
            after: Some("0a02".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        next.iter()
            .map(|r| r.cert.serial.as_str())
            .collect::<Vec<_>>(),
        ["0a03", "0a04"]
    );
    let one = store
        .list(&ListFilter {
            request_id: Some("r3".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].cert.serial, "0a03");

    // The audit trail has every change with its request id, newest first.
    let audit = store.audit(100).await.unwrap();
    let lines: Vec<_> = audit
        .iter()
        .rev()
        .map(|e| (e.action.as_str(), e.serial.as_str(), e.request_id.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("issue", "0a01", "r1"),
            ("issue", "0a02", "r2"),
            ("issue", "0a03", "r3"),
            ("issue", "0a04", "r4"),
            ("revoke", "0a01", "r1"),
            ("revoke", "0a02", "r2"),
            ("revoke", "0a03", "r3"),
            ("revoke", "0a03", "r3"),
            ("revoke", "0a04", "r4"),
            ("release", "0a04", "r4"),
        ]
    );

    records_of_the_trail(&store).await;
    concurrent_issuance(store).await;
}

/// The audit trail as `GET /api/v1/records` reads it: joined with its certificate, filtered by
/// serial, request id and time (`since` inclusive, `until` exclusive), paged by id.
async fn records_of_the_trail(store: &SqlStore) {
    let read = |f: RecordFilter| async move {
        let rows = store.records(&f).await.unwrap();
        assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        rows
    };
    let lines = |rows: &[ca_mock::store::RecordRow]| {
        rows.iter()
            .map(|r| (r.entry.action.clone(), r.entry.serial.clone(), r.entry.at))
            .collect::<Vec<_>>()
    };
    let line = |a: &str, s: &str, at: i64| (a.to_owned(), s.to_owned(), at);
    let all = read(RecordFilter {
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(all.len(), 10);
    for r in &all {
        assert_eq!(r.template.as_deref(), Some("IPSECIntermediateOffline"));
        assert_eq!(r.issued_under.as_deref(), Some("operator"));
        assert_eq!(r.not_after, Some(1_800_000_000));
    }
    let range = read(RecordFilter {
        since: Some(300),
        until: Some(600),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        lines(&range),
        [
            line("revoke", "0a02", 300),
            line("revoke", "0a03", 400),
            line("revoke", "0a03", 450),
        ]
    );
    let one = read(RecordFilter {
        serial: Some("0a03".into()),
        since: Some(300),
        until: Some(600),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(lines(&one), lines(&range[1..]));
    let before = read(RecordFilter {
        until: Some(301),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        lines(&before),
        [line("revoke", "0a01", 100), line("revoke", "0a02", 300)]
    );
    let by_request = read(RecordFilter {
        request_id: Some("r4".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        lines(&by_request),
        [
            line("issue", "0a04", 1_700_000_300),
            line("revoke", "0a04", 600),
            line("release", "0a04", 700),
        ]
    );
    let page = read(RecordFilter {
        limit: 4,
        ..Default::default()
    })
    .await;
    let rest = read(RecordFilter {
        after: Some(page[3].id),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!((page.len(), rest.len()), (4, 6));
    assert_eq!([page, rest].concat(), all);
}

/// 200 concurrent issuances through the CA on this store: unique serials, all recorded.
async fn concurrent_issuance(store: SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let source = InitSource::Generate {
        key: KeySpec::EcP256,
        root_cn: "R".into(),
        issuing_cn: "I".into(),
        org: None,
        root_days: 3650,
        issuing_days: 1000,
    };
    ca_mock::init(dir.path(), &source, None).unwrap();
    let before = store.count().await.unwrap();
    // Inside the issuing CA's validity: a clock past it gets no certificate at all (the P35
    // lint refuses NotBefore after NotAfter; this test used to issue such certificates).
    let at = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
        + 86_400;
    let ca = Arc::new(
        CertificateAuthority::new(
            CaMaterial::load(dir.path(), None).unwrap(),
            Template::builtin().unwrap(),
            Arc::new(store.clone()),
            // Inside the issuing CA's validity: a clock past it gets no certificate at all
            // (the P35 lint refuses NotBefore after NotAfter; this test used to issue them).
            Arc::new(ManualClock::new(at)),
            CaSettings::new("http://127.0.0.1:9"),
        )
        .unwrap(),
    );
    let csr_der = csr(&ec_key(), "x", false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let ca = Arc::clone(&ca);
        let req = issue_request(
            &format!("c-{i}"),
            "IPSECIntermediateOffline",
            &csr_der,
            "dev",
        );
        tasks.spawn(async move { ca.issue("ndes", &call(&req)).await.unwrap().serial.to_hex() });
    }
    let mut serials = HashSet::new();
    while let Some(s) = tasks.join_next().await {
        assert!(serials.insert(s.unwrap()), "duplicate serial");
    }
    assert_eq!(serials.len(), 200);
    assert_eq!(store.count().await.unwrap() - before, 200, "all recorded");
    for s in serials.iter().take(10) {
        assert_eq!(
            store.get(s).await.unwrap().unwrap().cert.not_before,
            at - 300
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    suite(store.clone()).await;
    store.close().await;
    // Reopening runs migrations again harmlessly and finds everything.
    let store = SqlStore::sqlite(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_on_postgres() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let store = SqlStore::connect(&url).await.unwrap();
    assert!(store.db().is_postgres());
    suite(store.clone()).await;
    store.close().await;
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_in_wal_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&format!("sqlite://{}", dir.path().join("w.db").display()))
        .await
        .unwrap();
    let foundation::sql::Db::Sqlite(pool, _) = store.db() else {
        panic!("sqlite")
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}
