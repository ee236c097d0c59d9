//! The accept loop: hyper's HTTP/1 server with the limits `axum::serve` does not offer.
//!
//! - Header-read timeout: a client must finish its request line and headers within
//!   [`Settings::header_read_timeout`](crate::Settings) or the connection is closed (slowloris).
//!   Bodies are bounded by the per-request timeout of the router.
//! - Maximum connections: a semaphore permit is taken *before* `accept`, so beyond the cap new
//!   connections wait in the kernel's listen backlog instead of consuming memory and tasks.
//! - Shutdown: stop accepting, stop the retry task, let in-flight requests finish (bounded).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::AppState;
use crate::routes::router;

/// How long in-flight requests may run after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve the SCEP endpoints (and the admin pages) on `listener` until `shutdown` resolves; runs
/// the retry task for queued requests meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let settings = state.settings().clone();
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let retry = tokio::spawn(crate::queue::run(state, stop_rx));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a client that closes its side once it has sent a request (or gives up
    // waiting, F11) must not cancel that request midway; the server finishes it, so a resend
    // finds the outcome, and only the answer is lost.
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .half_close(true)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(remote = %remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    info!("shutting down: no new connections");
    let _ = stop_tx.send(true);
    let _ = retry.await;
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish in time; closing them");
    }
    Ok(())
}
