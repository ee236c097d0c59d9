//! The syntax of a profile's formats, checked when the profile is saved: the subject format
//! (`CN={{DeviceName}},OU=Devices`) and the `{{Variables}}` a subject or SAN value may use.
//! Filling them in for a device is [`crate::render`]'s job.

use foundation::names::SubjectAttr;

/// The variables a profile may use (Intune's names; matched case-insensitively).
pub const VARIABLES: [&str; 8] = [
    "DeviceId",
    "DeviceName",
    "SerialNumber",
    "UserPrincipalName",
    "EmailAddress",
    "AAD_Device_ID",
    "UserName",
    "Platform",
];

/// Splits a subject format into `(attribute, value template)` pairs, in order.
pub fn parse_subject_format(format: &str) -> Result<Vec<(SubjectAttr, String)>, String> {
    let mut out = Vec::new();
    for part in split_unescaped(format)? {
        let (attr, value) = part
            .split_once('=')
            .ok_or_else(|| format!("subject_name_format: {part:?} is not ATTR=value"))?;
        let attr = SubjectAttr::from_name(attr)
            .ok_or_else(|| format!("subject_name_format: unknown attribute {attr:?}"))?;
        let value = value.trim().to_string();
        if value.is_empty() || value.contains('+') || value.contains('=') {
            return Err(format!(
                "subject_name_format: {} needs a single value without '+' or '='",
                attr.name()
            ));
        }
        check_variables(&value).map_err(|e| format!("subject_name_format: {e}"))?;
        out.push((attr, value));
    }
    if out.is_empty() {
        return Err("subject_name_format: empty".into());
    }
    Ok(out)
}

/// Splits on `,` not preceded by a backslash; `\,` and `\\` are the only escapes.
fn split_unescaped(s: &str) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ (',' | '\\')) => push_char(&mut parts, e),
                _ => return Err("subject_name_format: only \\, and \\\\ may be escaped".into()),
            },
            ',' => parts.push(String::new()),
            c if c.is_control() => {
                return Err("subject_name_format: control characters".into());
            }
            c => push_char(&mut parts, c),
        }
    }
    Ok(parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect())
}

fn push_char(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

/// Checks that every `{{...}}` names a known variable and braces are balanced.
pub fn check_variables(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed {{ in variable".to_string())?;
        let name = &after[..end];
        if canonical_variable(name).is_none() {
            return Err(format!("unknown variable {{{{{name}}}}}"));
        }
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err("stray }} in format".into());
    }
    Ok(())
}

pub(crate) fn canonical_variable(name: &str) -> Option<&'static str> {
    VARIABLES
        .into_iter()
        .find(|v| v.eq_ignore_ascii_case(name.trim()))
}
