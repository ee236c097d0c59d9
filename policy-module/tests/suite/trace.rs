//! Issue 16 item 1: one transaction's story and one device's history, from audit records
//! written with the state changes they record, merged with the CA's records.

use std::sync::{Arc, Mutex};

use ca_api::ClientError;
use ca_api::wire::{CaRecord, RecordList, RecordQuery};
use policy_api::contract::{Algorithms, ReplyReport};
use policy_api::trace::{Source, TraceEvent, TransactionTrace};
use policy_module::admin::Lifecycle;
use policy_module::error::AdminError;
use policy_module::trace::RecordSource;
use policy_module::{
    NdesPolicy, Notification, Outcome, Rejection, RequesterInfo, VerifyError, VerifyRequest,
};

use crate::both;
use crate::fake_ca::{FakeCa, Mode};
use crate::harness::{Enrolled, Harness, enrolled};
use crate::lifecycle::worker;
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

/// The CA's records as a test sets them; `down` answers like an unreachable CA.
#[derive(Debug, Default)]
struct FakeRecords {
    records: Mutex<Vec<CaRecord>>,
    down: Mutex<bool>,
}

#[async_trait::async_trait]
impl RecordSource for FakeRecords {
    async fn records(&self, q: &RecordQuery) -> Result<RecordList, ClientError> {
        if *self.down.lock().unwrap() {
            return Err(ClientError::Api {
                status: 503,
                error: "unavailable".into(),
                message: "down".into(),
            });
        }
        let records = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| q.request_id.as_deref().is_none_or(|id| id == r.request_id))
            .cloned()
            .collect();
        Ok(RecordList {
            records,
            next_after: None,
        })
    }
}

fn ca_issued(request_id: &str, serial: &str, at: i64) -> CaRecord {
    CaRecord {
        id: 1,
        at: foundation::time::rfc3339(at),
        at_unix: at,
        action: "issued".into(),
        serial: serial.into(),
        request_id: request_id.into(),
        actor: "ndes-proxy".into(),
        template: Some("DeviceAuth".into()),
        detail: Default::default(),
    }
}

/// What ndes-proxy sends for a PKCSReq (or a RenewalReq with its request id and signer).
fn request(
    e: &Enrolled,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    tx: &str,
) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der: csr(
            key,
            &CsrSpec::matching(&e.profile().expected, &e.challenge()),
        ),
        challenge: None,
        transaction_id: tx.into(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo {
            remote_addr: Some("127.0.0.1".into()),
            user_agent: Some("test-client/1".into()),
            instance: Some("ndes-a".into()),
            message_type: Some("PKCSReq".into()),
            client_transaction_id: Some(tx.into()),
            algorithms: Some(Algorithms {
                signature: "ec-sha256".into(),
                digest: "sha256".into(),
                content_encryption: "aes128cbc".into(),
            }),
        },
    }
}

async fn notify(
    h: &Harness,
    ca: &TestCa,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    request_id: &str,
) -> (Vec<u8>, String) {
    let (der, serial, thumb) = ca.issue(key, 365);
    h.svc
        .notify(Notification {
            transaction_id: request_id.into(),
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb,
                not_after: 0,
                certificate_der: der.clone(),
            },
        })
        .await
        .unwrap();
    (der, serial)
}

fn names(t: &TransactionTrace) -> Vec<&str> {
    t.events.iter().map(|e| e.event.as_str()).collect()
}

fn find<'a>(t: &'a TransactionTrace, event: &str) -> &'a TraceEvent {
    t.events
        .iter()
        .find(|e| e.event == event)
        .unwrap_or_else(|| panic!("no {event} in {:?}", names(t)))
}

both!(
    an_enrollment_tells_its_whole_story_in_time_order,
    a_rejection_names_the_challenges_owner,
    a_renewal_is_traced_under_the_clients_transaction_id,
    a_revocation_is_linked_through_the_serial,
    an_unreachable_ca_shortens_the_story_without_failing_it,
    device_history_is_newest_first_paged_and_kept_after_delete,
    a_failed_audit_write_rolls_the_grant_back,
);

