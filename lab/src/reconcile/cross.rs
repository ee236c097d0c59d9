//! Invariants across services: the policy inventory and ndes-proxy's pending store against
//! the CA's records, one certificate per challenge (and none consumed without one), and device
//! lifecycle against revocation.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use ca_mock::store::CertStatus as CaStatus;
use ndes_proxy::pending::{PendingState, PendingStore};
use policy_module::model::{CertStatus, DeviceState};

use super::ca::{CaView, norm};
use super::{Invariant, Report, Sources};

/// How long a Notify ndes-proxy owes for an issued certificate may wait before the
/// reconciler calls it a violation (I7). Its retry task delivers owed Notifies every tick (5 s
/// by default, no backoff), so ten minutes means the policy module has been unreachable, or the
/// retry task stopped, for far longer than a restart: meanwhile a retire, wipe or block cannot
/// revoke that certificate.
pub const OWED_NOTIFY_OVERDUE_SECS: i64 = 600;

pub(super) async fn check(
    sources: &Sources,
    ca: &CaView,
    now: i64,
    report: &mut Report,
) -> Result<()> {
    check_inventory(sources, ca, now, report).await?;
    check_pending(sources, ca, report).await?;
    check_challenges(sources, report).await?;
    check_granted(sources, ca, report).await?;
    // I10 (docs/decisions.md #12): records written with their state changes, both ways.
    for gap in sources.policy.trace_gaps().await? {
        report.find(
            Invariant::I10,
            format!("{} {}", gap.kind, gap.subject),
            gap.detail,
        );
    }
    for line in sources.policy.integrity_check().await? {
        report.find(Invariant::I8, "policy database", line);
    }
    for line in sources.pending.integrity_check().await? {
        report.find(Invariant::I8, "pending database", line);
    }
    if let Some(d) = sources.policy.sqlite_durability().await?
        && (d.journal_mode != "wal" || d.synchronous != 2)
    {
        report.find(
            Invariant::I8,
            "policy database",
            format!(
                "journal_mode={} synchronous={} (WAL with synchronous=FULL required)",
                d.journal_mode, d.synchronous
            ),
        );
    }
    if let Some(d) = sources.pending.sqlite_durability().await?
        && (!d.journal_mode.eq_ignore_ascii_case("wal") || d.synchronous != 2)
    {
        report.find(
            Invariant::I8,
            "pending database",
            format!(
                "journal_mode={} synchronous={} (WAL with synchronous=FULL required)",
                d.journal_mode, d.synchronous
            ),
        );
    }
    Ok(())
}

