//! Intune SCEP certificate profiles in and out (issue 20 item 1): Microsoft Graph
//! `deviceConfiguration` resources of the `...SCEPCertificateProfile` /
//! `...ScepCertificateProfile` types, converted to and from a scep-lab [`ProfileSpec`] without
//! I/O. Import names every property it could not model ([`Unmodelled`]) rather than dropping
//! it; export names every profile field the Graph document cannot carry. The property names and
//! enum values are those of the published Graph (beta) schema; see `testdata/intune/README.md`.
//!
//! [`ProfileSpec`]: crate::model::ProfileSpec

mod export;
mod import;
pub mod routes;
mod variables;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use export::{Exported, export};
pub use import::{ImportOptions, Imported, import};

/// The Graph type a profile is exported as; on import it is read from `@odata.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntunePlatform {
    /// `windows81SCEPCertificateProfile`, which Intune also uses for Windows 10/11.
    Windows,
    Ios,
    Macos,
    /// Android Enterprise fully managed, dedicated and corporate-owned work profile.
    AndroidDeviceOwner,
    /// Android Enterprise personally-owned work profile.
    AndroidWorkProfile,
    /// The older Android for Work type, still in the schema.
    AndroidForWork,
}

impl IntunePlatform {
    /// Every platform, in the order help texts list them.
    pub const ALL: [Self; 6] = [
        Self::Windows,
        Self::Ios,
        Self::Macos,
        Self::AndroidDeviceOwner,
        Self::AndroidWorkProfile,
        Self::AndroidForWork,
    ];

    /// The name the API and CLI take (`?platform=`, `--platform`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Windows => "windows",
            Self::Ios => "ios",
            Self::Macos => "macos",
            Self::AndroidDeviceOwner => "android-device-owner",
            Self::AndroidWorkProfile => "android-work-profile",
            Self::AndroidForWork => "android-for-work",
        }
    }

    /// From [`Self::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The Graph type name, without the `#microsoft.graph.` prefix.
    pub fn graph_type(self) -> &'static str {
        match self {
            Self::Windows => "windows81SCEPCertificateProfile",
            Self::Ios => "iosScepCertificateProfile",
            Self::Macos => "macOSScepCertificateProfile",
            Self::AndroidDeviceOwner => "androidDeviceOwnerScepCertificateProfile",
            Self::AndroidWorkProfile => "androidWorkProfileScepCertificateProfile",
            Self::AndroidForWork => "androidForWorkScepCertificateProfile",
        }
    }

    /// The `@odata.type` value Graph writes.
    pub fn odata_type(self) -> String {
        format!("#microsoft.graph.{}", self.graph_type())
    }

    /// From an `@odata.type`, with or without the leading `#`.
    pub fn from_odata_type(t: &str) -> Option<Self> {
        let name = t.trim_start_matches('#').strip_prefix("microsoft.graph.")?;
        Self::ALL.into_iter().find(|p| p.graph_type() == name)
    }

    /// iOS's type has no `hashAlgorithm` in the schema.
    fn has_hash_algorithm(self) -> bool {
        self != Self::Ios
    }

    /// Apple types take `appleSubjectNameFormat`, which lacks the device-id formats.
    fn is_apple(self) -> bool {
        matches!(self, Self::Ios | Self::Macos)
    }
}

/// A property that was not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmodelled {
    /// The property's name in the source document (`extendedKeyUsages[1].name`, `template`).
    pub property: String,
    pub reason: String,
}

impl Unmodelled {
    fn new(property: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            property: property.into(),
            reason: reason.into(),
        }
    }
}

/// A document or profile that cannot be converted; the message names the property (and the
/// variable, for an unknown one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{property}: {message}")]
pub struct ConversionError {
    pub property: String,
    pub message: String,
}

impl ConversionError {
    fn new(property: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            property: property.into(),
            message: message.into(),
        }
    }
}

/// Days per Intune validity scale unit. Intune's CA connector counts a month as 30 days and a
/// year as 365 for this purpose; scep-lab keeps days only.
const DAYS_PER_MONTH: u32 = 30;
const DAYS_PER_YEAR: u32 = 365;

/// Labels Intune's console gives well-known EKUs (the `name` of an `extendedKeyUsage`).
const EKU_LABELS: [(&str, &str); 10] = [
    ("1.3.6.1.5.5.7.3.1", "Server Authentication"),
    ("1.3.6.1.5.5.7.3.2", "Client Authentication"),
    ("1.3.6.1.5.5.7.3.3", "Code Signing"),
    ("1.3.6.1.5.5.7.3.4", "Secure Email"),
    ("1.3.6.1.5.5.7.3.8", "Time Stamping"),
    ("1.3.6.1.5.5.7.3.9", "OCSP Signing"),
    ("1.3.6.1.5.5.7.3.17", "IP security IKE"),
    ("1.3.6.1.5.5.8.2.2", "IP security IKE intermediate"),
    ("1.3.6.1.4.1.311.20.2.1", "Certificate Request Agent"),
    ("1.3.6.1.4.1.311.20.2.2", "Smart Card Logon"),
];

/// The label export writes for an EKU OID (the OID itself when unknown).
fn eku_label(oid: &str) -> String {
    EKU_LABELS
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, l)| (*l).to_owned())
        .or_else(|| foundation::names::eku_name(oid).map(str::to_owned))
        .unwrap_or_else(|| oid.to_owned())
}
