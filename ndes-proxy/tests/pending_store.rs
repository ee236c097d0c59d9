//! One behavioural suite for every [`PendingStore`]: in memory, SQLite, PostgreSQL (a
//! throwaway cluster from testkit; under CI=true it must run, not skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndes_proxy::pending::{PendingRecord, PendingState, StateKind};
use ndes_proxy::{MemoryPendingStore, PendingStore, RequestId, SqlPendingStore};
use policy_api::Grant;

fn grant(tx: &str) -> Grant {
    serde_json::from_value(serde_json::json!({
        "transaction_id": tx,
        "template": "DeviceTemplate",
        "subject": [{"attr": "CN", "value": "device-1"}, {"attr": "O", "value": "Lab"}],
        "subject_alternative_names": [{"kind": "dns", "value": "device-1.example"}],
        "validity_days": 30,
        "key_usage": ["digitalSignature"],
        "extended_key_usages": ["1.3.6.1.5.5.7.3.2"],
        "device_id": "dev-1",
        "profile_id": "p-1",
        "profile_version": 3,
        "renewal": false,
    }))
    .unwrap()
}

fn record(id: &str, state: PendingState, now: i64) -> PendingRecord {
    PendingRecord::new(
        &RequestId::from_stored(id),
        &scep::TransactionId::new(id).unwrap(),
        "DeviceTemplate",
        b"csr-der",
        grant(id),
        state,
        now,
    )
}

async fn suite(store: &dyn PendingStore) {
    let now = 1_700_000_000;
    // Insert, then a second insert with the same id returns the first row unchanged.
    let a = record("tx/a+1", PendingState::AwaitingApproval, now);
    assert_eq!(store.insert(&a).await.unwrap(), a);
    let mut twin = record("tx/a+1", PendingState::QueuedForCa, now + 5);
    twin.csr_der = b"other-csr".to_vec();
    assert_eq!(store.insert(&twin).await.unwrap(), a, "first row wins");
    assert_eq!(store.get("tx/a+1").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get("unknown").await.unwrap(), None);

    // The key that signed the PKCSReq, when not the CSR's, is kept for its CertPoll.
    let b = record("tx-b", PendingState::QueuedForCa, now + 1).signed_by(Some(vec![7; 32]));
    store.insert(&b).await.unwrap();
    assert_eq!(
        store.get("tx-b").await.unwrap().unwrap().signer_key_sha256,
        Some(vec![7; 32])
    );
    let all = store.list(None, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["tx/a+1", "tx-b"],
        "oldest first"
    );
    let waiting = store
        .list(Some(StateKind::AwaitingApproval), 100)
        .await
        .unwrap();
    assert_eq!(waiting, std::slice::from_ref(&a));
    assert_eq!(store.list(None, 1).await.unwrap().len(), 1, "limit");

    // Due: only queued rows whose time has come.
    assert!(store.due(now, 10).await.unwrap().is_empty());
    assert_eq!(
        store.due(now + 1, 10).await.unwrap(),
        std::slice::from_ref(&b)
    );
    store.reschedule("tx-b", now + 100, now + 2).await.unwrap();
    assert!(store.due(now + 99, 10).await.unwrap().is_empty());
    let due = store.due(now + 100, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].updated_at, now + 2);
    store.reschedule("tx/a+1", now + 500, now).await.unwrap();
    assert_eq!(
        store.get("tx/a+1").await.unwrap().unwrap().attempts,
        0,
        "only queued rows are rescheduled"
    );

    // Compare-and-set transitions.
    assert!(
        !store
            .transition("tx/a+1", StateKind::QueuedForCa, &PendingState::Denied, now)
            .await
            .unwrap(),
        "wrong from-state"
    );
    assert!(
        !store
            .transition(
                "nope",
                StateKind::AwaitingApproval,
                &PendingState::Denied,
                now
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .transition(
                "tx/a+1",
                StateKind::AwaitingApproval,
                &PendingState::QueuedForCa,
                now + 10
            )
            .await
            .unwrap()
    );
    let approved = store.get("tx/a+1").await.unwrap().unwrap();
    assert_eq!(approved.state, PendingState::QueuedForCa);
    assert_eq!(approved.next_attempt_at, now + 10, "due at once");
    assert!(
        !store
            .transition(
                "tx/a+1",
                StateKind::AwaitingApproval,
                &PendingState::QueuedForCa,
                now + 11
            )
            .await
            .unwrap(),
        "a second approval does not move it again"
    );
    let issued = PendingState::Issued {
        serial_hex: "0a1b".into(),
        cert_der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
    };
    assert!(
        store
            .transition("tx/a+1", StateKind::QueuedForCa, &issued, now + 20)
            .await
            .unwrap()
    );
    let done = store.get("tx/a+1").await.unwrap().unwrap();
    assert_eq!(done.state, issued);
    assert_eq!(done.grant, a.grant, "the grant survives the round trip");
    assert_eq!(done.updated_at, now + 20);
    let failed = PendingState::Failed {
        reason: "ca_refused: template_not_entitled".into(),
    };
    assert!(
        store
            .transition("tx-b", StateKind::QueuedForCa, &failed, now + 30)
            .await
            .unwrap()
    );
    assert_eq!(store.get("tx-b").await.unwrap().unwrap().state, failed);
    assert!(store.due(now + 10_000, 10).await.unwrap().is_empty());
    assert_eq!(
        store.list(Some(StateKind::Issued), 10).await.unwrap().len(),
        1
    );

    // Ended rows owe the policy module a Notify until marked; open rows owe nothing.
    let owed = store.unnotified(10).await.unwrap();
    assert_eq!(
        owed.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["tx/a+1", "tx-b"],
        "oldest ended first"
    );
    assert!(owed.iter().all(|r| r.notified_at.is_none()));
    assert_eq!(store.unnotified(1).await.unwrap().len(), 1, "limit");
    store.mark_notified("tx/a+1", now + 40).await.unwrap();
    store.mark_notified("tx/a+1", now + 50).await.unwrap();
    assert_eq!(
        store.get("tx/a+1").await.unwrap().unwrap().notified_at,
        Some(now + 40),
        "the first delivery is kept"
    );
    let owed = store.unnotified(10).await.unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].request_id, "tx-b");
    store.mark_notified("tx-b", now + 41).await.unwrap();
    assert!(store.unnotified(10).await.unwrap().is_empty());
    let open = record("tx-c", PendingState::QueuedForCa, now + 42);
    store.insert(&open).await.unwrap();
    assert!(
        store.unnotified(10).await.unwrap().is_empty(),
        "an open row owes nothing yet"
    );
}

