//! Profile rendering: `{{Variables}}` in the subject and SAN formats, filled from the device.
//!
//! The rendered result ([`Expected`]) is what a challenge is bound to and what VerifyRequest
//! compares the CSR with, byte for byte.

use serde::{Deserialize, Serialize};

use crate::format::{canonical_variable, parse_subject_format};
use crate::model::{Device, KeyAlgorithm, KeyUsage, NameAttr, Profile, San, SanKind};

/// What a CSR made under a profile for a device must contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub subject: Vec<NameAttr>,
    pub subject_alternative_names: Vec<San>,
    pub key_algorithm: KeyAlgorithm,
    pub key_size: u32,
    pub key_usage: Vec<KeyUsage>,
    pub extended_key_usages: Vec<String>,
    pub template: String,
    pub validity_days: u32,
}

fn variable_value<'a>(device: &'a Device, name: &str) -> Option<&'a str> {
    let value = match canonical_variable(name)? {
        "DeviceId" => Some(device.id.as_str()),
        "DeviceName" => Some(device.name.as_str()),
        "SerialNumber" => device.serial_number.as_deref(),
        "UserPrincipalName" => device.owner_upn.as_deref(),
        "EmailAddress" => device.owner_email.as_deref(),
        "AAD_Device_ID" => device.aad_device_id.as_deref(),
        "UserName" => device.user_name.as_deref(),
        "Platform" => Some(match device.platform {
            crate::model::Platform::Windows => "windows",
            crate::model::Platform::Ios => "ios",
            crate::model::Platform::Macos => "macos",
            crate::model::Platform::Android => "android",
        }),
        _ => None,
    };
    value.filter(|v| !v.is_empty())
}

/// Fills the variables of one value template; a variable the device lacks is an error.
pub fn render_value(template: &str, device: &Device) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed {{")?;
        let name = &after[..end];
        let value = variable_value(device, name)
            .ok_or_else(|| format!("device has no value for {{{{{}}}}}", name.trim()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders a profile for a device: what the CSR must request and the grant will carry.
pub fn render(profile: &Profile, device: &Device) -> Result<Expected, String> {
    let spec = &profile.spec;
    let subject = parse_subject_format(&spec.subject_name_format)?
        .into_iter()
        .map(|(attr, t)| {
            Ok(NameAttr {
                attr,
                value: render_value(&t, device)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut sans = spec
        .subject_alternative_names
        .iter()
        .map(|s| {
            Ok(San {
                kind: s.kind,
                value: render_value(&s.value, device)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    sans.sort();
    let mut key_usage = spec.key_usage.clone();
    key_usage.sort();
    key_usage.dedup();
    Ok(Expected {
        subject,
        subject_alternative_names: sans,
        key_algorithm: spec.key_algorithm,
        key_size: spec.key_size,
        key_usage,
        extended_key_usages: spec.extended_key_usages.clone(),
        template: spec.template.clone(),
        validity_days: spec.validity_days,
    })
}

/// A subject as an RFC 4514-style string in encoding order, commas and backslashes escaped
/// (the Windows CSP SubjectName form).
pub fn subject_string(subject: &[NameAttr]) -> String {
    subject
        .iter()
        .map(|a| {
            let v = a.value.replace('\\', "\\\\").replace(',', "\\,");
            format!("{}={v}", a.attr.name())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The SAN name type number of the Windows ClientCertificateInstall CSP
/// (`SubjectAlternativeNames` is `type+value;type+value`), from certenroll's
/// `X509AlternativeNameType`: 2 rfc822Name, 3 dNSName, 7 URL, 8 IP address, 11 UPN.
pub fn csp_san_type(kind: SanKind) -> u8 {
    match kind {
        SanKind::Email => 2,
        SanKind::Dns => 3,
        SanKind::Uri => 7,
        SanKind::Ip => 8,
        SanKind::Upn => 11,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::{DeviceState, Platform, SubjectAttr};

    fn device() -> Device {
        Device {
            id: "dev-1".into(),
            name: "LAPTOP-7".into(),
            platform: Platform::Windows,
            serial_number: Some("SN123".into()),
            owner_upn: Some("alice@contoso.example".into()),
            owner_email: None,
            aad_device_id: None,
            user_name: Some("alice".into()),
            state: DeviceState::Active,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn subject_format_keeps_order_and_unescapes() {
        let parsed = parse_subject_format("CN={{DeviceName}},OU=A\\, B,O=Contoso").unwrap();
        let names: Vec<_> = parsed.iter().map(|(a, v)| (a.name(), v.as_str())).collect();
        assert_eq!(
            names,
            [("CN", "{{DeviceName}}"), ("OU", "A, B"), ("O", "Contoso")]
        );
    }

    #[test]
    fn subject_format_refuses_unknown_attributes_variables_and_multivalue() {
        assert!(parse_subject_format("XX=1").is_err());
        assert!(parse_subject_format("CN={{Nope}}").is_err());
        assert!(parse_subject_format("CN=a+OU=b").is_err());
        assert!(parse_subject_format("CN={{DeviceName").is_err());
        assert!(parse_subject_format("").is_err());
        assert!(parse_subject_format("CN=a\\;b").is_err());
    }

    #[test]
    fn variables_render_case_insensitively_and_missing_ones_fail() {
        let d = device();
        assert_eq!(
            render_value("{{devicename}}-{{SERIALNUMBER}}-{{UserPrincipalName}}", &d).unwrap(),
            "LAPTOP-7-SN123-alice@contoso.example"
        );
        assert!(render_value("{{EmailAddress}}", &d).is_err());
        assert_eq!(render_value("{{DeviceId}}", &d).unwrap(), "dev-1");
    }

    #[test]
    fn subject_string_escapes_commas() {
        let s = subject_string(&[
            NameAttr {
                attr: SubjectAttr::CN,
                value: "a,b".into(),
            },
            NameAttr {
                attr: SubjectAttr::O,
                value: "C".into(),
            },
        ]);
        assert_eq!(s, "CN=a\\,b,O=C");
    }
}
