//! `/readyz` (issue 17): 200 while the store answers and the CRL file can be written; 503
//! with a JSON body naming `store` once the store is gone, answered within the client's 2 s
//! (a stopped PostgreSQL used to hold `/healthz` for the pool's 30 s acquire timeout).
//! `/healthz` is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ca_mock::keys::KeySpec;
use ca_mock::store::SqlStore;
use serde_json::Value;

/// GET `/readyz` with a 2 s client timeout: (status, body).
async fn readyz(base: &str) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("/readyz answers within 2 s");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn ready_then_store_down(store: SqlStore, stop_store: impl AsyncFnOnce()) {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::start_with(dir, KeySpec::EcP256, store).await;
    let (status, body) = readyz(&ca.base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["crl_file"], "ok");

    stop_store().await;
    let (status, body) = readyz(&ca.base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], serde_json::json!(["store"]), "{body}");
    assert_eq!(body["checks"]["crl_file"], "ok");
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_closed_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let store = SqlStore::sqlite(&url).await.unwrap();
    let closer = store.clone();
    ready_then_store_down(store, async move || closer.close().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_stopped_postgres_within_two_seconds() {
    let Some(mut pg) = testkit::pg::PgCluster::start().expect("PostgreSQL cluster") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let store = SqlStore::connect(&url).await.unwrap();
    let pg = std::sync::Mutex::new(&mut pg);
    ready_then_store_down(store, async || pg.lock().unwrap().stop().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_an_unwritable_crl_file() {
    let ca = common::start(KeySpec::EcP256).await;
    // A directory where the CRL file should be: it cannot be opened for writing.
    let crl = ca.path("issuing.crl");
    std::fs::remove_file(&crl).unwrap();
    std::fs::create_dir(&crl).unwrap();
    let (status, body) = readyz(&ca.base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["crl_file"]), "{body}");
    assert_eq!(body["checks"]["store"], "ok");
    ca.stop().await;
}