#[tokio::test]
async fn memory_store() {
    suite(&MemoryPendingStore::new()).await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = SqlPendingStore::sqlite(&url).await.unwrap();
    suite(&store).await;
    store.close().await;
    // Reopening runs the migrations again without harm and keeps the rows.
    let store = SqlPendingStore::connect(&url).await.unwrap();
    assert_eq!(store.list(None, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn postgres_store() {
    let Some(pg) = testkit::pg::shared().unwrap() else {
        return; // binaries missing and CI is not true: testkit printed "skipped"
    };
    let url = pg.fresh_database().unwrap();
    let store = SqlPendingStore::connect(&url).await.unwrap();
    suite(&store).await;
    store.close().await;
    let store = SqlPendingStore::postgres(&url).await.unwrap();
    assert_eq!(store.list(None, 10).await.unwrap().len(), 3);
}

/// A database made before Notify was tracked: its ended rows count as delivered (they were
/// notified the old way), its open rows will owe theirs when they end.
#[tokio::test]
async fn a_database_from_before_owed_notifies_migrates_in_place() {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    Migrator::with_migrations(vec![Migration::new(
        1,
        "pending".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0001_pending.sql").into_sql_str(),
        false,
    )])
    .run(&pool)
    .await
    .unwrap();
    let grant = serde_json::to_string(&grant("old")).unwrap();
    for (id, state, serial, cert) in [
        ("old-issued", "issued", Some("0a"), Some(vec![0x30u8, 0x00])),
        ("old-queued", "queued_for_ca", None, None),
    ] {
        sqlx::query(
            "INSERT INTO pending_requests (request_id, transaction_id, template, csr_der, \
             grant_json, state, serial, cert_der, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $1, 'DeviceTemplate', x'30', $2, $3, $4, $5, 10, 10, 20)",
        )
        .bind(id)
        .bind(&grant)
        .bind(state)
        .bind(serial)
        .bind(cert)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = SqlPendingStore::sqlite_file(&path).await.unwrap();
    let issued = store.get("old-issued").await.unwrap().unwrap();
    assert_eq!(issued.notified_at, Some(20), "ended before: delivered then");
    let queued = store.get("old-queued").await.unwrap().unwrap();
    assert_eq!(queued.notified_at, None);
    assert!(store.unnotified(10).await.unwrap().is_empty());
    assert!(
        store
            .transition(
                "old-queued",
                StateKind::QueuedForCa,
                &PendingState::Failed {
                    reason: "ca_refused".into()
                },
                30
            )
            .await
            .unwrap()
    );
    assert_eq!(store.unnotified(10).await.unwrap().len(), 1, "now owed");
}
