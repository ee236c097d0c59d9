//! Graph JSON -> [`ProfileSpec`]. Every property of the document is either read into the spec
//! or listed in [`Imported::unmodelled`] with the reason; none is dropped silently.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::variables::{Direction, translate};
use super::{ConversionError, DAYS_PER_MONTH, DAYS_PER_YEAR, IntunePlatform, Unmodelled};
use crate::model::{
    CertificateType, HashAlgorithm, KeyAlgorithm, KeyUsage, ProfileSpec, SanKind, SanTemplate,
};

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

/// Reads the document, remembering which properties were consumed.
struct Doc<'a> {
    obj: &'a Map<String, Value>,
    used: BTreeSet<&'static str>,
}

impl<'a> Doc<'a> {
    /// A property's value; absent and null are the same (Graph writes nulls for unset ones).
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.insert(key);
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, ConversionError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConversionError::new(key, "must be a string")),
        }
    }

    fn required_str(&mut self, key: &'static str) -> Result<&'a str, ConversionError> {
        self.str(key)?
            .ok_or_else(|| ConversionError::new(key, "missing"))
    }

    fn int(&mut self, key: &'static str) -> Result<Option<u32>, ConversionError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ConversionError::new(key, "must be a non-negative integer")),
        }
    }

    fn array(&mut self, key: &'static str) -> Result<&'a [Value], ConversionError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(ConversionError::new(key, "must be an array")),
        }
    }
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

/// The subject format: `custom` takes `subjectNameFormatString`; the older named formats are
/// spelled out as the formats Intune documents for them.
fn subject(d: &mut Doc<'_>, platform: IntunePlatform) -> Result<String, ConversionError> {
    let custom = d.str("subjectNameFormatString")?;
    let format = d.str("subjectNameFormat")?.unwrap_or("custom");
    let device_id_formats = [
        "commonNameAsAadDeviceId",
        "commonNameAsIntuneDeviceId",
        "commonNameAsDurableDeviceId",
    ];
    if platform.is_apple() && device_id_formats.contains(&format) {
        return Err(ConversionError::new(
            "subjectNameFormat",
            format!("{format} is not an appleSubjectNameFormat value"),
        ));
    }
    let named = match format {
        "custom" => {
            let s = custom.ok_or_else(|| {
                ConversionError::new(
                    "subjectNameFormatString",
                    "missing (subjectNameFormat is custom)",
                )
            })?;
            return translate(s, Direction::Import, "subjectNameFormatString");
        }
        "commonName" => "CN={{UserName}}",
        "commonNameIncludingEmail" => "CN={{UserName}},E={{EmailAddress}}",
        "commonNameAsEmail" => "CN={{EmailAddress}}",
        "commonNameAsSerialNumber" => "CN={{SerialNumber}}",
        "commonNameAsAadDeviceId" => "CN={{AAD_Device_ID}}",
        "commonNameAsIntuneDeviceId" => "CN={{DeviceId}}",
        "commonNameAsIMEI" | "commonNameAsDurableDeviceId" => {
            return Err(ConversionError::new(
                "subjectNameFormat",
                format!("{format}: a scep-lab device has no such attribute"),
            ));
        }
        other => {
            return Err(ConversionError::new(
                "subjectNameFormat",
                format!("{other:?} is not a subjectNameFormat value"),
            ));
        }
    };
    Ok(named.to_owned())
}

fn san_kind(san_type: &str) -> Option<SanKind> {
    match san_type {
        "emailAddress" => Some(SanKind::Email),
        "userPrincipalName" => Some(SanKind::Upn),
        "domainNameService" => Some(SanKind::Dns),
        "universalResourceIdentifier" => Some(SanKind::Uri),
        _ => None,
    }
}

