//! The domain: subject attributes, SANs, profiles, devices, groups and certificates.

use serde::{Deserialize, Serialize};

pub use foundation::names::{
    ANY_EKU, KeyUsage, NameAttr, San, SanKind, SubjectAttr, is_dotted_oid,
};

use crate::format;

/// Longest transactionID accepted (RFC 8894 uses a hash in hex or base64).
pub(crate) const MAX_TRANSACTION_ID: usize = 128;

pub use policy_api::csr::KeyAlgorithm;

/// Hash algorithm the device should sign its CSR with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// User or device certificate (Intune "Certificate type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateType {
    Device,
    User,
}

/// A SAN in a profile: a kind and a value that may hold `{{Variables}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanTemplate {
    pub kind: SanKind,
    pub value: String,
}

/// What an admin writes to create or update a SCEP certificate profile (Intune's settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: String,
    pub certificate_type: CertificateType,
    /// RFC 4514-like `ATTR=value` list separated by commas, in encoding order, e.g.
    /// `CN={{DeviceName}},OU=Devices,O=Contoso`; `\,` and `\\` escape.
    pub subject_name_format: String,
    #[serde(default)]
    pub subject_alternative_names: Vec<SanTemplate>,
    pub key_usage: Vec<KeyUsage>,
    /// Dotted OIDs, e.g. 1.3.6.1.5.5.7.3.2 (clientAuth).
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
    pub key_algorithm: KeyAlgorithm,
    /// RSA modulus bits (2048, 3072, 4096) or EC curve size (256, 384).
    pub key_size: u32,
    pub hash_algorithm: HashAlgorithm,
    pub validity_days: u32,
    /// Renewal may start when this share of the lifetime remains (1..=100).
    pub renewal_threshold_percent: u8,
    /// The CA template the grant names.
    pub template: String,
    pub scep_server_urls: Vec<String>,
    /// Trusted root thumbprint (hex SHA-1 or SHA-256), as Intune's trusted-certificate profile.
    pub ca_thumbprint: String,
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    #[serde(default = "default_retry_delay")]
    pub retry_delay_minutes: u32,
}

fn default_retry_count() -> u32 {
    3
}
fn default_retry_delay() -> u32 {
    5
}

impl ProfileSpec {
    /// Checks the spec; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        check_text("name", &self.name, 128)?;
        format::parse_subject_format(&self.subject_name_format)?;
        for san in &self.subject_alternative_names {
            format::check_variables(&san.value)
                .map_err(|e| format!("subject_alternative_names: {e}"))?;
            check_text("subject_alternative_names.value", &san.value, 1024)?;
        }
        // Intune offers exactly these two bits; the rest of the vocabulary is the templates'.
        if self.key_usage.is_empty()
            || self
                .key_usage
                .iter()
                .any(|k| !matches!(k, KeyUsage::DigitalSignature | KeyUsage::KeyEncipherment))
        {
            return Err("key_usage: at least one of digitalSignature, keyEncipherment".into());
        }
        for oid in &self.extended_key_usages {
            if !is_dotted_oid(oid) || oid == ANY_EKU {
                return Err(format!(
                    "extended_key_usages: {oid:?} is not an allowed OID"
                ));
            }
        }
        match (self.key_algorithm, self.key_size) {
            (KeyAlgorithm::Rsa, 2048 | 3072 | 4096) | (KeyAlgorithm::Ec, 256 | 384) => {}
            _ => return Err("key_size: RSA 2048/3072/4096 or EC 256/384".into()),
        }
        if self.hash_algorithm == HashAlgorithm::Sha1 {
            return Err("hash_algorithm: sha1 is not offered".into());
        }
        if !(1..=730).contains(&self.validity_days) {
            return Err("validity_days: 1..=730".into());
        }
        if !(1..=100).contains(&self.renewal_threshold_percent) {
            return Err("renewal_threshold_percent: 1..=100".into());
        }
        if !is_identifier(&self.template) {
            return Err("template: 1-64 characters of [A-Za-z0-9_.-]".into());
        }
        if self.scep_server_urls.is_empty() || self.scep_server_urls.len() > 8 {
            return Err("scep_server_urls: one to eight URLs".into());
        }
        for url in &self.scep_server_urls {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(format!("scep_server_urls: {url:?} is not an http(s) URL"));
            }
        }
        let t = &self.ca_thumbprint;
        if !(t.len() == 40 || t.len() == 64) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("ca_thumbprint: hex SHA-1 (40) or SHA-256 (64)".into());
        }
        if self.retry_count > 10 || self.retry_delay_minutes > 1440 {
            return Err("retry_count <= 10 and retry_delay_minutes <= 1440".into());
        }
        Ok(())
    }
}

