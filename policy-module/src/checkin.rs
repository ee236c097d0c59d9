//! MDM check-in (step 2): the device's rendered profiles, each with a fresh challenge, its
//! pending commands, and the status reports it sends back.

use serde::{Deserialize, Serialize};

use crate::error::AdminError;
use crate::model::{
    CertStatus, CertificateType, Device, DeviceState, HashAlgorithm, KeyAlgorithm, KeyUsage,
};
use crate::render::{self, Expected};
use crate::service::PolicyService;
use crate::store::CommandRow;
use foundation::secret::Secret;

/// What a device sends with its check-in (all optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// Certificates the device installed since the last check-in.
    #[serde(default)]
    pub installed: Vec<InstalledCert>,
    /// Enrollment errors per profile.
    #[serde(default)]
    pub errors: Vec<ProfileError>,
    /// Commands the device carried out.
    #[serde(default)]
    pub acknowledged_commands: Vec<String>,
}

/// A certificate the device reports installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledCert {
    pub profile_id: String,
    pub thumbprint_sha256: String,
}

/// An enrollment error the device reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileError {
    pub profile_id: String,
    pub message: String,
}

/// One profile rendered for the device, with its challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderedProfile {
    pub profile_id: String,
    pub version: i64,
    pub name: String,
    pub certificate_type: CertificateType,
    #[serde(flatten)]
    pub expected: Expected,
    pub hash_algorithm: HashAlgorithm,
    pub renewal_threshold_percent: u8,
    pub scep_server_urls: Vec<String>,
    pub ca_thumbprint: String,
    pub retry_count: u32,
    pub retry_delay_minutes: u32,
    pub challenge: Secret,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub challenge_expires_at: i64,
    /// SHA-256 thumbprints (lowercase hex) of this device's certificates for this profile
    /// that are revoked, revoking or revoke_failed in the inventory. A device holding one
    /// deletes it and enrolls anew (PKCSReq): a renewal signed by it would be refused.
    #[serde(default)]
    pub revoked_thumbprints: Vec<String>,
}

/// A profile that targets the device but cannot be rendered for it (missing variable).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnrenderableProfile {
    pub profile_id: String,
    pub error: String,
}

/// The check-in answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckinResponse {
    pub device_id: String,
    pub state: DeviceState,
    pub profiles: Vec<RenderedProfile>,
    pub unrenderable: Vec<UnrenderableProfile>,
    pub commands: Vec<CommandRow>,
}

impl PolicyService {
    /// The device owning a credential, if any (constant-time by construction: the lookup is
    /// by SHA-256 digest of a 256-bit random token).
    pub async fn authenticate_device(
        &self,
        credential: &Secret,
    ) -> Result<Option<Device>, AdminError> {
        Ok(self
            .store
            .device_by_credential(&credential.digest())
            .await?)
    }

    /// Applies a status report from `device`, then answers the check-in. Retired, wiped and
    /// blocked devices get their commands but no profiles and no challenges.
    pub async fn checkin(
        &self,
        device: &Device,
        report: &StatusReport,
    ) -> Result<CheckinResponse, AdminError> {
        if report.installed.len() + report.errors.len() + report.acknowledged_commands.len() > 256 {
            return Err(AdminError::Invalid("status report too long".into()));
        }
        for i in &report.installed {
            if !self
                .store
                .mark_installed(&device.id, &i.thumbprint_sha256.to_ascii_lowercase())
                .await?
            {
                return Err(AdminError::Invalid(format!(
                    "no certificate {} for this device",
                    i.thumbprint_sha256.chars().take(64).collect::<String>()
                )));
            }
            self.audit(
                "certificate_installed",
                Some(&device.id),
                Some(&i.profile_id),
                None,
                None,
            )
            .await;
        }
        for e in &report.errors {
            let message: String = e.message.chars().take(512).collect();
            self.audit(
                "enrollment_error",
                Some(&device.id),
                Some(&e.profile_id),
                None,
                Some(message),
            )
            .await;
        }
        for c in &report.acknowledged_commands {
            if self.store.ack_command(&device.id, c).await? {
                self.audit(
                    "command_acknowledged",
                    Some(&device.id),
                    None,
                    None,
                    Some(c.clone()),
                )
                .await;
            }
        }
        let mut profiles = Vec::new();
        let mut unrenderable = Vec::new();
        // Names this check-in in the records of the challenges it delivers.
        let checkin_id = uuid::Uuid::new_v4().to_string();
        if device.state == DeviceState::Active {
            let certs = self.store.certs_for_device(&device.id).await?;
            for pid in self.store.targeted_profiles(&device.id).await? {
                let Some(profile) = self.store.get_profile(&pid).await? else {
                    continue;
                };
                let expected = match render::render(&profile, device) {
                    Ok(e) => e,
                    Err(error) => {
                        unrenderable.push(UnrenderableProfile {
                            profile_id: pid,
                            error,
                        });
                        continue;
                    }
                };
                let (challenge, expires) = self
                    .issue_profile_challenge(
                        &device.id,
                        &pid,
                        profile.version,
                        &expected,
                        &checkin_id,
                    )
                    .await?;
                let revoked_thumbprints = certs
                    .iter()
                    .filter(|c| c.profile_id.as_deref() == Some(pid.as_str()))
                    .filter(|c| {
                        matches!(
                            c.status,
                            CertStatus::Revoking
                                | CertStatus::Revoked
                                | CertStatus::RevokeFailed
                                | CertStatus::Held
                        )
                    })
                    .map(|c| c.thumbprint_sha256.to_ascii_lowercase())
                    .collect();
                let s = profile.spec;
                profiles.push(RenderedProfile {
                    profile_id: pid,
                    version: profile.version,
                    name: s.name,
                    certificate_type: s.certificate_type,
                    expected,
                    hash_algorithm: s.hash_algorithm,
                    renewal_threshold_percent: s.renewal_threshold_percent,
                    scep_server_urls: s.scep_server_urls,
                    ca_thumbprint: s.ca_thumbprint,
                    retry_count: s.retry_count,
                    retry_delay_minutes: s.retry_delay_minutes,
                    challenge,
                    challenge_expires_at: expires,
                    revoked_thumbprints,
                });
            }
        }
        Ok(CheckinResponse {
            device_id: device.id.clone(),
            state: device.state,
            profiles,
            unrenderable,
            commands: self.store.pending_commands(&device.id).await?,
        })
    }
}

/// Key usage as the Windows CSP's decimal bit mask (the KU BIT STRING's first octet:
/// digitalSignature 0x80, nonRepudiation 0x40, keyEncipherment 0x20, dataEncipherment 0x10,
/// keyAgreement 0x08).
pub fn key_usage_mask(usages: &[KeyUsage]) -> u32 {
    usages
        .iter()
        .map(|u| match u {
            KeyUsage::DigitalSignature => 0x80,
            KeyUsage::NonRepudiation => 0x40,
            KeyUsage::KeyEncipherment => 0x20,
            KeyUsage::DataEncipherment => 0x10,
            KeyUsage::KeyAgreement => 0x08,
        })
        .fold(0, |a, b| a | b)
}

/// The key type name Apple's SCEP payload uses.
pub fn apple_key_type(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::Rsa => "RSA",
        KeyAlgorithm::Ec => "ECSECPrimeRandom",
    }
}
