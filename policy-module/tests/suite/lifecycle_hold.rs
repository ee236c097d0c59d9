//! Issue 16 item 2 (docs/decisions.md #11): block holds and unblock releases through the
//! outbox, one serial's entries in order; delete revokes and keeps the device's history;
//! unassign supersedes; every reason is configurable.

use policy_module::admin::Lifecycle;
use policy_module::checkin::StatusReport;
use policy_module::error::AdminError;
use policy_module::model::{CertStatus, DeviceState};
use policy_module::service::RevocationReasons;
use policy_module::store::Assignment;

use crate::both;
use crate::fake_ca::{FakeCa, Mode};
use crate::harness::{Harness, enrolled};
use crate::lifecycle::{issue_all, statuses, worker};

both!(
    block_holds_and_unblock_releases_the_hold_at_the_ca,
    a_block_queued_behind_a_release_is_delivered_after_it,
    a_refused_release_leaves_the_certificate_held_and_named,
    delete_revokes_hides_the_device_and_keeps_its_history,
    unassign_supersedes,
    unassigned_while_blocked_is_not_released_by_unblock,
    delete_over_http_answers_the_queue_then_404,
);

async fn block_holds_and_unblock_releases_the_hold_at_the_ca(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    let ca = FakeCa::new(Mode::Ok);
    assert_eq!(
        h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap(),
        vec![serial.clone()]
    );
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 1);
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Held]);
    assert_eq!(ca.log(), vec![format!("revoke {serial} certificateHold")]);

    assert_eq!(
        h.svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap(),
        vec![serial.clone()]
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Releasing]);
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 1);
    assert_eq!(ca.log()[1], format!("release {serial}"));
    let view = h.svc.device_view("d1").await.unwrap();
    assert_eq!(view.certificates[0].status, CertStatus::Issued);
    assert_eq!(view.certificates[0].revocation_reason, None);
    // Good again: the check-in does not tell the device to enroll anew.
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let checkin = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert!(checkin.profiles[0].revoked_thumbprints.is_empty());
    let audit = h.svc.store().list_audit(Some("d1"), 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "release_confirmed"));
    assert!(
        h.svc
            .store()
            .list_outbox(Some("pending"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Block, unblock and block again before anything is delivered: the CA sees hold, release,
/// hold, in that order, and the inventory ends held (never issued while the CA holds it).
async fn a_block_queued_behind_a_release_is_delivered_after_it(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    h.svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap();
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoking]);
    let ca = FakeCa::new(Mode::Ok);
    let w = worker(&h, &ca);
    for _ in 0..3 {
        w.run_once().await.unwrap();
        // Until the last entry is delivered, the certificate is still being revoked.
        if ca.log().len() < 3 {
            assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoking]);
        }
    }
    assert_eq!(
        ca.log(),
        vec![
            format!("revoke {serial} certificateHold"),
            format!("release {serial}"),
            format!("revoke {serial} certificateHold"),
        ]
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Held]);
}

async fn a_refused_release_leaves_the_certificate_held_and_named(h: Harness) {
    enrolled(&h, "d1").await;
    issue_all(&h, "d1").await;
    let ca = FakeCa::new(Mode::Ok);
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    worker(&h, &ca).run_once().await.unwrap();
    ca.set(Mode::UnknownSerial);
    h.svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap();
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Held]);
    let failed = h.svc.store().list_outbox(Some("failed")).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, "release");
    // Not good at the CA, so the device is told to enroll anew.
    let view = h.svc.device_view("d1").await.unwrap();
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let checkin = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert_eq!(
        checkin.profiles[0].revoked_thumbprints,
        vec![view.certificates[0].thumbprint_sha256.to_ascii_lowercase()]
    );
    // Re-queued by an admin, it is delivered.
    assert!(h.svc.store().outbox_requeue(failed[0].id).await.unwrap());
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Releasing]);
    ca.set(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Issued]);
}

