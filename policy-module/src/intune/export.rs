//! [`ProfileSpec`] -> Graph JSON for a chosen platform, so a profile tried in the lab can be
//! created in a tenant (`POST /deviceManagement/deviceConfigurations`). What the Graph type
//! cannot carry is listed in [`Exported::unexported`].

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::variables::{Direction, translate};
use super::{
    ConversionError, DAYS_PER_MONTH, DAYS_PER_YEAR, IntunePlatform, Unmodelled, eku_label,
};
use crate::model::{CertificateType, HashAlgorithm, KeyAlgorithm, KeyUsage, ProfileSpec, SanKind};

/// A profile as a Graph document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exported {
    pub platform: IntunePlatform,
    pub document: Value,
    /// Profile fields the document does not carry (or carries approximately), and why.
    pub unexported: Vec<Unmodelled>,
}

/// Converts a profile; a variable without an Intune equivalent is an error naming it.
pub fn export(spec: &ProfileSpec, platform: IntunePlatform) -> Result<Exported, ConversionError> {
    let mut unexported = vec![
        Unmodelled::new(
            "template",
            "the CA template is NDES's setting (its registry), not the profile's",
        ),
        Unmodelled::new(
            "ca_thumbprint",
            "the root is a separate trusted-certificate profile, bound as rootCertificate",
        ),
    ];
    if spec.retry_count != 3 || spec.retry_delay_minutes != 5 {
        unexported.push(Unmodelled::new(
            "retry_count",
            "Graph SCEP profiles carry no retry settings",
        ));
    }
    let mut doc = Map::new();
    doc.insert("@odata.type".into(), json!(platform.odata_type()));
    doc.insert("displayName".into(), json!(spec.name));
    doc.insert(
        "certificateStore".into(),
        json!(match spec.certificate_type {
            CertificateType::User => "user",
            CertificateType::Device => "machine",
        }),
    );
    doc.insert("subjectNameFormat".into(), json!("custom"));
    doc.insert(
        "subjectNameFormatString".into(),
        json!(translate(
            &spec.subject_name_format,
            Direction::Export,
            "subject_name_format"
        )?),
    );
    doc.insert("subjectAlternativeNameType".into(), json!("none"));
    let mut sans = Vec::new();
    for (i, san) in spec.subject_alternative_names.iter().enumerate() {
        let san_type = match san.kind {
            SanKind::Email => "emailAddress",
            SanKind::Upn => "userPrincipalName",
            SanKind::Dns => "domainNameService",
            SanKind::Uri => "universalResourceIdentifier",
            SanKind::Ip => {
                unexported.push(Unmodelled::new(
                    format!("subject_alternative_names[{i}]"),
                    "Intune SCEP profiles offer no IP address SAN",
                ));
                continue;
            }
        };
        let prop = format!("subject_alternative_names[{i}].value");
        sans.push(json!({
            "@odata.type": "microsoft.graph.customSubjectAlternativeName",
            "sanType": san_type,
            "name": translate(&san.value, Direction::Export, &prop)?,
        }));
    }
    doc.insert("customSubjectAlternativeNames".into(), Value::Array(sans));
    // Graph writes flags in declaration order: keyEncipherment, then digitalSignature.
    let ku: Vec<&str> = [
        (KeyUsage::KeyEncipherment, "keyEncipherment"),
        (KeyUsage::DigitalSignature, "digitalSignature"),
    ]
    .into_iter()
    .filter(|(k, _)| spec.key_usage.contains(k))
    .map(|(_, n)| n)
    .collect();
    doc.insert("keyUsage".into(), json!(ku.join(",")));
    let key_size = match (spec.key_algorithm, spec.key_size) {
        (KeyAlgorithm::Rsa, 2048) => "size2048",
        (KeyAlgorithm::Rsa, 4096) => "size4096",
        (alg, bits) => {
            unexported.push(Unmodelled::new(
                "key_size",
                format!(
                    "{} {bits}: Intune offers RSA 2048 or 4096 only; exported as size4096",
                    match alg {
                        KeyAlgorithm::Rsa => "RSA",
                        KeyAlgorithm::Ec => "EC",
                    }
                ),
            ));
            "size4096"
        }
    };
    doc.insert("keySize".into(), json!(key_size));
    if platform.has_hash_algorithm() {
        doc.insert("hashAlgorithm".into(), json!("sha2"));
    }
    if spec.hash_algorithm != HashAlgorithm::Sha256 {
        unexported.push(Unmodelled::new(
            "hash_algorithm",
            if platform.has_hash_algorithm() {
                "Intune offers sha2 without a size (the device picks SHA-256)"
            } else {
                "iOS profiles have no hashAlgorithm"
            },
        ));
    }
    let ekus: Vec<Value> = spec
        .extended_key_usages
        .iter()
        .map(|oid| {
            json!({
                "@odata.type": "microsoft.graph.extendedKeyUsage",
                "name": eku_label(oid),
                "objectIdentifier": oid,
            })
        })
        .collect();
    doc.insert("extendedKeyUsages".into(), Value::Array(ekus));
    let (value, scale) = match spec.validity_days {
        d if d % DAYS_PER_YEAR == 0 => (d / DAYS_PER_YEAR, "years"),
        d if d % DAYS_PER_MONTH == 0 => (d / DAYS_PER_MONTH, "months"),
        d => (d, "days"),
    };
    doc.insert("certificateValidityPeriodValue".into(), json!(value));
    doc.insert("certificateValidityPeriodScale".into(), json!(scale));
    doc.insert(
        "renewalThresholdPercentage".into(),
        json!(spec.renewal_threshold_percent),
    );
    doc.insert("scepServerUrls".into(), json!(spec.scep_server_urls));
    Ok(Exported {
        platform,
        document: Value::Object(doc),
        unexported,
    })
}
