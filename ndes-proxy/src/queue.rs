//! Issuing requests that wait in the pending store as `queued_for_ca` (the CA was unreachable
//! after the grant, or an administrator approved them). Three callers try: a device's poll or
//! retransmission, the approve call, and the background task [`run`] with exponential backoff.
//!
//! Any number of them may race, on one instance or several: the CA issues idempotently by
//! request id, and the store moves the row to `issued` by compare-and-set, so exactly one of
//! them moves it. How a row ended is then owed to the policy module until it has heard
//! ([`deliver`]): a Notify lost because the policy module was down is delivered again by the
//! retry task and by the device's next retransmission, so the inventory never misses a
//! certificate (Notify is idempotent at the policy module).

use std::time::Duration;

use openssl::x509::X509;
use scep::csr::Csr;
use tokio::sync::watch;
use tracing::{info, warn};

use ca_api::CaError;
use policy_api::{Outcome, RegrantRequest, VerifyError};

use crate::AppState;
use crate::issuance::{
    RequestId, issue_bounded, issue_call, issued_cert_of, issued_outcome, notify,
};
use crate::pending::{PendingRecord, PendingState, StateKind, StoreError};

/// Try a queued row at the CA once; returns the row as it now stands (unchanged if it was not
/// queued). `Err` only when the store fails.
pub async fn attempt(state: &AppState, rec: PendingRecord) -> Result<PendingRecord, StoreError> {
    if rec.state != PendingState::QueuedForCa {
        return Ok(rec);
    }
    let id = RequestId::from_stored(rec.request_id.clone());
    let call = Csr::from_der(&rec.csr_der)
        .map_err(|e| e.to_string())
        .map(|csr| issue_call(&id, &rec.grant, &csr));
    let mut call = match call {
        Ok(c) => c,
        Err(e) => {
            warn!(request_id = %id, error = %e, "stored request is unusable");
            return fail(state, rec, "stored_request_unusable".into()).await;
        }
    };
    let now = state.now();
    // The stored grant's signature has long expired: the policy module signs it afresh, and
    // may refuse now (docs/decisions.md #10, #11). A plain-mode grant carries no signature.
    if rec.grant.signed.is_some() {
        let req = RegrantRequest {
            transaction_id: id.as_str().to_owned(),
        };
        match state.policy().regrant(req).await {
            Ok(fresh) => call.grant = fresh.signed,
            Err(VerifyError::Rejected(r)) => {
                warn!(request_id = %id, reason = %r, "policy module no longer grants a queued request");
                return fail(state, rec, format!("regrant_refused: {r}")).await;
            }
            Err(VerifyError::Unavailable) => {
                state.metrics().queue_attempt("policy_unavailable");
                let next = now.saturating_add(backoff(state, rec.attempts));
                info!(request_id = %id, retry_at = %foundation::time::rfc3339(next), "policy module unavailable for a fresh grant");
                state.pending().reschedule(id.as_str(), next, now).await?;
                return reload(state, rec).await;
            }
        }
    }
    match issue_bounded(state, &call).await {
        Ok(issued) => {
            let to = PendingState::Issued {
                serial_hex: issued.serial.to_hex(),
                cert_der: issued.der.clone(),
            };
            if state
                .pending()
                .transition(id.as_str(), StateKind::QueuedForCa, &to, now)
                .await?
            {
                state.metrics().queue_attempt("issued");
                info!(request_id = %id, serial = %issued.serial, "queued request issued");
            }
            let mut rec = reload(state, rec).await?;
            deliver(state, &mut rec).await?;
            Ok(rec)
        }
        Err(CaError::Unavailable(e)) => {
            state.metrics().queue_attempt("ca_unavailable");
            let next = now.saturating_add(backoff(state, rec.attempts));
            info!(request_id = %id, error = %e, attempts = rec.attempts + 1, retry_at = %foundation::time::rfc3339(next), "CA still unavailable");
            state.pending().reschedule(id.as_str(), next, now).await?;
            reload(state, rec).await
        }
        Err(CaError::Refused(e)) => {
            warn!(request_id = %id, error = %e, "CA refused a queued request");
            fail(state, rec, format!("ca_refused: {e}")).await
        }
    }
}

