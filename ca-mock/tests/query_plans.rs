//! Reliability catalogue L7: every point lookup of the CA store (by serial for OCSP and
//! revocation, by request id for SCEP retransmission, a page after a serial) is planned
//! through an index on SQLite and on PostgreSQL, so it stays fast at a million certificates.
//! The million-row timings are benchmarks (BENCHMARKS.md); the plans are checked here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_mock::store::SqlStore;

async fn assert_indexed(store: &SqlStore) {
    let plans = store.lookup_plans().await.unwrap();
    assert_eq!(plans.len(), 10);
    for p in &plans {
        assert!(!p.plan.is_empty(), "{}: no plan", p.name);
        assert!(p.indexed, "{} is not an index lookup:\n{}", p.name, p.plan);
    }
}

#[tokio::test]
async fn sqlite_lookups_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&format!("sqlite://{}", dir.path().join("p.db").display()))
        .await
        .unwrap();
    assert_indexed(&store).await;
    // The check can fail: a lookup on a column without an index is reported as a scan.
    let foundation::sql::Db::Sqlite(pool, _) = store.db() else {
        panic!("sqlite")
    };
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("EXPLAIN QUERY PLAN SELECT serial FROM certificates WHERE subject = 'x'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(rows.iter().any(|r| r.3.starts_with("SCAN")), "{rows:?}");
}

#[tokio::test]
async fn postgres_lookups_use_indexes() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let store = SqlStore::connect(&pg.fresh_database().unwrap())
        .await
        .unwrap();
    assert_indexed(&store).await;
}
