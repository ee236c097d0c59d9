//! Typed clients of the two admin APIs the console reads and acts through (the CA's is
//! `ca_api::CaClient`): the policy module's `/api/v1/...` and ndes-proxy's `/admin/v1/...`.
//! The console holds no store of its own, so every action goes through the same
//! authenticated, audited API an operator's script would use (issue 18).
//!
//! The response types are the subset of each answer the pages show; unknown fields are
//! ignored, so a service may grow its answers without breaking the console.

use std::fmt;
use std::time::Duration;

use foundation::Secret;
use foundation::tls::ClientTls;
use policy_api::trace::{DeviceHistory, TransactionTrace};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Why a call to a service failed. Carries no token and no response body beyond the
/// service's short error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service could not be reached (connection refused, timeout).
    #[error("{service} unreachable")]
    Unreachable { service: &'static str },
    /// The service answered an error status.
    #[error("{service} answered {status} {code}")]
    Status {
        service: &'static str,
        status: u16,
        code: String,
        /// The service's `message` for a 4xx (it names the field at fault; never a secret).
        message: Option<String>,
    },
    /// The answer was not the documented JSON.
    #[error("{service} answered something unexpected")]
    Unexpected { service: &'static str },
}

impl ApiError {
    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's own explanation of a 4xx answer, if it gave one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Status { message, .. } => message.as_deref(),
            _ => None,
        }
    }
}

/// One authenticated JSON API: base URL and bearer token.
#[derive(Clone)]
struct Api {
    service: &'static str,
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("service", &self.service)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Api {
    fn new(service: &'static str, base: &str, token: Secret) -> Result<Self, ApiError> {
        Self::pinned(service, base, token, None)
    }

    /// Over HTTPS, `tls` pins the one CA the service's certificate must chain to.
    fn pinned(
        service: &'static str,
        base: &str,
        token: Secret,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ApiError> {
        let unreachable = |_| ApiError::Unreachable { service };
        let http = foundation::tls::client_builder(tls)
            .map_err(|_| ApiError::Unreachable { service })?
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(unreachable)?;
        Ok(Self {
            service,
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let service = self.service;
        let resp = rb
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|_| ApiError::Unreachable { service })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        #[derive(Deserialize)]
        struct Body {
            error: String,
            #[serde(default)]
            message: Option<String>,
        }
        let (code, message) = resp
            .json::<Body>()
            .await
            .map(|b| (b.error, b.message))
            .unwrap_or_else(|_| ("http_error".into(), None));
        // Only a client error's message is meant for the caller; 5xx detail stays out.
        let message = message
            .filter(|_| (400..500).contains(&status))
            .map(|m| m.chars().take(300).collect());
        Err(ApiError::Status {
            service,
            status,
            code,
            message,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let resp = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        let service = self.service;
        resp.json()
            .await
            .map_err(|_| ApiError::Unexpected { service })
    }

    async fn json_of<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ApiError> {
        let service = self.service;
        resp.json()
            .await
            .map_err(|_| ApiError::Unexpected { service })
    }

    async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let rb = self.http.get(format!("{}{path}", self.base)).query(query);
        let resp = self.send(rb).await?;
        let service = self.service;
        resp.json()
            .await
            .map_err(|_| ApiError::Unexpected { service })
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<(), ApiError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
            .map(drop)
    }

    async fn post_empty(&self, path: &str) -> Result<(), ApiError> {
        self.send(self.http.post(format!("{}{path}", self.base)))
            .await
            .map(drop)
    }
}

mod profiles;
pub use profiles::{Assignment, Group, NewProfile, Preview, Profile, ProfileSpec, Warning};

/// An id taken from the console's URL (device id, transactionID, serial), checked once so it
/// stays one path segment of the service's URL: 1-128 characters, no control characters,
/// not `.` or `..` (which a URL resolver would treat as a move up the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathId(String);

impl PathId {
    /// The id, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.chars().any(char::is_control)
            && s != "."
            && s != "..";
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A path segment, percent-encoded.
fn seg(id: &PathId) -> String {
    let s = id.as_str();
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A registered device, as `GET /api/v1/devices` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub platform: String,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub owner_upn: Option<String>,
    pub state: String,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub created_at: i64,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub updated_at: i64,
}

/// A certificate in the policy module's inventory.
#[derive(Debug, Clone, Deserialize)]
pub struct InventoryCert {
    pub serial_hex: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub profile_id: Option<String>,
    #[serde(default)]
    pub profile_version: Option<i64>,
    pub transaction_id: String,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub not_after: i64,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub issued_at: i64,
    pub status: String,
    #[serde(default)]
    pub revocation_reason: Option<String>,
    /// RFC 4514, as the CA issued it (None if the inventory could not read it).
    #[serde(default)]
    pub subject: Option<String>,
}

/// `GET /api/v1/certificates`: one page of the inventory, newest first.
#[derive(Debug, Clone, Deserialize)]
pub struct CertPage {
    pub certificates: Vec<InventoryCert>,
    #[serde(default)]
    pub next_before: Option<String>,
}

/// `GET /api/v1/devices/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceView {
    pub device: Device,
    pub profiles: Vec<String>,
    pub certificates: Vec<InventoryCert>,
}

/// One row of `GET /api/v1/audit`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditEvent {
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub at: i64,
    pub event: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub profile_id: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// Free text the policy module wrote (never a secret).
    #[serde(default)]
    pub detail: Option<String>,
}

/// One row of `GET /api/v1/outbox`.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxEntry {
    #[serde(
        default,
        deserialize_with = "foundation::time::rfc3339_serde::option::deserialize"
    )]
    pub created_at: Option<i64>,
}