/// Move a queued row to failed and tell the policy module (once).
async fn fail(
    state: &AppState,
    rec: PendingRecord,
    reason: String,
) -> Result<PendingRecord, StoreError> {
    state.metrics().queue_attempt("failed");
    let to = PendingState::Failed {
        reason: reason.clone(),
    };
    state
        .pending()
        .transition(&rec.request_id, StateKind::QueuedForCa, &to, state.now())
        .await?;
    let mut rec = reload(state, rec).await?;
    deliver(state, &mut rec).await?;
    Ok(rec)
}

/// Tell the policy module how an ended row ended, unless it already heard; then remember that
/// it did (in the store and in `rec`). `Ok(false)` when the policy module could not be reached
/// (the Notify stays owed).
pub async fn deliver(state: &AppState, rec: &mut PendingRecord) -> Result<bool, StoreError> {
    if rec.notified_at.is_some() {
        return Ok(true);
    }
    let outcome = match &rec.state {
        PendingState::Issued { cert_der, .. } => {
            let cert = X509::from_der(cert_der).ok();
            match cert.as_deref().and_then(issued_cert_of) {
                Some(issued) => issued_outcome(&issued),
                // Undecodable: the policy module would refuse it; the answer path logs it.
                None => return Ok(true),
            }
        }
        PendingState::Failed { reason } => Outcome::Failed {
            reason: reason.clone(),
        },
        PendingState::Denied => Outcome::Failed {
            reason: DENIED_REASON.into(),
        },
        PendingState::AwaitingApproval | PendingState::QueuedForCa => return Ok(true),
    };
    let id = RequestId::from_stored(rec.request_id.clone());
    if !notify(state.policy(), &id, outcome).await {
        state.metrics().queue_attempt("notify_owed");
        return Ok(false);
    }
    let now = state.now();
    state.pending().mark_notified(&rec.request_id, now).await?;
    rec.notified_at.get_or_insert(now);
    Ok(true)
}

/// What the policy module is told about a request an administrator denied.
pub(crate) const DENIED_REASON: &str = "denied_by_administrator";

async fn reload(state: &AppState, rec: PendingRecord) -> Result<PendingRecord, StoreError> {
    Ok(state.pending().get(&rec.request_id).await?.unwrap_or(rec))
}

/// Seconds until the next try after `attempts` failures: base * 2^attempts, capped.
pub fn backoff(state: &AppState, attempts: u32) -> i64 {
    let q = &state.settings().queue;
    let factor = 1i64 << attempts.min(30);
    q.backoff_base_secs
        .saturating_mul(factor)
        .min(q.backoff_max_secs)
        .max(0)
}

/// The background retry task: every tick, try the due rows; returns once `stop` turns true
/// (after finishing the row in hand).
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let tick = state.settings().queue.tick.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return; // the server is gone
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        let due = match state
            .pending()
            .due(state.now(), state.settings().queue.batch)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "pending store unavailable for the retry task");
                continue;
            }
        };
        for rec in due {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = attempt(&state, rec).await {
                warn!(error = %e, "pending store failed during a retry");
                break;
            }
        }
        deliver_owed(&state, &stop).await;
    }
}

/// Deliver the Notifies still owed for ended rows (oldest first), stopping at the first the
/// policy module does not take: it is down, and the next tick tries again.
async fn deliver_owed(state: &AppState, stop: &watch::Receiver<bool>) {
    let owed = match state
        .pending()
        .unnotified(state.settings().queue.batch)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "pending store unavailable for owed notifications");
            return;
        }
    };
    for mut rec in owed {
        if *stop.borrow() {
            return;
        }
        match deliver(state, &mut rec).await {
            Ok(true) => info!(request_id = %rec.request_id, "owed notification delivered"),
            Ok(false) => return,
            Err(e) => {
                warn!(error = %e, "pending store failed while delivering a notification");
                return;
            }
        }
    }
}
