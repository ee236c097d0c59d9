//! A Notify lost because the policy module was down is owed, never dropped: after a queued
//! request issues, after an administrator's denial, and when a CertPoll is answered from the
//! CA's record. Otherwise the device would hold a certificate its inventory never learns of,
//! which retire, wipe and block could then never revoke (invariant I7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Device, Server, failure, issued, pending, poll_body};
use ndes_proxy::auth::BearerToken;
use ndes_proxy::pending::{PendingRecord, StateKind};
use ndes_proxy::{QueueSettings, Settings};
use policy_api::{Notification, Outcome};
use scep::{FailInfo, RequestBody};

const TOKEN: &str = "admin-token-for-owed-notify";

/// A fast retry task (every 20 ms, no backoff), so a test waits on it, not on a poll.
fn fast_queue() -> Settings {
    Settings {
        queue: QueueSettings {
            tick: Duration::from_millis(20),
            backoff_base_secs: 0,
            ..QueueSettings::default()
        },
        ..Settings::default()
    }
}

/// The row once `done` holds for it; panics after about ten seconds.
async fn wait_for_row(
    s: &Server,
    id: &str,
    done: impl Fn(&PendingRecord) -> bool,
) -> PendingRecord {
    for _ in 0..500 {
        if let Some(r) = s.state.pending().get(id).await.unwrap()
            && done(&r)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("row {id} never reached the expected state");
}

fn notes(s: &Server) -> Vec<Notification> {
    s.policy.notifications.lock().unwrap().clone()
}

/// The DER of every Issued notification so far.
fn issued_notes(s: &Server) -> Vec<Vec<u8>> {
    notes(s)
        .into_iter()
        .filter_map(|n| match n.outcome {
            Outcome::Issued {
                certificate_der, ..
            } => Some(certificate_der),
            Outcome::Failed { .. } => None,
        })
        .collect()
}

async fn poll_status(s: &Server, d: &Device, cn: &str) -> u16 {
    s.post("/scep?operation=PKIOperation", d.request(&poll_body(cn)))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_notify_lost_after_a_queued_issuance_is_delivered_by_the_retry_task() {
    let s = Server::start_with(&["q1"], fast_queue()).await;
    let d = Device::new(0, "owed-queued");
    let id = d.tx.transaction_id.as_str().to_owned();
    s.ca.down.store(true, Ordering::SeqCst);
    pending(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("q1")))).await);
    // The CA comes back while the policy module is down: the retry task issues, Notify fails.
    s.policy.notify_down.store(true, Ordering::SeqCst);
    s.ca.down.store(false, Ordering::SeqCst);
    let row = wait_for_row(&s, &id, |r| r.state.kind() == StateKind::Issued).await;
    assert_eq!(row.notified_at, None, "the Notify is owed: {row:?}");
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    assert!(issued_notes(&s).is_empty());
    // The device polls meanwhile: no SUCCESS the inventory has not heard of.
    assert_eq!(poll_status(&s, &d, "owed-queued").await, 503);
    // The policy module returns: the retry task delivers without any device traffic.
    s.policy.notify_down.store(false, Ordering::SeqCst);
    let row = wait_for_row(&s, &id, |r| r.notified_at.is_some()).await;
    let ndes_proxy::pending::PendingState::Issued { cert_der, .. } = row.state else {
        panic!("issued row expected, got {row:?}");
    };
    assert_eq!(issued_notes(&s), vec![cert_der.clone()]);
    // The device's next poll gets that certificate, and Notify is not repeated.
    let cert = issued(d.send(&s, &poll_body("owed-queued")).await);
    assert_eq!(cert.to_der().unwrap(), cert_der);
    assert_eq!(issued_notes(&s).len(), 1, "delivered once");
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1, "issued once");
}

