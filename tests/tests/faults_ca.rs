//! Backend faults at the SCEP endpoint (reliability.md part 3 (c)):
//!
//! - F7: ndes-proxy reaches the CA through a fault proxy that resets connections, blackholes
//!   them (accepts, never answers), answers after 10 s, or answers HTTP 500. Every request
//!   is answered (bounded by a hang guard) with PENDING, and the pending store holds it
//!   durably; when the CA is reachable again the same request completes with exactly one
//!   certificate, and the reconciler finds nothing.
//! - F8: the policy module unavailable (its database gone) fails closed: no PENDING, no
//!   issuance, HTTP 503.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use scep::client::CertRep;
use scep_lab_tests::remote::{Enrollment, RemoteDevice};
use scep_lab_tests::{PROFILE, TestLab};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Pass = 0,
    Reset = 1,
    Blackhole = 2,
    Slow = 3,
    Http500 = 4,
}

/// A TCP proxy in front of the CA whose behaviour a test switches. A switch also cuts the
/// connections already forwarded, so a pooled keep-alive connection cannot bypass the fault.
struct FaultProxy {
    addr: SocketAddr,
    mode: tokio::sync::watch::Sender<u8>,
}

impl FaultProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = tokio::sync::watch::channel(Mode::Pass as u8);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(serve(client, target, rx));
            }
        });
        Self { addr, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode as u8);
    }
}

async fn serve(
    mut client: TcpStream,
    target: SocketAddr,
    mut rx: tokio::sync::watch::Receiver<u8>,
) {
    let mode = *rx.borrow_and_update();
    match mode {
        // Closed without a word: the caller sees the connection end before any answer.
        m if m == Mode::Reset as u8 => drop(client),
        m if m == Mode::Blackhole as u8 => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        m if m == Mode::Http500 as u8 => {
            let mut buf = [0u8; 8192];
            let _ = client.read(&mut buf).await;
            let _ = client
                .write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                      content-length: 5\r\nconnection: close\r\n\r\noops!",
                )
                .await;
        }
        _ => {
            if mode == Mode::Slow as u8 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            if let Ok(mut upstream) = TcpStream::connect(target).await {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    _ = rx.changed() => {}
                }
            }
        }
    }
}

/// Longest any single request may take before the test calls it a hang.
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn enrollment(lab: &TestLab, dir: &std::path::Path, name: &str) -> Enrollment {
    let token = lab.tokens().policy_admin.expose().to_owned();
    let d = RemoteDevice::register(&lab.policy_url(), &token, name, dir)
        .await
        .unwrap();
    lab.assign(PROFILE, &d.id).await.unwrap();
    let profile = d.rendered(&lab.policy_url(), PROFILE).await.unwrap();
    Enrollment::new(&profile).unwrap()
}

/// How many device certificates the CA holds for `name` (its CN).
async fn certs_for(lab: &TestLab, name: &str) -> usize {
    lab.ca_records()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.subject.contains(&format!("CN={name}")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f7_ca_refused_blackholed_slow_or_500_queues_durably_and_completes_once() {
    let ca_port = testkit::free_port().unwrap();
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], ca_port))).await;
    let proxy_url = format!("http://{}", proxy.addr);
    let lab = TestLab::start_with(|o| {
        o.ports[0] = ca_port;
        o.ndes_ca_url = Some(proxy_url);
        o.ndes_settings.request_timeout = Duration::from_secs(4);
        o.ndes_settings.queue.tick = Duration::from_millis(200);
        o.ndes_settings.queue.backoff_base_secs = 1;
        o.ndes_settings.queue.backoff_max_secs = 2;
    })
    .await
    .unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let scep = lab.raw_scep().await.unwrap();
    let devices = tempfile::tempdir().unwrap();

    for (i, mode) in [Mode::Reset, Mode::Blackhole, Mode::Slow, Mode::Http500]
        .into_iter()
        .enumerate()
    {
        let name = format!("F7-{i}");
        let e = enrollment(&lab, devices.path(), &name).await;
        proxy.set(mode);
        let first = tokio::time::timeout(HANG_GUARD, e.send(&scep))
            .await
            .unwrap_or_else(|_| panic!("{mode:?}: no answer (hang)"));
        assert!(
            matches!(first, Ok(CertRep::Pending)),
            "{mode:?}: expected PENDING, got {first:?}"
        );
        // PENDING is a promise: the request is in the pending store.
        let report = lab.reconcile().await.unwrap();
        assert!(
            report.notes.iter().any(|n| n.contains("pending")),
            "{mode:?}: nothing queued: {report:?}"
        );
        if mode != Mode::Slow {
            // (A slow CA may still be about to issue: its late answer is checked below.)
            assert_eq!(
                certs_for(&lab, &name).await,
                0,
                "{mode:?}: issued while unreachable"
            );
        }

        // The CA comes back: the identical request completes (the queue or the retry).
        proxy.set(Mode::Pass);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rep = tokio::time::timeout(HANG_GUARD, e.send(&scep))
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: no answer (hang)"));
            match rep {
                Ok(CertRep::Success(_)) => break,
                Ok(CertRep::Pending) => {}
                other => panic!("{mode:?}: after recovery got {other:?}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode:?}: still not issued"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // A slow CA's late answer and the queued retry are one issuance.
        if mode == Mode::Slow {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        assert_eq!(certs_for(&lab, &name).await, 1, "{mode:?}: issued once");
    }
    let report = lab.assert_reconciled().await.unwrap();
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(report.inventory_certificates, 4);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_policy_module_unavailable_fails_closed() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let scep = lab.raw_scep().await.unwrap();
    let devices = tempfile::tempdir().unwrap();
    let e = enrollment(&lab, devices.path(), "F8").await;
    let before = lab.ca_records().await.unwrap().len();
    // The policy module loses its database.
    lab.policy().store().close().await;
    let rep = tokio::time::timeout(HANG_GUARD, e.send(&scep))
        .await
        .expect("no answer (hang)");
    let err = rep.expect_err("no grant without the policy module");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(
        lab.ca_records().await.unwrap().len(),
        before,
        "nothing issued"
    );
}
