//! Graph JSON -> [`ProfileSpec`]. Every property of the document is either read into the spec
//! or listed in [`Imported::unmodelled`] with the reason; none is dropped silently.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::fields::{Doc, ekus, hash, key_usage, sans, subject, validity};
use super::{ConversionError, IntunePlatform, Unmodelled};
use crate::model::{CertificateType, KeyAlgorithm, ProfileSpec};

/// What the Graph document does not say but a scep-lab profile needs.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The profile id (default: from `displayName`).
    pub id: Option<String>,
    /// The CA template the grant names (in Intune this is NDES's registry, not the profile).
    pub template: String,
    /// The pinned root (in Intune a separate trusted-certificate profile, `rootCertificate`).
    pub ca_thumbprint: String,
}

/// A converted document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub id: String,
    pub platform: IntunePlatform,
    pub spec: ProfileSpec,
    /// Document properties not carried into the spec.
    pub unmodelled: Vec<Unmodelled>,
    /// Spec fields the document does not set, filled with scep-lab's defaults.
    pub defaulted: Vec<Unmodelled>,
}

/// Converts a Graph SCEP certificate profile into a scep-lab profile.
pub fn import(doc: &Value, opts: &ImportOptions) -> Result<Imported, ConversionError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| ConversionError::new("(document)", "must be a JSON object"))?;
    let mut d = Doc {
        obj,
        used: BTreeSet::new(),
    };
    let odata = d.required_str("@odata.type")?;
    let platform = IntunePlatform::from_odata_type(odata).ok_or_else(|| {
        let known: Vec<_> = IntunePlatform::ALL.iter().map(|p| p.odata_type()).collect();
        ConversionError::new(
            "@odata.type",
            format!(
                "{odata:?} is not an Intune SCEP certificate profile type ({})",
                known.join(", ")
            ),
        )
    })?;
    let mut unmodelled = Vec::new();
    let mut defaulted = Vec::new();

    let name = d.required_str("displayName")?.to_owned();
    let certificate_type = match d.str("certificateStore")? {
        Some("user") => CertificateType::User,
        Some("machine") => CertificateType::Device,
        Some(other) => {
            return Err(ConversionError::new(
                "certificateStore",
                format!("{other:?} is not user or machine"),
            ));
        }
        None => {
            defaulted.push(Unmodelled::new(
                "certificate_type",
                "certificateStore is not set: a device certificate",
            ));
            CertificateType::Device
        }
    };
    let subject_name_format = subject(&mut d, platform)?;
    let subject_alternative_names = sans(&mut d, &mut unmodelled)?;
    let key_usage = key_usage(d.required_str("keyUsage")?)?;
    let key_size = match d.required_str("keySize")? {
        "size2048" => 2048,
        "size4096" => 4096,
        "size1024" => {
            return Err(ConversionError::new(
                "keySize",
                "size1024 is not offered by scep-lab (RSA 2048, 3072 or 4096)",
            ));
        }
        other => {
            return Err(ConversionError::new(
                "keySize",
                format!("{other:?} is not size1024, size2048 or size4096"),
            ));
        }
    };
    let hash_algorithm = hash(&mut d, platform, &mut defaulted)?;
    let extended_key_usages = ekus(&mut d, &mut unmodelled)?;
    let validity_days = validity(&mut d)?;
    let renewal_threshold_percent = match d.int("renewalThresholdPercentage")? {
        Some(n) => u8::try_from(n)
            .map_err(|_| ConversionError::new("renewalThresholdPercentage", "must be 1 to 99"))?,
        None => {
            defaulted.push(Unmodelled::new(
                "renewal_threshold_percent",
                "renewalThresholdPercentage is not set: 20, Intune's default",
            ));
            20
        }
    };
    let scep_server_urls = d
        .array("scepServerUrls")?
        .iter()
        .map(|u| {
            u.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ConversionError::new("scepServerUrls", "must be strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    defaulted.push(Unmodelled::new(
        "retry_count",
        "Graph SCEP profiles carry no retry settings: scep-lab's default",
    ));
    defaulted.push(Unmodelled::new(
        "retry_delay_minutes",
        "Graph SCEP profiles carry no retry settings: scep-lab's default",
    ));
    let spec = ProfileSpec {
        name,
        certificate_type,
        subject_name_format,
        subject_alternative_names,
        key_usage,
        extended_key_usages,
        // Intune's SCEP profiles offer RSA keys only.
        key_algorithm: KeyAlgorithm::Rsa,
        key_size,
        hash_algorithm,
        validity_days,
        renewal_threshold_percent,
        template: opts.template.clone(),
        scep_server_urls,
        ca_thumbprint: opts.ca_thumbprint.clone(),
        retry_count: 3,
        retry_delay_minutes: 5,
    };
    spec.validate().map_err(graph_error)?;

    for (key, value) in obj {
        if !value.is_null() && !d.used.contains(key.as_str()) {
            unmodelled.push(Unmodelled::new(key.clone(), reason(key, platform)));
        }
    }
    let id = match &opts.id {
        Some(id) => id.clone(),
        None => slug(&spec.name),
    };
    if !crate::model::is_identifier(&id) {
        return Err(ConversionError::new(
            "id",
            "1-64 characters of [A-Za-z0-9_.-]",
        ));
    }
    Ok(Imported {
        id,
        platform,
        spec,
        unmodelled,
        defaulted,
    })
}

