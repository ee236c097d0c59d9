//! The accept loop: hyper's HTTP/1 server with the limits `axum::serve` does not offer.
//!
//! - Header-read timeout: a client must finish its request line and headers within
//!   [`Settings::header_read_timeout`](crate::Settings) or the connection is closed (slowloris).
//!   Bodies are bounded by the per-request timeout of the router.
//! - Maximum connections: a semaphore permit is taken *before* `accept`, so beyond the cap new
//!   connections wait in the kernel's listen backlog instead of consuming memory and tasks.
//! - Shutdown: stop accepting, stop the retry task, let in-flight requests finish (bounded).
//! - TLS ([`serve_tls`]): an HTTPS listener beside the plain one, each with its own loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use foundation::tls::ServerTls;
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
    serve_listeners((listener, app), None, state, shutdown).await
}

/// TLS on (issue 17 item 4): everything over HTTPS on `https` with `tls`'s certificate, and
/// SCEP alone, as NDES allows, over plain HTTP on `plain`; there any other path (mscep_admin's
/// passwords, the admin API's token) is refused with 403 naming its HTTPS URL under
/// `https_base` (e.g. `https://127.0.0.1:8443`). One retry task serves both.
pub async fn serve_tls(
    plain: TcpListener,
    https: TcpListener,
    state: AppState,
    tls: Arc<ServerTls>,
    https_base: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let scep_only = crate::routes::scep_only(app.clone(), https_base);
    serve_listeners((plain, scep_only), Some((https, app, tls)), state, shutdown).await
}

async fn serve_listeners(
    (plain, plain_app): (TcpListener, axum::Router),
    https: Option<(TcpListener, axum::Router, Arc<ServerTls>)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = state.settings().clone();
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let retry = tokio::spawn(crate::queue::run(state, stop_rx.clone()));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a client that closes its side once it has sent a request (or gives up
    // waiting, F11) must not cancel that request midway; the server finishes it, so a resend
    // finds the outcome, and only the answer is lost.
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .half_close(true)
        .keep_alive(true);
    let accept = || Accept {
        permits: permits.clone(),
        http: http.clone(),
        graceful: &graceful,
    };
    let plain_loop = accept().run(plain, plain_app, None, stop_rx.clone());
    let https_loop = async {
        if let Some((listener, app, tls)) = https {
            accept()
                .run(listener, app, Some(tls), stop_rx.clone())
                .await;
        }
    };
    let stopper = async move {
        shutdown.await;
        info!("shutting down: no new connections");
        let _ = stop_tx.send(true);
    };
    tokio::join!(stopper, plain_loop, https_loop);
    let _ = retry.await;
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish in time; closing them");
    }
    Ok(())
}

/// One listener's accept loop; connections share the permits and the graceful shutdown.
struct Accept<'a> {
    permits: Arc<Semaphore>,
    http: hyper::server::conn::http1::Builder,
    graceful: &'a GracefulShutdown,
}

impl Accept<'_> {
    async fn run(
        self,
        listener: TcpListener,
        app: axum::Router,
        tls: Option<Arc<ServerTls>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let stopped = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::pin!(stopped);
        loop {
            let permit = tokio::select! {
                () = &mut stopped => break,
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break, // the semaphore is never closed
                },
            };
            let (stream, remote) = tokio::select! {
                () = &mut stopped => break,
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
            let http = self.http.clone();
            let watcher = self.graceful.watcher();
            let acceptor = tls.as_ref().map(|t| t.acceptor());
            tokio::spawn(async move {
                let result = match acceptor {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => match foundation::tls::handshake(&acceptor, stream).await {
                        Ok(tls) => {
                            let conn = http.serve_connection(TokioIo::new(tls), service);
                            watcher.watch(conn).await
                        }
                        Err(e) => {
                            debug!(remote = %remote, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                    },
                };
                if let Err(e) = result {
                    debug!(remote = %remote, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}
