//! The CA's operational routes beside `/healthz`: `/readyz` (its store answers and its CRL file
//! can be written, each check bounded; foundation::http::ready) and `/metrics` (Prometheus).

use std::path::Path;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use foundation::http::ready::{self, Readiness};

use crate::state::AppState;

/// The CA's counters in the Prometheus text format.
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.ca.metrics().render(),
    )
        .into_response()
}

/// 200 or 503 within 2 s, the body naming what failed.
pub(crate) async fn readyz(State(s): State<AppState>) -> Response {
    let store = ready::check("store", s.ca.store().ping());
    let checks = match s.ca.crl_path() {
        Some(path) => {
            let (store, crl) = tokio::join!(store, ready::check("crl_file", crl_writable(path)));
            vec![store, crl]
        }
        None => vec![store.await],
    };
    let r = Readiness::of(checks);
    (r.status_code(), Json(r)).into_response()
}

/// The CRL file opens for writing (without changing it), or when it does not exist yet, a
/// probe file can be created (and removed) beside it.
async fn crl_writable(path: &Path) -> std::io::Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if path.exists() {
            return std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map(|_| ());
        }
        let mut probe = path.into_os_string();
        probe.push(".readyz-probe");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        std::fs::remove_file(&probe)
    })
    .await
    .map_err(std::io::Error::other)?
}