/// A spec check's message, its field renamed to the Graph property it came from.
fn graph_error(message: String) -> ConversionError {
    const FIELDS: [(&str, &str); 11] = [
        ("name", "displayName"),
        ("subject_name_format", "subjectNameFormatString"),
        ("subject_alternative_names", "customSubjectAlternativeNames"),
        ("key_usage", "keyUsage"),
        ("extended_key_usages", "extendedKeyUsages"),
        ("key_size", "keySize"),
        ("validity_days", "certificateValidityPeriodValue"),
        ("renewal_threshold_percent", "renewalThresholdPercentage"),
        ("scep_server_urls", "scepServerUrls"),
        ("template", "template"),
        ("ca_thumbprint", "ca_thumbprint"),
    ];
    let field = message.split([':', '.']).next().unwrap_or_default();
    match FIELDS.iter().find(|(f, _)| *f == field) {
        Some((_, graph)) => ConversionError::new(*graph, message),
        None => ConversionError::new("(profile)", message),
    }
}

/// Why a document property has no place in a scep-lab profile.
fn reason(key: &str, platform: IntunePlatform) -> String {
    match key {
        "id" | "createdDateTime" | "lastModifiedDateTime" | "version" | "roleScopeTagIds"
        | "supportsScopeTags" | "@odata.context" => {
            "tenant metadata, not a certificate setting".into()
        }
        "description" => "scep-lab profiles have no description".into(),
        k if k.starts_with("deviceManagementApplicabilityRule") => {
            "applicability rules filter devices; scep-lab assigns profiles to devices and groups".into()
        }
        "keyStorageProvider" => {
            "where Windows keeps the key (TPM, software, Windows Hello) is the device's choice in scep-lab".into()
        }
        "allowAllAppsAccess" => "keychain access on macOS is device-side".into(),
        "certificateAccessType" | "silentCertificateAccessDetails" => {
            "which Android apps may use the key is device-side".into()
        }
        "subjectAlternativeNameFormatString" => {
            "an Azure AD attribute SAN needs directory attributes scep-lab devices do not have".into()
        }
        k if k.starts_with("rootCertificate") => {
            "the trusted root is a separate Intune profile; scep-lab pins ca_thumbprint, given on import".into()
        }
        "hashAlgorithm" => format!("not in the published schema of {}", platform.graph_type()),
        _ => format!("not a property of {} that scep-lab reads", platform.graph_type()),
    }
}

/// A profile id from a display name: lower case, runs of other characters as one `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(64).collect();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "intune-profile".into()
    } else {
        out
    }
}
