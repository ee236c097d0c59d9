//! `/readyz` (issue 17): 200 while the policy, the CA and the pending store answer; 503 with a
//! JSON body naming what failed, within the client's 2 s: a closed or stopped pending store
//! (SQLite, PostgreSQL), a CA that refuses connections, a policy that never answers.
//! `/healthz` stays liveness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Server;
use foundation::{ManualClock, Secret};
use ndes_proxy::{AppState, Settings, SqlPendingStore};
use serde_json::{Value, json};

/// GET `path` with a 2 s client timeout: (status, body).
async fn get(base: &str, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("answers within 2 s");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn readyz(base: &str) -> (u16, Value) {
    let (status, body) = get(base, "/readyz").await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn ready_then_store_down(store: SqlPendingStore, stop_store: impl AsyncFnOnce()) {
    let server = Server::start_configured(&["c"], Settings::default(), |b| {
        b.pending_store(Arc::new(store))
    })
    .await;
    let (status, body) = readyz(&server.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"],
        json!({"ca": "ok", "policy": "ok", "pending_store": "ok"})
    );
    stop_store().await;
    let (status, body) = readyz(&server.url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], json!(["pending_store"]), "{body}");
    assert_eq!(get(&server.url, "/healthz").await.0, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_closed_sqlite_pending_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlPendingStore::sqlite_file(&dir.path().join("pending.db"))
        .await
        .unwrap();
    let closer = store.clone();
    ready_then_store_down(store, async move || closer.close().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_stopped_postgres_within_two_seconds() {
    let Some(mut pg) = testkit::pg::PgCluster::start().expect("PostgreSQL cluster") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let store = SqlPendingStore::postgres(&url).await.unwrap();
    let pg = std::sync::Mutex::new(&mut pg);
    ready_then_store_down(store, async || pg.lock().unwrap().stop().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_an_unreachable_ca_and_a_silent_policy() {
    // The CA's port refuses connections; the policy's accepts them and never answers.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let policy_url = format!("http://{}", silent.local_addr().unwrap());

    let ca = ca_api::CaClient::new(&ca_url, Some("t".into())).unwrap();
    let policy = policy_api::client::RemotePolicy::new(&policy_url, Secret::new("t")).unwrap();
    let state = AppState::builder(
        common::ra_identity(),
        Arc::new(policy),
        Arc::new(ca_api::HttpCa::new(ca)),
        Settings::default(),
        Arc::new(ManualClock::new(common::now())),
    )
    .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ndes_proxy::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, body) = readyz(&base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], json!(["ca", "policy"]), "{body}");
    assert_eq!(body["checks"]["ca"], "failed");
    assert_eq!(body["checks"]["policy"], "timed_out");
    assert_eq!(body["checks"]["pending_store"], "ok");
    let _ = stop.send(());
    let _ = task.await;
    drop(silent);
}
