//! Lifecycle transitions, revocation through the outbox, and delivery across a restart.

use std::sync::Arc;

use foundation::secret::Secret;
use policy_module::admin::Lifecycle;
use policy_module::checkin::StatusReport;
use policy_module::error::AdminError;
use policy_module::model::{CertStatus, DeviceState, Group};
use policy_module::outbox::{HttpRevoker, OutboxConfig, OutboxWorker};
use policy_module::store::Assignment;
use policy_module::{NdesPolicy, Notification, Outcome, RequesterInfo, VerifyRequest};

use crate::both;
use crate::fake_ca::{CA_TOKEN, FakeCa, Mode};
use crate::harness::{Harness, enrolled, profile_spec};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

/// Enrolls `device` under every profile it is targeted by; returns the serials.
pub(crate) async fn issue_all(h: &Harness, device: &str) -> Vec<String> {
    issue_all_with(&h.svc, device).await
}

/// [`issue_all`] through a given service (one with other settings over the same store).
pub(crate) async fn issue_all_with(
    svc: &policy_module::PolicyService,
    device: &str,
) -> Vec<String> {
    let d = svc.store().get_device(device).await.unwrap().unwrap();
    let checkin = svc.checkin(&d, &StatusReport::default()).await.unwrap();
    let ca = TestCa::new();
    let mut serials = Vec::new();
    for p in checkin.profiles {
        let key = ec_key();
        let tx = format!("tx-{device}-{}", p.profile_id);
        let spec = CsrSpec::matching(&p.expected, p.challenge.expose());
        let req = VerifyRequest {
            facts: None,
            csr_der: csr(&key, &spec),
            challenge: None,
            transaction_id: tx.clone(),
            template: None,
            signer_cert_der: None,
            requester: RequesterInfo::default(),
        };
        svc.verify_request(req).await.unwrap();
        // Each device's own subject, for the subject search (issue 18).
        let cn = format!("LAPTOP-{device}");
        let (der, serial, thumb) = ca.issue_as(&key, 365, &[("O", "Contoso"), ("CN", &cn)]);
        svc.notify(Notification {
            transaction_id: tx,
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb,
                not_after: 0,
                certificate_der: der,
            },
        })
        .await
        .unwrap();
        serials.push(serial);
    }
    serials
}

pub(crate) fn worker(h: &Harness, ca: &FakeCa) -> OutboxWorker {
    let config = OutboxConfig {
        base_delay_secs: 5,
        ..OutboxConfig::default()
    };
    OutboxWorker::new(
        h.svc.store().clone(),
        Arc::new(ca.clone()),
        config,
        h.svc.outbox_wake(),
    )
}

pub(crate) async fn statuses(h: &Harness, device: &str) -> Vec<CertStatus> {
    let view = h.svc.device_view(device).await.unwrap();
    view.certificates.iter().map(|c| c.status).collect()
}

both!(
    lifecycle_moves_follow_the_state_machine,
    retire_revokes_every_certificate_and_queues_a_retire_command,
    wipe_revokes_and_queues_a_wipe_command_that_the_device_acknowledges,
    block_holds_and_unblock_restores_challenges_without_reissuing,
    checkin_after_unblock_names_the_revoked_thumbprint_of_the_profile,
    unassigning_a_profile_revokes_only_its_certificates,
    leaving_a_group_revokes_group_targeted_certificates,
    transient_ca_failures_back_off_and_permanent_ones_are_recorded,
    retire_while_the_ca_is_down_survives_a_restart_and_revokes_exactly_once,
);

async fn lifecycle_moves_follow_the_state_machine(h: Harness) {
    enrolled(&h, "d1").await;
    let svc = &h.svc;
    let illegal = |r: Result<Vec<String>, AdminError>| matches!(r, Err(AdminError::Conflict(_)));
    assert!(illegal(svc.lifecycle("d1", Lifecycle::Unblock).await));
    svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    assert!(illegal(svc.lifecycle("d1", Lifecycle::Block).await));
    svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap();
    svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();
    for a in [
        Lifecycle::Retire,
        Lifecycle::Wipe,
        Lifecycle::Block,
        Lifecycle::Unblock,
    ] {
        assert!(illegal(svc.lifecycle("d1", a).await), "{a:?} after retire");
    }
    assert!(matches!(
        svc.lifecycle("nope", Lifecycle::Block).await,
        Err(AdminError::NotFound)
    ));
    let d = svc.store().get_device("d1").await.unwrap().unwrap();
    assert_eq!(d.state, DeviceState::Retired);
}

