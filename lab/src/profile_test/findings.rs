//! What the report concludes: every finding with a severity. Differences between the
//! certificate and what the profile asked, the CA's lint, and key and signature strength here;
//! template exposures in [`super::exposure`], relying-party requirements in [`super::require`].

use foundation::names::{KeyUsage, NameAttr, San, eku_name};
use policy_api::csr::KeyAlgorithm;
use policy_module::model::HashAlgorithm;
use serde::Serialize;

use super::cert::CertView;
use super::runner::Outcome;

/// How much a finding matters. `--fail-on` (default `high`) turns findings at or above it into
/// exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// A deviation with little consequence.
    Low,
    /// A deviation a reviewer should accept on purpose.
    Medium,
    /// A certificate or template that can be misused, or one that fails what was asked.
    High,
}

impl Severity {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The report section a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// The run itself: rendering, enrollment, chain.
    Run,
    /// The certificate against the profile.
    Difference,
    /// The CA's RFC 5280 lint.
    Lint,
    /// AD CS style template exposures.
    Exposure,
    /// Algorithms, key sizes, validity.
    Strength,
    /// A relying-party requirement asked for with `--require`.
    Requirement,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `esc1`, `difference.eku`, `strength.sha1`.
    pub id: String,
    /// Where it belongs.
    pub section: Section,
    /// How much it matters.
    pub severity: Severity,
    /// What was found, one sentence.
    pub detail: String,
}

impl Finding {
    /// A finding.
    pub fn new(id: &str, section: Section, severity: Severity, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            section,
            severity,
            detail: detail.into(),
        }
    }
}

/// The run's own findings, then differences, lint and strength for an issued certificate.
pub fn analyse(o: &Outcome) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(why) = &o.render_error {
        out.push(Finding::new(
            "run.rendering",
            Section::Run,
            Severity::High,
            format!("the profile does not render for this device: {why}"),
        ));
    }
    let issued = match &o.enrollment {
        Ok(issued) => issued,
        Err(why) => {
            out.push(Finding::new(
                "run.enrollment",
                Section::Run,
                Severity::High,
                format!("the device got no certificate: {why}"),
            ));
            return out;
        }
    };
    if let Err(why) = &issued.chain_verified {
        out.push(Finding::new(
            "run.chain",
            Section::Run,
            Severity::High,
            format!("the chain does not verify to the root: {why}"),
        ));
    }
    differences(o, &issued.cert, &mut out);
    match &o.lint {
        Some(Ok(violations)) => out.extend(violations.iter().map(|v| {
            Finding::new(
                &format!("lint.{}", v.check),
                Section::Lint,
                Severity::High,
                v.detail.clone(),
            )
        })),
        Some(Err(why)) => out.push(Finding::new(
            "lint.unavailable",
            Section::Lint,
            Severity::Medium,
            format!("the CA's lint could not be read: {why}"),
        )),
        None => {}
    }
    strength(&issued.cert, &mut out);
    out
}

fn ku_name(k: KeyUsage) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A dotted OID with its name when it has one.
pub fn eku_text(oid: &str) -> String {
    match eku_name(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_owned(),
    }
}

