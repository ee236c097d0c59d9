//! One transaction's story and one device's history (issue 16 item 1): the policy module's
//! audit records, with what ndes-proxy reported, merged with the CA's own records of the
//! requests and serials involved (`ca_api::CaClient::records`). The CA unreachable shortens the
//! story (`unavailable: [ca-mock]`); it never fails it.

use std::sync::Arc;

use ca_api::wire::{CaRecord, RecordQuery};
use policy_api::trace::{DeviceHistory, Source, TraceEvent, TransactionTrace};
use serde_json::{Map, Value};

use crate::error::AdminError;
pub use crate::records::RecordSource;
use crate::service::PolicyService;
use crate::store::AuditEvent;

/// Most events one history page holds.
pub const MAX_HISTORY_PAGE: i64 = 500;

/// The audit log's event names in the trace's vocabulary (`policy_api::trace`): the log keeps
/// the names its readers already know.
fn trace_name(event: &str) -> &str {
    match event {
        "challenge_verified" | "renewal_verified" => "request_granted",
        "challenge_consumed" => "notified",
        "revocation_confirmed" => "revoked",
        "release_confirmed" => "released",
        other => other,
    }
}

/// One audit record as a trace event.
pub fn trace_event(e: &AuditEvent) -> TraceEvent {
    let mut detail: Map<String, Value> = e
        .facts
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or_default();
    detail.retain(|_, v| !v.is_null());
    if let Some(r) = &e.request_id {
        detail.insert("request_id".into(), Value::String(r.clone()));
    }
    if let Some(c) = &e.challenge {
        detail.insert("challenge".into(), Value::String(c.clone()));
    }
    if e.esc1_exposed {
        detail.insert("esc1_exposed".into(), Value::Bool(true));
    }
    if let Some(d) = &e.detail {
        detail.insert("note".into(), Value::String(d.clone()));
    }
    TraceEvent {
        at: foundation::time::rfc3339(e.at),
        at_unix: e.at,
        source: match e.source.as_deref() {
            Some("ndes-proxy") => Source::NdesProxy,
            _ => Source::PolicyModule,
        },
        event: trace_name(&e.event).to_string(),
        transaction_id: e.transaction_id.clone(),
        device_id: e.device_id.clone(),
        profile_id: e.profile_id.clone(),
        profile_version: e.profile_version,
        serial: e.serial.clone(),
        actor: e.actor.clone(),
        reason: e.reason.clone(),
        detail,
    }
}

/// Where an event falls in an enrollment, to order events of the same second.
fn phase(event: &str) -> u8 {
    match event {
        "challenge_issued" => 0,
        "checkin_delivered" => 1,
        "request_received" => 2,
        "request_granted" | "request_rejected" => 3,
        "issued" | "replayed" => 4,
        "notified" | "issuance_failed" => 5,
        "reply_sent" => 6,
        "revocation_queued" | "release_queued" => 7,
        "revoked" | "held" | "released" => 8,
        _ => 9,
    }
}

/// One CA record as a trace event.
fn ca_event(r: CaRecord, transaction_id: Option<&str>) -> TraceEvent {
    let mut detail = r.detail;
    detail.insert("request_id".into(), Value::String(r.request_id));
    if let Some(t) = r.template {
        detail.insert("template".into(), Value::String(t));
    }
    TraceEvent {
        at: r.at,
        at_unix: r.at_unix,
        source: Source::CaMock,
        event: r.action,
        transaction_id: transaction_id.map(str::to_string),
        device_id: None,
        profile_id: None,
        profile_version: None,
        serial: Some(r.serial),
        actor: Some(r.actor),
        reason: None,
        detail,
    }
}

impl PolicyService {
    /// Reads the CA's records through `source` for traces.
    pub fn with_records(mut self, source: Arc<dyn RecordSource>) -> Self {
        self.records = Some(source);
        self
    }

    /// `GET /api/v1/transactions/{transactionID}`; `None` when nothing names it.
    pub async fn transaction_trace(
        &self,
        transaction_id: &str,
    ) -> Result<Option<TransactionTrace>, AdminError> {
        let records = self.store.trace_records(transaction_id).await?;
        if records.is_empty() {
            return Ok(None);
        }
        let mut events: Vec<TraceEvent> = records.iter().map(trace_event).collect();
        let mut unavailable = Vec::new();
        let mut request_ids: Vec<&str> = records
            .iter()
            .flat_map(|e| [e.request_id.as_deref(), e.transaction_id.as_deref()])
            .flatten()
            .collect();
        request_ids.sort_unstable();
        request_ids.dedup();
        match self.ca_records(&request_ids, transaction_id).await {
            Ok(ca) => events.extend(ca),
            Err(()) => unavailable.push(Source::CaMock),
        }
        // Times are whole seconds: within one, the steps' causal order, then the order
        // written (stable).
        events.sort_by_key(|e| (e.at_unix, phase(&e.event)));
        Ok(Some(TransactionTrace {
            transaction_id: transaction_id.to_string(),
            events,
            unavailable,
        }))
    }

    /// The CA's records for these request ids (and so the serials issued for them, revoked
    /// and released later); `Err` when the CA could not be read.
    async fn ca_records(&self, request_ids: &[&str], tx: &str) -> Result<Vec<TraceEvent>, ()> {
        let Some(source) = &self.records else {
            return Err(());
        };
        let mut out = Vec::new();
        for id in request_ids.iter().take(8) {
            let query = RecordQuery {
                request_id: Some((*id).to_string()),
                limit: Some(100),
                ..RecordQuery::default()
            };
            match source.records(&query).await {
                Ok(list) => out.extend(list.records.into_iter().map(|r| ca_event(r, Some(tx)))),
                Err(e) => {
                    tracing::warn!(error = %e, "the CA's records could not be read");
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    /// `GET /api/v1/devices/{id}/history`: newest first; a deleted device keeps its history.
    pub async fn device_history(
        &self,
        device_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<DeviceHistory, AdminError> {
        if self.store.get_device(device_id).await?.is_none() {
            return Err(AdminError::NotFound);
        }
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let records = self.store.device_records(device_id, before, limit).await?;
        let next_before = (records.len() as i64 == limit)
            .then(|| records.last().map(|e| e.id))
            .flatten();
        Ok(DeviceHistory {
            device_id: device_id.to_string(),
            events: records.iter().map(trace_event).collect(),
            unavailable: Vec::new(),
            next_before,
        })
    }
}
