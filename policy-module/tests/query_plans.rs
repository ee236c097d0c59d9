//! Reliability catalogue L7 for the policy module: the lookups on its hot paths (challenge by
//! digest, request and certificate by transactionID, certificates of a device, device by
//! credential, holders of a key, the revocation outbox poll) are planned through an index on
//! SQLite and on PostgreSQL, so they stay point lookups with a million devices. Timings at
//! scale are benchmarks; the plans are checked here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use foundation::clock::SystemClock;
use policy_module::store::Store;

async fn assert_indexed(store: &Store) {
    let plans = store.lookup_plans().await.unwrap();
    assert_eq!(plans.len(), 15);
    for p in &plans {
        assert!(!p.plan.is_empty(), "{}: no plan", p.name);
        assert!(p.indexed, "{} is not an index lookup:\n{}", p.name, p.plan);
    }
    for name in [
        "challenge by digest",
        "request by transactionID",
        "certificates of a device",
        "certificates of a status, newest first",
        "outbox: lease due entries",
        "release the held certificates of a device",
        "audit records of a device, newest first",
    ] {
        assert!(plans.iter().any(|p| p.name == name), "{name} is planned");
    }
}

#[tokio::test]
async fn sqlite_lookups_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("p.db"), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_indexed(&store).await;
    // The check can fail: a lookup on a column without an index is reported as a scan.
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT serial FROM certificates WHERE revocation_reason = 'x'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.iter().any(|r| r.3.starts_with("SCAN")), "{rows:?}");
}

#[tokio::test]
async fn postgres_lookups_use_indexes() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let store = Store::connect_postgres(&pg.fresh_database().unwrap(), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_indexed(&store).await;
}
