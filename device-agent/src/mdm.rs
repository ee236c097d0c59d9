//! The MDM channel to policy-module: registration, check-in (rendered profiles, each with a
//! fresh challenge, and pending commands), and status reports.
//!
//! The JSON types here are the agent's own reading of policy-module's check-in API (see its
//! `openapi.json`), so the agent does not link the server. Unknown fields are ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::csr::{CsrSpec, KeyUsage, NameAttr, San};
use crate::enroll::EnrollConfig;
use crate::error::{Error, Result};
use crate::key::KeySpec;
use crate::state::DeviceDir;
use crate::transport::transport_error;

/// A secret string from the MDM (challenge, credential): redacted `Debug`, no `Serialize`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One profile as the MDM rendered it for this device.
#[derive(Clone, Debug, Deserialize)]
pub struct RenderedProfile {
    /// Profile id (the slot name).
    pub profile_id: String,
    /// Profile version; a new version re-enrolls.
    pub version: i64,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Subject RDNs in order.
    pub subject: Vec<NameAttr>,
    /// SANs.
    #[serde(default)]
    pub subject_alternative_names: Vec<San>,
    /// `rsa` or `ec`.
    pub key_algorithm: String,
    /// RSA bits or EC curve size.
    pub key_size: u32,
    /// Key usage to request.
    #[serde(default)]
    pub key_usage: Vec<KeyUsage>,
    /// EKUs to request.
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
    /// CSR signature hash.
    pub hash_algorithm: String,
    /// Renewal threshold.
    pub renewal_threshold_percent: u8,
    /// SCEP URLs.
    pub scep_server_urls: Vec<String>,
    /// Trusted CA thumbprint.
    pub ca_thumbprint: String,
    /// PENDING polls.
    pub retry_count: u32,
    /// Minutes between polls.
    pub retry_delay_minutes: u32,
    /// The one-time challenge for this device and profile.
    pub challenge: SecretString,
    /// SHA-256 thumbprints (hex) of this device's certificates for this profile that the MDM
    /// knows revoked (or being revoked). Holding one, the device deletes it and enrolls anew.
    #[serde(default)]
    pub revoked_thumbprints: Vec<String>,
}

impl RenderedProfile {
    /// What to enroll with (the challenge stays separate).
    pub fn enroll_config(&self) -> Result<EnrollConfig> {
        let key = KeySpec::from_profile(&self.key_algorithm, self.key_size)?;
        Ok(EnrollConfig {
            urls: self.scep_server_urls.clone(),
            ca_thumbprint: Some(self.ca_thumbprint.clone()),
            csr: CsrSpec {
                subject: self.subject.clone(),
                subject_alternative_names: self.subject_alternative_names.clone(),
                key_usage: self.key_usage.clone(),
                extended_key_usages: self.extended_key_usages.clone(),
            },
            key: key.to_string(),
            csr_hash: Some(self.hash_algorithm.clone()),
            retry_count: self.retry_count,
            retry_delay_secs: u64::from(self.retry_delay_minutes) * 60,
            renewal_threshold_percent: self.renewal_threshold_percent,
        })
    }
}

/// A command for the device.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Command {
    /// Command id (acknowledged in the next report).
    pub id: String,
    /// `wipe` or `retire`.
    pub kind: String,
}

/// The check-in answer.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckinResponse {
    /// The device id.
    pub device_id: String,
    /// `active`, `blocked`, `retired` or `wiped`.
    pub state: String,
    /// Profiles to enroll (only for active devices).
    #[serde(default)]
    pub profiles: Vec<RenderedProfile>,
    /// Commands to carry out.
    #[serde(default)]
    pub commands: Vec<Command>,
}

/// A certificate the device installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledCert {
    /// Profile id.
    pub profile_id: String,
    /// SHA-256 of the certificate, hex.
    pub thumbprint_sha256: String,
}

