//! The Graph properties import reads one by one into a [`ProfileSpec`] field: the subject, the
//! SANs, key usage, hash, EKUs and validity. Each either converts, is listed as unmodelled, or
//! is an error naming the property.
//!
//! [`ProfileSpec`]: crate::model::ProfileSpec

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::variables::{Direction, translate};
use super::{ConversionError, DAYS_PER_MONTH, DAYS_PER_YEAR, IntunePlatform, Unmodelled};
use crate::model::{HashAlgorithm, KeyUsage, SanKind, SanTemplate};

/// Reads the document, remembering which properties were consumed.
pub(super) struct Doc<'a> {
    pub(super) obj: &'a Map<String, Value>,
    pub(super) used: BTreeSet<&'static str>,
}

impl<'a> Doc<'a> {
    /// A property's value; absent and null are the same (Graph writes nulls for unset ones).
    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.insert(key);
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, ConversionError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConversionError::new(key, "must be a string")),
        }
    }

    pub(super) fn required_str(&mut self, key: &'static str) -> Result<&'a str, ConversionError> {
        self.str(key)?
            .ok_or_else(|| ConversionError::new(key, "missing"))
    }

    pub(super) fn int(&mut self, key: &'static str) -> Result<Option<u32>, ConversionError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ConversionError::new(key, "must be a non-negative integer")),
        }
    }

    pub(super) fn array(&mut self, key: &'static str) -> Result<&'a [Value], ConversionError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(ConversionError::new(key, "must be an array")),
        }
    }
}

/// The subject format: `custom` takes `subjectNameFormatString`; the older named formats are
/// spelled out as the formats Intune documents for them.
pub(super) fn subject(
    d: &mut Doc<'_>,
    platform: IntunePlatform,
) -> Result<String, ConversionError> {
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
pub(super) fn sans(
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

pub(super) fn key_usage(flags: &str) -> Result<Vec<KeyUsage>, ConversionError> {
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
pub(super) fn hash(
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

pub(super) fn ekus(
    d: &mut Doc<'_>,
    unmodelled: &mut Vec<Unmodelled>,
) -> Result<Vec<String>, ConversionError> {
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

pub(super) fn validity(d: &mut Doc<'_>) -> Result<u32, ConversionError> {
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
