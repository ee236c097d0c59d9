//! docs/decisions.md #11 (issue 15, item 1): once a retire, wipe or block is acknowledged, no
//! certificate of the device stays good past the outbox, whatever races it. A request granted
//! before the action and notified after it is recorded as revoking and queued in the same
//! transaction; one notified before it is revoked by the action; a request verified after it
//! is refused. Each interleaving runs many times on both stores.

use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use policy_module::admin::Lifecycle;
use policy_module::error::{Rejection, VerifyError};
use policy_module::model::CertStatus;
use policy_module::outbox::{OutboxConfig, OutboxWorker};
use policy_module::{NdesPolicy, Notification, Outcome, RequesterInfo, VerifyRequest};
use tokio::sync::Barrier;

use crate::both;
use crate::fake_ca::{FakeCa, Mode};
use crate::harness::{Enrolled, Harness, enrolled};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

/// Tries per interleaving (each on a fresh device), cycling through the three actions.
const TRIES: usize = 12;

const ACTIONS: [(Lifecycle, &str); 3] = [
    (Lifecycle::Retire, "retire"),
    (Lifecycle::Wipe, "wipe"),
    (Lifecycle::Block, "block"),
];

both!(
    a_notify_after_the_action_is_queued_for_revocation_when_it_is_recorded,
    a_notify_before_the_action_is_revoked_by_the_action,
    notify_and_the_action_at_once_always_end_queued,
    verify_and_notify_racing_the_action_end_refused_or_queued,
);

/// A device checked in with its challenge, and the request it will send.
struct Request {
    device: String,
    tx: String,
    key: PKey<Private>,
    verify: VerifyRequest,
}

async fn request(h: &Harness, device: &str) -> Request {
    let e: Enrolled = enrolled(h, device).await;
    let key = ec_key();
    let tx = format!("tx-{device}");
    let spec = CsrSpec::matching(&e.profile().expected, &e.challenge());
    let verify = VerifyRequest {
        facts: None,
        csr_der: csr(&key, &spec),
        challenge: None,
        transaction_id: tx.clone(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    };
    Request {
        device: device.into(),
        tx,
        key,
        verify,
    }
}

/// The CA issues for the request and Notify reports it; the serial and the notification.
async fn issue_and_notify(h: &Harness, ca: &TestCa, r: &Request) -> (String, Notification) {
    let (serial, n) = issue(ca, r);
    h.svc
        .notify(n.clone())
        .await
        .expect("Notify of an issued certificate is never dropped");
    (serial, n)
}

/// The CA's certificate for the request, as Notify reports it.
fn issue(ca: &TestCa, r: &Request) -> (String, Notification) {
    let (der, serial, thumb) = ca.issue(&r.key, 365);
    let n = Notification {
        transaction_id: r.tx.clone(),
        outcome: Outcome::Issued {
            serial: foundation::Serial::from_hex(&serial).unwrap(),
            thumbprint_sha256: thumb,
            not_after: 0,
            certificate_der: der,
        },
    };
    (serial, n)
}

/// Try `i` delays one side by 0-3 ms (the enrollment on odd tries, the action on even ones),
/// so the interleavings spread over both orders and the overlap between them.
async fn jitter(i: usize, enrollment: bool) {
    if (i % 2 == 1) == enrollment {
        tokio::time::sleep(std::time::Duration::from_millis((i / 2 % 4) as u64)).await;
    }
}

/// Nothing of `device` stays good: no certificate is `issued`, and each one is queued exactly
/// once in the outbox with the action's cause (or already revoked by the action's entry).
async fn assert_contained(h: &Harness, device: &str, serials: &[String], cause: &str) {
    let view = h.svc.device_view(device).await.unwrap();
    let outbox = h.svc.store().list_outbox(None).await.unwrap();
    assert_eq!(view.certificates.len(), serials.len(), "{device}");
    for c in &view.certificates {
        assert!(
            serials.contains(&c.serial_hex),
            "{device}: {}",
            c.serial_hex
        );
        assert_eq!(
            c.status,
            CertStatus::Revoking,
            "{device}: certificate {} left {:?} after {cause}",
            c.serial_hex,
            c.status
        );
        let entries: Vec<_> = outbox.iter().filter(|o| o.serial == c.serial_hex).collect();
        assert_eq!(entries.len(), 1, "{device}: outbox entries {entries:?}");
        assert_eq!(entries[0].cause, cause);
        assert_eq!(entries[0].state, "pending");
        assert_eq!(entries[0].device_id.as_deref(), Some(device));
    }
}

/// The outbox delivers every queued revocation once; each serial reaches the CA once.
async fn deliver(h: &Harness, serials: &[String]) {
    let ca = FakeCa::new(Mode::Ok);
    let worker = OutboxWorker::new(
        h.svc.store().clone(),
        Arc::new(ca.clone()),
        OutboxConfig::default(),
        h.svc.outbox_wake(),
    );
    while worker.run_once().await.unwrap() > 0 {}
    let revoked = ca.revoked();
    assert_eq!(revoked.len(), serials.len(), "{revoked:?}");
    for (serial, _, times) in &revoked {
        assert!(serials.contains(serial), "{serial}");
        assert_eq!(*times, 1, "{serial} revoked {times} times");
    }
}

fn refused_for_state(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::Rejected(
            Rejection::DeviceRetired | Rejection::DeviceWiped | Rejection::DeviceBlocked
        )
    )
}