async fn an_enrollment_tells_its_whole_story_in_time_order(h: Harness) {
    let records = Arc::new(FakeRecords::default());
    let svc = h.svc.clone().with_records(records.clone());
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    h.clock.advance(1);
    svc.verify_request(request(&e, &key, "tx-1")).await.unwrap();
    h.clock.advance(1);
    let (_, serial) = notify(&h, &TestCa::new(), &key, "tx-1").await;
    let issued_at = h.svc.store().now().await.unwrap();
    records
        .records
        .lock()
        .unwrap()
        .push(ca_issued("tx-1", &serial, issued_at));
    svc.reply_sent(ReplyReport {
        transaction_id: "tx-1".into(),
        request_id: None,
        message_type: "PKCSReq".into(),
        pki_status: "SUCCESS".into(),
        fail_info: None,
        instance: Some("ndes-a".into()),
    })
    .await;
    let t = svc.transaction_trace("tx-1").await.unwrap().unwrap();
    assert_eq!(
        names(&t),
        [
            "challenge_issued",
            "checkin_delivered",
            "request_received",
            "request_granted",
            "issued",
            "notified",
            "reply_sent"
        ],
        "{t:#?}"
    );
    assert!(t.unavailable.is_empty());
    assert!(t.events.windows(2).all(|w| w[0].at_unix <= w[1].at_unix));
    for ev in &t.events {
        assert_eq!(foundation::time::parse_rfc3339(&ev.at), Some(ev.at_unix));
    }
    let minted = find(&t, "challenge_issued");
    assert_eq!(minted.device_id.as_deref(), Some("d1"));
    assert_eq!(minted.profile_id.as_deref(), Some("p1"));
    assert_eq!(minted.profile_version, Some(1));
    assert_eq!(minted.actor.as_deref(), Some("device:d1"));
    assert!(find(&t, "checkin_delivered").detail.contains_key("checkin"));
    let received = find(&t, "request_received");
    assert_eq!(received.source, Source::NdesProxy);
    assert_eq!(received.actor.as_deref(), Some("ndes-a"));
    assert_eq!(received.detail["message_type"], "PKCSReq");
    assert_eq!(received.detail["client_address"], "127.0.0.1");
    assert_eq!(received.detail["algorithms"]["digest"], "sha256");
    assert_eq!(
        received.detail["algorithms"]["content_encryption"],
        "aes128cbc"
    );
    let granted = find(&t, "request_granted");
    assert_eq!(granted.transaction_id.as_deref(), Some("tx-1"));
    assert_eq!(granted.detail["template"], "DeviceAuth");
    assert_eq!(find(&t, "issued").source, Source::CaMock);
    assert_eq!(find(&t, "issued").serial.as_deref(), Some(serial.as_str()));
    assert_eq!(
        find(&t, "notified").serial.as_deref(),
        Some(serial.as_str())
    );
    let reply = find(&t, "reply_sent");
    assert_eq!(reply.detail["pki_status"], "SUCCESS");
    // No secret: the challenge is named by reference only.
    let text = serde_json::to_string(&t).unwrap();
    assert!(!text.contains(&e.challenge()));
    assert!(svc.transaction_trace("tx-unknown").await.unwrap().is_none());
}

async fn a_rejection_names_the_challenges_owner(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.svc
        .verify_request(request(&e, &ec_key(), "tx-1"))
        .await
        .unwrap();
    // The same challenge again, by someone else.
    let misuse = h.svc.verify_request(request(&e, &ec_key(), "tx-2")).await;
    assert_eq!(
        misuse.unwrap_err(),
        VerifyError::Rejected(Rejection::ChallengeAlreadyUsed)
    );
    let t = h.svc.transaction_trace("tx-2").await.unwrap().unwrap();
    assert_eq!(
        names(&t),
        [
            "challenge_issued",
            "checkin_delivered",
            "request_received",
            "request_rejected"
        ],
        "{t:#?}"
    );
    let rejected = find(&t, "request_rejected");
    assert_eq!(rejected.reason.as_deref(), Some("ChallengeAlreadyUsed"));
    assert_eq!(rejected.device_id.as_deref(), Some("d1"));
    assert_eq!(rejected.profile_id.as_deref(), Some("p1"));
    assert_eq!(rejected.profile_version, Some(1));
    // The CA is not configured in this service: said, not failed.
    assert_eq!(t.unavailable, [Source::CaMock]);
}