/// An enrollment error for a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileError {
    /// Profile id.
    pub profile_id: String,
    /// What went wrong (never a secret: [`Error`] carries none).
    pub message: String,
}

/// What the device tells the MDM at check-in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Installed certificates.
    #[serde(default)]
    pub installed: Vec<InstalledCert>,
    /// Enrollment errors.
    #[serde(default)]
    pub errors: Vec<ProfileError>,
    /// Commands carried out.
    #[serde(default)]
    pub acknowledged_commands: Vec<String>,
}

impl StatusReport {
    /// Whether there is nothing to say.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty() && self.errors.is_empty() && self.acknowledged_commands.is_empty()
    }

    /// Add another report's entries.
    pub fn merge(&mut self, other: Self) {
        self.installed.extend(other.installed);
        self.errors.extend(other.errors);
        self.acknowledged_commands
            .extend(other.acknowledged_commands);
    }
}

/// A device as the admin registers it (policy-module `DeviceSpec`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeviceRegistration {
    /// Chosen id (generated by the MDM when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Device name.
    pub name: String,
    /// `windows`, `ios`, `macos` or `android`.
    pub platform: String,
    /// Serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Owner UPN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_upn: Option<String>,
    /// Owner e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
}

/// Where the device is registered (`registration.json`); the credential is a separate 0600
/// file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The MDM's device id.
    pub device_id: String,
    /// The MDM base URL.
    pub mdm_url: String,
}

#[derive(Deserialize)]
struct Registered {
    device: RegisteredDevice,
    credential: SecretString,
}

#[derive(Deserialize)]
struct RegisteredDevice {
    id: String,
}

/// HTTP client of the MDM API.
#[derive(Clone, Debug)]
pub struct MdmClient {
    http: reqwest::Client,
    base: String,
}

impl MdmClient {
    /// A client of the MDM at `base` (e.g. `http://127.0.0.1:8443`).
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Register a device with the admin API (what an enrollment flow does for a real device)
    /// and store its id and credential in `dir`.
    pub async fn register(
        &self,
        dir: &DeviceDir,
        admin_token: &SecretString,
        device: &DeviceRegistration,
    ) -> Result<Registration> {
        let body = serde_json::to_vec(device).map_err(|e| Error::Invalid(e.to_string()))?;
        let resp = self
            .http
            .post(format!("{}/api/v1/devices", self.base))
            .bearer_auth(admin_token.expose())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let r: Registered = json(resp, "register").await?;
        dir.write_secret("credential", r.credential.expose().as_bytes())?;
        let reg = Registration {
            device_id: r.device.id,
            mdm_url: self.base.clone(),
        };
        dir.write_json("registration.json", &reg)?;
        Ok(reg)
    }

    /// Add a device to a group with the admin API (profiles are assigned to groups).
    pub async fn add_to_group(
        &self,
        admin_token: &SecretString,
        group: &str,
        device_id: &str,
    ) -> Result<()> {
        let resp = self
            .http
            .put(format!(
                "{}/api/v1/groups/{group}/members/{device_id}",
                self.base
            ))
            .bearer_auth(admin_token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(Error::Http {
                operation: "group membership",
                status,
                retry_after: None,
            })
        }
    }

    /// One check-in: send `report`, receive profiles and commands.
    pub async fn checkin(
        &self,
        device_id: &str,
        credential: &SecretString,
        report: &StatusReport,
    ) -> Result<CheckinResponse> {
        let body = serde_json::to_vec(report).map_err(|e| Error::Invalid(e.to_string()))?;
        let resp = self
            .http
            .post(format!("{}/mdm/v1/devices/{device_id}/checkin", self.base))
            .bearer_auth(credential.expose())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        json(resp, "checkin").await
    }
}

/// A 2xx JSON body, or the status as an error (the body is not echoed: it may be long).
async fn json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    operation: &'static str,
) -> Result<T> {
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return Err(Error::Http {
            operation,
            status,
            retry_after,
        });
    }
    let bytes = resp.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("{operation}: {e}")))
}