#[tokio::test]
async fn a_retransmission_delivers_an_owed_notify_itself() {
    // A retry task that never ticks: only the device's retransmission can deliver.
    let settings = Settings {
        queue: QueueSettings {
            tick: Duration::from_secs(3600),
            ..QueueSettings::default()
        },
        ..Settings::default()
    };
    let s = Server::start_with(&["q2"], settings).await;
    let d = Device::new(1, "owed-retransmitted");
    let body = RequestBody::PkcsReq(d.csr(Some("q2")));
    s.ca.down.store(true, Ordering::SeqCst);
    pending(d.send(&s, &body).await);
    s.ca.down.store(false, Ordering::SeqCst);
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let r = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(
        r.status(),
        503,
        "issued at the CA, but not yet heard by policy"
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    s.policy.notify_down.store(false, Ordering::SeqCst);
    let cert = issued(d.send(&s, &body).await);
    assert_eq!(issued_notes(&s), vec![cert.to_der().unwrap()]);
    let row = s
        .state
        .pending()
        .get(d.tx.transaction_id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(row.notified_at.is_some(), "marked delivered: {row:?}");
    assert_eq!(
        issued(d.send(&s, &body).await).to_der().unwrap(),
        cert.to_der().unwrap()
    );
    assert_eq!(issued_notes(&s).len(), 1, "not delivered twice");
}

#[tokio::test]
async fn a_denial_the_policy_module_missed_is_delivered_later() {
    let settings = Settings {
        approval_templates: ["DeviceTemplate".to_owned()].into(),
        ..fast_queue()
    };
    let s = Server::start_configured(&["q3"], settings, |b| {
        b.admin_token(BearerToken::new(TOKEN).unwrap())
    })
    .await;
    let d = Device::new(2, "owed-denied");
    let id = d.tx.transaction_id.as_str().to_owned();
    pending(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("q3")))).await);
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let denied = s
        .http
        .post(format!("{}/admin/v1/pending/{id}/deny", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200, "the denial itself is recorded");
    assert!(notes(&s).is_empty());
    assert_eq!(
        failure(d.send(&s, &poll_body("owed-denied")).await),
        FailInfo::BadRequest,
        "a denied request fails whether or not policy has heard"
    );
    s.policy.notify_down.store(false, Ordering::SeqCst);
    wait_for_row(&s, &id, |r| r.notified_at.is_some()).await;
    let notes = notes(&s);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].transaction_id, id);
    assert!(
        matches!(&notes[0].outcome, Outcome::Failed { reason } if reason == "denied_by_administrator"),
        "{:?}",
        notes[0].outcome
    );
    assert!(s.ca.issued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cert_poll_answered_from_the_ca_record_notifies_first() {
    let s = Server::start(&["q4"]).await;
    let d = Device::new(3, "owed-polled");
    // Inline issuance, Notify lost: 503 (the existing contract), the CA holds the certificate.
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let r = s
        .post(
            "/scep?operation=PKIOperation",
            d.request(&RequestBody::PkcsReq(d.csr(Some("q4")))),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    // The client polls instead of retransmitting: still no SUCCESS while policy is down.
    assert_eq!(poll_status(&s, &d, "owed-polled").await, 503);
    assert!(issued_notes(&s).is_empty());
    s.policy.notify_down.store(false, Ordering::SeqCst);
    let cert = issued(d.send(&s, &poll_body("owed-polled")).await);
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    assert_eq!(issued_notes(&s), vec![cert.to_der().unwrap()]);
    let Outcome::Issued { serial, .. } = &notes(&s)[0].outcome else {
        unreachable!()
    };
    assert_eq!(*serial, foundation::Serial::of_certificate(&cert).unwrap());
}

/// Inline issuance whose Notify fails, and a device that never comes back: the owed Notify is
/// recorded with the certificate and the retry task delivers it on its own; a later
/// retransmission and a CertPoll answer from that row (issue #15 item 4).
async fn inline_notify_lost_without_a_resend(store: std::sync::Arc<dyn ndes_proxy::PendingStore>) {
    let s = Server::start_configured(&["q5"], fast_queue(), |b| b.pending_store(store)).await;
    let d = Device::new(0, "owed-inline");
    let id = d.tx.transaction_id.as_str().to_owned();
    let body = RequestBody::PkcsReq(d.csr(Some("q5")));
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let r = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(r.status(), 503, "issued, but the inventory has not heard");
    let (_, ca_issued) = s.ca.issued.lock().unwrap().get(&id).cloned().unwrap();
    // Durable before the answer: the certificate and the owed Notify are in the store.
    let row = s.state.pending().get(&id).await.unwrap();
    let row = row.expect("an owed-notify row for the inline issuance");
    let ndes_proxy::pending::PendingState::Issued { cert_der, .. } = &row.state else {
        panic!("issued row expected, got {row:?}");
    };
    assert_eq!(*cert_der, ca_issued.der);
    assert_eq!(row.notified_at, None, "owed: {row:?}");
    assert!(issued_notes(&s).is_empty());
    // The policy module returns; the device stays silent. The retry task delivers.
    s.policy.notify_down.store(false, Ordering::SeqCst);
    wait_for_row(&s, &id, |r| r.notified_at.is_some()).await;
    assert_eq!(issued_notes(&s), vec![ca_issued.der.clone()]);
    // Still retrievable, by retransmission and by CertPoll, without a second Notify or CA call.
    let again = issued(d.send(&s, &body).await);
    assert_eq!(again.to_der().unwrap(), ca_issued.der);
    let polled = issued(d.send(&s, &poll_body("owed-inline")).await);
    assert_eq!(polled.to_der().unwrap(), ca_issued.der);
    assert_eq!(issued_notes(&s).len(), 1, "delivered once");
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1, "issued once");
    s.shutdown().await;
}

#[tokio::test]
async fn an_inline_notify_lost_is_delivered_without_a_resend_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = ndes_proxy::SqlPendingStore::sqlite_file(&dir.path().join("pending.db"))
        .await
        .unwrap();
    inline_notify_lost_without_a_resend(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn an_inline_notify_lost_is_delivered_without_a_resend_on_postgres() {
    let Some(pg) = testkit::pg::shared().unwrap() else {
        return; // binaries missing and CI is not true: testkit printed "skipped"
    };
    let url = pg.fresh_database().unwrap();
    let store = ndes_proxy::SqlPendingStore::postgres(&url).await.unwrap();
    inline_notify_lost_without_a_resend(std::sync::Arc::new(store)).await;
}