/// `customSubjectAlternativeNames`, plus the older single `subjectAlternativeNameType`
/// (whose email and UPN values mean the user's own).
fn sans(
    d: &mut Doc<'_>,
    unmodelled: &mut Vec<Unmodelled>,
) -> Result<Vec<SanTemplate>, ConversionError> {
    let mut out = Vec::new();
    if let Some(types) = d.str("subjectAlternativeNameType")? {
        for t in types.split(',').map(str::trim) {
            match t {
                "none" | "" => {}
                "emailAddress" => out.push(SanTemplate {
                    kind: SanKind::Email,
                    value: "{{EmailAddress}}".into(),
                }),
                "userPrincipalName" => out.push(SanTemplate {
                    kind: SanKind::Upn,
                    value: "{{UserPrincipalName}}".into(),
                }),
                "customAzureADAttribute" | "domainNameService" | "universalResourceIdentifier" => {
                    unmodelled.push(Unmodelled::new(
                        "subjectAlternativeNameType",
                        format!("{t} without a value (an Azure AD attribute); name SANs in customSubjectAlternativeNames"),
                    ))
                }
                other => {
                    return Err(ConversionError::new(
                        "subjectAlternativeNameType",
                        format!("{other:?} is not a subjectAlternativeNameType value"),
                    ));
                }
            }
        }
    }
    for (i, san) in d.array("customSubjectAlternativeNames")?.iter().enumerate() {
        let prop = format!("customSubjectAlternativeNames[{i}]");
        let obj = san
            .as_object()
            .ok_or_else(|| ConversionError::new(&prop, "must be an object"))?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let (Some(san_type), Some(name)) = (text("sanType"), text("name")) else {
            return Err(ConversionError::new(
                &prop,
                "needs sanType and name strings",
            ));
        };
        nested_extras(obj, &prop, &["sanType", "name"], unmodelled);
        match san_kind(san_type) {
            Some(kind) => {
                let value = translate(name, Direction::Import, &format!("{prop}.name"))?;
                out.push(SanTemplate { kind, value });
            }
            None => unmodelled.push(Unmodelled::new(
                prop,
                format!("sanType {san_type:?}: scep-lab SANs are email, UPN, DNS, URI or IP"),
            )),
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|s| seen.insert((s.kind, s.value.clone())));
    Ok(out)
}

/// Keys of a nested Graph object beyond the ones read (and its own `@odata.type`).
fn nested_extras(
    obj: &Map<String, Value>,
    prop: &str,
    read: &[&str],
    unmodelled: &mut Vec<Unmodelled>,
) {
    for (k, v) in obj {
        if !v.is_null() && k != "@odata.type" && !read.contains(&k.as_str()) {
            unmodelled.push(Unmodelled::new(
                format!("{prop}.{k}"),
                "not in the published schema",
            ));
        }
    }
}

fn key_usage(flags: &str) -> Result<Vec<KeyUsage>, ConversionError> {
    let mut out = Vec::new();
    for f in flags.split(',').map(str::trim) {
        let ku = match f {
            "keyEncipherment" => KeyUsage::KeyEncipherment,
            "digitalSignature" => KeyUsage::DigitalSignature,
            other => {
                return Err(ConversionError::new(
                    "keyUsage",
                    format!("{other:?} is not keyEncipherment or digitalSignature"),
                ));
            }
        };
        if !out.contains(&ku) {
            out.push(ku);
        }
    }
    Ok(out)
}

/// `sha2` (SHA-2, the device choosing the size) is SHA-256; SHA-1 scep-lab does not offer.
fn hash(
    d: &mut Doc<'_>,
    platform: IntunePlatform,
    defaulted: &mut Vec<Unmodelled>,
) -> Result<HashAlgorithm, ConversionError> {
    let flags = if platform.has_hash_algorithm() {
        d.str("hashAlgorithm")?
    } else {
        None
    };
    let Some(flags) = flags else {
        defaulted.push(Unmodelled::new(
            "hash_algorithm",
            "hashAlgorithm is not set (iOS profiles have none): sha256",
        ));
        return Ok(HashAlgorithm::Sha256);
    };
    let flags: Vec<&str> = flags.split(',').map(str::trim).collect();
    if let Some(bad) = flags.iter().find(|f| !matches!(**f, "sha1" | "sha2")) {
        return Err(ConversionError::new(
            "hashAlgorithm",
            format!("{bad:?} is not sha1 or sha2"),
        ));
    }
    if flags.contains(&"sha2") {
        Ok(HashAlgorithm::Sha256)
    } else {
        Err(ConversionError::new(
            "hashAlgorithm",
            "sha1 is not offered by scep-lab",
        ))
    }
}

fn ekus(d: &mut Doc<'_>, unmodelled: &mut Vec<Unmodelled>) -> Result<Vec<String>, ConversionError> {
    let mut out = Vec::new();
    for (i, e) in d.array("extendedKeyUsages")?.iter().enumerate() {
        let prop = format!("extendedKeyUsages[{i}]");
        let obj = e
            .as_object()
            .ok_or_else(|| ConversionError::new(&prop, "must be an object"))?;
        let oid = obj
            .get("objectIdentifier")
            .and_then(Value::as_str)
            .ok_or_else(|| ConversionError::new(format!("{prop}.objectIdentifier"), "missing"))?
            .trim()
            .to_owned();
        let label = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        if label != super::eku_label(&oid) {
            unmodelled.push(Unmodelled::new(
                format!("{prop}.name"),
                format!(
                    "EKU labels are not kept; export names {oid} {:?}",
                    super::eku_label(&oid)
                ),
            ));
        }
        nested_extras(obj, &prop, &["name", "objectIdentifier"], unmodelled);
        if !out.contains(&oid) {
            out.push(oid);
        }
    }
    Ok(out)
}

fn validity(d: &mut Doc<'_>) -> Result<u32, ConversionError> {
    let value = d
        .int("certificateValidityPeriodValue")?
        .ok_or_else(|| ConversionError::new("certificateValidityPeriodValue", "missing"))?;
    let unit = match d.required_str("certificateValidityPeriodScale")? {
        "days" => 1,
        "months" => DAYS_PER_MONTH,
        "years" => DAYS_PER_YEAR,
        other => {
            return Err(ConversionError::new(
                "certificateValidityPeriodScale",
                format!("{other:?} is not days, months or years"),
            ));
        }
    };
    value
        .checked_mul(unit)
        .ok_or_else(|| ConversionError::new("certificateValidityPeriodValue", "too large"))
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