async fn retire_revokes_every_certificate_and_queues_a_retire_command(h: Harness) {
    enrolled(&h, "d1").await;
    h.svc.create_profile("p2", profile_spec()).await.unwrap();
    h.svc
        .assign(
            "p2",
            Assignment {
                kind: "device".into(),
                id: "d1".into(),
            },
        )
        .await
        .unwrap();
    let serials = issue_all(&h, "d1").await;
    assert_eq!(serials.len(), 2);
    let mut queued = h.svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();
    queued.sort();
    let mut expected = serials.clone();
    expected.sort();
    assert_eq!(queued, expected);
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoking; 2]);
    let ca = FakeCa::new(Mode::Ok);
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 2);
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoked; 2]);
    let revoked = ca.revoked();
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked
            .iter()
            .all(|(_, reason, n)| reason == "cessationOfOperation" && *n == 1)
    );
    // Nothing left to deliver.
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 0);
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let checkin = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert!(checkin.profiles.is_empty());
    assert_eq!(checkin.commands.len(), 1);
    assert_eq!(checkin.commands[0].kind, "retire");
}

async fn wipe_revokes_and_queues_a_wipe_command_that_the_device_acknowledges(h: Harness) {
    enrolled(&h, "d1").await;
    let serials = issue_all(&h, "d1").await;
    assert_eq!(
        h.svc.lifecycle("d1", Lifecycle::Wipe).await.unwrap(),
        serials
    );
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let first = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert_eq!(first.state, DeviceState::Wiped);
    assert_eq!(first.commands[0].kind, "wipe");
    let ack = StatusReport {
        acknowledged_commands: vec![first.commands[0].id.clone()],
        ..Default::default()
    };
    let second = h.svc.checkin(&d, &ack).await.unwrap();
    assert!(second.commands.is_empty());
    let ca = FakeCa::new(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(ca.revoked().len(), 1);
}

async fn block_holds_and_unblock_restores_challenges_without_reissuing(h: Harness) {
    enrolled(&h, "d1").await;
    issue_all(&h, "d1").await;
    assert_eq!(
        h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap().len(),
        1
    );
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    assert!(
        h.svc
            .checkin(&d, &StatusReport::default())
            .await
            .unwrap()
            .profiles
            .is_empty()
    );
    // The hold, not yet delivered, is released after it (docs/decisions.md #11).
    assert_eq!(
        h.svc
            .lifecycle("d1", Lifecycle::Unblock)
            .await
            .unwrap()
            .len(),
        1
    );
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    assert_eq!(
        h.svc
            .checkin(&d, &StatusReport::default())
            .await
            .unwrap()
            .profiles
            .len(),
        1
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Releasing]);
}