async fn a_renewal_is_traced_under_the_clients_transaction_id(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    h.svc
        .verify_request(request(&e, &key, "tx-1"))
        .await
        .unwrap();
    let (cert, old_serial) = notify(&h, &TestCa::new(), &key, "tx-1").await;
    h.advance(300 * 86_400).await;
    let new_key = ec_key();
    let spec = CsrSpec {
        challenge: None,
        ..CsrSpec::matching(&e.profile().expected, &e.challenge())
    };
    let mut renewal = request(&e, &new_key, "renewal-0123abcd");
    renewal.csr_der = csr(&new_key, &spec);
    renewal.signer_cert_der = Some(cert);
    renewal.requester.message_type = Some("RenewalReq".into());
    renewal.requester.client_transaction_id = Some("tx-renew".into());
    let grant = h.svc.verify_request(renewal).await.unwrap();
    assert!(grant.renewal);
    let (_, new_serial) = notify(&h, &TestCa::new(), &new_key, "renewal-0123abcd").await;
    let t = h.svc.transaction_trace("tx-renew").await.unwrap().unwrap();
    assert_eq!(
        names(&t),
        ["request_received", "request_granted", "notified"],
        "{t:#?}"
    );
    for ev in &t.events {
        assert_eq!(ev.transaction_id.as_deref(), Some("tx-renew"), "{ev:?}");
        assert_eq!(ev.detail["request_id"], "renewal-0123abcd");
        assert_eq!(ev.detail["renews_serial"], old_serial.as_str(), "{ev:?}");
    }
    assert_eq!(
        find(&t, "notified").serial.as_deref(),
        Some(new_serial.as_str())
    );
    // The request id finds the same story.
    let by_id = h
        .svc
        .transaction_trace("renewal-0123abcd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&by_id), names(&t));
}

async fn a_revocation_is_linked_through_the_serial(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let key = ec_key();
    h.svc
        .verify_request(request(&e, &key, "tx-1"))
        .await
        .unwrap();
    let (_, serial) = notify(&h, &TestCa::new(), &key, "tx-1").await;
    h.svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();
    let ca = FakeCa::new(Mode::Ok);
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 1);
    let t = h.svc.transaction_trace("tx-1").await.unwrap().unwrap();
    let queued = find(&t, "revocation_queued");
    assert_eq!(queued.serial.as_deref(), Some(serial.as_str()));
    assert_eq!(queued.actor.as_deref(), Some("admin"));
    assert_eq!(queued.reason.as_deref(), Some("cessationOfOperation"));
    assert_eq!(queued.detail["action"], "retire");
    assert_eq!(queued.transaction_id.as_deref(), Some("tx-1"));
    let revoked = find(&t, "revoked");
    assert_eq!(revoked.serial.as_deref(), Some(serial.as_str()));
    assert_eq!(revoked.detail["action"], "retire");
    let at = |n: &str| t.events.iter().position(|e| e.event == n).unwrap();
    assert!(at("notified") < at("revocation_queued") && at("revocation_queued") < at("revoked"));
}

async fn an_unreachable_ca_shortens_the_story_without_failing_it(h: Harness) {
    let records = Arc::new(FakeRecords::default());
    *records.down.lock().unwrap() = true;
    let svc = h.svc.clone().with_records(records);
    let e = enrolled(&h, "d1").await;
    svc.verify_request(request(&e, &ec_key(), "tx-1"))
        .await
        .unwrap();
    let t = svc.transaction_trace("tx-1").await.unwrap().unwrap();
    assert_eq!(t.unavailable, [Source::CaMock]);
    assert!(names(&t).contains(&"request_granted"));
}

async fn device_history_is_newest_first_paged_and_kept_after_delete(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.clock.advance(1);
    h.svc
        .verify_request(request(&e, &ec_key(), "tx-1"))
        .await
        .unwrap();
    h.clock.advance(1);
    h.svc.lifecycle("d1", Lifecycle::Delete).await.unwrap();
    let all = h.svc.device_history("d1", None, 100).await.unwrap();
    let events: Vec<&str> = all.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events.first(), Some(&"device_deleted"), "{events:?}");
    assert_eq!(events.last(), Some(&"device_registered"), "{events:?}");
    assert!(events.contains(&"request_granted"));
    assert!(all.events.windows(2).all(|w| w[0].at_unix >= w[1].at_unix));
    assert!(all.next_before.is_none());
    // Two at a time, every event once, in the same order.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = h.svc.device_history("d1", before, 2).await.unwrap();
        paged.extend(page.events.iter().map(|e| e.event.clone()));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(paged, events);
    assert!(matches!(
        h.svc.device_history("nope", None, 10).await,
        Err(AdminError::NotFound)
    ));
}

async fn a_failed_audit_write_rolls_the_grant_back(h: Harness) {
    let e = enrolled(&h, "d1").await;
    h.ddl("DROP TABLE audit").await;
    let key = ec_key();
    let result = h.svc.verify_request(request(&e, &key, "tx-1")).await;
    assert_eq!(result.unwrap_err(), VerifyError::Unavailable);
    // Neither the request nor the challenge's reservation was kept without its record.
    assert!(h.svc.store().get_request("tx-1").await.unwrap().is_none());
    let challenge = foundation::secret::Secret::new(e.challenge()).digest();
    let row = h
        .svc
        .store()
        .get_challenge(&challenge)
        .await
        .unwrap()
        .unwrap();
    assert!(row.reserved_tx.is_none());
}