async fn delete_revokes_hides_the_device_and_keeps_its_history(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    // Deleting a blocked device revokes its held certificate for good.
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    let ca = FakeCa::new(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(
        h.svc.lifecycle("d1", Lifecycle::Delete).await.unwrap(),
        vec![serial.clone()]
    );
    assert!(matches!(
        h.svc.device_view("d1").await,
        Err(AdminError::NotFound)
    ));
    for again in [Lifecycle::Delete, Lifecycle::Unblock, Lifecycle::Retire] {
        assert!(
            matches!(
                h.svc.lifecycle("d1", again).await,
                Err(AdminError::NotFound)
            ),
            "{again:?} after delete"
        );
    }
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(
        ca.log(),
        vec![
            format!("revoke {serial} certificateHold"),
            format!("revoke {serial} cessationOfOperation"),
        ]
    );
    // Kept: the tombstone, its inventory and its history.
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    assert_eq!(d.state, DeviceState::Deleted);
    let certs = h.svc.store().certs_for_device("d1").await.unwrap();
    assert_eq!(certs[0].status, CertStatus::Revoked);
    let audit = h.svc.store().list_audit(Some("d1"), 50).await.unwrap();
    let events: Vec<&str> = audit.iter().map(|e| e.event.as_str()).collect();
    for e in ["device_registered", "device_blocked", "device_deleted"] {
        assert!(events.contains(&e), "{e} missing from {events:?}");
    }
    // A deleted device enrolls no more.
    let checkin = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert!(checkin.profiles.is_empty());
}

async fn unassign_supersedes(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    let target = Assignment {
        kind: "device".into(),
        id: "d1".into(),
    };
    h.svc.unassign("p1", target).await.unwrap();
    let ca = FakeCa::new(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(ca.log(), vec![format!("revoke {serial} superseded")]);
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoked]);
}

#[test]
fn reasons_default_as_intune_and_are_checked() {
    let d = RevocationReasons::default();
    assert_eq!(
        [&d.block, &d.retire, &d.wipe, &d.delete, &d.unassign],
        [
            "certificateHold",
            "cessationOfOperation",
            "cessationOfOperation",
            "cessationOfOperation",
            "superseded"
        ]
    );
    assert!(d.check().is_ok());
    let bad = RevocationReasons {
        wipe: "obliterated".into(),
        ..d
    };
    assert!(bad.check().unwrap_err().contains("wipe"));
    // The configuration file sets them (unknown keys refused, omitted ones default).
    let sample =
        policy_module::config::Config::from_toml(&format!("{}\n", policy_module::config::SAMPLE))
            .unwrap();
    assert_eq!(
        sample.service().revocation_reasons,
        RevocationReasons::default()
    );
    let edited = policy_module::config::SAMPLE.replace(
        "block = \"certificateHold\"",
        "block = \"cessationOfOperation\"",
    );
    let c = policy_module::config::Config::from_toml(&edited).unwrap();
    assert_eq!(c.service().revocation_reasons.block, "cessationOfOperation");
    let wrong = policy_module::config::SAMPLE
        .replace("block = \"certificateHold\"", "block = \"removeFromCRL\"");
    assert!(policy_module::config::Config::from_toml(&wrong).is_err());
}

/// `DELETE /api/v1/devices/{id}`: the queued serials, then 404 for the device, and it leaves
/// the device list.
async fn delete_over_http_answers_the_queue_then_404(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    let server = crate::api::start(&h).await;
    let admin = |m: &str, p: &str| server.req(m, p, Some(crate::api::ADMIN));
    let r = admin("delete", "/api/v1/devices/d1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["revocations_queued"], serde_json::json!([serial]));
    for (m, p) in [
        ("get", "/api/v1/devices/d1"),
        ("delete", "/api/v1/devices/d1"),
        ("post", "/api/v1/devices/d1/unblock"),
        ("delete", "/api/v1/devices/nobody"),
    ] {
        let r = admin(m, p).send().await.unwrap();
        assert_eq!(r.status(), 404, "{m} {p}");
    }
    let list: serde_json::Value = admin("get", "/api/v1/devices")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, serde_json::json!([]));
    let r = server
        .req("delete", "/api/v1/devices/d1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Block, unassign, unblock before anything is delivered: the certificate of the unassigned
/// profile is superseded after its hold, never released.
async fn unassigned_while_blocked_is_not_released_by_unblock(h: Harness) {
    enrolled(&h, "d1").await;
    let serial = issue_all(&h, "d1").await.remove(0);
    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    let target = Assignment {
        kind: "device".into(),
        id: "d1".into(),
    };
    assert_eq!(
        h.svc.unassign("p1", target).await.unwrap(),
        vec![serial.clone()]
    );
    assert!(
        h.svc
            .lifecycle("d1", Lifecycle::Unblock)
            .await
            .unwrap()
            .is_empty()
    );
    let ca = FakeCa::new(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(
        ca.log(),
        vec![
            format!("revoke {serial} certificateHold"),
            format!("revoke {serial} superseded"),
        ]
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoked]);
}
