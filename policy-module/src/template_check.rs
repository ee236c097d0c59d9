//! How a certificate issued under a profile's CA template will differ from the profile.
//!
//! The template decides extensions and caps what the grant may ask (docs/decisions.md #7), so a
//! profile can say clientAuth and its devices get clientAuth, serverAuth and IKE intermediate.
//! Saving, reading and previewing a profile report each such difference, field by field, as a
//! [`ProfileWarning`]; nothing is refused here, the CA remains the judge. The usage rules are
//! the contract's ([`ca_api::template`]), the very ones the CA issues by.

use ca_api::template::{
    Curve, KeyFamily, TemplateInfo, UsageSource, issued_extended_key_usage, issued_key_usage,
};
use foundation::names::eku_name;
use serde::{Deserialize, Serialize};

use crate::format::parse_subject_format;
use crate::model::{KeyAlgorithm, KeyUsage, ProfileSpec};

/// What a difference means for a device enrolling under the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consequence {
    /// The certificate is issued, but not as the profile says.
    Differs,
    /// The CA refuses the request: enrollment will fail.
    Refused,
    /// The template could not be read, so nothing was compared.
    NotCompared,
}

/// One field on which profile and template disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileWarning {
    /// The profile field (`key_usage`, `extended_key_usages`, `validity_days`,
    /// `key_algorithm`, `key_size`, `subject_alternative_names`, `subject_name_format`,
    /// `template`).
    pub field: String,
    /// What the profile says.
    pub profile: String,
    /// What the template says (for usages: what the certificate will carry).
    pub template: String,
    pub consequence: Consequence,
    /// One sentence for people.
    pub effect: String,
}

pub(crate) fn warning(
    field: &str,
    profile: String,
    template: String,
    consequence: Consequence,
    effect: String,
) -> ProfileWarning {
    ProfileWarning {
        field: field.to_owned(),
        profile,
        template,
        consequence,
        effect,
    }
}

fn ku_name(k: KeyUsage) -> &'static str {
    match k {
        KeyUsage::DigitalSignature => "digitalSignature",
        KeyUsage::KeyEncipherment => "keyEncipherment",
        KeyUsage::NonRepudiation => "nonRepudiation",
        KeyUsage::DataEncipherment => "dataEncipherment",
        KeyUsage::KeyAgreement => "keyAgreement",
    }
}

fn eku_label(oid: &str) -> String {
    eku_name(oid).map_or_else(|| oid.to_owned(), str::to_owned)
}