/// The policy module's admin API (`/api/v1/...`, admin bearer token).
#[derive(Clone, Debug)]
pub struct PolicyAdmin(Api);

impl PolicyAdmin {
    /// A client for the policy module at `base` (e.g. `http://127.0.0.1:8280`).
    pub fn new(base: &str, token: Secret) -> Result<Self, ApiError> {
        Api::new("policy-module", base, token).map(Self)
    }

    /// The same over HTTPS with `tls`'s CA pinned (`None`: as [`Self::new`]).
    pub fn pinned(base: &str, token: Secret, tls: Option<&ClientTls>) -> Result<Self, ApiError> {
        Api::pinned("policy-module", base, token, tls).map(Self)
    }

    /// One page of devices by id (`limit` from `offset`, matching `needle` if not empty) and
    /// how many match in all (`X-Total-Count`).
    pub async fn device_page(
        &self,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Device>, usize), ApiError> {
        let (offset, limit) = (offset.to_string(), limit.to_string());
        let mut query = vec![("offset", offset.as_str()), ("limit", limit.as_str())];
        if !needle.is_empty() {
            query.push(("q", needle));
        }
        let api = &self.0;
        let rb = api
            .http
            .get(format!("{}/api/v1/devices", api.base))
            .query(&query);
        let resp = api.send(rb).await?;
        let service = api.service;
        let total = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::Unexpected { service })?;
        Ok((api.json_of(resp).await?, total))
    }

    /// One device with its profiles and certificates.
    pub async fn device(&self, id: &PathId) -> Result<DeviceView, ApiError> {
        self.0.get(&format!("/api/v1/devices/{}", seg(id))).await
    }

    /// A device's history, newest first.
    pub async fn device_history(&self, id: &PathId, limit: u32) -> Result<DeviceHistory, ApiError> {
        self.0
            .get(&format!(
                "/api/v1/devices/{}/history?limit={limit}",
                seg(id)
            ))
            .await
    }

    /// Retire, wipe, block, unblock or delete a device.
    pub async fn lifecycle(&self, id: &PathId, action: Action) -> Result<(), ApiError> {
        self.0
            .post_empty(&format!("/api/v1/devices/{}/{}", seg(id), action.as_str()))
            .await
    }

    /// One page of the certificate inventory; `filters` are the API's query pairs (serial,
    /// device, status, before, limit), passed as given for the policy module to check.
    pub async fn certificates(&self, filters: &[(&str, &str)]) -> Result<CertPage, ApiError> {
        self.0.get_query("/api/v1/certificates", filters).await
    }

    /// Revokes one certificate with an RFC 5280 reason (queued through the outbox).
    pub async fn revoke_certificate(&self, serial: &PathId, reason: &str) -> Result<(), ApiError> {
        self.0
            .post_json(
                &format!("/api/v1/certificates/{}/revoke", seg(serial)),
                &serde_json::json!({ "reason": reason }),
            )
            .await
    }

    /// One transaction's events across the three services.
    pub async fn transaction(&self, transaction_id: &PathId) -> Result<TransactionTrace, ApiError> {
        self.0
            .get(&format!("/api/v1/transactions/{}", seg(transaction_id)))
            .await
    }

    /// The latest audit events, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEvent>, ApiError> {
        self.0.get(&format!("/api/v1/audit?limit={limit}")).await
    }

    /// The latest audit events of one device, newest first.
    pub async fn device_audit(
        &self,
        device: &PathId,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ApiError> {
        self.0
            .get(&format!(
                "/api/v1/audit?limit={limit}&device_id={}",
                seg(device)
            ))
            .await
    }

    /// Revocations not yet delivered to the CA.
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, ApiError> {
        self.0.get("/api/v1/outbox?state=pending").await
    }
}

