//! One transaction's story and one device's history, as the policy module's admin API tells
//! them (`GET /api/v1/transactions/{transactionID}`, `GET /api/v1/devices/{id}/history`) and
//! `scep-lab trace` prints them. Events come from the three services: the policy module's own
//! audit, what ndes-proxy reported, and the CA's records (`ca_api::wire::CaRecord`).

use serde::{Deserialize, Serialize};

/// Which service wrote an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    PolicyModule,
    NdesProxy,
    CaMock,
}

/// One thing that happened, in the words of the service that did it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The same instant in unix seconds, for machines.
    pub at_unix: i64,
    pub source: Source,
    /// What happened: `challenge_issued`, `checkin_delivered`, `request_received`,
    /// `request_granted`, `request_rejected`, `issued`, `reply_sent`, `notified`, `revoked`, ...
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_version: Option<i64>,
    /// Serial, lowercase hex, once there is a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Who asked (an admin, a device, an ndes-proxy instance, the outbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The named reason of a refusal or revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else the event carries (message type, algorithms, client address, pkiStatus,
    /// failInfo, template, the serial a renewal renews, ...); never a secret.
    #[serde(default)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// Answer to `GET /api/v1/transactions/{transactionID}`: events oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionTrace {
    pub transaction_id: String,
    pub events: Vec<TraceEvent>,
    /// Sources that could not be read (e.g. the CA unreachable), so a short story says why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Source>,
}

/// Answer to `GET /api/v1/devices/{id}/history`: events newest first, paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHistory {
    pub device_id: String,
    pub events: Vec<TraceEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Source>,
    /// Pass as `?before=` for the next (older) page; absent on the last page. Opaque: a
    /// record number, so that events of one second are neither skipped nor repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}