async fn check_inventory(
    sources: &Sources,
    ca: &CaView,
    now: i64,
    report: &mut Report,
) -> Result<()> {
    let inventory = sources.policy.audit_certificates().await?;
    report.inventory_certificates = inventory.len();
    let queued: BTreeSet<String> = sources
        .policy
        .list_outbox(Some("pending"))
        .await?
        .into_iter()
        .map(|r| norm(&r.serial))
        .collect();
    if !queued.is_empty() {
        report.notes.push(format!(
            "{} revocation(s) still queued in the policy module's outbox",
            queued.len()
        ));
    }
    let mut by_challenge: BTreeMap<&[u8], Vec<&str>> = BTreeMap::new();
    for c in &inventory {
        if let Some(h) = &c.challenge_hash {
            by_challenge.entry(h).or_default().push(&c.serial_hex);
        }
        match ca.get(&norm(&c.serial_hex)) {
            None => report.find(
                Invariant::I1,
                &c.serial_hex,
                format!(
                    "in the policy inventory (transaction {}) but the CA has no record of it",
                    c.transaction_id
                ),
            ),
            Some(rec) => {
                if rec.der != c.der {
                    report.find(
                        Invariant::I4,
                        &c.serial_hex,
                        "the policy inventory holds a different certificate than the CA recorded",
                    );
                }
                // Held (block) is revoked at the CA until its release is confirmed; a release
                // confirmed makes it issued again (docs/decisions.md #11).
                if matches!(c.status, CertStatus::Revoked | CertStatus::Held)
                    && rec.status == CaStatus::Good
                {
                    report.find(
                        Invariant::I6,
                        &c.serial_hex,
                        format!(
                            "{} in the policy inventory but good at the CA",
                            c.status.as_str()
                        ),
                    );
                }
                if c.status == CertStatus::Held && rec.status == CaStatus::Revoked {
                    report.find(
                        Invariant::I6,
                        &c.serial_hex,
                        "held in the policy inventory but revoked for good at the CA",
                    );
                }
            }
        }
        if matches!(c.status, CertStatus::Revoking | CertStatus::Releasing)
            && !queued.contains(&norm(&c.serial_hex))
        {
            report.find(
                Invariant::I6,
                &c.serial_hex,
                format!(
                    "marked {} but nothing is queued for it in the outbox",
                    c.status.as_str()
                ),
            );
        }
    }
    for (hash, serials) in by_challenge.iter().filter(|(_, s)| s.len() > 1) {
        // A prefix of the challenge's digest names it without revealing anything usable.
        let prefix = hex::encode(&hash[..hash.len().min(4)]);
        report.find(
            Invariant::I3,
            format!("challenge {prefix}…"),
            format!("{} certificates: {}", serials.len(), serials.join(", ")),
        );
    }

    // Every device certificate the CA issued must be known to the policy module, or a retire,
    // wipe or block would never revoke it. One whose Notify ndes-proxy still owes (an issued
    // row of its pending store, not yet delivered) is being retried: a note until it is
    // overdue. One with no such row was issued and then dropped: nothing will ever repair it.
    let known: BTreeSet<String> = inventory.iter().map(|c| norm(&c.serial_hex)).collect();
    let owed: BTreeMap<String, (String, i64)> = sources
        .pending
        .unnotified(u32::MAX)
        .await?
        .into_iter()
        .filter_map(|r| match r.state {
            PendingState::Issued { serial_hex, .. } => {
                Some((norm(&serial_hex), (r.request_id, r.updated_at)))
            }
            _ => None,
        })
        .collect();
    let mut retried = 0usize;
    for (serial, rec) in ca {
        if !sources.device_templates.contains(&rec.template)
            || rec.status != CaStatus::Good
            || known.contains(serial)
        {
            continue;
        }
        match owed.get(serial) {
            Some((_, since)) if now.saturating_sub(*since) <= OWED_NOTIFY_OVERDUE_SECS => {
                retried += 1;
            }
            Some((request_id, since)) => report.find(
                Invariant::I7,
                serial,
                format!(
                    "issued by the CA for a device (request {request_id}); ndes-proxy has owed its Notify for {} s, longer than {OWED_NOTIFY_OVERDUE_SECS} s (lifecycle revocation would miss it meanwhile)",
                    now.saturating_sub(*since)
                ),
            ),
            None => report.find(
                Invariant::I7,
                serial,
                "issued by the CA for a device but unknown to the policy module, and no Notify is owed for it anywhere (lifecycle revocation would miss it)",
            ),
        }
    }
    if retried > 0 {
        report.notes.push(format!(
            "{retried} issued certificate(s) whose Notify ndes-proxy still owes and retries"
        ));
    }

    let mut of_device: BTreeMap<&str, Vec<&policy_module::store::AuditCert>> = BTreeMap::new();
    for c in &inventory {
        if let Some(d) = &c.device_id {
            of_device.entry(d).or_default().push(c);
        }
    }
    for device in sources.policy.list_devices().await? {
        if device.state == DeviceState::Active {
            continue;
        }
        // A certificate recorded after the action (granted before it, issued after it) is
        // legitimate once queued for revocation (docs/decisions.md #11); what must never be
        // is one left issued.
        for c in of_device.get(device.id.as_str()).into_iter().flatten() {
            if matches!(c.status, CertStatus::Issued | CertStatus::Releasing) {
                report.find(
                    Invariant::I7,
                    &c.serial_hex,
                    format!(
                        "device {} is {} but this certificate is neither revoked nor queued for revocation",
                        device.id,
                        device.state.as_str()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// No challenge burnt without a recorded reason (docs/decisions.md #4): a reserved challenge
/// has the request it was reserved for, and a consumed one has that request's certificate.
/// I9 (docs/decisions.md #10): every certificate the CA issued under a grant is one the policy
/// module granted: a request with that id, for that key, under that template. A plain-mode
/// issuance has no grant to compare and is counted in a note; the CA's console needs none.
async fn check_granted(sources: &Sources, ca: &CaView, report: &mut Report) -> Result<()> {
    let requests: BTreeMap<String, _> = sources
        .policy
        .audit_requests()
        .await?
        .into_iter()
        .map(|r| (r.transaction_id.clone(), r))
        .collect();
    let mut plain = 0;
    for (serial, rec) in ca {
        if rec.issued_under == "plain mode" {
            plain += 1;
            continue;
        }
        if !rec.issued_under.starts_with("grant ") {
            continue;
        }
        let Some(request) = requests.get(&rec.request_id) else {
            report.find(
                Invariant::I9,
                serial,
                format!(
                    "issued under {} for request {}, which the policy module never granted",
                    rec.issued_under, rec.request_id
                ),
            );
            continue;
        };
        if !hex::encode(&request.spki_hash).eq_ignore_ascii_case(&rec.public_key_sha256) {
            report.find(
                Invariant::I9,
                serial,
                format!(
                    "request {} was granted for another key than the certificate's",
                    rec.request_id
                ),
            );
        }
        let granted_template = request.template();
        if granted_template.as_deref() != Some(rec.template.as_str()) {
            report.find(
                Invariant::I9,
                serial,
                format!(
                    "request {} was granted under template {}, issued under {}",
                    rec.request_id,
                    granted_template.as_deref().unwrap_or("?"),
                    rec.template
                ),
            );
        }
    }
    if plain > 0 {
        report.notes.push(format!(
            "{plain} certificate(s) issued under plain mode's entitlement"
        ));
    }
    Ok(())
}

async fn check_challenges(sources: &Sources, report: &mut Report) -> Result<()> {
    for c in sources.policy.audit_challenges().await? {
        let name = || format!("challenge {}…", hex::encode(&c.hash[..c.hash.len().min(4)]));
        if c.request_state.is_none() {
            report.find(
                Invariant::I3,
                name(),
                format!(
                    "reserved for transaction {} but no such request is recorded",
                    c.reserved_tx
                ),
            );
        }
        if c.consumed_at.is_some() && !c.has_certificate {
            report.find(
                Invariant::I3,
                name(),
                format!(
                    "consumed by transaction {} but no certificate is recorded for it",
                    c.reserved_tx
                ),
            );
        }
    }
    Ok(())
}

async fn check_pending(sources: &Sources, ca: &CaView, report: &mut Report) -> Result<()> {
    let rows = sources.pending.list(None, u32::MAX).await?;
    report.pending_rows = rows.len();
    let mut waiting = 0usize;
    for r in &rows {
        match &r.state {
            PendingState::Issued {
                serial_hex,
                cert_der,
            } => match ca.get(&norm(serial_hex)) {
                None => report.find(
                    Invariant::I1,
                    serial_hex,
                    format!(
                        "the pending store says request {} was issued, but the CA has no record",
                        r.request_id
                    ),
                ),
                Some(rec) if &rec.der != cert_der => report.find(
                    Invariant::I4,
                    serial_hex,
                    "the pending store holds a different certificate than the CA recorded",
                ),
                Some(_) => {}
            },
            PendingState::AwaitingApproval | PendingState::QueuedForCa => waiting += 1,
            PendingState::Denied | PendingState::Failed { .. } => {}
        }
    }
    if waiting > 0 {
        report.notes.push(format!(
            "{waiting} request(s) pending (awaiting approval or queued for the CA)"
        ));
    }
    Ok(())
}