async fn a_notify_after_the_action_is_queued_for_revocation_when_it_is_recorded(h: Harness) {
    let ca = TestCa::new();
    let mut all = Vec::new();
    for i in 0..TRIES {
        let (action, cause) = ACTIONS[i % ACTIONS.len()];
        let r = request(&h, &format!("after-{i}")).await;
        h.svc.verify_request(r.verify.clone()).await.unwrap();
        let queued = h.svc.lifecycle(&r.device, action).await.unwrap();
        assert!(queued.is_empty(), "nothing was recorded yet");
        let (serial, n) = issue_and_notify(&h, &ca, &r).await;
        assert_contained(&h, &r.device, std::slice::from_ref(&serial), cause).await;
        let view = h.svc.device_view(&r.device).await.unwrap();
        // The reason of the device's state: a block holds (docs/decisions.md #11).
        let reason = if cause == "block" {
            "certificateHold"
        } else {
            "cessationOfOperation"
        };
        assert_eq!(
            view.certificates[0].revocation_reason.as_deref(),
            Some(reason)
        );
        // A retransmitted Notify queues nothing twice; the retransmitted request is refused.
        h.svc.notify(n).await.unwrap();
        assert_contained(&h, &r.device, std::slice::from_ref(&serial), cause).await;
        let again = h.svc.verify_request(r.verify.clone()).await.unwrap_err();
        assert!(refused_for_state(&again), "{again:?}");
        all.push(serial);
    }
    deliver(&h, &all).await;
}

async fn a_notify_before_the_action_is_revoked_by_the_action(h: Harness) {
    let ca = TestCa::new();
    let mut all = Vec::new();
    for i in 0..TRIES {
        let (action, cause) = ACTIONS[i % ACTIONS.len()];
        let r = request(&h, &format!("before-{i}")).await;
        h.svc.verify_request(r.verify.clone()).await.unwrap();
        let (serial, _) = issue_and_notify(&h, &ca, &r).await;
        let queued = h.svc.lifecycle(&r.device, action).await.unwrap();
        assert_eq!(queued, vec![serial.clone()]);
        assert_contained(&h, &r.device, std::slice::from_ref(&serial), cause).await;
        all.push(serial);
    }
    deliver(&h, &all).await;
}

/// Granted and issued first; then Notify and the action start together behind a barrier.
async fn notify_and_the_action_at_once_always_end_queued(h: Harness) {
    let h = Arc::new(h);
    let ca = TestCa::new();
    let (mut by_notify, mut by_action) = (0, 0);
    let mut all = Vec::new();
    for i in 0..TRIES * 2 {
        let (action, cause) = ACTIONS[i % ACTIONS.len()];
        let r = Arc::new(request(&h, &format!("race-{i}")).await);
        h.svc.verify_request(r.verify.clone()).await.unwrap();
        let (serial, n) = issue(&ca, &r);
        let barrier = Arc::new(Barrier::new(2));
        let notify = tokio::spawn({
            let (h, barrier) = (h.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                jitter(i, true).await;
                h.svc.notify(n).await
            }
        });
        let act = tokio::spawn({
            let (h, r, barrier) = (h.clone(), r.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                jitter(i, false).await;
                h.svc.lifecycle(&r.device, action).await.unwrap()
            }
        });
        notify.await.unwrap().expect("Notify is never dropped");
        let queued = act.await.unwrap();
        if queued.is_empty() {
            by_notify += 1;
        } else {
            assert_eq!(queued, vec![serial.clone()]);
            by_action += 1;
        }
        assert_contained(&h, &r.device, std::slice::from_ref(&serial), cause).await;
        all.push(serial);
    }
    eprintln!("queued by Notify: {by_notify}, by the action: {by_action}");
    deliver(&h, &all).await;
}

/// VerifyRequest, then Notify, in one task; the action in another, started together.
async fn verify_and_notify_racing_the_action_end_refused_or_queued(h: Harness) {
    let h = Arc::new(h);
    let ca = Arc::new(TestCa::new());
    let (mut refused, mut issued) = (0, 0);
    let mut all = Vec::new();
    for i in 0..TRIES * 2 {
        let (action, cause) = ACTIONS[i % ACTIONS.len()];
        let r = Arc::new(request(&h, &format!("verify-{i}")).await);
        let barrier = Arc::new(Barrier::new(2));
        let enroll = tokio::spawn({
            let (h, ca, r, barrier) = (h.clone(), ca.clone(), r.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                jitter(i, true).await;
                match h.svc.verify_request(r.verify.clone()).await {
                    Ok(_) => Ok(issue_and_notify(&h, &ca, &r).await.0),
                    Err(e) => Err(e),
                }
            }
        });
        let act = tokio::spawn({
            let (h, r, barrier) = (h.clone(), r.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                jitter(i, false).await;
                h.svc.lifecycle(&r.device, action).await.unwrap()
            }
        });
        let outcome = enroll.await.unwrap();
        act.await.unwrap();
        match outcome {
            Err(e) => {
                assert!(refused_for_state(&e), "{e:?}");
                refused += 1;
                assert_contained(&h, &r.device, &[], cause).await;
            }
            Ok(serial) => {
                issued += 1;
                assert_contained(&h, &r.device, std::slice::from_ref(&serial), cause).await;
                all.push(serial);
            }
        }
    }
    eprintln!("refused at VerifyRequest: {refused}, issued and queued: {issued}");
    deliver(&h, &all).await;
}