/// The device lifecycle actions the console offers (policy module `POST
/// /api/v1/devices/{id}/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Retire,
    Wipe,
    Block,
    Unblock,
    Delete,
}

impl Action {
    /// Every action, in the order the device page offers them.
    pub const ALL: [Self; 5] = [
        Self::Retire,
        Self::Wipe,
        Self::Block,
        Self::Unblock,
        Self::Delete,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retire => "retire",
            Self::Wipe => "wipe",
            Self::Block => "block",
            Self::Unblock => "unblock",
            Self::Delete => "delete",
        }
    }

    /// From the API's name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What it does, for the confirmation page.
    pub fn consequence(self) -> &'static str {
        match self {
            Self::Retire => "The device is retired and its certificates are revoked.",
            Self::Wipe => "The device is wiped and its certificates are revoked.",
            Self::Block => "The device is blocked and its certificates are put on hold.",
            Self::Unblock => "The device is unblocked and its held certificates released.",
            Self::Delete => {
                "The device is deleted (its history is kept) and its certificates are revoked."
            }
        }
    }
}

/// One request held by ndes-proxy (`GET /admin/v1/pending`).
#[derive(Debug, Clone, Deserialize)]
pub struct Pending {
    pub request_id: String,
    pub transaction_id: String,
    pub state: String,
    pub template: String,
    pub subject: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub renewal: bool,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub created_at: i64,
}

/// ndes-proxy's admin API (`/admin/v1/...`, its admin bearer token).
#[derive(Clone, Debug)]
pub struct NdesAdmin(Api);

impl NdesAdmin {
    /// A client for ndes-proxy at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Secret) -> Result<Self, ApiError> {
        Api::new("ndes-proxy", base, token).map(Self)
    }

    /// The same over HTTPS with `tls`'s CA pinned (`None`: as [`Self::new`]).
    pub fn pinned(base: &str, token: Secret, tls: Option<&ClientTls>) -> Result<Self, ApiError> {
        Api::pinned("ndes-proxy", base, token, tls).map(Self)
    }

    /// Requests awaiting an administrator's approval.
    pub async fn pending(&self) -> Result<Vec<Pending>, ApiError> {
        self.0
            .get("/admin/v1/pending?state=awaiting_approval")
            .await
    }

    /// Approve (`true`: ndes-proxy asks the CA now) or deny a request awaiting approval.
    pub async fn decide(&self, request_id: &PathId, approve: bool) -> Result<(), ApiError> {
        let verb = if approve { "approve" } else { "deny" };
        self.0
            .post_empty(&format!("/admin/v1/pending/{}/{verb}", seg(request_id)))
            .await
    }
}

/// A one-time challenge from NDES's admin page, for a plain SCEP client.
#[derive(Debug, Deserialize)]
pub struct MintedChallenge {
    pub challenge: Secret,
    pub template: String,
    #[serde(deserialize_with = "foundation::time::rfc3339_serde::deserialize")]
    pub expires_at: i64,
}

/// ndes-proxy's mscep_admin page as a script uses it (`?format=json`, its bearer token).
#[derive(Clone, Debug)]
pub struct ChallengeMinter(Api);

impl ChallengeMinter {
    /// A minter for ndes-proxy at `base`.
    pub fn new(base: &str, token: Secret) -> Result<Self, ApiError> {
        Api::new("ndes-proxy", base, token).map(Self)
    }

    /// The same over HTTPS with `tls`'s CA pinned (`None`: as [`Self::new`]).
    pub fn pinned(base: &str, token: Secret, tls: Option<&ClientTls>) -> Result<Self, ApiError> {
        Api::pinned("ndes-proxy", base, token, tls).map(Self)
    }

    /// One new challenge (each call mints one, as each visit of the page does).
    pub async fn mint(&self) -> Result<MintedChallenge, ApiError> {
        self.0.get("/certsrv/mscep_admin/?format=json").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_leave_their_segment() {
        let id = |s: &str| PathId::parse(s).unwrap_or_else(|| PathId("invalid".into()));
        assert_eq!(seg(&id("dev-1.a_b~")), "dev-1.a_b~");
        assert_eq!(seg(&id("../x?y#z")), "..%2Fx%3Fy%23z");
        for bad in ["", ".", "..", "a\nb"] {
            assert!(PathId::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Action::parse("retire"), Some(Action::Retire));
        assert_eq!(Action::parse("Retire"), None);
    }
}