/// With block configured to revoke for good (not the default hold), unblock cannot release,
/// and the check-in names the revoked certificate so the device enrolls anew.
async fn checkin_after_unblock_names_the_revoked_thumbprint_of_the_profile(mut h: Harness) {
    let mut config = policy_module::ServiceConfig::default();
    config.revocation_reasons.block = "cessationOfOperation".into();
    h.svc = policy_module::PolicyService::new(h.svc.store().clone(), config);
    enrolled(&h, "d1").await;
    issue_all(&h, "d1").await;
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let before = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert!(before.profiles[0].revoked_thumbprints.is_empty());
    let json = serde_json::to_value(&before).unwrap();
    assert_eq!(
        json["profiles"][0]["revoked_thumbprints"],
        serde_json::json!([])
    );

    h.svc.lifecycle("d1", Lifecycle::Block).await.unwrap();
    h.svc.lifecycle("d1", Lifecycle::Unblock).await.unwrap();
    let view = h.svc.device_view("d1").await.unwrap();
    let thumb = view.certificates[0].thumbprint_sha256.clone();
    let d = h.svc.store().get_device("d1").await.unwrap().unwrap();
    let after = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert_eq!(after.profiles.len(), 1);
    assert_eq!(after.profiles[0].revoked_thumbprints, vec![thumb.clone()]);
    let json = serde_json::to_value(&after).unwrap();
    assert_eq!(
        json["profiles"][0]["revoked_thumbprints"],
        serde_json::json!([thumb])
    );

    // Confirmed by the CA (revoked), it is still named.
    let ca = FakeCa::new(Mode::Ok);
    worker(&h, &ca).run_once().await.unwrap();
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoked]);
    let after = h.svc.checkin(&d, &StatusReport::default()).await.unwrap();
    assert_eq!(after.profiles[0].revoked_thumbprints, vec![thumb]);
}

