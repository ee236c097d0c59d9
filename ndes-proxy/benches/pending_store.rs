//! What durable PENDING costs: commits per second of the pending store (insert a request,
//! read it back as a poll would, move it to issued) on memory, SQLite (WAL, synchronous=FULL)
//! and PostgreSQL (fsync on). Sequential, one request at a time, as one device sees it.
//!
//! `cargo bench -p ndes-proxy --bench pending_store [-- N]` (default N = 500).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ndes_proxy::pending::{PendingRecord, PendingState, StateKind};
use ndes_proxy::{MemoryPendingStore, PendingStore, SqlPendingStore};

fn grant(tx: &str) -> policy_api::Grant {
    serde_json::from_value(serde_json::json!({
        "transaction_id": tx, "template": "T", "subject": [{"attr": "CN", "value": tx}],
        "subject_alternative_names": [], "validity_days": 30, "key_usage": [],
        "extended_key_usages": [], "device_id": null, "profile_id": null,
        "profile_version": null, "renewal": false,
    }))
    .unwrap()
}

async fn run(name: &str, store: &dyn PendingStore, n: usize) {
    let csr = vec![0x30; 900];
    let cert = vec![0x30; 1200];
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let id = format!("{name}-{i}");
        let rec = PendingRecord::new(
            &ndes_proxy::RequestId::from_stored(id.clone()),
            &scep::TransactionId::new(&id).expect("printable id"),
            "T",
            &csr,
            grant(&id),
            PendingState::QueuedForCa,
            0,
        );
        store.insert(&rec).await.unwrap();
        store.get(&id).await.unwrap().unwrap();
        let issued = PendingState::Issued {
            serial_hex: format!("{i:x}"),
            cert_der: cert.clone(),
        };
        assert!(
            store
                .transition(&id, StateKind::QueuedForCa, &issued, 1)
                .await
                .unwrap()
        );
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "| {name} | {n} | {:.0} | {:.2} | {:.2} | {:.2} |",
        n as f64 / total,
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

#[tokio::main]
async fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    println!("| store | requests | requests/s | p50 ms | p90 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    run("memory", &MemoryPendingStore::new(), n).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlPendingStore::sqlite_file(&dir.path().join("bench.db"))
        .await
        .unwrap();
    run("sqlite", &sqlite, n).await;
    let opts = testkit::pg::PgOptions {
        fsync: true,
        ..Default::default()
    };
    match testkit::pg::PgCluster::start_with(opts) {
        Ok(Some(pg)) => {
            let url = pg.create_database("bench").unwrap();
            let store = SqlPendingStore::postgres(&url).await.unwrap();
            run("postgres", &store, n).await;
            store.close().await;
        }
        Ok(None) => println!("(postgres skipped: binaries not found)"),
        Err(e) => println!("(postgres failed to start: {e})"),
    }
}
