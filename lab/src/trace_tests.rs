//! The timeline formatter on constructed traces: every event kind, a rejection, a renewal, a
//! revocation, an unreadable source, a device history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

const TX: &str = "7F3A0C";

fn ev(at_unix: i64, source: Source, event: &str) -> TraceEvent {
    TraceEvent {
        at: foundation::time::rfc3339(at_unix),
        at_unix,
        source,
        event: event.into(),
        transaction_id: Some(TX.into()),
        device_id: None,
        profile_id: None,
        profile_version: None,
        serial: None,
        actor: None,
        reason: None,
        detail: serde_json::Map::new(),
    }
}

fn with(mut e: TraceEvent, detail: Value) -> TraceEvent {
    if let Value::Object(m) = detail {
        e.detail.extend(m);
    }
    e
}

fn device(mut e: TraceEvent) -> TraceEvent {
    e.device_id = Some("dev-1".into());
    e.profile_id = Some("corp-device-cert".into());
    e.profile_version = Some(2);
    e
}

fn serial(mut e: TraceEvent, s: &str) -> TraceEvent {
    e.serial = Some(s.into());
    e
}

fn by(mut e: TraceEvent, actor: &str) -> TraceEvent {
    e.actor = Some(actor.into());
    e
}

fn trace(events: Vec<TraceEvent>) -> TransactionTrace {
    TransactionTrace {
        transaction_id: TX.into(),
        events,
        unavailable: Vec::new(),
    }
}

/// The line of the first event named `name`.
fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in\n{text}"))
}

const T: i64 = 1_796_638_500; // 2026-12-07T10:15:00Z

fn enrollment() -> Vec<TraceEvent> {
    use Source::*;
    vec![
        by(device(ev(T, PolicyModule, "challenge_issued")), "mdm"),
        device(ev(T + 1, PolicyModule, "checkin_delivered")),
        by(
            with(
                ev(T + 2, NdesProxy, "request_received"),
                json!({"message_type": "PKCSReq", "client_address": "127.0.0.1",
                       "algorithms": {"signature": "sha256WithRSAEncryption", "digest": "sha256",
                                      "content_encryption": "aes128cbc"}}),
            ),
            "ndes-1",
        ),
        with(
            device(ev(T + 2, PolicyModule, "request_granted")),
            json!({"template": "DeviceAuth", "grant_kid": "k1"}),
        ),
        by(
            with(
                serial(ev(T + 2, CaMock, "issued"), "3a26"),
                json!({"template": "DeviceAuth", "issued_under": "grant k1", "request_id": TX}),
            ),
            "ndes",
        ),
        serial(device(ev(T + 3, PolicyModule, "notified")), "3a26"),
        by(
            with(
                ev(T + 3, NdesProxy, "reply_sent"),
                json!({"message_type": "PKCSReq", "pki_status": "SUCCESS"}),
            ),
            "ndes-1",
        ),
    ]
}

#[test]
fn an_enrollment_and_its_revocation_read_as_a_timeline() {
    use Source::*;
    let mut events = enrollment();
    events.extend([
        by(
            with(
                serial(
                    device(ev(T + 60, PolicyModule, "revocation_queued")),
                    "3a26",
                ),
                json!({"action": "retire"}),
            ),
            "admin",
        ),
        by(
            with(
                serial(ev(T + 61, CaMock, "revoked"), "3a26"),
                json!({"reason": "cessationOfOperation", "request_id": TX}),
            ),
            "policy",
        ),
    ]);
    let text = format_trace(&trace(events));
    assert!(
        text.starts_with(&format!(
            "transaction {TX}: device dev-1, profile corp-device-cert v2; 9 events from \
             policy-module, ndes-proxy, ca-mock\n"
        )),
        "{text}"
    );
    let minted = line_of(&text, "challenge_issued");
    assert!(minted.contains("2026-12-07T10:15:00Z"), "{minted}");
    assert!(minted.contains("policy-module"), "{minted}");
    // The header names the device and profile; lines do not repeat them.
    assert!(minted.ends_with("challenge_issued      by mdm"), "{minted}");
    let received = line_of(&text, "request_received");
    assert!(received.contains("ndes-proxy"), "{received}");
    assert!(
        received.contains(
            "PKCSReq, from 127.0.0.1, algorithms sha256WithRSAEncryption/sha256/aes128cbc, by ndes-1"
        ),
        "{received}"
    );
    assert!(line_of(&text, "request_granted").contains("template DeviceAuth"));
    let issued = line_of(&text, "issued");
    assert!(issued.contains("ca-mock"), "{issued}");
    assert!(
        issued.contains("serial 3a26, template DeviceAuth, under grant k1, by ndes"),
        "{issued}"
    );
    // The transaction's own id is not repeated as a request id.
    assert!(!issued.contains("request "), "{issued}");
    assert!(line_of(&text, "reply_sent").contains("pkiStatus SUCCESS"));
    assert!(
        line_of(&text, "revocation_queued").contains("action retire, by admin"),
        "{text}"
    );
    assert!(line_of(&text, "revoked").contains("reason cessationOfOperation, by policy"));
    assert!(
        text.ends_with(
            "outcome: issued, certificate serial 3a26; later revoked (cessationOfOperation)\n"
        ),
        "{text}"
    );
    // One line per event between the header and the outcome, in the order given.
    assert_eq!(text.lines().count(), 11);
}