async fn unassigning_a_profile_revokes_only_its_certificates(h: Harness) {
    enrolled(&h, "d1").await;
    h.svc.create_profile("p2", profile_spec()).await.unwrap();
    h.svc
        .assign(
            "p2",
            Assignment {
                kind: "device".into(),
                id: "d1".into(),
            },
        )
        .await
        .unwrap();
    issue_all(&h, "d1").await;
    let queued = h
        .svc
        .unassign(
            "p2",
            Assignment {
                kind: "device".into(),
                id: "d1".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    let view = h.svc.device_view("d1").await.unwrap();
    for c in &view.certificates {
        let expected = if c.profile_id.as_deref() == Some("p2") {
            CertStatus::Revoking
        } else {
            CertStatus::Issued
        };
        assert_eq!(c.status, expected);
    }
    assert_eq!(view.profiles, vec!["p1".to_string()]);
    // Unassigning what is not assigned is a 404, and revokes nothing.
    let again = h
        .svc
        .unassign(
            "p2",
            Assignment {
                kind: "device".into(),
                id: "d1".into(),
            },
        )
        .await;
    assert!(matches!(again, Err(AdminError::NotFound)));
}

async fn leaving_a_group_revokes_group_targeted_certificates(h: Harness) {
    let svc = &h.svc;
    svc.create_profile("pg", profile_spec()).await.unwrap();
    svc.create_group(Group {
        id: "laptops".into(),
        name: "Laptops".into(),
    })
    .await
    .unwrap();
    svc.register_device(crate::harness::device_spec("d1"))
        .await
        .unwrap();
    svc.set_membership("laptops", "d1", true).await.unwrap();
    svc.assign(
        "pg",
        Assignment {
            kind: "group".into(),
            id: "laptops".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(issue_all(&h, "d1").await.len(), 1);
    // Also assigned directly: leaving the group keeps it targeted, nothing is revoked.
    svc.assign(
        "pg",
        Assignment {
            kind: "device".into(),
            id: "d1".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        svc.set_membership("laptops", "d1", false)
            .await
            .unwrap()
            .is_empty()
    );
    svc.set_membership("laptops", "d1", true).await.unwrap();
    svc.unassign(
        "pg",
        Assignment {
            kind: "device".into(),
            id: "d1".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Issued]);
    assert_eq!(
        svc.set_membership("laptops", "d1", false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoking]);
}

async fn transient_ca_failures_back_off_and_permanent_ones_are_recorded(h: Harness) {
    enrolled(&h, "d1").await;
    issue_all(&h, "d1").await;
    h.svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();
    let ca = FakeCa::new(Mode::Unavailable);
    let w = worker(&h, &ca);
    assert_eq!(w.run_once().await.unwrap(), 0);
    // Backed off: not due again yet.
    w.run_once().await.unwrap();
    assert_eq!(ca.calls.lock().unwrap().attempts, 1);
    h.advance(6).await;
    w.run_once().await.unwrap();
    assert_eq!(ca.calls.lock().unwrap().attempts, 2);
    let entry = &h.svc.store().list_outbox(Some("pending")).await.unwrap()[0];
    assert_eq!(entry.attempts, 2);
    assert!(
        entry
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("unavailable")
    );
    // The CA does not know the serial: permanent, recorded, not retried.
    ca.set(Mode::UnknownSerial);
    h.advance(3600).await;
    w.run_once().await.unwrap();
    assert_eq!(
        h.svc
            .store()
            .list_outbox(Some("failed"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::RevokeFailed]);
    h.advance(3600).await;
    w.run_once().await.unwrap();
    assert_eq!(ca.calls.lock().unwrap().attempts, 3);
    // An admin re-queues it once the CA is fixed.
    let id = h.svc.store().list_outbox(Some("failed")).await.unwrap()[0].id;
    assert!(h.svc.store().outbox_requeue(id).await.unwrap());
    ca.set(Mode::Ok);
    assert_eq!(w.run_once().await.unwrap(), 1);
    assert_eq!(statuses(&h, "d1").await, vec![CertStatus::Revoked]);
}

async fn retire_while_the_ca_is_down_survives_a_restart_and_revokes_exactly_once(h: Harness) {
    enrolled(&h, "d1").await;
    let serials = issue_all(&h, "d1").await;
    // The CA's port: reserved, then closed, so connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let revoker = Arc::new(HttpRevoker::new(&base, Secret::new(CA_TOKEN)).unwrap());
    let config = OutboxConfig {
        base_delay_secs: 1,
        max_delay_secs: 1,
        ..OutboxConfig::default()
    };
    let down = OutboxWorker::new(
        h.svc.store().clone(),
        revoker.clone(),
        config,
        h.svc.outbox_wake(),
    );
    h.svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();
    assert_eq!(down.run_once().await.unwrap(), 0);
    let pending = h.svc.store().list_outbox(Some("pending")).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].last_error.is_some());
    // Restart: the old service and worker are gone; a new one opens the same database.
    drop(down);
    h.svc.store().close().await;
    let restarted = h.reopen().await;
    // The CA comes back on its address.
    let ca = FakeCa::new(Mode::Ok);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = ca.serve(listener);
    h.advance(2).await;
    let worker = OutboxWorker::new(
        restarted.store().clone(),
        revoker,
        config,
        restarted.outbox_wake(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..100 {
        if restarted
            .store()
            .list_outbox(Some("done"))
            .await
            .unwrap()
            .len()
            == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    server.abort();
    assert_eq!(
        ca.revoked(),
        vec![(serials[0].clone(), "cessationOfOperation".into(), 1)]
    );
    let view = restarted.device_view("d1").await.unwrap();
    assert_eq!(view.certificates[0].status, CertStatus::Revoked);
    assert_eq!(
        view.certificates[0].revocation_reason.as_deref(),
        Some("cessationOfOperation")
    );
}

#[tokio::test]
async fn http_revoker_maps_ca_answers_to_permanent_and_transient() {
    use policy_module::outbox::{RevokeError, Revoker};
    let ca = FakeCa::new(Mode::Ok);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = ca.serve(listener);
    let good = HttpRevoker::new(&base, Secret::new(CA_TOKEN)).unwrap();
    let ack = good.revoke("0abc", "keyCompromise").await.unwrap();
    assert!(!ack.already_revoked);
    assert!(
        good.revoke("0abc", "keyCompromise")
            .await
            .unwrap()
            .already_revoked
    );
    let wrong = HttpRevoker::new(&base, Secret::new("wrong")).unwrap();
    assert!(matches!(
        wrong.revoke("0abc", "keyCompromise").await,
        Err(RevokeError::Permanent(_))
    ));
    for (mode, transient) in [
        (Mode::Unauthorized, false),
        (Mode::UnknownSerial, false),
        (Mode::Unavailable, true),
    ] {
        ca.set(mode);
        let r = good.revoke("0def", "superseded").await;
        assert_eq!(
            matches!(r, Err(RevokeError::Transient(_))),
            transient,
            "{mode:?}: {r:?}"
        );
        assert!(r.is_err());
    }
    assert!(!format!("{good:?}").contains(CA_TOKEN));
    server.abort();
}