fn list<T>(items: &[T], name: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// "will carry X too" / "will not carry Y" between what was asked and what is issued.
fn usage_effect<T: PartialEq>(asked: &[T], issued: &[T], name: impl Fn(&T) -> String) -> String {
    let extra: Vec<&T> = issued.iter().filter(|i| !asked.contains(i)).collect();
    let missing: Vec<&T> = asked.iter().filter(|a| !issued.contains(a)).collect();
    let mut parts = Vec::new();
    if !extra.is_empty() {
        let names: Vec<_> = extra.iter().map(|e| name(e)).collect();
        parts.push(format!(
            "the certificate will carry {} too",
            names.join(", ")
        ));
    }
    if !missing.is_empty() {
        let names: Vec<_> = missing.iter().map(|m| name(m)).collect();
        parts.push(format!("it will not carry {}", names.join(", ")));
    }
    parts.join("; ")
}

fn family(spec: &ProfileSpec) -> KeyFamily {
    match spec.key_algorithm {
        KeyAlgorithm::Rsa => KeyFamily::Rsa,
        KeyAlgorithm::Ec => KeyFamily::Ec,
    }
}

fn key_text(spec: &ProfileSpec) -> String {
    match spec.key_algorithm {
        KeyAlgorithm::Rsa => format!("RSA {}", spec.key_size),
        KeyAlgorithm::Ec => format!("EC {}", spec.key_size),
    }
}

fn keys_text(t: &TemplateInfo) -> String {
    let mut parts = Vec::new();
    if let Some(min) = t.keys.rsa_min_bits {
        parts.push(format!("RSA at least {min}"));
    }
    if !t.keys.ec_curves.is_empty() {
        let curves: Vec<_> = t
            .keys
            .ec_curves
            .iter()
            .map(|c| format!("EC {}", c.bits()))
            .collect();
        parts.push(curves.join(", "));
    }
    parts.join("; ")
}

fn compare_keys(spec: &ProfileSpec, t: &TemplateInfo, out: &mut Vec<ProfileWarning>) {
    let refused = |field: &str, why: &str| {
        warning(
            field,
            key_text(spec),
            keys_text(t),
            Consequence::Refused,
            format!("{why}: enrollment will fail"),
        )
    };
    match spec.key_algorithm {
        KeyAlgorithm::Rsa => match t.keys.rsa_min_bits {
            None => out.push(refused("key_algorithm", "the template refuses RSA keys")),
            Some(min) if spec.key_size < min => out.push(refused(
                "key_size",
                &format!("the template refuses RSA keys below {min} bits"),
            )),
            Some(_) => {}
        },
        KeyAlgorithm::Ec => {
            let curve = [Curve::P256, Curve::P384]
                .into_iter()
                .find(|c| c.bits() == spec.key_size);
            if t.keys.ec_curves.is_empty() {
                out.push(refused("key_algorithm", "the template refuses EC keys"));
            } else if !curve.is_some_and(|c| t.keys.ec_curves.contains(&c)) {
                out.push(refused("key_size", "the template refuses this curve"));
            }
        }
    }
}

fn compare_usages(spec: &ProfileSpec, t: &TemplateInfo, out: &mut Vec<ProfileWarning>) {
    let narrowed = if t.usages == UsageSource::RequestWithinTemplate {
        " (this template narrows to the profile's usages)"
    } else {
        ""
    };
    let asked = &spec.key_usage;
    match issued_key_usage(t.usages, &t.key_usage, family(spec), asked) {
        Ok(issued) => {
            let effect = usage_effect(asked, &issued, |k| ku_name(*k).to_owned());
            if !effect.is_empty() {
                out.push(warning(
                    "key_usage",
                    list(asked, |k| ku_name(*k).to_owned()),
                    list(&issued, |k| ku_name(*k).to_owned()),
                    Consequence::Differs,
                    format!("{effect}{narrowed}"),
                ));
            }
        }
        Err(e) => out.push(warning(
            "key_usage",
            list(asked, |k| ku_name(*k).to_owned()),
            list(&t.key_usage, |k| ku_name(*k).to_owned()),
            Consequence::Refused,
            format!("the CA refuses: {e}; enrollment will fail"),
        )),
    }
    let asked = &spec.extended_key_usages;
    match issued_extended_key_usage(t.usages, &t.extended_key_usage, asked) {
        Ok(issued) if issued.is_empty() && !asked.is_empty() => out.push(warning(
            "extended_key_usages",
            list(asked, |o| eku_label(o)),
            "none".into(),
            Consequence::Differs,
            "the certificate will carry no EKU extension, so it is valid for any purpose".into(),
        )),
        Ok(issued) => {
            let effect = usage_effect(asked, &issued, |o| eku_label(o));
            if !effect.is_empty() {
                out.push(warning(
                    "extended_key_usages",
                    list(asked, |o| eku_label(o)),
                    list(&issued, |o| eku_label(o)),
                    Consequence::Differs,
                    format!("{effect}{narrowed}"),
                ));
            }
        }
        Err(e) => out.push(warning(
            "extended_key_usages",
            list(asked, |o| eku_label(o)),
            list(&t.extended_key_usage, |o| eku_label(o)),
            Consequence::Refused,
            format!("the CA refuses: {e}; enrollment will fail"),
        )),
    }
}

fn compare_names(spec: &ProfileSpec, t: &TemplateInfo, out: &mut Vec<ProfileWarning>) {
    let attrs: Vec<_> = parse_subject_format(&spec.subject_name_format)
        .map(|a| a.into_iter().map(|(attr, _)| attr).collect())
        .unwrap_or_default();
    let name = |a: &foundation::names::SubjectAttr| a.name().to_owned();
    let refused: Vec<_> = attrs
        .iter()
        .filter(|a| !t.subject_allowed.contains(a))
        .collect();
    let absent: Vec<_> = t
        .subject_required
        .iter()
        .filter(|r| !attrs.contains(r))
        .collect();
    if !refused.is_empty() || !absent.is_empty() {
        let mut why = Vec::new();
        if !refused.is_empty() {
            why.push(format!("{} not allowed", list(&refused, |a| name(a))));
        }
        if !absent.is_empty() {
            why.push(format!("{} required", list(&absent, |a| name(a))));
        }
        out.push(warning(
            "subject_name_format",
            list(&attrs, name),
            format!("allowed {}", list(&t.subject_allowed, name)),
            Consequence::Refused,
            format!(
                "the template refuses this subject ({}): enrollment will fail",
                why.join("; ")
            ),
        ));
    }
    let kinds: Vec<_> = spec
        .subject_alternative_names
        .iter()
        .map(|s| s.kind)
        .collect();
    let kind = |k: &foundation::names::SanKind| format!("{k:?}").to_lowercase();
    let refused: Vec<_> = kinds
        .iter()
        .filter(|k| !t.san_allowed.contains(k))
        .collect();
    if !refused.is_empty() || kinds.len() > t.san_max {
        let why = if refused.is_empty() {
            format!("more than {} SANs", t.san_max)
        } else {
            format!("{} not allowed", list(&refused, |k| kind(k)))
        };
        out.push(warning(
            "subject_alternative_names",
            list(&kinds, kind),
            format!(
                "allowed {} (at most {})",
                list(&t.san_allowed, kind),
                t.san_max
            ),
            Consequence::Refused,
            format!("the template refuses these SANs ({why}): enrollment will fail"),
        ));
    }
}

/// Every difference between `spec` and the template it names, field by field.
pub fn compare(spec: &ProfileSpec, t: &TemplateInfo) -> Vec<ProfileWarning> {
    let mut out = Vec::new();
    compare_keys(spec, t, &mut out);
    compare_usages(spec, t, &mut out);
    if spec.validity_days > t.validity_days {
        out.push(warning(
            "validity_days",
            spec.validity_days.to_string(),
            t.validity_days.to_string(),
            Consequence::Refused,
            format!(
                "the CA refuses a validity longer than the template's {} days (it does not \
                 cap): enrollment will fail",
                t.validity_days
            ),
        ));
    }
    compare_names(spec, t, &mut out);
    out
}

#[cfg(test)]
#[path = "template_check_tests.rs"]
mod tests;
