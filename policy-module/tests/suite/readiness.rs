//! `/readyz` (issue 17): 200 while the store answers; 503 with a JSON body naming `store` once
//! it is gone (a closed SQLite pool, a stopped PostgreSQL), answered within the client's 2 s.
//! `/healthz` stays liveness: 200 throughout.

use std::sync::Arc;
use std::time::Duration;

use foundation::clock::ManualClock;
use policy_module::store::Store;
use policy_module::{PolicyService, ServiceConfig};
use serde_json::{Value, json};

use crate::api::start_service;
use crate::harness::{Harness, T0};

/// GET `path` with a 2 s client timeout: (status, body).
async fn get(base: &str, path: &str) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("answers within 2 s");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn ready_then_store_down(svc: PolicyService, stop_store: impl AsyncFnOnce()) {
    let server = start_service(svc).await;
    let (status, body) = get(&server.base, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"], json!({"store": "ok"}));

    stop_store().await;
    let (status, body) = get(&server.base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], json!(["store"]), "{body}");
    let (status, _) = get(&server.base, "/healthz").await;
    assert_eq!(status, 200, "liveness does not depend on the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_closed_sqlite_store() {
    let h = Harness::sqlite().await;
    let svc = h.svc.clone();
    ready_then_store_down(h.svc.clone(), async move || svc.store().close().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_stopped_postgres_within_two_seconds() {
    let Some(mut pg) = testkit::pg::PgCluster::start().expect("PostgreSQL cluster") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let store = Store::connect_postgres(&url, Arc::new(ManualClock::new(T0)))
        .await
        .unwrap();
    let svc = PolicyService::new(store, ServiceConfig::default());
    let pg = std::sync::Mutex::new(&mut pg);
    ready_then_store_down(svc, async || pg.lock().unwrap().stop().unwrap()).await;
}