fn differences(o: &Outcome, cert: &CertView, out: &mut Vec<Finding>) {
    let spec = &o.spec;
    let d = |id: &str, sev, detail: String| Finding::new(id, Section::Difference, sev, detail);
    if let Some(r) = &o.rendered {
        if !same_subject(&r.subject, &cert.subject) || !cert.subject_other.is_empty() {
            out.push(d(
                "difference.subject",
                Severity::High,
                format!(
                    "subject {:?}, the profile renders {:?}",
                    cert.subject_text,
                    foundation::names::subject_text(&r.subject)
                ),
            ));
        }
        let extra: Vec<String> = cert
            .sans
            .iter()
            .filter(|s| !r.subject_alternative_names.contains(s))
            .map(san_text)
            .chain(cert.other_sans.iter().cloned())
            .collect();
        let missing: Vec<String> = r
            .subject_alternative_names
            .iter()
            .filter(|s| !cert.sans.contains(s))
            .map(san_text)
            .collect();
        if !extra.is_empty() {
            out.push(d(
                "difference.san_extra",
                Severity::High,
                format!("SANs the profile does not render: {}", extra.join(", ")),
            ));
        }
        if !missing.is_empty() {
            out.push(d(
                "difference.san_missing",
                Severity::Medium,
                format!(
                    "SANs the profile renders but the certificate lacks: {}",
                    missing.join(", ")
                ),
            ));
        }
    }
    let asked: Vec<String> = spec.key_usage.iter().map(|k| ku_name(*k)).collect();
    let wider: Vec<String> = cert
        .key_usage
        .iter()
        .filter(|k| !asked.contains(k))
        .cloned()
        .collect();
    let narrower: Vec<String> = asked
        .iter()
        .filter(|k| !cert.key_usage.contains(k))
        .cloned()
        .collect();
    if !wider.is_empty() {
        out.push(d(
            "difference.key_usage_extra",
            Severity::Medium,
            format!(
                "key usage the profile did not ask for: {}",
                wider.join(", ")
            ),
        ));
    }
    if !narrower.is_empty() {
        // RFC 5480 3 forbids keyEncipherment with EC keys: the CA drops it, rightly.
        let ec_rule = spec.key_algorithm == KeyAlgorithm::Ec
            && narrower
                .iter()
                .all(|k| k == "keyEncipherment" || k == "dataEncipherment");
        out.push(d(
            "difference.key_usage_missing",
            if ec_rule {
                Severity::Info
            } else {
                Severity::Low
            },
            format!(
                "key usage the profile asked for but the certificate lacks: {}{}",
                narrower.join(", "),
                if ec_rule {
                    " (not allowed for EC keys, RFC 5480 section 3)"
                } else {
                    ""
                }
            ),
        ));
    }
    let wider: Vec<String> = cert
        .extended_key_usage
        .iter()
        .filter(|e| !spec.extended_key_usages.contains(e))
        .map(|e| eku_text(e))
        .collect();
    let narrower: Vec<String> = spec
        .extended_key_usages
        .iter()
        .filter(|e| !cert.extended_key_usage.contains(e))
        .map(|e| eku_text(e))
        .collect();
    if !wider.is_empty() {
        out.push(d(
            "difference.eku_extra",
            Severity::Medium,
            format!(
                "extended key usages the profile did not ask for: {}",
                wider.join(", ")
            ),
        ));
    }
    if !narrower.is_empty() {
        out.push(d(
            "difference.eku_missing",
            Severity::Medium,
            format!(
                "extended key usages the profile asked for but the certificate lacks: {}",
                narrower.join(", ")
            ),
        ));
    }
    // The CA backdates NotBefore by its skew allowance (under a day, lint P35).
    let asked_secs = i64::from(spec.validity_days) * 86_400;
    let got_secs = cert.not_after_unix - cert.not_before_unix;
    if got_secs > asked_secs + 86_400 {
        out.push(d(
            "difference.validity_longer",
            Severity::Medium,
            format!(
                "valid {} days, the profile asked for {}",
                cert.validity_days, spec.validity_days
            ),
        ));
    } else if got_secs < asked_secs {
        out.push(d(
            "difference.validity_shorter",
            Severity::Low,
            format!(
                "valid {} days, the profile asked for {}",
                cert.validity_days, spec.validity_days
            ),
        ));
    }
    let want_alg = match spec.key_algorithm {
        KeyAlgorithm::Rsa => "rsa",
        KeyAlgorithm::Ec => "ec",
    };
    if cert.key_algorithm != want_alg || cert.key_bits != spec.key_size {
        out.push(d(
            "difference.key",
            Severity::Medium,
            format!(
                "key {} {} bits, the profile asked for {want_alg} {}",
                cert.key_algorithm, cert.key_bits, spec.key_size
            ),
        ));
    }
    let want_hash = match spec.hash_algorithm {
        HashAlgorithm::Sha1 => "sha1",
        HashAlgorithm::Sha256 => "sha256",
        HashAlgorithm::Sha384 => "sha384",
        HashAlgorithm::Sha512 => "sha512",
    };
    if !cert.signature_algorithm.to_lowercase().contains(want_hash) {
        out.push(d(
            "difference.hash",
            Severity::Low,
            format!(
                "signed with {}, the profile names {want_hash} (the CA's template decides the signature hash)",
                cert.signature_algorithm
            ),
        ));
    }
}

fn same_subject(want: &[NameAttr], got: &[NameAttr]) -> bool {
    let mut a = want.to_vec();
    let mut b = got.to_vec();
    a.sort_by(|x, y| (x.attr.name(), &x.value).cmp(&(y.attr.name(), &y.value)));
    b.sort_by(|x, y| (x.attr.name(), &x.value).cmp(&(y.attr.name(), &y.value)));
    a == b
}

/// `kind:value`.
pub fn san_text(s: &San) -> String {
    let kind = serde_json::to_value(s.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{kind}:{}", s.value)
}

/// RSA-2048 gives 112-bit security, which NIST SP 800-57 Part 1 accepts only through 2030;
/// a certificate that lives longer than a year is the one most likely to be relied on near
/// that horizon, so it should carry 3072 bits (128-bit security).
const LONG_VALIDITY_DAYS: i64 = 365;
/// The longest validity the CA/Browser Forum and the major platforms accept for TLS (398 days).
const PLATFORM_MAX_DAYS: i64 = 398;

fn strength(cert: &CertView, out: &mut Vec<Finding>) {
    let s = |id: &str, sev, detail: String| Finding::new(id, Section::Strength, sev, detail);
    let alg = cert.signature_algorithm.to_lowercase();
    if alg.contains("sha1") || alg.contains("md5") {
        out.push(s(
            "strength.weak_hash",
            Severity::High,
            format!(
                "signed with {}: SHA-1 and MD5 collisions are practical",
                cert.signature_algorithm
            ),
        ));
    }
    let small = match cert.key_algorithm.as_str() {
        "rsa" => cert.key_bits < 2048,
        "ec" => cert.key_bits < 256,
        _ => false,
    };
    if small {
        out.push(s(
            "strength.small_key",
            Severity::High,
            format!(
                "{} key of {} bits is below today's minimum (RSA 2048, EC 256)",
                cert.key_algorithm, cert.key_bits
            ),
        ));
    } else if cert.key_algorithm == "rsa"
        && cert.key_bits < 3072
        && cert.validity_days > LONG_VALIDITY_DAYS
    {
        out.push(s(
            "strength.rsa_long_validity",
            Severity::Medium,
            format!(
                "RSA {} bits valid {} days: 112-bit security is accepted only through 2030 (NIST SP 800-57); use RSA 3072 or EC for more than a year",
                cert.key_bits, cert.validity_days
            ),
        ));
    }
    if cert.validity_days > PLATFORM_MAX_DAYS {
        out.push(s(
            "strength.long_validity",
            Severity::Low,
            format!(
                "valid {} days, more than the {PLATFORM_MAX_DAYS} days platforms accept for TLS: a compromised key stays usable longer",
                cert.validity_days
            ),
        ));
    }
    if cert.is_ca {
        out.push(s(
            "strength.ca_certificate",
            Severity::High,
            "the device certificate asserts cA: it could issue certificates".into(),
        ));
    }
}