/// A stored profile: a spec at a version. Each update makes a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub version: i64,
    #[serde(flatten)]
    pub spec: ProfileSpec,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub updated_at: i64,
}

/// Device platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Windows,
    Ios,
    Macos,
    Android,
}

/// Where a device is in its management lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    Active,
    Blocked,
    Retired,
    Wiped,
    /// Deleted by an admin: a tombstone, so its certificates stay revocable and its history
    /// readable (docs/decisions.md #11). The admin API answers 404 for it.
    Deleted,
}

impl DeviceState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::Retired => "retired",
            Self::Wiped => "wiped",
            Self::Deleted => "deleted",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Blocked,
            Self::Retired,
            Self::Wiped,
            Self::Deleted,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// What an admin writes to register a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Chosen by the caller or generated (UUID).
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub platform: Platform,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub owner_upn: Option<String>,
    #[serde(default)]
    pub owner_email: Option<String>,
    #[serde(default)]
    pub aad_device_id: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
}

impl DeviceSpec {
    /// Checks the spec; values end up in certificates, so control characters are refused.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(id) = &self.id
            && !is_identifier(id)
        {
            return Err("id: 1-64 characters of [A-Za-z0-9_.-]".into());
        }
        check_text("name", &self.name, 128)?;
        for (field, v) in [
            ("serial_number", &self.serial_number),
            ("owner_upn", &self.owner_upn),
            ("owner_email", &self.owner_email),
            ("aad_device_id", &self.aad_device_id),
            ("user_name", &self.user_name),
        ] {
            if let Some(v) = v {
                check_text(field, v, 256)?;
            }
        }
        Ok(())
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub platform: Platform,
    pub serial_number: Option<String>,
    pub owner_upn: Option<String>,
    pub owner_email: Option<String>,
    pub aad_device_id: Option<String>,
    pub user_name: Option<String>,
    pub state: DeviceState,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub created_at: i64,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub updated_at: i64,
}

/// A device group (profile assignment target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
}

/// Status of an issued certificate in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    Issued,
    /// Revocation queued in the outbox, not yet confirmed by the CA.
    Revoking,
    Revoked,
    /// The CA refused permanently (unknown serial, auth); see the outbox entry.
    RevokeFailed,
    /// On certificateHold at the CA (a blocked device); unblock releases it.
    Held,
    /// Release of a hold queued in the outbox, not yet confirmed by the CA.
    Releasing,
}

impl CertStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Revoking => "revoking",
            Self::Revoked => "revoked",
            Self::RevokeFailed => "revoke_failed",
            Self::Held => "held",
            Self::Releasing => "releasing",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Issued,
            Self::Revoking,
            Self::Revoked,
            Self::RevokeFailed,
            Self::Held,
            Self::Releasing,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// An issued certificate as the inventory shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    pub serial_hex: String,
    pub thumbprint_sha256: String,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
    pub transaction_id: String,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub not_after: i64,
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub issued_at: i64,
    pub status: CertStatus,
    pub revocation_reason: Option<String>,
    #[serde(default, with = "foundation::time::rfc3339_serde::option")]
    pub installed_at: Option<i64>,
    /// The subject as the CA issued it (RFC 4514); None only if a stored certificate's DER
    /// could not be read.
    #[serde(default)]
    pub subject: Option<String>,
}

/// True for 1-64 characters of `[A-Za-z0-9_.-]` (ids, template names).
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(format!(
            "{field}: 1-{max} characters without control characters"
        ));
    }
    Ok(())
}