#[test]
fn every_event_kind_gets_a_line_with_its_name() {
    use Source::*;
    let kinds = [
        (PolicyModule, "challenge_issued"),
        (PolicyModule, "checkin_delivered"),
        (NdesProxy, "request_received"),
        (PolicyModule, "request_granted"),
        (PolicyModule, "request_rejected"),
        (CaMock, "issued"),
        (CaMock, "replayed"),
        (PolicyModule, "issuance_failed"),
        (PolicyModule, "notified"),
        (NdesProxy, "reply_sent"),
        (PolicyModule, "revocation_queued"),
        (PolicyModule, "release_queued"),
        (CaMock, "held"),
        (CaMock, "released"),
        (CaMock, "revoked"),
        (PolicyModule, "device_retired"),
    ];
    let events: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, (s, k))| ev(T + i as i64, *s, k))
        .collect();
    let text = format_trace(&trace(events));
    // Events with nothing to add end at their name.
    assert!(text.lines().all(|l| l == l.trim_end()), "{text:?}");
    for (i, (s, k)) in kinds.iter().enumerate() {
        let l = line_of(&text, k);
        assert!(l.contains(&foundation::time::rfc3339(T + i as i64)), "{l}");
        assert!(l.contains(source_name(*s)), "{l}");
    }
}

#[test]
fn a_rejection_names_its_reason_owner_and_the_failure_reply() {
    use Source::*;
    // The challenge is dev-1's; the rejection names its owner, and another device is named.
    let mut rejected = device(ev(T + 2, PolicyModule, "request_rejected"));
    rejected.reason = Some("ChallengeForAnotherDevice".into());
    let mut other = ev(T + 3, PolicyModule, "device_blocked");
    other.device_id = Some("dev-2".into());
    let events = vec![
        device(ev(T, PolicyModule, "challenge_issued")),
        with(
            ev(T + 2, NdesProxy, "request_received"),
            json!({"message_type": "PKCSReq"}),
        ),
        rejected,
        with(
            ev(T + 2, NdesProxy, "reply_sent"),
            json!({"pki_status": "FAILURE", "fail_info": "badRequest"}),
        ),
        other,
    ];
    let text = format_trace(&trace(events));
    assert!(
        text.starts_with(&format!(
            "transaction {TX}: device dev-1, profile corp-device-cert v2; 5 events"
        )),
        "{text}"
    );
    assert!(
        line_of(&text, "request_rejected").ends_with("reason ChallengeForAnotherDevice"),
        "{text}"
    );
    assert!(
        line_of(&text, "device_blocked").ends_with("device dev-2"),
        "{text}"
    );
    assert!(
        line_of(&text, "reply_sent").contains("pkiStatus FAILURE, failInfo badRequest"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "outcome: rejected: ChallengeForAnotherDevice; CertRep FAILURE failInfo badRequest\n"
        ),
        "{text}"
    );
}

#[test]
fn a_renewal_shows_the_client_transaction_and_the_certificate_it_renews() {
    use Source::*;
    let events = vec![
        with(
            ev(T, NdesProxy, "request_received"),
            json!({"message_type": "RenewalReq", "renews_serial": "0a01",
                   "request_id": "renewal-0123abcd"}),
        ),
        with(
            device(ev(T, PolicyModule, "request_granted")),
            json!({"renews_serial": "0a01", "request_id": "renewal-0123abcd"}),
        ),
        serial(ev(T, CaMock, "issued"), "0b02"),
    ];
    let text = format_trace(&trace(events));
    assert!(text.starts_with(&format!("transaction {TX}:")), "{text}");
    let received = line_of(&text, "request_received");
    assert!(
        received.contains("RenewalReq, renews 0a01, request renewal-0123abcd"),
        "{received}"
    );
    assert!(
        text.ends_with("outcome: issued, certificate serial 0b02; renews 0a01\n"),
        "{text}"
    );
}

#[test]
fn a_hold_released_and_an_unreadable_ca_are_told() {
    use Source::*;
    let mut events = enrollment();
    events.push(with(
        serial(ev(T + 9, CaMock, "held"), "3a26"),
        json!({"reason": "certificateHold"}),
    ));
    let t = trace(events.clone());
    assert!(
        format_trace(&t).contains("; later held (certificateHold)\n"),
        "{}",
        format_trace(&t)
    );
    events.push(serial(ev(T + 10, CaMock, "released"), "3a26"));
    let mut t = trace(events);
    t.unavailable = vec![CaMock];
    let text = format_trace(&t);
    assert!(text.contains("; later held, then released\n"), "{text}");
    assert!(
        text.ends_with("unavailable: ca-mock (could not be read; its events are missing above)\n"),
        "{text}"
    );
    let empty = format_trace(&trace(Vec::new()));
    assert_eq!(
        empty,
        format!("transaction {TX}: 0 events from no service\noutcome: no certificate issued\n")
    );
}

#[test]
fn a_device_history_names_each_transaction_and_how_to_read_on() {
    let h = DeviceHistory {
        device_id: "dev-1".into(),
        events: enrollment().into_iter().rev().collect(),
        unavailable: Vec::new(),
        next_before: Some(42),
    };
    let text = format_history(&h);
    assert!(
        text.starts_with("device dev-1: 7 events, newest first\n"),
        "{text}"
    );
    let lines: Vec<_> = text.lines().collect();
    assert!(lines[1].contains("reply_sent"), "newest first: {text}");
    assert!(lines[1].contains(&format!("tx {TX}")), "{text}");
    assert!(
        !text.contains("device dev-1,"),
        "the header names the device: {text}"
    );
    // An event's own transaction is not repeated as its request id.
    assert!(!text.contains(&format!("request {TX}")), "{text}");
    assert!(text.lines().all(|l| l == l.trim_end()), "{text:?}");
    assert!(
        text.ends_with("older events: scep-lab trace --device dev-1 --before 42\n"),
        "{text}"
    );
}
