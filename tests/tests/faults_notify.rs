//! The policy module killed (`kill -9`) as the Notify of an inline issuance arrives, in the
//! deployment of separate processes on SQLite (issue #15 item 4). ndes-proxy reaches the policy
//! module through a relay that trips on the Notify: the test kills the policy module either
//! before the Notify reaches it or right after (its answer withheld, so it may or may not have
//! committed). Either way the CA has issued, ndes-proxy records the owed Notify and answers
//! 503, and the device never resends: once the policy module is back, ndes-proxy's retry task
//! puts the certificate in the inventory by itself; the reconciler is clean throughout (an
//! owed Notify being retried is no violation); a later resend gets the same certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scep::client::CertRep;
use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};
use scep_lab_tests::remote::{Admin, Enrollment, RemoteDevice};
use scep_lab_tests::{
    PROFILE, RawScep, ensure_clean, eventually, normalize_serial, serial_of, standard_profile_spec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Longest one SCEP exchange may take.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// The request line of a Notify on the wire (policy-api's HTTP client).
const NOTIFY: &[u8] = b"POST /internal/v1/notify";

/// A TCP relay to `upstream` that trips on the first Notify: it forwards that request or not
/// (`forward`), hands the test a oneshot to answer once it has killed the policy module, and
/// then drops the connection without relaying any answer. Later connections pass through.
async fn notify_tripwire(
    upstream: SocketAddr,
    forward: bool,
) -> (SocketAddr, mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trips, tripped) = mpsc::unbounded_channel();
    let armed = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (trips, armed) = (trips.clone(), armed.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return; // the policy module is down: the client sees the connection close
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let withheld = Arc::new(AtomicBool::new(false));
                let gate = withheld.clone();
                let answers = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                        if gate.load(Ordering::SeqCst)
                            || to_client.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                });
                let mut buf = vec![0u8; 16 * 1024];
                let mut tail: Vec<u8> = Vec::new();
                while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                    tail.extend_from_slice(&buf[..n]);
                    let is_notify = tail.windows(NOTIFY.len()).any(|w| w == NOTIFY);
                    tail.drain(..tail.len().saturating_sub(NOTIFY.len()));
                    if is_notify && armed.swap(false, Ordering::SeqCst) {
                        withheld.store(true, Ordering::SeqCst);
                        if forward {
                            let _ = to_server.write_all(&buf[..n]).await;
                        }
                        let (killed, wait) = oneshot::channel();
                        let _ = trips.send(killed);
                        let _ = wait.await;
                        break;
                    }
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                answers.abort();
            });
        }
    });
    (addr, tripped)
}

/// The serials of the certificates the CA recorded for the device named `name` (its CN).
async fn device_certificates(cluster: &Cluster, name: &str) -> Vec<String> {
    let mut out: Vec<String> = cluster
        .ca_certificates()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, der)| {
            let cert = openssl::x509::X509::from_der(der).unwrap();
            cert.subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .any(|e| e.data().as_slice() == name.as_bytes())
        })
        .map(|(serial, _)| normalize_serial(&serial))
        .collect();
    out.sort();
    out
}

async fn killed_as_the_notify_arrives(forward: bool, name: &str) {
    let mut cluster = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
    let token = cluster.layout().secret("policy-admin.token").unwrap();
    let token = token.expose().to_owned();
    let policy_url = cluster.policy_url(0);
    let admin = Admin::new(&policy_url, &token).unwrap();
    let root = cluster.layout().root_fingerprint.clone();
    let spec = standard_profile_spec("Notify faults", vec![cluster.scep_url(0)], &root);
    admin.create_profile(PROFILE, &spec).await.unwrap();
    let devices = tempfile::tempdir().unwrap();
    let d = RemoteDevice::register(&policy_url, &token, name, devices.path())
        .await
        .unwrap();
    admin.assign_device(PROFILE, &d.id).await.unwrap();
    let e = Enrollment::new(&d.rendered(&policy_url, PROFILE).await.unwrap()).unwrap();

    // ndes-proxy reaches the policy module through the tripwire.
    let ndes = ServiceId::new(Role::Ndes, 0);
    let policy = ServiceId::new(Role::Policy, 0);
    let upstream: SocketAddr = policy_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (relay, mut tripped) = notify_tripwire(upstream, forward).await;
    let config = cluster.config(ndes).to_owned();
    let original = std::fs::read_to_string(&config).unwrap();
    let policy_line = format!("url = \"{policy_url}\"");
    assert!(original.contains(&policy_line));
    std::fs::write(
        &config,
        original.replace(&policy_line, &format!("url = \"http://{relay}\"")),
    )
    .unwrap();
    cluster.restart(ndes).await.unwrap();
    let scep = Arc::new(
        RawScep::discover(&cluster.scep_url(0), &root)
            .await
            .unwrap(),
    );

    let (sent, s) = (Arc::new(e), scep.clone());
    let first = {
        let e = sent.clone();
        tokio::spawn(async move { tokio::time::timeout(HANG_GUARD, e.send(&s)).await })
    };
    let killed = tokio::time::timeout(HANG_GUARD, tripped.recv())
        .await
        .expect("the Notify reached the tripwire")
        .unwrap();
    cluster.kill(policy).unwrap();
    let _ = killed.send(());
    let err = first
        .await
        .unwrap()
        .expect("an answer within the hang guard")
        .unwrap_err();
    assert!(err.to_string().contains("503"), "Notify lost: {err}");
    let issued = device_certificates(&cluster, name).await;
    assert_eq!(issued.len(), 1, "the CA issued: {issued:?}");
    // An owed Notify still being retried is no violation.
    ensure_clean(&cluster.reconcile().await.unwrap()).unwrap();

    // The policy module is back; the device stays silent. The retry task delivers.
    cluster.restart(policy).await.unwrap();
    let admin = Admin::new(&policy_url, &token).unwrap();
    let held = |v: &serde_json::Value| -> Vec<String> {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| normalize_serial(c["serial_hex"].as_str().unwrap()))
            .collect()
    };
    eventually(
        "the inventory has the certificate without a resend",
        || async { Ok(!held(&admin.device(&d.id).await?).is_empty()) },
    )
    .await
    .unwrap();
    let inventory = held(&admin.device(&d.id).await.unwrap());
    assert_eq!(inventory.len(), 1, "{inventory:?}");
    assert_eq!(
        inventory, issued,
        "the inventory holds the CA's certificate"
    );

    // The device comes back after all: the same certificate, nothing issued twice.
    let rep = tokio::time::timeout(HANG_GUARD, sent.send(&scep))
        .await
        .unwrap()
        .unwrap();
    let CertRep::Success(certs) = rep else {
        panic!("SUCCESS expected, got {rep:?}");
    };
    assert_eq!(serial_of(&certs.certificates[0]).unwrap(), inventory[0]);
    assert_eq!(
        device_certificates(&cluster, name).await,
        issued,
        "issued once"
    );
    ensure_clean(&cluster.reconcile().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_module_killed_before_the_notify_reaches_it_the_inventory_still_gets_it() {
    killed_as_the_notify_arrives(false, "N-BEFORE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_module_killed_as_it_takes_the_notify_the_inventory_gets_it_once() {
    killed_as_the_notify_arrives(true, "N-AFTER").await;
}
