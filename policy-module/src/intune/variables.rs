//! Intune's `{{Variables}}` and scep-lab's render variables (`crate::format::VARIABLES`).
//! Intune names are matched case-insensitively, like scep-lab's; each side writes its own
//! canonical spelling.

use super::ConversionError;

/// Intune variable -> scep-lab variable, for the ones a scep-lab device can fill.
const INTUNE_TO_LAB: [(&str, &str); 9] = [
    ("DeviceName", "DeviceName"),
    ("DeviceId", "DeviceId"),
    ("AAD_Device_ID", "AAD_Device_ID"),
    ("AzureADDeviceId", "AAD_Device_ID"),
    ("SerialNumber", "SerialNumber"),
    ("Device_Serial", "SerialNumber"),
    ("UserPrincipalName", "UserPrincipalName"),
    ("EmailAddress", "EmailAddress"),
    ("UserName", "UserName"),
];

/// Intune variables a scep-lab device has no attribute for.
const INTUNE_UNMODELLED: [&str; 12] = [
    "IMEI",
    "IMEINumber",
    "Device_IMEI",
    "MEID",
    "WiFiMacAddress",
    "FullyQualifiedDomainName",
    "OnPrem_Distinguished_Name",
    "OnPremisesSamAccountName",
    "OnPremisesSecurityIdentifier",
    "OnPremisesUserPrincipalName",
    "UserId",
    "PartialUPN",
];

/// Which way a value template is translated.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    /// An Intune value into a scep-lab one.
    Import,
    /// A scep-lab value into an Intune one.
    Export,
}

fn translate_name(name: &str, direction: Direction) -> Result<&'static str, String> {
    let name = name.trim();
    match direction {
        Direction::Import => {
            if let Some((_, lab)) = INTUNE_TO_LAB
                .iter()
                .find(|(i, _)| i.eq_ignore_ascii_case(name))
            {
                return Ok(lab);
            }
            if let Some(v) = INTUNE_UNMODELLED
                .iter()
                .find(|v| v.eq_ignore_ascii_case(name))
            {
                return Err(format!(
                    "variable {{{{{v}}}}} is Intune's but a scep-lab device has no such attribute"
                ));
            }
            Err(format!("unknown variable {{{{{name}}}}}"))
        }
        Direction::Export => {
            let lab = crate::format::canonical_variable(name)
                .ok_or_else(|| format!("unknown variable {{{{{name}}}}}"))?;
            INTUNE_TO_LAB
                .iter()
                .find(|(i, l)| *l == lab && i == l)
                .map(|(i, _)| *i)
                .ok_or_else(|| format!("variable {{{{{lab}}}}} has no Intune equivalent"))
        }
    }
}

/// Rewrites every `{{Variable}}` of `value` for the other side; an unknown or untranslatable
/// variable is an error on `property` that names it.
pub(super) fn translate(
    value: &str,
    direction: Direction,
    property: &str,
) -> Result<String, ConversionError> {
    let fail = |m: String| ConversionError::new(property, m);
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| fail("unclosed {{".into()))?;
        let name = translate_name(&after[..end], direction).map_err(fail)?;
        out.push_str("{{");
        out.push_str(name);
        out.push_str("}}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}
